//! EXPUNGE (and UID EXPUNGE): the listed messages leave the mailbox; records name them by GUID.

use super::plan::{Plan, CHUNK};
use super::Reply;
use crate::error::Result;
use crate::record::Op;
use crate::user_core::UserCore;
use std::collections::BTreeSet;

impl UserCore {
    /// Expunges `uids` of `mailbox`; returns the UIDs that were there.
    pub(super) fn plan_expunge(
        &self,
        p: &mut Plan,
        mailbox: String,
        uids: Vec<u32>,
    ) -> Result<Reply> {
        let Plan { tx, meta, b } = p;
        let mb = self.mailbox_for(tx, &mailbox)?;
        let wanted: BTreeSet<u32> = uids.into_iter().collect();
        let mut gone = Vec::new();
        let mut guids = Vec::new();
        for uid in wanted {
            if let Some(m) = tx.msg(&mb.id, uid)? {
                gone.push(uid);
                guids.push(m.meta.guid);
            }
        }
        for chunk in guids.chunks(CHUNK) {
            let modseq = self.mailbox_of(tx, &mb.id)?.highestmodseq + 1;
            let op = Op::Expunge {
                mailbox: mb.id,
                messages: chunk.to_vec(),
                modseq,
            };
            self.emit(tx, meta, b, op)?;
        }
        Ok(Reply::Expunged(gone))
    }
}
