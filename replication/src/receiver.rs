//! The accepting side: authenticate dialing peers, answer their requests, verify and apply what
//! they ship. Any protocol violation ends the connection with the reason logged; nothing of the
//! offending frame is applied.

use crate::conn::Conn;
use crate::error::{ReplError, Result};
use crate::exchange::apply_checked;
use crate::state::Shared;
use crate::store_api::ReplicaUser;
use crate::util::blocking;
use crate::validate::{check_object, check_user_name};
use crate::wire::{Message, StoredBody, WireRecord, MAX_RECORDS_PER_FRAME, MAX_USERS_PER_FRAME};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use storage::pack::Verified;
use storage::{ObjectId, StoreError, VersionVector};
use tokio::net::{TcpListener, TcpStream};
use tracing::Instrument;

const MAX_IDS: usize = 100_000;
/// Object bytes in one ObjectsData reply (beyond one object).
const MAX_OBJECTS_REPLY: usize = 16 << 20;

pub(crate) async fn listen(sh: Arc<Shared>, listener: TcpListener) {
    loop {
        tokio::select! {
            _ = sh.shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok((tcp, addr)) => {
                    sh.tasks.spawn(inbound(sh.clone(), tcp, addr));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "replication: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }
}

async fn inbound(sh: Arc<Shared>, tcp: TcpStream, addr: SocketAddr) {
    let now = sh.store.now();
    let shc = sh.clone();
    // A witness (no mail, so no replication peer) may connect here for raft only.
    let mut conn = match Conn::accept(&sh.cfg.tls, sh.cfg.node_id, now, tcp, move |id| {
        shc.is_peer(id)
            || shc
                .cfg
                .raft_routes_to
                .as_ref()
                .is_some_and(|c| c.accepts_peer(id))
    })
    .await
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(remote = %addr, error = %e, "replication: refused connection");
            return;
        }
    };
    if let Some(coord) = &sh.cfg.raft_routes_to {
        match route_raft(&sh, coord, conn).await {
            Some(c) => conn = c,
            None => return,
        }
    }
    if let Err(e) = sh.store.observe(conn.peer_time) {
        tracing::warn!(peer = conn.peer, error = %e, "replication: peer clock ahead");
    }
    let span = tracing::info_span!("replication_recv", peer = conn.peer, remote = %addr);
    async {
        tracing::info!("replication: peer connected");
        match serve(&sh, &mut conn).await {
            Ok(()) | Err(ReplError::Closed) => tracing::info!("replication: peer disconnected"),
            Err(ReplError::Protocol(why)) => {
                sh.refused_frames.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(reason = %why, "replication: disconnecting peer: protocol violation");
            }
            Err(e) => tracing::warn!(error = %e, "replication: peer connection failed"),
        }
    }
    .instrument(span)
    .await
}

/// Raft and replication share this listener: a connection whose first frame is a raft frame
/// is served by the coordinator (and `None` comes back); any other is given back, its first
/// frame put back, if the peer is a replication peer.
async fn route_raft(
    sh: &Arc<Shared>,
    coord: &crate::coord::Coordinator,
    mut conn: Conn,
) -> Option<Conn> {
    let first = tokio::select! {
        _ = sh.shutdown.cancelled() => return None,
        f = conn.recv_frame() => f,
    };
    match first {
        Ok(f) if crate::coord::frame::is_raft_frame(&f) => {
            conn.unread(f);
            tokio::select! {
                _ = sh.shutdown.cancelled() => {}
                _ = coord.serve_routed(conn) => {}
            }
            None
        }
        Ok(f) if sh.is_peer(conn.peer) => {
            conn.unread(f);
            Some(conn)
        }
        Ok(_) => {
            sh.refused_frames.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                peer = conn.peer,
                "replication: a raft-only member sent a replication frame; disconnecting"
            );
            None
        }
        Err(ReplError::Closed) => None,
        Err(e) => {
            tracing::warn!(peer = conn.peer, error = %e, "replication: peer link ended before its first frame");
            None
        }
    }
}

async fn open(sh: &Arc<Shared>, user: &str) -> Result<Arc<dyn ReplicaUser>> {
    check_user_name(user)?;
    match sh.track(user).await {
        Err(ReplError::Store(StoreError::InvalidUser(u))) => {
            Err(ReplError::protocol(format!("invalid user name {u:?}")))
        }
        r => r,
    }
}

