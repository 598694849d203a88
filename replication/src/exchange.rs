//! The dialing side's operations on a connection, shared by the continuous shipper and by
//! `sync_user`: push what the peer lacks (objects first, then records, then wait for the durable
//! Ack), pull what we lack, and the checked apply both sides use.

use crate::conn::Conn;
use crate::error::{ReplError, Result};
use crate::purged;
use crate::store_api::{bytes_of, objects_of, Applied, ReplicaStore, ReplicaUser};
use crate::util::blocking;
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
/// message data (at least one record). Returns the records, which of their objects are absent
/// here (purged: they stay home, and the peer takes their messages as ghosts until the records
/// removing them arrive, in this batch or a later one; see `purged`), and whether more remain.
/// Blocking (store reads).
pub(crate) fn records_for_peer(
    u: &dyn ReplicaUser,
    have: &VersionVector,
    limit: usize,
    max_bytes: u64,
    presence: &mut Presence<'_>,
) -> Result<(Vec<Record>, HashSet<ObjectId>, bool)> {
    let limit = limit.clamp(1, MAX_RECORDS_PER_FRAME);
    let mut records = u.records_since(have, limit).map_err(store_err)?;
    let loaded_all = records.len() < limit;
    let mut want = records.len();
    let mut total = 0u64;
    if let Some(c) = records.iter().position(|r| {
        total += bytes_of(r);
        total > max_bytes
    }) {
        want = c.max(1);
    }
    let more = want < records.len() || !loaded_all;
    records.truncate(want);
    let absent = presence.absent(&records)?;
    Ok((records, absent, more))
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
        feed_object(conn, user, id, stored, &mut out).await?;
    }
    if !ask.is_empty() {
        rest.extend(peer_lacks(conn, user, ask, t).await?);
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
            feed_object(conn, user, id, s, &mut out).await?;
        }
    }
    out.acked = Some(send_records(conn, user, &records, t, &mut out).await?);
    Ok(out)
}

/// Queues one object on the connection (sent with the next flush).
async fn feed_object(
    conn: &mut Conn,
    user: &str,
    id: ObjectId,
    stored: Prepared,
    out: &mut Pushed,
) -> Result<()> {
    out.objects += 1;
    out.bytes += stored.compressed.len() as u64;
    conn.feed(&Message::Object {
        user: user.into(),
        id,
        body: stored.into(),
    })
    .await
}

/// Which of the offered objects `ask` the peer lacks; it may name no other.
async fn peer_lacks(
    conn: &mut Conn,
    user: &str,
    ask: Vec<ObjectId>,
    t: Duration,
) -> Result<Vec<ObjectId>> {
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
    if let Some(id) = missing.iter().find(|id| !ask.contains(id)) {
        return Err(ReplError::protocol(format!(
            "peer asked for object {id:?} it was not offered"
        )));
    }
    Ok(missing)
}

