//! What planning every kind of request shares: the batch being built, stamping a local change
//! into a record (applied to the staged index at once), mailbox lookups, objects, quota.

use crate::error::{Result, StoreError};
use crate::index::{self, apply, Effects, Meta, Txn};
use crate::log;
use crate::names;
use crate::pack::Prepared;
use crate::record::{Op, Record};
use crate::types::*;
use crate::user_core::UserCore;
use std::collections::HashSet;

/// What one batch will write.
#[derive(Default)]
pub(super) struct Batch {
    pub records: Vec<Record>,
    /// The records' log payloads, encoded once when planned (and size-checked there).
    pub encoded: Vec<Vec<u8>>,
    pub objects: Vec<Prepared>,
    pub new_objects: HashSet<ObjectId>,
    /// The mailboxes this batch's own records touch, as they were before each record
    /// (`replicated` durability only; see `unconfirmed`).
    pub before: Vec<crate::unconfirmed::Before>,
}

/// One request's planning context: the staged index, the checkpoint and the batch.
pub(super) struct Plan<'p, 't> {
    pub tx: &'p mut Txn<'t>,
    pub meta: &'p mut Meta,
    pub b: &'p mut Batch,
}

/// Messages per Copy/Move/Flags/Expunge record: keeps every record far below the log's frame
/// limit whatever a client selects (a larger change becomes several records).
pub(super) const CHUNK: usize = 2_000;

/// A record's log payload; refused (before anything is written) if it would not fit a frame.
pub(super) fn encoded(rec: &Record) -> Result<Vec<u8>> {
    let payload = log::encode_record(rec);
    if payload.len() > log::MAX_RECORD {
        return Err(StoreError::Other(format!(
            "change too large for one log record ({} bytes, {} at most)",
            payload.len(),
            log::MAX_RECORD
        )));
    }
    Ok(payload)
}

impl UserCore {
    /// Stamps a local change, applies it to the staged index, queues it for the log.
    pub(super) fn emit(
        &self,
        tx: &mut Txn,
        meta: &mut Meta,
        b: &mut Batch,
        op: Op,
    ) -> Result<Record> {
        let node = self.shared.config.node_id;
        let rec = Record {
            origin: node,
            seq: meta.vv.get(&node).copied().unwrap_or(0) + 1,
            time: self.shared.hlc.now(),
            op,
        };
        let payload = encoded(&rec)?;
        if self.shared.config.hide_unconfirmed_writes {
            for mailbox in touched(&rec.op) {
                if let Some(mb) = tx.mailbox(&mailbox)? {
                    b.before.push(crate::unconfirmed::Before {
                        seq: rec.seq,
                        mailbox,
                        uidnext: mb.uidnext,
                        highestmodseq: mb.highestmodseq,
                    });
                }
            }
        }
        let mut fx = Effects {
            arriving: Some(&b.new_objects),
            ..Effects::default()
        };
        apply(tx, meta, &rec, &mut fx)?;
        b.records.push(rec.clone());
        b.encoded.push(payload);
        Ok(rec)
    }

    pub(super) fn mailbox_for(&self, tx: &Txn, name: &str) -> Result<index::MailboxRec> {
        tx.mailbox_by_name(&names::canonical(name))?
            .ok_or_else(|| StoreError::NoSuchMailbox(name.to_string()))
    }

    pub(super) fn mailbox_of(&self, tx: &Txn, id: &MailboxId) -> Result<index::MailboxRec> {
        tx.mailbox(id)?
            .ok_or_else(|| StoreError::Other("mailbox vanished during a change".into()))
    }

    pub(super) fn object_present(tx: &Txn, b: &Batch, id: &ObjectId) -> Result<bool> {
        Ok(b.new_objects.contains(id) || tx.get_raw(&index::k_object(id))?.is_some())
    }

    pub(super) fn add_object(tx: &Txn, b: &mut Batch, o: Prepared) -> Result<()> {
        if !Self::object_present(tx, b, &o.id)? {
            b.new_objects.insert(o.id);
            b.objects.push(o);
        }
        Ok(())
    }

    pub(super) fn check_quota(&self, tx: &Txn, add_bytes: u64, add_msgs: u64) -> Result<()> {
        let limits = self.quota_limits();
        if limits.max_bytes.is_none() && limits.max_messages.is_none() {
            return Ok(());
        }
        let (bytes, msgs) = crate::user_core::usage(tx)?;
        if let Some(max) = limits.max_bytes {
            if bytes + add_bytes > max {
                return Err(StoreError::OverQuota(format!(
                    "storage: {} + {add_bytes} bytes exceeds the limit of {max}",
                    bytes
                )));
            }
        }
        if let Some(max) = limits.max_messages {
            if msgs + add_msgs > max {
                return Err(StoreError::OverQuota(format!(
                    "messages: {msgs} + {add_msgs} exceeds the limit of {max}"
                )));
            }
        }
        Ok(())
    }

    pub(super) fn new_uidvalidity(&self, meta: &Meta) -> u32 {
        let now = (self.shared.hlc.now().wall_ms / 1000).min(u32::MAX as u64) as u32;
        now.max(meta.max_uidvalidity.saturating_add(1))
    }

    /// Emits the creation of `mailbox` as `name`, with a new UIDVALIDITY.
    pub(super) fn emit_create(
        &self,
        tx: &mut Txn,
        meta: &mut Meta,
        b: &mut Batch,
        mailbox: MailboxId,
        name: String,
        special_use: Option<SpecialUse>,
    ) -> Result<Record> {
        let uidvalidity = self.new_uidvalidity(meta);
        let op = Op::MailboxCreate {
            mailbox,
            name,
            uidvalidity,
            special_use,
        };
        self.emit(tx, meta, b, op)
    }
}

/// The mailboxes whose messages or counters a record changes (what readers would see early).
fn touched(op: &Op) -> Vec<MailboxId> {
    match op {
        Op::Append { mailbox, .. }
        | Op::Flags { mailbox, .. }
        | Op::Expunge { mailbox, .. }
        | Op::Renumber { mailbox, .. }
        | Op::AlignModseqs { mailbox, .. }
        | Op::AlignExpunged { mailbox, .. } => vec![*mailbox],
        Op::Copy { to, .. } => vec![*to],
        Op::Move { from, to, .. } => vec![*from, *to],
        _ => Vec::new(),
    }
}