/// Store failures are told to the peer (it retries later); protocol violations end the session.
fn soft<T>(r: Result<T>) -> Result<std::result::Result<T, String>> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(ReplError::Store(e)) => Ok(Err(e.to_string())),
        Err(e) => Err(e),
    }
}

/// Objects being stored concurrently (so the store's group commit shares fsyncs among them);
/// all are finished before the next request is answered.
const MAX_PUTS_IN_FLIGHT: usize = 128;

/// Objects being stored on their own, and, per user, the ids of those sent ahead of its next
/// Records frame: the peer has them, so if one is missing when the records apply (its put
/// failed, or a purge here dropped it before its records came) it must not be taken as purged
/// at the peer, which would make its message a ghost (see `purged`): the store refuses the
/// frame instead and the peer resends.
#[derive(Default)]
pub(crate) struct Puts {
    running: Vec<tokio::task::JoinHandle<()>>,
    sent_apart: std::collections::HashMap<String, HashSet<ObjectId>>,
}

/// Ids remembered in [`Puts::sent_apart`] per connection; beyond, a hostile peer's endless
/// objects without records are not remembered.
const MAX_SENT_APART: usize = 1 << 20;

impl Puts {
    async fn finish(&mut self) {
        for p in self.running.drain(..) {
            let _ = p.await;
        }
    }
    fn remember(&mut self, user: &str, ids: impl Iterator<Item = ObjectId>) {
        let total: usize = self.sent_apart.values().map(HashSet::len).sum();
        let set = self.sent_apart.entry(user.to_string()).or_default();
        set.extend(ids.take(MAX_SENT_APART.saturating_sub(total)));
    }
}

async fn finish_puts(puts: &mut Puts) {
    puts.finish().await
}

/// Bytes of objects held for the Records frame that follows them; beyond it the oldest go
/// through `put_object` (their own fsync) so memory stays bounded.
const MAX_HELD_BYTES: usize = 64 << 20;

/// Objects received ahead of the Records frame that needs them, held so that both reach the
/// store in one call (one group commit, one fsync) instead of one fsync for the objects and
/// another for the records.
#[derive(Default)]
pub(crate) struct Held {
    user: String,
    objects: Vec<Verified>,
    /// Compressed bytes held (what the memory holds).
    bytes: usize,
}

impl Held {
    /// Adds an object of `user`; returns what must be stored on its own first (objects of
    /// another user, or the oldest ones when over the byte bound).
    fn push(&mut self, user: &str, obj: Verified) -> Option<Held> {
        let len = obj.compressed_len();
        let spill = if self.user != user || self.bytes + len > MAX_HELD_BYTES {
            Some(self.take())
        } else {
            None
        };
        self.user = user.to_string();
        self.bytes += len;
        self.objects.push(obj);
        spill.filter(|h| !h.objects.is_empty())
    }
    /// The held objects if they are `user`'s; otherwise they stay.
    fn take_for(&mut self, user: &str) -> Vec<Verified> {
        if self.user == user {
            self.take().objects
        } else {
            Vec::new()
        }
    }
    fn take(&mut self) -> Held {
        std::mem::take(self)
    }
}

/// Stores objects without records (the old path: each `put_object` is durable on its own;
/// concurrent puts share the store's group commit).
async fn spill(sh: &Arc<Shared>, held: Held, puts: &mut Puts) {
    if held.objects.is_empty() {
        return;
    }
    puts.remember(&held.user, held.objects.iter().map(Verified::id));
    let u = match open(sh, &held.user).await {
        Ok(u) => u,
        Err(e) => {
            // Its records are refused when they come (see `Puts`).
            tracing::warn!(user = held.user, error = %e, "replication: cannot store objects");
            return;
        }
    };
    for obj in held.objects {
        if puts.running.len() >= MAX_PUTS_IN_FLIGHT {
            finish_puts(puts).await;
        }
        let (u, user) = (u.clone(), held.user.clone());
        puts.running.push(tokio::task::spawn_blocking(move || {
            if let Err(e) = u.put_verified(obj) {
                // Its records are refused when they come (see `Puts`).
                tracing::warn!(user, error = %e, "replication: cannot store object");
            }
        }));
    }
}

