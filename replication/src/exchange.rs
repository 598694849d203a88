//! The dialing side's operations on a connection, shared by the continuous shipper and by
//! `sync_user`: push what the peer lacks (objects first, then records, then wait for the durable
//! Ack), pull what we lack, and the checked apply both sides use.

use crate::conn::Conn;
use crate::error::{ReplError, Result};
use crate::purged;
use crate::replicator::blocking;
use crate::store_api::{bytes_of, objects_of, Applied, ReplicaStore, ReplicaUser};
use crate::validate::{check_object, check_records};
use crate::wire::MAX_RECORDS_PER_FRAME;
use crate::wire::{Message, WireRecord};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use storage::pack::{Prepared, Verified};
use storage::record::Record;
use storage::{ObjectId, VersionVector};

fn unexpected(m: &Message, wanted: &str) -> ReplError {
    match m {
        Message::Error { message } => ReplError::Refused(message.clone()),
        other => ReplError::protocol(format!("expected {wanted}, got {}", other.kind())),
    }
}

fn same_user(got: &str, want: &str) -> Result<()> {
    if got != want {
        return Err(ReplError::protocol(format!(
            "answer for user {got:?} to a request for {want:?}"
        )));
    }
    Ok(())
}

/// The peer's durable version vector for `user`.
pub(crate) async fn peer_vv(conn: &mut Conn, user: &str, t: Duration) -> Result<VersionVector> {
    conn.send(&Message::GetVersionVector { user: user.into() })
        .await?;
    match conn.recv_timeout(t, "version vector").await? {
        Message::VersionVector { user: u, vv } => {
            same_user(&u, user)?;
            Ok(vv)
        }
        m => Err(unexpected(&m, "VersionVector")),
    }
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Pushed {
    pub records: usize,
    pub objects: usize,
    pub bytes: u64,
    /// The batch was cut (by count or bytes): more may be waiting.
    pub more: bool,
    /// The peer's version vector from its durable Ack (None if nothing was sent).
    pub acked: Option<VersionVector>,
}

/// Objects read per blocking hop; the first group is read while loading the batch, so a batch
/// of the live stream costs one hop to the blocking pool on this side.
const READ_GROUP: usize = 64;

fn store_err(e: storage::StoreError) -> ReplError {
    ReplError::Store(e)
}

/// Which objects insertions name that this node does not have (purged after their messages
/// were expunged, see `purged`). The first objects of new appends are found by reading them,
/// since the batch sends them anyway (one index lookup, not two); the rest by asking the index.
pub(crate) struct Presence<'a> {
    u: &'a dyn ReplicaUser,
    /// Objects read (and to be sent), at most `budget` of them.
    read: HashMap<ObjectId, Prepared>,
    budget: usize,
    known: HashMap<ObjectId, bool>,
}

