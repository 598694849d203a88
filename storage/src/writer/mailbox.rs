//! Mailbox requests: CREATE, DELETE, RENAME (INBOX's special rename included) and
//! SUBSCRIBE/UNSUBSCRIBE.

use super::plan::{Plan, CHUNK};
use super::Reply;
use crate::error::{Result, StoreError};
use crate::index;
use crate::names;
use crate::record::{NewEntry, Op};
use crate::types::*;
use crate::user_core::UserCore;

impl UserCore {
    /// CREATE: a new mailbox with a new GUID and UIDVALIDITY.
    pub(super) fn plan_create(
        &self,
        p: &mut Plan,
        name: String,
        special_use: Option<SpecialUse>,
    ) -> Result<Reply> {
        let Plan { tx, meta, b } = p;
        let name = names::validate_mailbox(&name)?;
        if tx.mailbox_by_name(&name)?.is_some() {
            return Err(StoreError::MailboxExists(name));
        }
        let mailbox = self.shared.new_guid();
        self.emit_create(tx, meta, b, mailbox, name.clone(), special_use)?;
        let mb = tx
            .mailbox(&mailbox)?
            .ok_or_else(|| StoreError::Other("created mailbox vanished".into()))?;
        let sub = tx.get_raw(&index::k_sub(&mb.name))?.is_some();
        Ok(Reply::Mailbox(mb.info(sub)))
    }

    /// DELETE: refused for INBOX and for a mailbox with children.
    pub(super) fn plan_delete(&self, p: &mut Plan, name: String) -> Result<Reply> {
        let Plan { tx, meta, b } = p;
        let canon = names::canonical(&name);
        if names::is_inbox(&canon) {
            return Err(StoreError::MailboxProtected(canon));
        }
        let mb = self.mailbox_for(tx, &canon)?;
        let children = tx.scan_raw(&index::k_name(&format!("{}/", mb.name)))?;
        if !children.is_empty() {
            return Err(StoreError::HasChildren(mb.name));
        }
        self.emit(tx, meta, b, Op::MailboxDelete { mailbox: mb.id })?;
        Ok(Reply::Unit)
    }

    /// RENAME, children included; renaming INBOX moves its messages to a new mailbox (RFC 9051
    /// 6.3.6) and leaves INBOX empty.
    pub(super) fn plan_rename(&self, p: &mut Plan, from: String, to: String) -> Result<Reply> {
        let Plan { tx, meta, b } = p;
        let src = self.mailbox_for(tx, &from)?;
        let to = names::validate_mailbox(&to)?;
        if tx.mailbox_by_name(&to)?.is_some() {
            return Err(StoreError::MailboxExists(to));
        }
        if to.starts_with(&format!("{}/", src.name)) {
            return Err(StoreError::InvalidMailboxName {
                name: to,
                reason: "cannot rename a mailbox into itself",
            });
        }
        if names::is_inbox(&src.name) {
            // RFC 9051 6.3.6: a new mailbox gets INBOX's messages; INBOX stays, empty.
            let mailbox = self.shared.new_guid();
            self.emit_create(tx, meta, b, mailbox, to.clone(), None)?;
            let msgs = tx.messages(&src.id)?;
            if !msgs.is_empty() {
                let entries: Vec<(Guid, NewEntry)> = msgs
                    .iter()
                    .enumerate()
                    .map(|(i, m)| {
                        let m = &m.meta;
                        (
                            m.guid,
                            NewEntry {
                                guid: self.shared.new_guid(),
                                uid: 1 + i as u32,
                                object: m.object,
                                size: m.size,
                                internal_date: m.internal_date,
                                internal_date_tz_min: m.internal_date_tz_min,
                                flags: m.flags.clone(),
                            },
                        )
                    })
                    .collect();
                for chunk in entries.chunks(CHUNK) {
                    let from = self.mailbox_of(tx, &src.id)?;
                    let to = self.mailbox_of(tx, &mailbox)?;
                    let op = Op::Move {
                        from: from.id,
                        to: to.id,
                        entries: chunk.to_vec(),
                        modseq: to.highestmodseq + 1,
                        from_modseq: from.highestmodseq + 1,
                    };
                    self.emit(tx, meta, b, op)?;
                }
            }
            return Ok(Reply::Unit);
        }
        let prefix = format!("{}/", src.name);
        let children = tx.scan::<MailboxId>(&index::k_name(&prefix))?;
        self.emit(
            tx,
            meta,
            b,
            Op::MailboxRename {
                mailbox: src.id,
                new_name: to.clone(),
            },
        )?;
        for (k, id) in children {
            let old = String::from_utf8_lossy(&k[1..]).into_owned();
            let new_name = format!("{to}/{}", &old[prefix.len()..]);
            self.emit(
                tx,
                meta,
                b,
                Op::MailboxRename {
                    mailbox: id,
                    new_name,
                },
            )?;
        }
        Ok(Reply::Unit)
    }

    /// SUBSCRIBE / UNSUBSCRIBE: a record only when the state changes.
    pub(super) fn plan_subscribe(&self, p: &mut Plan, name: String, on: bool) -> Result<Reply> {
        let Plan { tx, meta, b } = p;
        let name = names::validate_mailbox(&name)?;
        let present = tx.get_raw(&index::k_sub(&name))?.is_some();
        if present != on {
            let op = if on {
                Op::Subscribe { name }
            } else {
                Op::Unsubscribe { name }
            };
            self.emit(tx, meta, b, op)?;
        }
        Ok(Reply::Unit)
    }
}
