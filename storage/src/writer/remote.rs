//! What a peer sends: its records with the objects they need, checked by the one peer
//! validator ([`crate::merge::validate`]) and applied like local records; and objects put
//! on their own. What a peer's records did is an [`ApplyOutcome`] (re-exported by the store).

use super::plan::{encoded, Plan};
use super::Reply;
use crate::error::{Result, StoreError};
use crate::index::UidConflict;
use crate::index::{self, apply, Effects, Txn};
use crate::pack::Prepared;
use crate::record::{Op, Record};
use crate::types::*;
use crate::user_core::UserCore;
use std::collections::{BTreeSet, HashSet};

/// The result of `UserStore::apply_remote`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// Records applied (not skipped as already present).
    pub applied: usize,
    /// Remote entries whose UID was taken here by another message; they are durable and pending
    /// until `UserStore::resolve_conflicts`.
    pub conflicts: Vec<UidConflict>,
}

impl UserCore {
    /// Stores one object (a peer sends objects ahead of the records that use them).
    pub(super) fn plan_put_object(&self, p: &mut Plan, object: Prepared) -> Result<Reply> {
        let Plan { tx, b, .. } = p;
        let id = object.id;
        Self::add_object(tx, b, object)?;
        Ok(Reply::Object(id))
    }

    /// Applies a peer's records in order, skipping those already here; refuses the whole
    /// request on a gap, an invalid record, a missing object or a UID space too full to
    /// renumber its conflicts.
    pub(super) fn plan_remote(
        &self,
        p: &mut Plan,
        objects: Vec<Prepared>,
        records: Vec<Record>,
        purged: HashSet<ObjectId>,
    ) -> Result<Reply> {
        let Plan { tx, meta, b } = p;
        // Objects first so the records below find them; on any refusal the whole
        // request (objects included) is rolled back by `run_batch`.
        for o in objects {
            Self::add_object(tx, b, o)?;
        }
        let mut fx = Effects {
            arriving: Some(&b.new_objects),
            ..Effects::default()
        };
        let mut applied = 0;
        // Messages that arrive without their object: the peer purged it after the
        // message was expunged there (or holds it as a ghost itself). Their insertions
        // become ghosts (`index::Ghost`): UID taken, never visible, until the record
        // that removes them arrives. A message is never visible without its body.
        let mut bodiless: Vec<(NodeId, u64, MailboxId, Guid, ObjectId)> = Vec::new();
        for rec in records {
            let have = meta.vv.get(&rec.origin).copied().unwrap_or(0);
            if rec.seq <= have {
                continue;
            }
            if rec.seq != have + 1 {
                return Err(StoreError::Other(format!(
                    "replication gap: record {} of origin {} after {have}",
                    rec.seq, rec.origin
                )));
            }
            crate::merge::validate_peer_record(&rec)
                .map_err(|e| StoreError::Other(e.to_string()))?;
            if let Err(e) = self.shared.hlc.observe(rec.time) {
                tracing::warn!(user = %self.name, error = %e, "remote record from a clock far ahead");
            }
            for (mailbox, guid, obj) in insertions(&rec.op) {
                if !Self::object_present(tx, b, &obj)? {
                    bodiless.push((rec.origin, rec.seq, mailbox, guid, obj));
                }
            }
            let payload = encoded(&rec)?;
            apply(tx, meta, &rec, &mut fx)?;
            b.records.push(rec);
            b.encoded.push(payload);
            applied += 1;
        }
        check_bodiless(tx, &b.new_objects, &bodiless, &purged)?;
        check_uid_room(tx, &fx.conflicts)?;
        if !fx.ghosts.is_empty() {
            tracing::info!(user = %self.name, messages = fx.ghosts.len(),
                "messages received without their objects (purged at the sender) stay \
                 invisible until the records that remove them arrive");
        }
        Ok(Reply::Applied(ApplyOutcome {
            applied,
            conflicts: fx.conflicts,
        }))
    }
}

/// A peer's insertion without its object is accepted only as a ghost (see `index::Ghost`), and
/// only if the peer declared the object purged (`purged`); otherwise (a corrupted body is not
/// the object its record names, a forgotten one) the request must remove the message itself.
/// If the request left the message visible here (the record names a message that is live
/// here), the peer's claim is false and the request is refused.
fn check_bodiless(
    tx: &Txn,
    arriving: &HashSet<ObjectId>,
    bodiless: &[(NodeId, u64, MailboxId, Guid, ObjectId)],
    purged: &HashSet<ObjectId>,
) -> Result<()> {
    for (origin, seq, mailbox, guid, obj) in bodiless {
        if !purged.contains(obj)
            && (tx.get_raw(&index::k_guid(guid))?.is_some()
                || tx.get_raw(&index::k_pending(mailbox, guid))?.is_some())
        {
            return Err(StoreError::Other(format!(
                "record {origin}/{seq} needs object {} which is not here (put_object first), \
                 and the batch does not remove its message",
                obj.to_hex()
            )));
        }
        let Some((mb, uid)) = tx.get::<(MailboxId, u32)>(&index::k_guid(guid))? else {
            continue; // removed (or its mailbox gone) within the request
        };
        let Some(m) = tx.msg(&mb, uid)? else {
            continue; // a ghost, or pending (a renumbering makes it a ghost)
        };
        let here = arriving.contains(&m.meta.object)
            || tx.get_raw(&index::k_object(&m.meta.object))?.is_some();
        if m.meta.object != *obj || !here {
            return Err(StoreError::Other(format!(
                "record {origin}/{seq} brings message {guid} without its object {}, but that \
                 message is visible here",
                obj.to_hex()
            )));
        }
    }
    Ok(())
}

/// Every mailbox where a peer's records parked messages (UID conflicts) must have UIDs left to
/// renumber them all ([`crate::merge::uids`]); otherwise the peer's frame is refused here, before
/// anything of it is durable, rather than leaving the resolver a renumbering past `u32::MAX`.
fn check_uid_room(tx: &Txn, conflicts: &[index::UidConflict]) -> Result<()> {
    let mailboxes: BTreeSet<MailboxId> = conflicts.iter().map(|c| c.mailbox).collect();
    for id in mailboxes {
        let Some(mb) = tx.mailbox(&id)? else {
            continue;
        };
        // The resolver renumbers every parked message and every live holder of a contested UID.
        let parked = tx.scan_raw(&index::k_pending_prefix(&id))?.len();
        let contested = tx.scan_raw(&index::k_contested_prefix(&id))?.len();
        let needed = parked + contested;
        if !crate::merge::uids::has_room(mb.uidnext, needed) {
            let e = crate::merge::uids::NoUidsLeft {
                uidnext: mb.uidnext,
                needed,
            };
            return Err(StoreError::Other(format!(
                "refused records from a peer: mailbox {} could not renumber its UID conflicts: {e}",
                mb.name
            )));
        }
    }
    Ok(())
}

/// The messages a record brings into mailboxes: (mailbox, GUID, object).
fn insertions(op: &Op) -> Vec<(MailboxId, Guid, ObjectId)> {
    match op {
        Op::Append { mailbox, entry, .. } => vec![(*mailbox, entry.guid, entry.object)],
        Op::Copy { to, entries, .. } | Op::Move { to, entries, .. } => entries
            .iter()
            .map(|(_, e)| (*to, e.guid, e.object))
            .collect(),
        _ => Vec::new(),
    }
}
