//! STORE: flag changes, with CONDSTORE's UNCHANGEDSINCE; one record (and one modseq) per
//! chunk of messages whose flags really change.

use super::plan::{Plan, CHUNK};
use super::Reply;
use crate::error::Result;
use crate::record::Op;
use crate::types::*;
use crate::user_core::UserCore;
use std::collections::BTreeSet;

impl UserCore {
    /// Applies a flag change to `uids` of `mailbox`; reports what changed and what was modified
    /// since `unchanged_since`.
    pub(super) fn plan_flags(
        &self,
        p: &mut Plan,
        mailbox: String,
        uids: Vec<u32>,
        mode: FlagMode,
        flags: Flags,
        unchanged_since: Option<u64>,
    ) -> Result<Reply> {
        let Plan { tx, meta, b } = p;
        let mb = self.mailbox_for(tx, &mailbox)?;
        let wanted: BTreeSet<u32> = uids.into_iter().collect();
        let mut targets = Vec::new();
        let mut modified = Vec::new();
        for uid in wanted {
            let Some(m) = tx.msg(&mb.id, uid)? else {
                continue;
            };
            if unchanged_since.is_some_and(|u| m.meta.modseq > u) {
                modified.push(uid);
                continue;
            }
            targets.push(m.meta);
        }
        let (add, remove): (Flags, Flags) = match mode {
            FlagMode::Add => (flags.clone(), Flags::new()),
            FlagMode::Remove => (Flags::new(), flags.clone()),
            FlagMode::Replace => {
                let mut rm = Flags::new();
                for m in &targets {
                    rm.extend(m.flags.difference(&flags).cloned());
                }
                (flags.clone(), rm)
            }
        };
        let changes = targets.iter().any(|m| {
            add.iter().any(|f| !m.flags.contains(f)) || remove.iter().any(|f| m.flags.contains(f))
        });
        if changes {
            let guids: Vec<Guid> = targets.iter().map(|m| m.guid).collect();
            for chunk in guids.chunks(CHUNK) {
                let modseq = self.mailbox_of(tx, &mb.id)?.highestmodseq + 1;
                let op = Op::Flags {
                    mailbox: mb.id,
                    messages: chunk.to_vec(),
                    add: add.clone(),
                    remove: remove.clone(),
                    modseq,
                };
                self.emit(tx, meta, b, op)?;
            }
        }
        let mut updated = Vec::new();
        for m in &targets {
            if let Some(now) = tx.msg(&mb.id, m.uid)? {
                updated.push((m.uid, now.meta.flags, now.meta.modseq));
            }
        }
        Ok(Reply::Store(StoreOutcome { updated, modified }))
    }
}