impl<'a> Presence<'a> {
    pub(crate) fn new(u: &'a dyn ReplicaUser, budget: usize) -> Presence<'a> {
        Presence {
            u,
            read: HashMap::new(),
            budget,
            known: HashMap::new(),
        }
    }

    fn here(&mut self, id: &ObjectId, fresh: bool) -> Result<bool> {
        if let Some(h) = self.known.get(id) {
            return Ok(*h);
        }
        let h = if fresh && self.read.len() < self.budget {
            match self.u.read_object_stored(id) {
                Ok(stored) => {
                    self.read.insert(*id, stored);
                    true
                }
                // Unreadable: gone (purged), or a real failure to report.
                Err(e) => {
                    if self.u.has_object(id).map_err(store_err)? {
                        return Err(store_err(e));
                    }
                    false
                }
            }
        } else {
            self.u.has_object(id).map_err(store_err)?
        };
        self.known.insert(*id, h);
        Ok(h)
    }

    fn absent(&mut self, records: &[Record]) -> Result<HashSet<ObjectId>> {
        let mut absent = HashSet::new();
        for r in records {
            let fresh = matches!(r.op, storage::record::Op::Append { .. });
            for ins in purged::insertions(&r.op) {
                if !self.here(&ins.object, fresh)? {
                    absent.insert(ins.object);
                }
            }
        }
        Ok(absent)
    }
}

/// The records a peer with `have` lacks, in log order: at most `limit` and about `max_bytes` of
/// message data (at least one record), unless an insertion whose object was purged here must
/// travel with its removal (see `purged`): then the batch is extended up to one frame's worth,
/// or cut shorter before it. Returns the records, which of their objects are absent here, and
/// whether more remain. Blocking (store reads).
pub(crate) fn records_for_peer(
    u: &dyn ReplicaUser,
    have: &VersionVector,
    limit: usize,
    max_bytes: u64,
    presence: &mut Presence<'_>,
) -> Result<(Vec<Record>, HashSet<ObjectId>, bool)> {
    let limit = limit.clamp(1, MAX_RECORDS_PER_FRAME);
    let mut records = u.records_since(have, limit).map_err(store_err)?;
    let mut loaded_all = records.len() < limit;
    let mut want = records.len();
    let mut total = 0u64;
    if let Some(c) = records.iter().position(|r| {
        total += bytes_of(r);
        total > max_bytes
    }) {
        want = c.max(1);
    }
    // Only what this batch would carry matters (and only its objects are read).
    let mut absent = presence.absent(records.get(..want).unwrap_or_default())?;
    if absent.is_empty() {
        let more = want < records.len() || !loaded_all;
        records.truncate(want);
        return Ok((records, absent, more));
    }
    if !loaded_all && limit < MAX_RECORDS_PER_FRAME {
        // Look as far as one frame may reach, so the cut can move past the removals.
        records = u
            .records_since(have, MAX_RECORDS_PER_FRAME)
            .map_err(store_err)?;
        loaded_all = records.len() < MAX_RECORDS_PER_FRAME;
    }
    // No more reads: the extension's objects are looked up, and read later if sent.
    presence.budget = 0;
    absent = presence.absent(&records)?;
    // An insertion left open at the end of everything we have is one the index ignored here
    // (its mailbox was deleted before it in our log), so the peer ignores it too, if its
    // mailbox is gone here as well.
    let mut gone = HashSet::new();
    let open_at_end: HashSet<(storage::MailboxId, storage::Guid)> = if loaded_all {
        purged::unresolved(&records, &absent)
            .into_iter()
            .map(|o| (o.insertion.mailbox, o.insertion.guid))
            .collect()
    } else {
        HashSet::new()
    };
    for (mb, _) in &open_at_end {
        if !gone.contains(mb) && mailbox_missing(u, *mb)? {
            gone.insert(*mb);
        }
    }
    let end = purged::cut(&records, &absent, want, |o| {
        !o.created_in_frame
            && gone.contains(&o.insertion.mailbox)
            && open_at_end.contains(&(o.insertion.mailbox, o.insertion.guid))
    })
    .ok_or_else(|| {
        let first = records
            .first()
            .map(|r| (r.origin, r.seq))
            .unwrap_or_default();
        ReplError::Store(storage::StoreError::Other(format!(
            "record {}:{} brings a message whose object was purged here, and the record that \
             removes it is not within the next {MAX_RECORDS_PER_FRAME} records: it cannot be \
             shipped in one frame",
            first.0, first.1
        )))
    })?;
    let more = end < records.len() || !loaded_all;
    records.truncate(end);
    Ok((records, absent, more))
}

fn mailbox_missing(u: &dyn ReplicaUser, mb: storage::MailboxId) -> Result<bool> {
    match u.mailbox_listing(mb) {
        Ok(_) => Ok(false),
        Err(storage::StoreError::NoSuchMailbox(_)) => Ok(true),
        Err(e) => Err(store_err(e)),
    }
}

/// One batch, loaded in one blocking hop.
struct Loaded {
    records: Vec<Record>,
    more: bool,
    /// Objects of new appends (sent unasked): those already read, and the rest.
    first: Vec<(ObjectId, Prepared)>,
    rest: Vec<ObjectId>,
    /// Objects that copies and moves reuse (offered first).
    ask: Vec<ObjectId>,
}

fn load_batch(
    u: &dyn ReplicaUser,
    have: &VersionVector,
    limit: usize,
    max_bytes: u64,
) -> Result<Loaded> {
    let mut presence = Presence::new(u, READ_GROUP);
    let (records, absent, more) = records_for_peer(u, have, limit, max_bytes, &mut presence)?;
    // Objects of new appends go unasked (the peer lacks the records, so almost surely their
    // new objects too; storing one twice is harmless, objects are content-addressed). Objects
    // that copies and moves reuse are likely there already: ask first. Purged ones stay home.
    let mut seen = HashSet::new();
    let (mut send, mut ask) = (Vec::new(), Vec::new());
    for r in &records {
        let fresh = matches!(r.op, storage::record::Op::Append { .. });
        for o in objects_of(r) {
            if !absent.contains(&o) && seen.insert(o) {
                if fresh {
                    send.push(o)
                } else {
                    ask.push(o)
                }
            }
        }
    }
    // Those read while checking presence go first; the rest are read in groups later.
    let mut first = Vec::new();
    let mut rest = Vec::new();
    for id in send {
        match presence.read.remove(&id) {
            Some(stored) => first.push((id, stored)),
            None => rest.push(id),
        }
    }
    Ok(Loaded {
        records,
        more,
        rest,
        first,
        ask,
    })
}

/// Sends one batch of what `peer_has` lacks. `on_loaded` sees the batch before it is sent.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn push_batch(
    conn: &mut Conn,
    u: &Arc<dyn ReplicaUser>,
    user: &str,
    peer_has: &VersionVector,
    limit: usize,
    max_bytes: u64,
    t: Duration,
    on_loaded: impl FnOnce(&[Record]),
) -> Result<Pushed> {
    let uu = u.clone();
    let have = peer_has.clone();
    let loaded = tokio::task::spawn_blocking(move || load_batch(&*uu, &have, limit, max_bytes))
        .await
        .map_err(|e| ReplError::Other(format!("store task failed: {e}")))??;
    let Loaded {
        records,
        more,
        first,
        mut rest,
        ask,
    } = loaded;
    if records.is_empty() {
        return Ok(Pushed::default());
    }
    on_loaded(&records);
    let mut out = Pushed {
        records: records.len(),
        more,
        ..Pushed::default()
    };
    // Later objects to read: the rest of the new appends', and what the peer says it lacks.
    // Objects go in their stored (compressed) form: no decompression here, no compression on
    // the peer, which verifies them.
    for (id, stored) in first {
        out.objects += 1;
        out.bytes += stored.compressed.len() as u64;
        conn.feed(&Message::Object {
            user: user.into(),
            id,
            body: stored.into(),
        })
        .await?;
    }
    if !ask.is_empty() {
        conn.send(&Message::HaveObjects {
            user: user.into(),
            ids: ask.clone(),
        })
        .await?;
        let missing = match conn.recv_timeout(t, "missing objects").await? {
            Message::MissingObjects { user: mu, ids: m } => {
                same_user(&mu, user)?;
                m
            }
            m => return Err(unexpected(&m, "MissingObjects")),
        };
        for id in missing {
            if !ask.contains(&id) {
                return Err(ReplError::protocol(format!(
                    "peer asked for object {id:?} it was not offered"
                )));
            }
            rest.push(id);
        }
    }
    // Read in groups (one blocking hop per group, not per object), bounded in memory.
    for group in rest.chunks(READ_GROUP) {
        let uu = u.clone();
        let ids = group.to_vec();
        let stored = blocking(move || {
            ids.into_iter()
                .map(|id| uu.read_object_stored(&id).map(|s| (id, s)))
                .collect::<std::result::Result<Vec<_>, _>>()
        })
        .await?;
        for (id, s) in stored {
            out.objects += 1;
            out.bytes += s.compressed.len() as u64;
            conn.feed(&Message::Object {
                user: user.into(),
                id,
                body: s.into(),
            })
            .await?;
        }
    }
    let wire = records
        .iter()
        .map(|r| WireRecord::encode(user, r))
        .collect::<Result<Vec<_>>>()?;
    out.bytes += wire.iter().map(|w| w.payload.len() as u64).sum::<u64>();
    conn.send(&Message::Records {
        user: user.into(),
        records: wire,
    })
    .await?;
    match conn.recv_timeout(t, "ack").await? {
        Message::Ack { user: au, vv } => {
            same_user(&au, user)?;
            out.acked = Some(vv);
        }
        m => return Err(unexpected(&m, "Ack")),
    }
    Ok(out)
}