async fn serve(sh: &Arc<Shared>, conn: &mut Conn) -> Result<()> {
    let peer = conn.peer;
    let mut puts = Puts::default();
    let mut held = Held::default();
    // The fencing epoch the peer says it holds (0 until it says).
    let mut peer_epoch = 0u64;
    loop {
        let msg = tokio::select! {
            _ = sh.shutdown.cancelled() => return Ok(()),
            m = conn.recv() => m?,
        };
        if let Message::Epoch { epoch } = msg {
            peer_epoch = epoch;
            continue;
        }
        if let Message::Records { user, .. } = &msg {
            if let Some(why) = sh.fenced(peer, peer_epoch) {
                // Nothing of it is applied; the objects sent ahead of it go too (resent with
                // the records once the peer ships under the current epoch).
                drop(held.take_for(user));
                puts.sent_apart.remove(user);
                tracing::info!(user, reason = %why, "replication: refused records");
                conn.send(&Message::Error { message: why }).await?;
                continue;
            }
        }
        match &msg {
            Message::Object { .. } => {}
            // The records take the objects held for their user with them; anything else held
            // (another user's) is stored on its own before they are applied.
            Message::Records { user, .. } if held.user == *user => {
                finish_puts(&mut puts).await;
            }
            _ => {
                spill(sh, held.take(), &mut puts).await;
                finish_puts(&mut puts).await;
            }
        }
        // Asked per frame: in raft mode the resolver is whichever node is active now, and a
        // peer's connection outlives changes of the active node.
        let resolve = sh.resolves_conflicts();
        let reply = match handle(sh, peer, resolve, msg, &mut held, &mut puts).await {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(ReplError::Store(e)) => {
                tracing::warn!(error = %e, "replication: store error serving the peer");
                Message::Error {
                    message: e.to_string(),
                }
            }
            Err(e) => return Err(e),
        };
        conn.send(&reply).await?;
    }
}

/// Answers one request; `None` when the message needs no answer. A store failure is answered
/// with `Error` by the caller; protocol violations end the session.
async fn handle(
    sh: &Arc<Shared>,
    peer: storage::NodeId,
    resolve: bool,
    msg: Message,
    held: &mut Held,
    puts: &mut Puts,
) -> Result<Option<Message>> {
    let reply = match msg {
        Message::Ping => Message::Pong,
        Message::GetVersionVector { user } => {
            let u = open(sh, &user).await?;
            answer(blocking(move || u.version_vector()).await, |vv| {
                Message::VersionVector { user, vv }
            })?
        }
        Message::HaveObjects { user, ids } => have_objects(sh, user, ids).await?,
        Message::Object { user, id, body } => {
            hold_object(sh, user, id, body, held, puts).await?;
            return Ok(None);
        }
        Message::Records { user, records } => {
            apply_records(sh, peer, resolve, user, records, held, puts).await?
        }
        Message::Pull { user, have, limit } => pull(sh, user, have, limit).await?,
        Message::GetDigests { user } => {
            let u = open(sh, &user).await?;
            answer(blocking(move || u.mailbox_digests()).await, |mailboxes| {
                Message::Digests { user, mailboxes }
            })?
        }
        Message::GetListing { user, mailbox } => {
            let u = open(sh, &user).await?;
            answer(
                blocking(move || u.mailbox_listing(mailbox)).await,
                |messages| Message::Listing {
                    user,
                    mailbox,
                    messages,
                },
            )?
        }
        Message::GetExpunged { user, mailbox } => {
            let u = open(sh, &user).await?;
            answer(
                blocking(move || u.expunged_listing(mailbox)).await,
                |t| match t {
                    Some(tombstones) => Message::Expunged {
                        user,
                        mailbox,
                        tombstones,
                    },
                    None => Message::Error {
                        message: format!("no mailbox {}", mailbox.to_hex()),
                    },
                },
            )?
        }
        Message::GetObjects { user, ids } => get_objects(sh, user, ids).await?,
        Message::GetUsers { after } => {
            let store = sh.store.clone();
            answer(blocking(move || store.list_users()).await, |all| {
                users_page(all, after.as_deref())
            })?
        }
        other => {
            return Err(ReplError::protocol(format!(
                "unexpected {} from a dialing peer",
                other.kind()
            )))
        }
    };
    Ok(Some(reply))
}

/// The reply to a request the store answered: `ok` of its value, or `Error` with the store's
/// message (the session goes on); any other failure ends the session.
fn answer<T>(r: Result<T>, ok: impl FnOnce(T) -> Message) -> Result<Message> {
    Ok(match soft(r)? {
        Ok(v) => ok(v),
        Err(message) => Message::Error { message },
    })
}

fn check_ids(n: usize) -> Result<()> {
    if n > MAX_IDS {
        return Err(ReplError::protocol(format!("{n} object ids in one frame")));
    }
    Ok(())
}

