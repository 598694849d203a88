//! Import from another server (`node import`): messages keep the UIDs and the mailbox keeps
//! the UIDVALIDITY they had there. The records are the ordinary ones (a `MailboxCreate` with
//! the given UIDVALIDITY, or an `UidValidity` on a mailbox that never held a message, then
//! `Append`s at the given UIDs), so they replicate like any other change.
//!
//! UIDs only grow (invariant 2): a UID at or above the mailbox's UIDNEXT is taken; a UID
//! below it is accepted only when it already holds the same bytes (a resumed import), and
//! refused otherwise.

use super::plan::Plan;
use super::Reply;
use crate::error::{Result, StoreError};
use crate::mime::MessageFacts;
use crate::names;
use crate::pack::Prepared;
use crate::record::{NewEntry, Op, Record};
use crate::types::*;
use crate::user_core::UserCore;
use std::sync::atomic::Ordering;

/// One message with the UID it had at the source.
pub(crate) struct ImportMsg {
    pub uid: u32,
    pub object: Prepared,
    pub facts: Option<Box<MessageFacts>>,
    pub flags: Flags,
    pub internal_date: (i64, i32),
}

pub(crate) struct ImportReq {
    pub mailbox: String,
    pub uidvalidity: u32,
    /// Ascending by UID (the facade sorts them).
    pub messages: Vec<ImportMsg>,
}

/// A source's keyword or date that a peer would refuse in a record (so the record could not
/// replicate) is refused here, naming the message.
fn refuse_what_peers_would(op: &Op, uid: u32) -> Result<()> {
    let probe = Record {
        origin: 1,
        seq: 1,
        time: HlcTime {
            wall_ms: 0,
            logical: 0,
            node: 1,
        },
        op: op.clone(),
    };
    crate::merge::validate::validate_peer_record(&probe)
        .map_err(|e| StoreError::Other(format!("UID {uid}: {}", e.why)))
}

impl UserCore {
    pub(super) fn plan_import(&self, p: &mut Plan, req: ImportReq) -> Result<Reply> {
        let Plan { tx, meta, b } = p;
        let ImportReq {
            mailbox,
            uidvalidity,
            messages,
        } = req;
        if uidvalidity == 0 {
            return Err(StoreError::Other("UIDVALIDITY 0 is not valid".into()));
        }
        let name = names::validate_mailbox(&names::canonical(&mailbox))?;
        let mb = match tx.mailbox_by_name(&name)? {
            Some(mb) => mb,
            None => {
                let id = self.shared.new_guid();
                let op = Op::MailboxCreate {
                    mailbox: id,
                    name: name.clone(),
                    uidvalidity,
                    special_use: None,
                };
                self.emit(tx, meta, b, op)?;
                self.mailbox_of(tx, &id)?
            }
        };
        if mb.uidvalidity != uidvalidity {
            // Only a mailbox no client has seen a UID of may take another UIDVALIDITY.
            if mb.uidnext != 1 || mb.exists != 0 {
                return Err(StoreError::Other(format!(
                    "mailbox {} has UIDVALIDITY {} and has held messages; the source's is {}: \
                     import into a new mailbox (or a new user) to keep the source's UIDs",
                    mb.name, mb.uidvalidity, uidvalidity
                )));
            }
            let op = Op::UidValidity {
                mailbox: mb.id,
                uidvalidity,
            };
            self.emit(tx, meta, b, op)?;
        }
        let mut out = ImportOutcome::default();
        for m in messages {
            let mb = self.mailbox_of(tx, &mb.id)?;
            if m.uid == 0 {
                out.refused.push(0);
                continue;
            }
            if m.uid < mb.uidnext {
                match tx.msg(&mb.id, m.uid)? {
                    Some(have) if have.meta.object == m.object.id => out.present += 1,
                    _ => out.refused.push(m.uid),
                }
                continue;
            }
            self.check_quota(tx, m.object.raw_len, 1)?;
            let entry = NewEntry {
                guid: self.shared.new_guid(),
                uid: m.uid,
                object: m.object.id,
                size: m.object.raw_len,
                internal_date: m.internal_date.0,
                internal_date_tz_min: m.internal_date.1,
                flags: m.flags,
            };
            if let Some(f) = m.facts {
                tx.put(crate::index::k_facts(&m.object.id), &*f);
            }
            Self::add_object(tx, b, m.object)?;
            let op = Op::Append {
                mailbox: mb.id,
                entry,
                modseq: mb.highestmodseq + 1,
                delivery_key: None,
            };
            refuse_what_peers_would(&op, m.uid)?;
            self.emit(tx, meta, b, op)?;
            self.shared.counters.appends.fetch_add(1, Ordering::Relaxed);
            out.imported += 1;
        }
        let mb = self.mailbox_of(tx, &mb.id)?;
        out.uidvalidity = mb.uidvalidity;
        out.uidnext = mb.uidnext;
        Ok(Reply::Import(out))
    }
}