/// What a checked apply did.
pub(crate) struct ApplyDone {
    pub applied: Applied,
    pub records: Vec<Record>,
    pub resolved: usize,
    /// This node's version vector after the apply (what an Ack reports).
    pub vv: VersionVector,
}

/// Validates a frame of records from a peer and applies it, all in one blocking hop:
/// checksums, user binding, sequence continuity and contents are checked for the whole frame
/// before anything is applied, and so is every insertion whose object neither came with the
/// frame nor is here (purged at the peer: it must be removed within the frame, or change
/// nothing here; see `purged`), a violation of which is a protocol error.
/// `objects` (verified stored bodies that arrived with the frame) are stored in the same store call as the
/// first chunk of records: one group commit, one fsync for records and objects together.
/// Resolves reported UID conflicts when this node is the resolver.
pub(crate) async fn apply_checked(
    store: &Arc<dyn ReplicaStore>,
    u: &Arc<dyn ReplicaUser>,
    user: &str,
    wire: &[WireRecord],
    objects: Vec<Verified>,
    resolve: bool,
) -> Result<ApplyDone> {
    let (store, u, user, wire) = (store.clone(), u.clone(), user.to_string(), wire.to_vec());
    let r = tokio::task::spawn_blocking(move || {
        apply_checked_blocking(&*store, &*u, &user, &wire, objects, resolve)
    })
    .await
    .map_err(|e| ReplError::Other(format!("store task failed: {e}")))?;
    r
}