/// `HaveObjects`: which of `ids` this node lacks.
async fn have_objects(sh: &Arc<Shared>, user: String, ids: Vec<ObjectId>) -> Result<Message> {
    check_ids(ids.len())?;
    let u = open(sh, &user).await?;
    let r = blocking(move || {
        let mut missing = Vec::new();
        for id in ids {
            if !u.has_object(&id)? {
                missing.push(id);
            }
        }
        Ok(missing)
    })
    .await;
    answer(r, |ids| Message::MissingObjects { user, ids })
}

/// `Object`: checked, then held for the Records frame that follows.
async fn hold_object(
    sh: &Arc<Shared>,
    user: String,
    id: ObjectId,
    body: StoredBody,
    held: &mut Held,
    puts: &mut Puts,
) -> Result<()> {
    // Validates the user name (a protocol error otherwise) before anything is held.
    open(sh, &user).await?;
    // Bounded decompression, length and hash (a protocol error otherwise); the compressed body
    // is then stored as it came.
    let obj = check_object(id, body)?;
    // Held for the Records frame that follows; made durable together with it (see
    // `apply_checked`). What spills out goes to `put_object`, all finished before the next
    // request is handled.
    if let Some(out) = held.push(&user, obj) {
        spill(sh, out, puts).await;
    }
    Ok(())
}

/// `Records`: applied with the objects held for them; `Ack` once durable.
async fn apply_records(
    sh: &Arc<Shared>,
    peer: storage::NodeId,
    resolve: bool,
    user: String,
    records: Vec<WireRecord>,
    held: &mut Held,
    puts: &mut Puts,
) -> Result<Message> {
    let u = open(sh, &user).await?;
    // A big frame is a peer's catch-up: its apply (decode, checks, the store's write and
    // fsync) yields to this node's busy clients, bounded (see `pacing`). The peer waits for
    // the Ack meanwhile.
    sh.pacer.before_apply(records.len()).await;
    let objects = held.take_for(&user);
    let apart = puts.sent_apart.remove(&user).unwrap_or_default();
    let low = sh
        .pacer
        .low_priority(sh.pacer.is_catch_up_frame(records.len()));
    let applied = crate::background::catch_up(
        low,
        apply_checked(&sh.store, &u, &user, &records, objects, apart, resolve),
    )
    .await;
    Ok(match soft(applied)? {
        Ok(done) => {
            sh.conflicts_resolved
                .fetch_add(done.resolved as u64, Ordering::Relaxed);
            // The peer has what it sent us: do not ship it back.
            if let Some(p) = sh.peers.get(&peer) {
                let mut sent = VersionVector::new();
                for r in &done.records {
                    let e = sent.entry(r.origin).or_insert(0);
                    *e = (*e).max(r.seq);
                }
                if p.acked.lock().contains_key(&user) {
                    p.merge_acked(&user, &sent);
                }
            }
            // What the peers acknowledged of ours may now be shown (see `confirm`).
            crate::confirm::own_if_caught_up(sh, &u, &user, &done.vv);
            tracing::debug!(
                user,
                applied = done.applied.applied,
                "replication: applied records"
            );
            // Read in the same blocking hop as the apply, after its fsync.
            Message::Ack { user, vv: done.vv }
        }
        Err(message) => {
            tracing::warn!(user, error = %message, "replication: cannot apply records");
            Message::Error { message }
        }
    })
}

/// `Pull`: the records the puller lacks, a page at a time.
async fn pull(sh: &Arc<Shared>, user: String, have: VersionVector, limit: u32) -> Result<Message> {
    let u = open(sh, &user).await?;
    let limit = (limit as usize).clamp(1, MAX_RECORDS_PER_FRAME);
    // Objects travel apart on the pull path (GetObjects, `None` for a purged one): no byte
    // bound here, and no cut to place (see `purged`).
    let r = blocking(move || {
        let recs = u.records_since(&have, limit)?;
        let more = recs.len() >= limit;
        Ok((recs, more))
    })
    .await;
    match soft(r)? {
        Ok((recs, more)) => {
            let records = recs
                .iter()
                .map(|r| WireRecord::encode(&user, r))
                .collect::<Result<Vec<_>>>()?;
            Ok(Message::PullReply {
                user,
                records,
                more,
            })
        }
        Err(message) => Ok(Message::Error { message }),
    }
}