/// Sends the batch's records and waits for the peer's durable Ack: its version vector.
async fn send_records(
    conn: &mut Conn,
    user: &str,
    records: &[Record],
    t: Duration,
    out: &mut Pushed,
) -> Result<VersionVector> {
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
            Ok(vv)
        }
        m => Err(unexpected(&m, "Ack")),
    }
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
/// before anything is applied. An insertion whose object neither came with the frame nor is
/// here was purged at the peer: the store keeps its message as a ghost, never visible, until
/// the record that removes it arrives (see `purged`).
/// `objects` (verified stored bodies that arrived with the frame) are stored in the same store call as the
/// first chunk of records: one group commit, one fsync for records and objects together.
/// `sent_apart`: objects the peer sent for these records that were stored on their own before
/// (bounds on held bytes): never taken as purged, even if missing now.
/// Resolves reported UID conflicts when this node is the resolver.
pub(crate) async fn apply_checked(
    store: &Arc<dyn ReplicaStore>,
    u: &Arc<dyn ReplicaUser>,
    user: &str,
    wire: &[WireRecord],
    objects: Vec<Verified>,
    sent_apart: HashSet<ObjectId>,
    resolve: bool,
) -> Result<ApplyDone> {
    let (store, u, user, wire) = (store.clone(), u.clone(), user.to_string(), wire.to_vec());
    let r = tokio::task::spawn_blocking(move || {
        apply_checked_blocking(&*store, &*u, &user, &wire, objects, &sent_apart, resolve)
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
    sent_apart: &HashSet<ObjectId>,
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
    let purged = purged_objects(u, &records, &have, &objects, sent_apart)?;
    let mut applied = Applied::default();
    let mut resolved = 0;
    let mut objects = Some(objects);
    for chunk in chunks_for_apply(&records, resolve) {
        // Later chunks find the objects stored by the first.
        let objs = objects.take().unwrap_or_default();
        // DURABILITY: the store fsyncs the objects and records (one group commit) before
        // returning; only then does the caller ack.
        let a = u
            .apply_remote_purged(objs, chunk, &purged)
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

/// The objects that the frame's new records insert and that neither came with it (nor before
/// it, `sent_apart`) nor are here: the peer no longer has them (purged; a peer sends every
/// object it has, see `purged`), so their messages become ghosts here. A peer that ships a message visible here that way
/// contradicts itself (its message would have no body): the frame is refused as a protocol
/// violation, nothing of it applied (the store checks the same inside the write). Blocking;
/// costs nothing unless an object is missing, then one listing per mailbox such insertions
/// target.
fn purged_objects(
    u: &dyn ReplicaUser,
    records: &[Record],
    have: &VersionVector,
    objects: &[Verified],
    sent_apart: &HashSet<ObjectId>,
) -> Result<HashSet<ObjectId>> {
    let mut purged = HashSet::new();
    let mut came: HashSet<ObjectId> = objects.iter().map(Verified::id).collect();
    came.extend(sent_apart.iter().copied());
    let mut known: HashMap<ObjectId, bool> = HashMap::new();
    let mut listed: HashMap<storage::MailboxId, HashSet<storage::Guid>> = HashMap::new();
    // Re-sent records (already applied) insert nothing.
    let fresh = records
        .iter()
        .filter(|r| r.seq > have.get(&r.origin).copied().unwrap_or(0));
    for r in fresh {
        for ins in purged::insertions(&r.op) {
            if came.contains(&ins.object) {
                continue;
            }
            let here = match known.get(&ins.object) {
                Some(h) => *h,
                None => {
                    let h = u.has_object(&ins.object).map_err(store_err)?;
                    known.insert(ins.object, h);
                    h
                }
            };
            if here {
                continue;
            }
            purged.insert(ins.object);
            let visible = match listed.entry(ins.mailbox) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(match u.mailbox_listing(ins.mailbox) {
                        Ok(l) => l.into_iter().map(|m| m.guid).collect(),
                        Err(storage::StoreError::NoSuchMailbox(_)) => HashSet::new(),
                        Err(e) => return Err(store_err(e)),
                    })
                }
            };
            if visible.contains(&ins.guid) {
                return Err(ReplError::protocol(format!(
                    "record {}:{} brings message {} without its object {:?}, but that message \
                     is visible here",
                    r.origin,
                    r.seq,
                    ins.guid.to_hex(),
                    ins.object
                )));
            }
        }
    }
    Ok(purged)
}

/// How a frame is split for applying. A message that arrives and conflicts must be renumbered
/// before a later record of the same frame expunges or moves it away: otherwise its pending
/// entry vanishes here, the resolver sees nothing left to renumber, and the local message
/// holding the contested UID keeps it while the other nodes hold our message pending. So the
/// resolver cuts the frame before each removal that follows an insertion (a message whose
/// object was purged at the peer is a ghost in between, never visible). Nodes that do not
/// resolve apply the frame whole (one fsync).
pub(crate) fn chunks_for_apply(records: &[Record], resolve: bool) -> Vec<&[Record]> {
    use storage::record::Op;
    if !resolve {
        return vec![records];
    }
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
        if removes && inserted && i > start {
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
/// bound. Objects the peer no longer has (purged) leave their messages ghosts (see `purged`).
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
        let (have, wire, more) = request_page(conn, u, user, limit, t).await?;
        if wire.is_empty() {
            warn_stale_ghosts(u, user, conn.peer, true).await?;
            return Ok(out);
        }
        // Check before fetching anything the records name.
        let records = check_records(user, &wire, &have)?;
        let missing = missing_objects(u, &records).await?;
        let fetched = fetch_objects(conn, u, user, &missing, t, &mut out).await?;
        let done = apply_checked(
            store,
            u,
            user,
            &wire,
            fetched.held,
            fetched.sent_apart,
            resolve,
        )
        .await?;
        out.records += done.applied.applied;
        out.bytes += wire.iter().map(|w| w.payload.len() as u64).sum::<u64>();
        out.conflicts_resolved += done.resolved;
        if !more {
            warn_stale_ghosts(u, user, conn.peer, true).await?;
            return Ok(out);
        }
    }
}

/// Asks the peer for the next page of records this node lacks: (what we had, the page, more?).
async fn request_page(
    conn: &mut Conn,
    u: &Arc<dyn ReplicaUser>,
    user: &str,
    limit: u32,
    t: Duration,
) -> Result<(VersionVector, Vec<WireRecord>, bool)> {
    let uu = u.clone();
    let have = blocking(move || uu.version_vector()).await?;
    conn.send(&Message::Pull {
        user: user.into(),
        have: have.clone(),
        limit,
    })
    .await?;
    match conn.recv_timeout(t, "pull reply").await? {
        Message::PullReply {
            user: pu,
            records,
            more,
        } => {
            same_user(&pu, user)?;
            Ok((have, records, more))
        }
        m => Err(unexpected(&m, "PullReply")),
    }
}

/// The objects `records` name that this node does not have, each once.
async fn missing_objects(u: &Arc<dyn ReplicaUser>, records: &[Record]) -> Result<Vec<ObjectId>> {
    let mut seen = BTreeSet::new();
    let wanted: Vec<ObjectId> = records
        .iter()
        .flat_map(objects_of)
        .filter(|id| seen.insert(*id))
        .collect();
    let uu = u.clone();
    blocking(move || {
        let mut m = Vec::new();
        for id in wanted {
            if !uu.has_object(&id)? {
                m.push(id);
            }
        }
        Ok(m)
    })
    .await
}

/// Fetched objects: those held to be stored with their records, and the ids of those stored
/// apart (over the hold bound; durable before the records apply).
struct Fetched {
    held: Vec<Verified>,
    sent_apart: HashSet<ObjectId>,
}

/// Objects stored apart, concurrently (so the store's group commit shares fsyncs).
type Puts = std::collections::VecDeque<
    tokio::task::JoinHandle<std::result::Result<ObjectId, storage::StoreError>>,
>;

/// Fetches `missing` from the peer, 1,000 ids a request, checking each body.
async fn fetch_objects(
    conn: &mut Conn,
    u: &Arc<dyn ReplicaUser>,
    user: &str,
    missing: &[ObjectId],
    t: Duration,
    out: &mut Pulled,
) -> Result<Fetched> {
    let mut f = Fetched {
        held: Vec::new(),
        sent_apart: HashSet::new(),
    };
    let mut held_bytes = 0usize;
    let mut puts = Puts::new();
    // A reply may stop short (a reply's worth of bytes): the rest is asked again.
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
        // Ids are answered in order (a purged one with no body), at least one a reply.
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
            // The peer no longer has it (purged): its message stays a ghost here until the
            // record removing it arrives (see `purged`).
            let Some(body) = body else { continue };
            // Bounded decompression, length and hash; stored as it came.
            let obj = check_object(id, body)?;
            let len = obj.compressed_len();
            out.objects += 1;
            out.bytes += len as u64;
            if held_bytes + len <= MAX_HELD_BYTES {
                held_bytes += len;
                f.held.push(obj);
                continue;
            }
            // Over the hold bound: stored on its own now; all are durable before the records
            // that need them are applied.
            if puts.len() >= 128 {
                if let Some(p) = puts.pop_front() {
                    p.await.map_err(|e| ReplError::Other(e.to_string()))??;
                }
            }
            let uu = u.clone();
            f.sent_apart.insert(id);
            puts.push_back(tokio::task::spawn_blocking(move || uu.put_verified(obj)));
        }
    }
    for p in puts {
        p.await.map_err(|e| ReplError::Other(e.to_string()))??;
    }
    Ok(f)
}