fn apply_checked_blocking(
    store: &dyn ReplicaStore,
    u: &dyn ReplicaUser,
    user: &str,
    wire: &[WireRecord],
    objects: Vec<Verified>,
    resolve: bool,
) -> Result<ApplyDone> {
    let have = u.version_vector().map_err(store_err)?;
    let records = check_records(user, wire, &have)?;
    // Merge peer clocks so our next changes order after what we have seen.
    if let Some(latest) = records.iter().map(|r| r.time).max() {
        if let Err(e) = store.observe(latest) {
            tracing::warn!(user, error = %e, "replication: peer clock ahead");
        }
    }
    let absent = check_absent(u, &records, &have, &objects)?;
    let mut applied = Applied::default();
    let mut resolved = 0;
    let mut objects = Some(objects);
    for chunk in chunks_for_apply(&records, resolve, &absent) {
        // Later chunks find the objects stored by the first.
        let objs = objects.take().unwrap_or_default();
        // DURABILITY: the store fsyncs the objects and records (one group commit) before
        // returning; only then does the caller ack.
        let a = u
            .apply_remote_with_objects(objs, chunk)
            .map_err(store_err)?;
        applied.applied += a.applied;
        if resolve {
            for mb in a.conflicts.iter().copied() {
                match u.resolve_conflicts(mb) {
                    Ok(()) => {
                        resolved += 1;
                        tracing::info!(user, mailbox = %mb, "replication: UID conflict resolved by renumbering");
                    }
                    Err(e) => {
                        tracing::warn!(user, mailbox = %mb, error = %e, "replication: cannot resolve UID conflict")
                    }
                }
            }
        } else if !a.conflicts.is_empty() {
            tracing::info!(
                user,
                mailboxes = a.conflicts.len(),
                "replication: UID conflict pending; the cluster's resolver node will renumber"
            );
        }
        applied.conflicts.extend(a.conflicts);
    }
    let vv = u.version_vector().map_err(store_err)?;
    Ok(ApplyDone {
        applied,
        records,
        resolved,
        vv,
    })
}

