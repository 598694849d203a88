//! Expunge modseqs for the merge resolver: a mailbox's tombstones as a peer compares them, and
//! `Op::AlignExpunged`, which gives differing ones one common modseq (see
//! `replication/src/align.rs`).
//!
//! The record is this node's own, written by the writer like `Op::AlignModseqs` (cut into
//! records of at most the writer's chunk of UIDs).

use super::UserStore;
use crate::index::{self, Tomb};
use crate::types::*;
use crate::writer::{Reply, Req};
use crate::{Result, StoreError};

/// One expunged UID of a mailbox: the message it named and its expunge modseq.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tombstone {
    pub uid: u32,
    pub guid: Guid,
    pub modseq: u64,
}

impl UserStore {
    /// The tombstones (expunged UIDs) of a mailbox, in UID order; None if the mailbox is gone.
    pub fn tombstones(&self, mailbox: &MailboxId) -> Result<Option<Vec<Tombstone>>> {
        let v = self.core.view();
        if v.mailbox(mailbox)?.is_none() {
            return Ok(None);
        }
        Ok(Some(
            index::tombstones(&v, mailbox)?
                .into_iter()
                .map(|(uid, Tomb { guid, modseq })| Tombstone { uid, guid, modseq })
                .collect(),
        ))
    }

    /// Gives the tombstones of `uids` (those held here) and the mailbox's HIGHESTMODSEQ one
    /// common modseq, `max(min_modseq, HIGHESTMODSEQ + 1)`, as durable `Op::AlignExpunged`
    /// record(s). Returns HIGHESTMODSEQ afterwards, None if the mailbox is gone. Durable on
    /// return: the group commit's log fdatasync, as every write.
    pub fn align_expunged(
        &self,
        mailbox: &MailboxId,
        min_modseq: u64,
        uids: &[u32],
    ) -> Result<Option<u64>> {
        match self.submit(Req::AlignExpunged {
            mailbox: *mailbox,
            modseq: min_modseq,
            uids: uids.to_vec(),
        })? {
            Reply::Aligned(m) => Ok(m),
            _ => Err(StoreError::Other("writer answered another request".into())),
        }
    }
}