/// Ghosts (messages received without their objects, purged at the sender; see `purged`) that
/// still wait for their removal when this node has everything the peer has (`caught_up`, or
/// this node's version vector covers `peer_has`): that peer cannot send the removal either. Only
/// normal while a third node still has it to ship; otherwise a peer shipped, without its body,
/// a message it should have had. Logged for the operator (`UserStore::ghosts` lists them), once
/// per exchange. Blocking hop only when asked.
pub(crate) async fn warn_stale_ghosts(
    u: &Arc<dyn ReplicaUser>,
    user: &str,
    peer: storage::NodeId,
    caught_up: bool,
) -> Result<()> {
    check_stale_ghosts(u, user, peer, move |_| caught_up).await
}

/// [`warn_stale_ghosts`] against the peer's version vector.
pub(crate) async fn warn_stale_ghosts_vv(
    u: &Arc<dyn ReplicaUser>,
    user: &str,
    peer: storage::NodeId,
    peer_has: &VersionVector,
) -> Result<()> {
    let theirs = peer_has.clone();
    check_stale_ghosts(u, user, peer, move |ours| {
        crate::util::covers(ours, &theirs)
    })
    .await
}

async fn check_stale_ghosts(
    u: &Arc<dyn ReplicaUser>,
    user: &str,
    peer: storage::NodeId,
    caught_up: impl FnOnce(&VersionVector) -> bool + Send + 'static,
) -> Result<()> {
    let uu = u.clone();
    let stale = blocking(move || {
        let n = uu.ghost_count()?;
        if n == 0 {
            return Ok(0);
        }
        Ok(if caught_up(&uu.version_vector()?) {
            n
        } else {
            0
        })
    })
    .await?;
    if stale > 0 {
        tracing::warn!(
            user,
            peer,
            ghosts = stale,
            "replication: messages received without their objects (purged at the sender) still \
             wait for the records that remove them, and this peer has nothing more to send; \
             they stay invisible (the removal is still on a third node, or a peer shipped a \
             message it should have had the body of)"
        );
    }
    Ok(())
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
    fn missing_objects_are_purged_unless_sent_apart_and_never_for_a_visible_message() {
        use storage::record::NewEntry;
        let store = crate::testing::MemStore::new(1);
        let u = store.mem_user("alice");
        let mb = Guid([1; 16]);
        let (_, visible) = u.append(mb, b"here\r\n");
        let here = ObjectId::of(b"here\r\n");
        let gone = ObjectId::of(b"gone\r\n");
        let ins = |seq: u64, guid: Guid, object: ObjectId| {
            r(
                seq,
                Op::Append {
                    mailbox: mb,
                    entry: NewEntry {
                        guid,
                        uid: 10 + seq as u32,
                        object,
                        size: 6,
                        internal_date: 0,
                        internal_date_tz_min: 0,
                        flags: Default::default(),
                    },
                    modseq: 1,
                    delivery_key: None,
                },
            )
        };
        let none = HashSet::new();
        let fresh = VersionVector::new();
        let recs = vec![ins(1, Guid([7; 16]), gone), ins(2, Guid([8; 16]), here)];
        let purged = purged_objects(&*u, &recs, &fresh, &[], &none).unwrap();
        assert_eq!(purged, HashSet::from([gone]));
        // Sent ahead of the records (stored apart): missing now means lost here, not purged.
        let apart = HashSet::from([gone]);
        assert!(purged_objects(&*u, &recs, &fresh, &[], &apart)
            .unwrap()
            .is_empty());
        // Re-sent records insert nothing.
        let have = VersionVector::from([(2, 2)]);
        assert!(purged_objects(&*u, &recs, &have, &[], &none)
            .unwrap()
            .is_empty());
        // A message visible here shipped without its body: the peer contradicts itself.
        let lie = vec![ins(1, visible, gone)];
        let e = purged_objects(&*u, &lie, &fresh, &[], &none).unwrap_err();
        assert!(matches!(e, ReplError::Protocol(_)), "{e}");
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
        let sizes: Vec<usize> = chunks_for_apply(&recs, true)
            .iter()
            .map(|c| c.len())
            .collect();
        assert_eq!(sizes, vec![3, 3, 1]);
        assert_eq!(chunks_for_apply(&recs, false).len(), 1);
        assert!(chunks_for_apply(&[], true).is_empty());
    }
}
