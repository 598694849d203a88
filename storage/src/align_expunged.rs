//! Expunge modseqs for the merge resolver: a mailbox's tombstones as a peer compares them, and
//! `Op::AlignExpunged`, which gives differing ones one common modseq (see
//! `replication/src/align.rs`).
//!
//! The record is written through the writer's remote-record path, stamped with this node's
//! origin and next sequence number: the writer has no request of its own for it yet (wanted:
//! a `Req::AlignExpunged` in writer.rs, emitted like `Req::Align`). The path appends and applies
//! the record exactly as `emit` would (same index `apply`, same group commit and fdatasync);
//! when a local write takes that sequence number first the record is skipped there (seq at or
//! below the version vector) and is stamped again with the next one.

use crate::index::{self, Tomb};
use crate::record::{Op, Record};
use crate::store::UserStore;
use crate::types::*;
use crate::writer::{Reply, Req};
use crate::{Result, StoreError};
use std::collections::HashSet;

/// UIDs per record, as the writer cuts other large changes.
const CHUNK: usize = 2_000;
/// Times a record is stamped again after local writes took its sequence number.
const RESTAMPS: usize = 64;

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
        let v = self.view();
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
        let node = self.shared.config.node_id;
        let mut chunks: Vec<&[u32]> = uids.chunks(CHUNK).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        for chunk in chunks {
            let mut written = false;
            for _ in 0..RESTAMPS {
                if self.view().mailbox(mailbox)?.is_none() {
                    return Ok(None);
                }
                let seq = self.version_vector()?.get(&node).copied().unwrap_or(0) + 1;
                let rec = Record {
                    origin: node,
                    seq,
                    time: self.shared.hlc.now(),
                    op: Op::AlignExpunged {
                        mailbox: *mailbox,
                        modseq: min_modseq,
                        uids: chunk.to_vec(),
                    },
                };
                let applied = match self.submit(Req::Remote {
                    objects: Vec::new(),
                    records: vec![rec],
                    purged: HashSet::new(),
                })? {
                    Reply::Applied(a) => a.applied,
                    _ => return Err(StoreError::Other("writer answered another request".into())),
                };
                if applied == 1 {
                    written = true;
                    break;
                }
            }
            if !written {
                return Err(StoreError::Other(format!(
                    "user {}: expunge modseq alignment kept losing its sequence number to local writes",
                    self.name
                )));
            }
        }
        Ok(self.view().mailbox(mailbox)?.map(|mb| mb.highestmodseq))
    }
}
