//! The merge resolver's records, written by this node: the renumbering of UID conflicts
//! ([`crate::merge::uids`]) and the alignment of modseqs ([`crate::merge::modseqs`]).

use super::plan::{Plan, CHUNK};
use super::Reply;
use crate::error::{Result, StoreError};
use crate::index;
use crate::record::Op;
use crate::types::*;
use crate::user_core::UserCore;

impl UserCore {
    /// Renumbers every message involved in a UID conflict of `mailbox` past its UIDNEXT.
    pub(super) fn plan_resolve(&self, p: &mut Plan, mailbox: String) -> Result<Reply> {
        let Plan { tx, meta, b } = p;
        let mb = self.mailbox_for(tx, &mailbox)?;
        let pending = tx.scan::<index::PendingEntry>(&index::k_pending_prefix(&mb.id))?;
        let contested = tx.scan::<Guid>(&index::k_contested_prefix(&mb.id))?;
        let mut involved: Vec<Guid> = Vec::new();
        for (_, p) in &pending {
            if let Some(local) = tx.msg(&mb.id, p.entry.uid)? {
                if !involved.contains(&local.meta.guid) {
                    involved.push(local.meta.guid);
                }
            }
            involved.push(p.entry.guid);
        }
        // A holder whose claimant is already gone (a purged message travels with its
        // removal) still leaves the UID: the claimant's node named it by that UID.
        for (_, holder) in &contested {
            if tx.get_raw(&index::k_guid(holder))?.is_some() && !involved.contains(holder) {
                involved.push(*holder);
            }
        }
        if involved.is_empty() {
            return Ok(Reply::Resolved(None));
        }
        let moves = crate::merge::uids::renumber(mb.uidnext, &involved).map_err(|e| {
            StoreError::Other(format!(
                "mailbox {}: cannot resolve UID conflicts: {e}",
                mb.name
            ))
        })?;
        let rec = self.emit(
            tx,
            meta,
            b,
            Op::Renumber {
                mailbox: mb.id,
                moves,
                modseq: mb.highestmodseq + 1,
            },
        )?;
        Ok(Reply::Resolved(Some(rec)))
    }

    /// Writes `Op::AlignModseqs` (see `UserStore::align_modseqs`).
    pub(super) fn plan_align(
        &self,
        p: &mut Plan,
        mailbox: MailboxId,
        modseq: u64,
        messages: Vec<Guid>,
    ) -> Result<Reply> {
        let Plan { tx, meta, b } = p;
        if tx.mailbox(&mailbox)?.is_none() {
            return Ok(Reply::Aligned(None));
        }
        // Large lists become several records, like any change (each lands one above
        // the previous, the same on every node).
        let mut chunks: Vec<Vec<Guid>> = messages.chunks(CHUNK).map(<[Guid]>::to_vec).collect();
        if chunks.is_empty() {
            chunks.push(Vec::new()); // HIGHESTMODSEQ alone differs
        }
        for messages in chunks {
            self.emit(
                tx,
                meta,
                b,
                Op::AlignModseqs {
                    mailbox,
                    modseq,
                    messages,
                },
            )?;
        }
        Ok(Reply::Aligned(
            tx.mailbox(&mailbox)?.map(|mb| mb.highestmodseq),
        ))
    }

    /// Writes `Op::AlignExpunged` (see `UserStore::align_expunged`).
    pub(super) fn plan_align_expunged(
        &self,
        p: &mut Plan,
        mailbox: MailboxId,
        modseq: u64,
        uids: Vec<u32>,
    ) -> Result<Reply> {
        let Plan { tx, meta, b } = p;
        if tx.mailbox(&mailbox)?.is_none() {
            return Ok(Reply::Aligned(None));
        }
        let mut chunks: Vec<Vec<u32>> = uids.chunks(CHUNK).map(<[u32]>::to_vec).collect();
        if chunks.is_empty() {
            chunks.push(Vec::new());
        }
        for uids in chunks {
            self.emit(
                tx,
                meta,
                b,
                Op::AlignExpunged {
                    mailbox,
                    modseq,
                    uids,
                },
            )?;
        }
        Ok(Reply::Aligned(
            tx.mailbox(&mailbox)?.map(|mb| mb.highestmodseq),
        ))
    }
}
