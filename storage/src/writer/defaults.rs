//! The default mailboxes a new user starts with (INBOX, Drafts, Sent, ...), each subscribed.

use super::plan::Plan;
use super::Reply;
use super::{default_mailbox_guid, DEFAULT_MAILBOXES};
use crate::error::Result;
use crate::record::Op;
use crate::user_core::UserCore;

impl UserCore {
    /// Creates what is missing of the defaults; a no-op once INBOX exists.
    pub(super) fn init_defaults(&self, p: &mut Plan) -> Result<Reply> {
        let Plan { tx, meta, b } = p;
        if tx.mailbox_by_name("INBOX")?.is_some() {
            return Ok(Reply::Unit);
        }
        for (name, su) in DEFAULT_MAILBOXES {
            let mailbox = default_mailbox_guid(&self.name, name);
            if tx.mailbox(&mailbox)?.is_some() || tx.mailbox_by_name(name)?.is_some() {
                continue;
            }
            self.emit_create(tx, meta, b, mailbox, name.to_string(), su)?;
            self.emit(
                tx,
                meta,
                b,
                Op::Subscribe {
                    name: name.to_string(),
                },
            )?;
        }
        Ok(Reply::Unit)
    }
}
