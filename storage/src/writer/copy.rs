//! COPY and MOVE: new entries in the destination pointing at the same objects (no body is
//! copied), with new GUIDs and UIDs from the destination's UIDNEXT; MOVE expunges the sources
//! in the same record.

use super::plan::{Plan, CHUNK};
use super::Reply;
use crate::error::{Result, StoreError};
use crate::record::{NewEntry, Op};
use crate::types::*;
use crate::user_core::UserCore;
use std::collections::BTreeSet;

impl UserCore {
    /// Copies (or moves) `uids` of `from` to `to`, cut into records of [`CHUNK`] messages.
    pub(super) fn plan_copy(
        &self,
        p: &mut Plan,
        from: String,
        uids: Vec<u32>,
        to: String,
        mv: bool,
    ) -> Result<Reply> {
        let Plan { tx, meta, b } = p;
        let src = self.mailbox_for(tx, &from)?;
        let dst = self.mailbox_for(tx, &to)?;
        let wanted: BTreeSet<u32> = uids.into_iter().collect();
        let mut msgs = Vec::new();
        for uid in wanted {
            if let Some(m) = tx.msg(&src.id, uid)? {
                msgs.push(m.meta);
            }
        }
        if msgs.is_empty() {
            return Ok(Reply::Copy(CopyOutcome {
                dst_uidvalidity: dst.uidvalidity,
                pairs: Vec::new(),
            }));
        }
        if !mv || src.id != dst.id {
            let bytes = msgs.iter().map(|m| m.size).sum();
            if !mv {
                self.check_quota(tx, bytes, msgs.len() as u64)?;
            }
        }
        if (dst.uidnext as u64) + msgs.len() as u64 >= u32::MAX as u64 {
            return Err(StoreError::Other(format!(
                "mailbox {} has no UIDs left",
                dst.name
            )));
        }
        let mut pairs = Vec::new();
        let mut entries = Vec::new();
        for (i, m) in msgs.iter().enumerate() {
            let uid = dst.uidnext + i as u32;
            pairs.push((m.uid, uid));
            entries.push((
                m.guid,
                NewEntry {
                    guid: self.shared.new_guid(),
                    uid,
                    object: m.object,
                    size: m.size,
                    internal_date: m.internal_date,
                    internal_date_tz_min: m.internal_date_tz_min,
                    flags: m.flags.clone(),
                },
            ));
        }
        for chunk in entries.chunks(CHUNK) {
            let (src, dst) = (self.mailbox_of(tx, &src.id)?, self.mailbox_of(tx, &dst.id)?);
            let op = if mv {
                Op::Move {
                    from: src.id,
                    to: dst.id,
                    entries: chunk.to_vec(),
                    modseq: dst.highestmodseq + 1,
                    from_modseq: src.highestmodseq + 1,
                }
            } else {
                Op::Copy {
                    from: src.id,
                    to: dst.id,
                    entries: chunk.to_vec(),
                    modseq: dst.highestmodseq + 1,
                }
            };
            self.emit(tx, meta, b, op)?;
        }
        Ok(Reply::Copy(CopyOutcome {
            dst_uidvalidity: dst.uidvalidity,
            pairs,
        }))
    }
}