/// The objects that new records of the frame insert and that neither came with it nor are
/// here; refuses the frame (protocol error) if one of them could become visible without its
/// body. Blocking.
fn check_absent(
    u: &dyn ReplicaUser,
    records: &[Record],
    have: &VersionVector,
    objects: &[Verified],
) -> Result<HashSet<ObjectId>> {
    // Re-sent records (already applied) insert nothing.
    let fresh: Vec<Record> = records
        .iter()
        .filter(|r| r.seq > have.get(&r.origin).copied().unwrap_or(0))
        .cloned()
        .collect();
    let mut came: Option<HashSet<ObjectId>> = None;
    let mut absent = HashSet::new();
    let mut seen = HashSet::new();
    for r in &fresh {
        for ins in purged::insertions(&r.op) {
            if !seen.insert(ins.object) {
                continue;
            }
            let came = came.get_or_insert_with(|| objects.iter().map(Verified::id).collect());
            if !came.contains(&ins.object) && !u.has_object(&ins.object).map_err(store_err)? {
                absent.insert(ins.object);
            }
        }
    }
    if absent.is_empty() {
        return Ok(absent);
    }
    for open in purged::unresolved(&fresh, &absent) {
        let r = &fresh[open.at];
        let ignored = !open.created_in_frame && mailbox_missing(u, open.insertion.mailbox)?;
        if !ignored {
            return Err(ReplError::protocol(format!(
                "record {}:{} brings message {} without its object {:?}, and nothing in the \
                 frame removes it",
                r.origin,
                r.seq,
                open.insertion.guid.to_hex(),
                open.insertion.object
            )));
        }
    }
    Ok(absent)
}

/// How a frame is split for applying. A message that arrives and conflicts must be renumbered
/// before a later record of the same frame expunges or moves it away: otherwise its pending
/// entry vanishes here, the resolver sees nothing left to renumber, and the local message
/// holding the contested UID keeps it while the other nodes hold our message pending. So the
/// resolver cuts the frame before each removal that follows an insertion, except inside the
/// span between an insertion whose object was purged at the peer (`absent`) and its removal:
/// those apply in one store call, so the message is never visible without its body. Nodes that
/// do not resolve apply the frame whole (one fsync).
pub(crate) fn chunks_for_apply<'a>(
    records: &'a [Record],
    resolve: bool,
    absent: &HashSet<ObjectId>,
) -> Vec<&'a [Record]> {
    use storage::record::Op;
    if !resolve {
        return vec![records];
    }
    let clean = purged::clean_cuts(records, absent);
    let mut out = Vec::new();
    let mut start = 0;
    let mut inserted = false;
    for (i, r) in records.iter().enumerate() {
        let removes = matches!(
            r.op,
            Op::Expunge { .. }
                | Op::Move { .. }
                | Op::MailboxDelete { .. }
                | Op::MailboxRename { .. }
        );
        if removes && inserted && i > start && clean.get(i).copied().unwrap_or(true) {
            out.push(&records[start..i]);
            start = i;
            inserted = false;
        }
        if matches!(r.op, Op::Append { .. } | Op::Copy { .. } | Op::Move { .. }) {
            inserted = true;
        }
    }
    if start < records.len() {
        out.push(&records[start..]);
    }
    out
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Pulled {
    pub records: usize,
    pub objects: usize,
    pub bytes: u64,
    pub conflicts_resolved: usize,
}

/// Bytes of pulled objects held to be stored with their records in one store call (one
/// fsync); beyond it they go through `put_object` first (their own fsyncs), so memory stays
/// bounded. The push receiver's bound, for the same reason.
const MAX_HELD_BYTES: usize = 64 << 20;

