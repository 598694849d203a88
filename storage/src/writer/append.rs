//! APPEND and LMTP delivery: a new message at the mailbox's UIDNEXT with a new GUID; a retried
//! delivery (same delivery key within the dedupe window) returns the first outcome instead.

use super::plan::Plan;
use super::Reply;
use crate::error::{Result, StoreError};
use crate::index;
use crate::mime::MessageFacts;
use crate::pack::Prepared;
use crate::record::{NewEntry, Op};
use crate::types::*;
use crate::user_core::UserCore;
use std::sync::atomic::Ordering;

/// A new message for a mailbox, as APPEND or LMTP brings it.
pub(crate) struct AppendReq {
    pub mailbox: String,
    pub object: Prepared,
    pub facts: Option<Box<MessageFacts>>,
    pub flags: Flags,
    pub internal_date: (i64, i32),
    pub delivery_key: Option<[u8; 32]>,
}

impl UserCore {
    /// Plans one new message.
    pub(super) fn plan_append(&self, p: &mut Plan, req: AppendReq) -> Result<Reply> {
        let Plan { tx, meta, b } = p;
        let AppendReq {
            mailbox,
            object,
            facts,
            flags,
            internal_date,
            delivery_key,
        } = req;
        let mb = self.mailbox_for(tx, &mailbox)?;
        if let Some(key) = &delivery_key {
            if let Some(d) = tx.get::<index::Delivery>(&index::k_delivery(key))? {
                let window = self.shared.config.delivery_dedupe_window_secs * 1000;
                let recent = self.shared.hlc.wall_ms().saturating_sub(d.wall_ms) < window;
                // Still in its mailbox: the same delivery however far the wall clock jumped
                // since (a forward step of a day must not make a retry a second copy).
                let g = d.outcome.guid;
                let present = tx.get_raw(&index::k_guid(&g))?.is_some()
                    || tx
                        .get_raw(&index::k_pending(&d.outcome.mailbox, &g))?
                        .is_some();
                if recent || present {
                    return Ok(Reply::Append(AppendOutcome {
                        duplicate: true,
                        ..d.outcome
                    }));
                }
            }
        }
        self.check_quota(tx, object.raw_len, 1)?;
        if mb.uidnext == u32::MAX {
            return Err(StoreError::Other(format!(
                "mailbox {} has no UIDs left",
                mb.name
            )));
        }
        let guid = self.shared.new_guid();
        let entry = NewEntry {
            guid,
            uid: mb.uidnext,
            object: object.id,
            size: object.raw_len,
            internal_date: internal_date.0,
            internal_date_tz_min: internal_date.1,
            flags,
        };
        let modseq = mb.highestmodseq + 1;
        if let Some(f) = facts {
            tx.put(index::k_facts(&object.id), &*f);
        }
        Self::add_object(tx, b, object)?;
        self.emit(
            tx,
            meta,
            b,
            Op::Append {
                mailbox: mb.id,
                entry: entry.clone(),
                modseq,
                delivery_key,
            },
        )?;
        self.shared.counters.appends.fetch_add(1, Ordering::Relaxed);
        Ok(Reply::Append(AppendOutcome {
            mailbox: mb.id,
            uidvalidity: mb.uidvalidity,
            uid: entry.uid,
            guid,
            modseq,
            duplicate: false,
        }))
    }
}