/// `GetObjects`: the objects asked for in their stored form (`None` for one purged here), up
/// to a reply's worth of bytes.
async fn get_objects(sh: &Arc<Shared>, user: String, ids: Vec<ObjectId>) -> Result<Message> {
    check_ids(ids.len())?;
    let u = open(sh, &user).await?;
    let r = blocking(move || {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for id in ids {
            if !out.is_empty() && bytes >= MAX_OBJECTS_REPLY {
                break;
            }
            // In the stored form: the asking side verifies and stores it as it is.
            let body = if u.has_object(&id)? {
                Some(StoredBody::from(u.read_object_stored(&id)?))
            } else {
                None
            };
            bytes += body.as_ref().map_or(0, |b| b.zstd.len());
            out.push((id, body));
        }
        Ok(out)
    })
    .await;
    answer(r, |objects| Message::ObjectsData { user, objects })
}

/// One page of `GetUsers`: the names after `after`, in order, at most a frame's worth.
fn users_page(mut all: Vec<String>, after: Option<&str>) -> Message {
    all.sort();
    all.dedup();
    let start = after.map_or(0, |a| all.partition_point(|n| n.as_str() <= a));
    let rest = all.get(start..).unwrap_or_default();
    let names: Vec<String> = rest.iter().take(MAX_USERS_PER_FRAME).cloned().collect();
    Message::Users {
        more: rest.len() > names.len(),
        names,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::ObjectId;

    #[test]
    fn users_are_paged_in_name_order() {
        let all: Vec<String> = (0..MAX_USERS_PER_FRAME + 5)
            .map(|i| format!("u{i:06}"))
            .rev()
            .collect();
        let Message::Users { names, more } = users_page(all.clone(), None) else {
            panic!("not Users")
        };
        assert!(more);
        assert_eq!(names.len(), MAX_USERS_PER_FRAME);
        assert_eq!(names[0], "u000000");
        let last = names.last().cloned();
        let Message::Users { names, more } = users_page(all, last.as_deref()) else {
            panic!("not Users")
        };
        assert!(!more);
        assert_eq!(names.len(), 5);
        assert_eq!(names[0], format!("u{MAX_USERS_PER_FRAME:06}"));
    }

    /// A verified object of `n` incompressible bytes (its compressed size is about `n`).
    fn obj(seed: u64, n: usize) -> Verified {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let raw: Vec<u8> = (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let p = storage::pack::prepare(&raw).unwrap();
        storage::pack::verify(p.id, p.raw_len, p.compressed, 1 << 30).unwrap()
    }
    fn ids(v: &[Verified]) -> Vec<ObjectId> {
        v.iter().map(Verified::id).collect()
    }

    #[test]
    fn held_objects_go_with_their_users_records() {
        let mut h = Held::default();
        let (o1, o2) = (obj(1, 10), obj(2, 10));
        assert!(h.push("a", o1.clone()).is_none());
        assert!(h.push("a", o2.clone()).is_none());
        assert_eq!(h.bytes, o1.compressed_len() + o2.compressed_len());
        // Another user's records leave them held.
        assert!(h.take_for("b").is_empty());
        assert_eq!(ids(&h.take_for("a")), vec![o1.id(), o2.id()]);
        assert!(h.take_for("a").is_empty());
        assert_eq!(h.bytes, 0);
    }

    #[test]
    fn another_user_or_the_byte_bound_spills_what_is_held() {
        let mut h = Held::default();
        assert!(h.push("a", obj(1, 10)).is_none());
        let o2 = obj(2, 10);
        let out = h.push("b", o2.clone()).expect("a's object spills");
        assert_eq!((out.user.as_str(), out.objects.len()), ("a", 1));
        assert_eq!(ids(&h.take_for("b")), vec![o2.id()]);
        // Over the bound (in compressed bytes): the older objects spill, the new one is held.
        let big = obj(3, MAX_HELD_BYTES - 4096);
        let big_len = big.compressed_len();
        assert!(big_len < MAX_HELD_BYTES);
        assert!(h.push("b", big).is_none());
        let next = obj(4, MAX_HELD_BYTES - big_len + 100);
        let next_len = next.compressed_len();
        let out = h.push("b", next).expect("bound reached");
        assert_eq!((out.objects.len(), out.bytes), (1, big_len));
        assert_eq!((h.objects.len(), h.bytes), (1, next_len));
        // One object larger than the bound is still held (the frame limit bounds it).
        let mut h = Held::default();
        assert!(h.push("c", obj(5, MAX_HELD_BYTES + 1)).is_none());
        assert_eq!(h.objects.len(), 1);
    }
}