/// Pulls everything the peer has that we lack, fetching the objects we miss first. Objects and
/// records of a reply are made durable together by one store call where they fit the hold
/// bound. Objects the peer no longer has (purged) are accepted only as `apply_checked` allows.
pub(crate) async fn pull_all(
    conn: &mut Conn,
    store: &Arc<dyn ReplicaStore>,
    u: &Arc<dyn ReplicaUser>,
    user: &str,
    limit: u32,
    resolve: bool,
    t: Duration,
) -> Result<Pulled> {
    let mut out = Pulled::default();
    loop {
        let uu = u.clone();
        let have = blocking(move || uu.version_vector()).await?;
        conn.send(&Message::Pull {
            user: user.into(),
            have: have.clone(),
            limit,
        })
        .await?;
        let (wire, more) = match conn.recv_timeout(t, "pull reply").await? {
            Message::PullReply {
                user: pu,
                records,
                more,
            } => {
                same_user(&pu, user)?;
                (records, more)
            }
            m => return Err(unexpected(&m, "PullReply")),
        };
        if wire.is_empty() {
            return Ok(out);
        }
        // Check before fetching anything the records name.
        let records = check_records(user, &wire, &have)?;
        let mut seen = BTreeSet::new();
        let wanted: Vec<ObjectId> = records
            .iter()
            .flat_map(objects_of)
            .filter(|id| seen.insert(*id))
            .collect();
        let uu = u.clone();
        let missing = blocking(move || {
            let mut m = Vec::new();
            for id in wanted {
                if !uu.has_object(&id)? {
                    m.push(id);
                }
            }
            Ok(m)
        })
        .await?;
        let mut held: Vec<Verified> = Vec::new();
        let mut held_bytes = 0usize;
        let mut puts: std::collections::VecDeque<
            tokio::task::JoinHandle<std::result::Result<ObjectId, storage::StoreError>>,
        > = Default::default();
        let mut next = 0;
        while next < missing.len() {
            let ask = &missing[next..(next + 1000).min(missing.len())];
            conn.send(&Message::GetObjects {
                user: user.into(),
                ids: ask.to_vec(),
            })
            .await?;
            let objects = match conn.recv_timeout(t, "objects").await? {
                Message::ObjectsData { user: ou, objects } => {
                    same_user(&ou, user)?;
                    objects
                }
                m => return Err(unexpected(&m, "ObjectsData")),
            };
            if objects.is_empty() || objects.len() > ask.len() {
                return Err(ReplError::protocol(format!(
                    "{} objects in answer to {} asked",
                    objects.len(),
                    ask.len()
                )));
            }
            for ((id, body), want) in objects.into_iter().zip(ask) {
                if id != *want {
                    return Err(ReplError::protocol(
                        "objects answered out of order".to_string(),
                    ));
                }
                next += 1;
                // The peer no longer has it (purged): the records must remove its message
                // within the frame; `apply_checked` checks that.
                let Some(body) = body else { continue };
                // Bounded decompression, length and hash; stored as it came.
                let obj = check_object(id, body)?;
                let len = obj.compressed_len();
                out.objects += 1;
                out.bytes += len as u64;
                if held_bytes + len <= MAX_HELD_BYTES {
                    held_bytes += len;
                    held.push(obj);
                    continue;
                }
                // Over the hold bound: stored on its own now (concurrently, so the store's
                // group commit shares fsyncs); all are durable before the records that need
                // them are applied.
                if puts.len() >= 128 {
                    if let Some(p) = puts.pop_front() {
                        p.await.map_err(|e| ReplError::Other(e.to_string()))??;
                    }
                }
                let uu = u.clone();
                puts.push_back(tokio::task::spawn_blocking(move || uu.put_verified(obj)));
            }
        }
        for p in puts {
            p.await.map_err(|e| ReplError::Other(e.to_string()))??;
        }
        let done = apply_checked(store, u, user, &wire, held, resolve).await?;
        out.records += done.applied.applied;
        out.bytes += wire.iter().map(|w| w.payload.len() as u64).sum::<u64>();
        out.conflicts_resolved += done.resolved;
        if !more {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::record::Op;
    use storage::{Guid, HlcTime};

    fn r(seq: u64, op: Op) -> Record {
        Record {
            origin: 2,
            seq,
            time: HlcTime {
                wall_ms: seq,
                logical: 0,
                node: 2,
            },
            op,
        }
    }

    #[test]
    fn resolver_cuts_before_removal_after_insertion() {
        let mb = Guid([1; 16]);
        let ins = |s| {
            r(
                s,
                Op::Copy {
                    from: mb,
                    to: mb,
                    entries: vec![],
                    modseq: 1,
                },
            )
        };
        let exp = |s| {
            r(
                s,
                Op::Expunge {
                    mailbox: mb,
                    messages: vec![],
                    modseq: 1,
                },
            )
        };
        let recs = vec![exp(1), ins(2), ins(3), exp(4), exp(5), ins(6), exp(7)];
        let none = HashSet::new();
        let sizes: Vec<usize> = chunks_for_apply(&recs, true, &none)
            .iter()
            .map(|c| c.len())
            .collect();
        assert_eq!(sizes, vec![3, 3, 1]);
        assert_eq!(chunks_for_apply(&recs, false, &none).len(), 1);
        assert!(chunks_for_apply(&[], true, &none).is_empty());
    }
}
