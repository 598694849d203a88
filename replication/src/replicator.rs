//! The running replication service of one node: what `node serve` starts, and the [`Handle`]
//! the rest of the node uses (status, durability wait, on-demand sync, user tracking).

use crate::error::{ReplError, Result};
use crate::store_api::{ReplicaStore, ReplicaUser};
use crate::tls::TlsMaterial;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use storage::{NodeId, VersionVector};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// `[cluster] durability`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Acknowledge after the local fsync (as dsync does).
    Local,
    /// Acknowledge only once a peer has the change durable, up to `sync_timeout`.
    Replicated,
}

#[derive(Clone, Debug)]
pub struct PeerConfig {
    pub id: NodeId,
    /// host:port of the peer's replication listener.
    pub addr: String,
}

#[derive(Clone, Debug)]
pub struct ReplicationConfig {
    pub node_id: NodeId,
    /// Where peers dial us.
    pub listen: SocketAddr,
    pub peers: Vec<PeerConfig>,
    pub tls: TlsMaterial,
    pub durability: Durability,
    /// `replication_sync_timeout`: how long a write waits for a peer's ack in `replicated` mode.
    pub sync_timeout: Duration,
    /// Most records in one Records frame.
    pub batch_records: usize,
    /// Message bytes after which a batch is cut (objects travel before their records).
    pub batch_bytes: u64,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// How often the list of users on disk is re-read to find users created meanwhile.
    pub rescan_interval: Duration,
    /// An idle connection is probed (Ping) after this long.
    pub keepalive: Duration,
    /// How long to wait for any answer from a peer.
    pub reply_timeout: Duration,
    /// Connections per peer; users are spread over them by hash.
    pub lanes: usize,
    /// How busy this node's clients are (the node passes its count of client store calls in
    /// flight): catch-up yields to them, see [`crate::pacing`].
    pub client_load: crate::pacing::ClientLoad,
    /// Whether and how catch-up batches yield to clients.
    pub pacing: crate::pacing::PacingConfig,
    /// Raft mode: the coordinator's view of (active node, epoch, am I active). Shipped
    /// records carry this node's epoch, and live records from a node that is behind the
    /// epoch and not active are refused ("fenced"). `None`: no fencing (keepalived-led).
    pub epoch: Option<tokio::sync::watch::Receiver<crate::coord::ActiveView>>,
}

impl ReplicationConfig {
    /// Defaults for everything but identity, addresses and TLS.
    pub fn new(
        node_id: NodeId,
        listen: SocketAddr,
        peers: Vec<PeerConfig>,
        tls: TlsMaterial,
    ) -> ReplicationConfig {
        ReplicationConfig {
            node_id,
            listen,
            peers,
            tls,
            durability: Durability::Local,
            sync_timeout: Duration::from_secs(2),
            batch_records: 500,
            batch_bytes: 8 << 20,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            rescan_interval: Duration::from_secs(5),
            keepalive: Duration::from_secs(5),
            reply_timeout: Duration::from_secs(60),
            lanes: 4,
            client_load: crate::pacing::ClientLoad::none(),
            pacing: crate::pacing::PacingConfig::default(),
            epoch: None,
        }
    }
}

/// Users waiting to be shipped to one peer, each once, round-robin.
#[derive(Default)]
pub(crate) struct DirtyQueue {
    order: VecDeque<String>,
    members: HashSet<String>,
}

impl DirtyQueue {
    pub(crate) fn push(&mut self, user: &str) {
        if self.members.insert(user.to_string()) {
            self.order.push_back(user.to_string());
        }
    }
    pub(crate) fn pop(&mut self) -> Option<String> {
        let u = self.order.pop_front()?;
        self.members.remove(&u);
        Some(u)
    }
}

/// How far one user is behind at one peer, as the shipper last saw it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LagMark {
    /// Wall-clock ms of the oldest record not yet acked (display only).
    pub oldest_unacked_ms: u64,
    /// Message bytes in the batch in flight.
    pub bytes: u64,
}

/// One connection to a peer and the users it ships. A peer gets several lanes so that different
/// users' batches (and the peer's fsyncs for them) proceed in parallel.
pub(crate) struct Lane {
    pub index: usize,
    pub connected: AtomicBool,
    pub queue: Mutex<DirtyQueue>,
    pub wake: Notify,
    /// Users whose last batch on this lane was cut (the peer is more than a batch behind):
    /// their next batch is catch-up and yields to clients.
    pub catching_up: Mutex<HashSet<String>>,
}

pub(crate) struct PeerState {
    pub id: NodeId,
    pub addr: String,
    pub lanes: Vec<Arc<Lane>>,
    /// The peer's durable version vector per user, as its last Ack (or answer) said.
    pub acked: Mutex<HashMap<String, VersionVector>>,
    pub lag: Mutex<HashMap<String, LagMark>>,
    pub last_error: Mutex<Option<PeerError>>,
    /// Successful connects on any lane: a lane's failed connect attempt is reported only if no
    /// lane got through since the attempt began (else it is stale: the peer is reachable).
    pub connect_gen: AtomicU64,
    /// Batches that failed (a store error here or at the peer) and were left for a retry.
    pub batches_failed: AtomicU64,
    pub records_sent: AtomicU64,
    pub objects_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub connects: AtomicU64,
}

/// What `status()` shows as a peer's `last_error`: the last failure that still holds. The lanes
/// share it, so each kind is cleared by the success that proves it over: a connection error by
/// any lane connecting, a user's shipping error by that user's next batch going through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PeerError {
    /// The user whose batch failed; `None` for the connection itself.
    pub user: Option<String>,
    pub message: String,
}

impl std::fmt::Display for PeerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.user {
            Some(u) => write!(f, "{u}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl PeerState {
    /// A lane connected: connection errors no longer hold.
    pub(crate) fn connect_succeeded(&self) {
        self.connect_gen.fetch_add(1, Ordering::SeqCst);
        let mut e = self.last_error.lock();
        if e.as_ref().is_some_and(|e| e.user.is_none()) {
            *e = None;
        }
    }
    /// A connect attempt begun when `connect_gen` was `gen` failed: shown unless another lane
    /// connected meanwhile.
    pub(crate) fn connect_failed(&self, gen: u64, message: String) {
        let mut e = self.last_error.lock();
        if self.connect_gen.load(Ordering::SeqCst) == gen {
            *e = Some(PeerError {
                user: None,
                message,
            });
        }
    }
    /// An established connection failed.
    pub(crate) fn connection_lost(&self, message: String) {
        *self.last_error.lock() = Some(PeerError {
            user: None,
            message,
        });
    }
    pub(crate) fn user_failed(&self, user: &str, message: String) {
        self.batches_failed.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock() = Some(PeerError {
            user: Some(user.to_string()),
            message,
        });
    }
    /// A batch of `user` went through: an error naming it no longer holds.
    pub(crate) fn user_succeeded(&self, user: &str) {
        let mut e = self.last_error.lock();
        if e.as_ref().and_then(|e| e.user.as_deref()) == Some(user) {
            *e = None;
        }
    }
    pub(crate) fn lane_of(&self, user: &str) -> usize {
        let h = blake3::hash(user.as_bytes());
        let b = h.as_bytes();
        (u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
            % self.lanes.len() as u64) as usize
    }
    pub(crate) fn mark_dirty(&self, user: &str) {
        let lane = &self.lanes[self.lane_of(user)];
        lane.queue.lock().push(user);
        lane.wake.notify_one();
    }
    pub(crate) fn connected(&self) -> bool {
        self.lanes
            .iter()
            .any(|l| l.connected.load(Ordering::SeqCst))
    }
    /// Nothing queued on any lane: the peer has acked everything we have.
    pub(crate) fn idle(&self) -> bool {
        self.lanes.iter().all(|l| l.queue.lock().order.is_empty())
    }
    /// Raises what we know the peer has (never lowers it).
    pub(crate) fn merge_acked(&self, user: &str, vv: &VersionVector) {
        let mut acked = self.acked.lock();
        let e = acked.entry(user.to_string()).or_default();
        for (o, s) in vv {
            let x = e.entry(*o).or_insert(0);
            *x = (*x).max(*s);
        }
    }
}

pub(crate) struct Shared {
    pub cfg: ReplicationConfig,
    pub store: Arc<dyn ReplicaStore>,
    pub users: Mutex<HashMap<String, Arc<dyn ReplicaUser>>>,
    pub peers: BTreeMap<NodeId, Arc<PeerState>>,
    pub shutdown: CancellationToken,
    pub tasks: TaskTracker,
    /// Ticks on every ack from any peer: durability waiters re-check.
    pub acks: tokio::sync::watch::Sender<u64>,
    pub degraded: AtomicBool,
    pub degraded_events: AtomicU64,
    pub conflicts_resolved: AtomicU64,
    pub refused_frames: AtomicU64,
    /// Records frames refused because their sender was behind the fencing epoch.
    pub fenced_frames: AtomicU64,
    /// Modseq alignment (resolver only): the last check per peer and user, and counters.
    pub align: crate::align::AlignState,
    pub modseq_checks: AtomicU64,
    pub modseqs_aligned: AtomicU64,
    /// Catch-up yielding to clients, and its counters.
    pub pacer: crate::pacing::Pacer,
    /// Ghosts per user, cached for `/metrics` (see `ghosts`).
    pub ghosts: crate::ghosts::GhostCounts,
}

/// See [`Handle::counters`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicationCounters {
    pub degraded_events: u64,
    pub conflicts_resolved: u64,
    pub refused_frames: u64,
    pub fenced_frames: u64,
    pub modseq_checks: u64,
    pub modseqs_aligned: u64,
    pub peers: Vec<PeerCounters>,
    /// Users that have had ghosts, with their count as of the last rescan (0 once resolved).
    pub ghosts: Vec<crate::ghosts::UserGhosts>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerCounters {
    pub id: NodeId,
    pub connected: bool,
    pub connects: u64,
    pub records_sent: u64,
    pub objects_sent: u64,
    pub bytes_sent: u64,
    /// Users with records shipped but not yet acked by this peer.
    pub users_behind: u64,
    pub batches_failed: u64,
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::result::Result<T, storage::StoreError> + Send + 'static,
) -> Result<T> {
    // Catch-up work yields the CPU and disk to clients (see `background`).
    if crate::background::in_catch_up() {
        return crate::background::run(f)
            .await
            .map_err(ReplError::Other)?
            .map_err(ReplError::Store);
    }
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ReplError::Other(format!("store task failed: {e}")))?
        .map_err(ReplError::Store)
}

/// Dominates: `a` has everything `b` has.
pub fn covers(a: &VersionVector, b: &VersionVector) -> bool {
    b.iter()
        .all(|(o, s)| *s == 0 || a.get(o).is_some_and(|x| x >= s))
}

impl Shared {
    pub(crate) fn is_peer(&self, id: NodeId) -> bool {
        self.peers.contains_key(&id)
    }

    /// The fencing epoch this node holds now (0 without raft mode or before any election).
    pub(crate) fn epoch(&self) -> u64 {
        self.cfg.epoch.as_ref().map_or(0, |rx| rx.borrow().epoch)
    }

    /// Why live records from `peer`, shipped under `peer_epoch`, must be refused now: the
    /// peer is behind the epoch this node knows and is not the active node (a deposed active
    /// that has not heard of its successor). `None`: accept.
    pub(crate) fn fenced(&self, peer: NodeId, peer_epoch: u64) -> Option<String> {
        let view = *self.cfg.epoch.as_ref()?.borrow();
        let why = fence_verdict(&view, peer, peer_epoch)?;
        self.fenced_frames.fetch_add(1, Ordering::Relaxed);
        Some(why)
    }

    pub(crate) fn resolves_conflicts(&self) -> bool {
        crate::policy::should_resolve(self.cfg.node_id, self.peers.keys().copied())
    }

    /// Starts shipping `user` to every peer (once per user) and returns its store.
    pub(crate) async fn track(self: &Arc<Self>, user: &str) -> Result<Arc<dyn ReplicaUser>> {
        if let Some(u) = self.users.lock().get(user) {
            return Ok(u.clone());
        }
        let store = self.store.clone();
        let name = user.to_string();
        let u = blocking(move || store.user(&name)).await?;
        let mut rx = {
            let mut users = self.users.lock();
            if let Some(existing) = users.get(user) {
                return Ok(existing.clone());
            }
            users.insert(user.to_string(), u.clone());
            u.watch()
        };
        self.ghosts.touched(user);
        for p in self.peers.values() {
            p.mark_dirty(user);
        }
        let me = self.clone();
        let name = user.to_string();
        self.tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = me.shutdown.cancelled() => break,
                    r = rx.changed() => {
                        if r.is_err() { break }
                        for p in me.peers.values() {
                            p.mark_dirty(&name);
                        }
                        me.ghosts.touched(&name);
                    }
                }
            }
        });
        Ok(u)
    }

    pub(crate) fn set_degraded(&self, user: &str) {
        if !self.degraded.swap(true, Ordering::SeqCst) {
            self.degraded_events.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                user,
                timeout_ms = self.cfg.sync_timeout.as_millis() as u64,
                "replication: no peer acknowledged within replication_sync_timeout; \
                 degrading durability to local until a peer catches up"
            );
        }
    }

    pub(crate) fn clear_degraded(&self, peer: NodeId) {
        if self.degraded.swap(false, Ordering::SeqCst) {
            tracing::info!(
                peer,
                "replication: peer caught up; durability back to replicated"
            );
        }
    }
}

/// Whether live records of `peer` shipped under `peer_epoch` are refused by a node whose
/// coordinator shows `view`, and why.
pub(crate) fn fence_verdict(
    view: &crate::coord::ActiveView,
    peer: NodeId,
    peer_epoch: u64,
) -> Option<String> {
    if peer_epoch >= view.epoch || view.active == Some(peer) {
        return None;
    }
    Some(format!(
        "{FENCED_PREFIX} node {peer} ships under epoch {peer_epoch}, but this node knows epoch {} (active node: {})",
        view.epoch,
        view.active.map_or("none".to_string(), |a| a.to_string())
    ))
}

#[cfg(test)]
mod fence_tests {
    use super::*;
    use crate::coord::ActiveView;

    #[test]
    fn only_a_behind_and_inactive_sender_is_fenced() {
        let view = ActiveView {
            active: Some(2),
            epoch: 7,
            am_active: false,
        };
        // The deposed node 1, still at epoch 6: refused, with both epochs named.
        let why = fence_verdict(&view, 1, 6).expect("fenced");
        assert!(why.starts_with(FENCED_PREFIX), "{why}");
        assert!(why.contains("epoch 6") && why.contains("epoch 7"), "{why}");
        // Once it knows epoch 7 (or later), its records merge again.
        assert!(fence_verdict(&view, 1, 7).is_none());
        assert!(fence_verdict(&view, 1, 8).is_none());
        // The active node itself is never fenced, even if this node's view ran ahead.
        assert!(fence_verdict(&view, 2, 3).is_none());
        // Before any election nothing is fenced.
        assert!(fence_verdict(&ActiveView::default(), 1, 0).is_none());
    }
}

/// How a fenced refusal starts (`Message::Error`).
pub const FENCED_PREFIX: &str = "fenced:";

/// The outcome of [`Handle::wait_replicated`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ReplicaWait {
    /// A peer has everything the user had at the call, durable.
    Acked(NodeId),
    /// Durability is `local`: nothing to wait for.
    NotRequired,
    /// No peer acked in time: the node is now degraded to local durability.
    TimedOut,
    /// Already degraded: acknowledged locally without waiting.
    Degraded,
}

/// Per peer and per user lag, for `node replication status [--json]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReplicationStatus {
    pub node: NodeId,
    pub durability: Durability,
    /// True while `replicated` durability is degraded to local after a timeout.
    pub degraded: bool,
    /// How many times durability degraded since start.
    pub degraded_events: u64,
    pub conflicts_resolved: u64,
    /// Frames refused from peers (validation failures), each of which ended a connection.
    pub refused_frames: u64,
    /// Records frames refused because their sender was behind the fencing epoch (raft mode).
    #[serde(default)]
    pub fenced_frames: u64,
    /// The fencing epoch this node holds (raft mode; 0 otherwise).
    #[serde(default)]
    pub epoch: u64,
    pub users_tracked: usize,
    pub peers: Vec<PeerStatus>,
    /// Modseq comparisons with a peer after records of two origins were applied (resolver).
    #[serde(default)]
    pub modseq_checks: u64,
    /// `AlignModseqs` records written (one per mailbox whose modseqs differed from a peer's).
    #[serde(default)]
    pub modseqs_aligned: u64,
    /// How much catch-up was held back for this node's clients.
    #[serde(default)]
    pub pacing: crate::pacing::PacingStatus,
    /// Users holding ghosts: messages a peer shipped without their object (purged there),
    /// kept invisible until their removal arrives. Counted at the call.
    #[serde(default)]
    pub ghosts: Vec<crate::ghosts::UserGhosts>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerStatus {
    pub id: NodeId,
    pub addr: String,
    pub connected: bool,
    pub last_error: Option<String>,
    pub connects: u64,
    pub records_sent: u64,
    pub objects_sent: u64,
    pub bytes_sent: u64,
    /// Users with something not yet acknowledged by this peer, most behind first.
    pub behind: Vec<UserLag>,
    pub records_behind: u64,
    /// Batches to this peer that failed (a store error here or at the peer; retried after
    /// 5 s). `last_error` shows only a failure that still holds; this counts every one.
    #[serde(default)]
    pub batches_failed: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserLag {
    pub user: String,
    /// Records this node has that the peer has not acknowledged (exact; if the peer's version
    /// vector is not known yet, counted against an empty one).
    pub records: u64,
    /// Message bytes in the batch in flight (a lower bound of the backlog).
    pub bytes: u64,
    /// Age of the oldest unacknowledged record by its clock's wall time.
    pub seconds: f64,
}

/// The running replicator: cheap to clone.
#[derive(Clone)]
pub struct Handle {
    pub(crate) shared: Arc<Shared>,
    local_addr: SocketAddr,
}

pub struct Replicator;

impl Replicator {
    /// Starts replication for the node's store: listener, one shipper per peer, user tracking.
    pub async fn start(cfg: ReplicationConfig, store: Arc<storage::Store>) -> Result<Handle> {
        Replicator::start_with(cfg, Arc::new(crate::storage_adapter::StorageReplica(store))).await
    }

    /// Same, over any [`ReplicaStore`].
    pub async fn start_with(
        cfg: ReplicationConfig,
        store: Arc<dyn ReplicaStore>,
    ) -> Result<Handle> {
        let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
        Replicator::start_on(cfg, listener, store)
    }

    /// Same, on a listener the caller bound (`cfg.listen` is then ignored).
    pub fn start_on(
        cfg: ReplicationConfig,
        listener: tokio::net::TcpListener,
        store: Arc<dyn ReplicaStore>,
    ) -> Result<Handle> {
        let local_addr = listener.local_addr()?;
        let peers = cfg
            .peers
            .iter()
            .filter(|p| p.id != cfg.node_id)
            .map(|p| {
                (
                    p.id,
                    Arc::new(PeerState {
                        id: p.id,
                        addr: p.addr.clone(),
                        lanes: (0..cfg.lanes.max(1))
                            .map(|index| {
                                Arc::new(Lane {
                                    index,
                                    connected: AtomicBool::new(false),
                                    queue: Mutex::new(DirtyQueue::default()),
                                    wake: Notify::new(),
                                    catching_up: Mutex::new(HashSet::new()),
                                })
                            })
                            .collect(),
                        acked: Mutex::new(HashMap::new()),
                        lag: Mutex::new(HashMap::new()),
                        last_error: Mutex::new(None),
                        connect_gen: AtomicU64::new(0),
                        batches_failed: AtomicU64::new(0),
                        records_sent: AtomicU64::new(0),
                        objects_sent: AtomicU64::new(0),
                        bytes_sent: AtomicU64::new(0),
                        connects: AtomicU64::new(0),
                    }),
                )
            })
            .collect();
        let pacer = crate::pacing::Pacer::new(cfg.pacing.clone(), cfg.client_load.clone());
        let shared = Arc::new(Shared {
            cfg,
            store,
            users: Mutex::new(HashMap::new()),
            peers,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            acks: tokio::sync::watch::channel(0).0,
            degraded: AtomicBool::new(false),
            degraded_events: AtomicU64::new(0),
            conflicts_resolved: AtomicU64::new(0),
            refused_frames: AtomicU64::new(0),
            fenced_frames: AtomicU64::new(0),
            align: Default::default(),
            modseq_checks: AtomicU64::new(0),
            modseqs_aligned: AtomicU64::new(0),
            pacer,
            ghosts: Default::default(),
        });
        tracing::info!(
            node = shared.cfg.node_id,
            listen = %local_addr,
            peers = ?shared.peers.keys().collect::<Vec<_>>(),
            "replication: starting"
        );
        shared
            .tasks
            .spawn(crate::receiver::listen(shared.clone(), listener));
        for p in shared.peers.values() {
            for lane in &p.lanes {
                shared
                    .tasks
                    .spawn(crate::shipper::run(shared.clone(), p.clone(), lane.clone()));
            }
        }
        shared.tasks.spawn(rescan(shared.clone()));
        Ok(Handle { shared, local_addr })
    }
}

/// Finds users on disk (at start and periodically) so every user is shipped.
async fn rescan(shared: Arc<Shared>) {
    loop {
        let store = shared.store.clone();
        match blocking(move || store.list_users()).await {
            Ok(users) => {
                for u in users {
                    if let Err(e) = shared.track(&u).await {
                        tracing::warn!(user = %u, error = %e, "replication: cannot open user");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "replication: cannot list users"),
        }
        crate::ghosts::refresh_stale(&shared).await;
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tokio::time::sleep(shared.cfg.rescan_interval) => {}
        }
    }
}

impl Handle {
    /// The address the replication listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Makes sure `user` is shipped (the node calls this when it opens a user, so a user created
    /// after start is replicated at once rather than at the next rescan).
    pub async fn track_user(&self, user: &str) -> Result<()> {
        self.shared.track(user).await.map(|_| ())
    }

    pub fn is_degraded(&self) -> bool {
        self.shared.degraded.load(Ordering::SeqCst)
    }

    /// The durability hook for `replicated` mode: resolves once a peer has acked, durably,
    /// everything `user` had when called; or after `timeout`, degrading to local (logged once,
    /// shown in status) until a peer catches up again.
    pub async fn wait_replicated(&self, user: &str, timeout: Duration) -> ReplicaWait {
        let sh = &self.shared;
        if sh.cfg.durability == Durability::Local || sh.peers.is_empty() {
            return ReplicaWait::NotRequired;
        }
        if sh.degraded.load(Ordering::SeqCst) {
            return ReplicaWait::Degraded;
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = sh.acks.subscribe();
        let target = match sh.track(user).await {
            Ok(u) => match blocking(move || u.version_vector()).await {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(user, error = %e, "replication: cannot read version vector");
                    sh.set_degraded(user);
                    return ReplicaWait::TimedOut;
                }
            },
            Err(e) => {
                tracing::warn!(user, error = %e, "replication: cannot open user");
                sh.set_degraded(user);
                return ReplicaWait::TimedOut;
            }
        };
        loop {
            for p in sh.peers.values() {
                if p.acked.lock().get(user).is_some_and(|a| covers(a, &target)) {
                    return ReplicaWait::Acked(p.id);
                }
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return ReplicaWait::TimedOut },
                _ = tokio::time::sleep_until(deadline) => {
                    sh.set_degraded(user);
                    return ReplicaWait::TimedOut;
                }
            }
        }
    }

    /// Per peer and per user lag.
    pub async fn status(&self) -> ReplicationStatus {
        let sh = &self.shared;
        let users: Vec<(String, Arc<dyn ReplicaUser>)> = sh
            .users
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let users_tracked = users.len();
        let (local, ghosts): (Vec<(String, VersionVector)>, _) = blocking(move || {
            let ghosts = crate::ghosts::count(&users);
            let local = users
                .into_iter()
                .map(|(n, u)| u.version_vector().map(|v| (n, v)))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            Ok((local, ghosts))
        })
        .await
        .unwrap_or_default();
        sh.ghosts.record(&ghosts);
        let now = sh.store.wall_ms();
        let mut peers = Vec::new();
        for p in sh.peers.values() {
            let acked = p.acked.lock().clone();
            let lag = p.lag.lock().clone();
            let mut behind = Vec::new();
            for (user, vv) in &local {
                let empty = VersionVector::new();
                let a = acked.get(user).unwrap_or(&empty);
                let records: u64 = vv
                    .iter()
                    .map(|(o, s)| s.saturating_sub(a.get(o).copied().unwrap_or(0)))
                    .sum();
                if records > 0 {
                    let m = lag.get(user).copied().unwrap_or_default();
                    let seconds = if m.oldest_unacked_ms > 0 {
                        now.saturating_sub(m.oldest_unacked_ms) as f64 / 1000.0
                    } else {
                        0.0
                    };
                    behind.push(UserLag {
                        user: user.clone(),
                        records,
                        bytes: m.bytes,
                        seconds,
                    });
                }
            }
            behind.sort_by(|a, b| b.records.cmp(&a.records).then(a.user.cmp(&b.user)));
            peers.push(PeerStatus {
                id: p.id,
                addr: p.addr.clone(),
                connected: p.connected(),
                last_error: p.last_error.lock().as_ref().map(|e| e.to_string()),
                connects: p.connects.load(Ordering::Relaxed),
                records_sent: p.records_sent.load(Ordering::Relaxed),
                objects_sent: p.objects_sent.load(Ordering::Relaxed),
                bytes_sent: p.bytes_sent.load(Ordering::Relaxed),
                records_behind: behind.iter().map(|b| b.records).sum(),
                batches_failed: p.batches_failed.load(Ordering::Relaxed),
                behind,
            });
        }
        ReplicationStatus {
            node: sh.cfg.node_id,
            durability: sh.cfg.durability,
            degraded: sh.degraded.load(Ordering::SeqCst),
            degraded_events: sh.degraded_events.load(Ordering::Relaxed),
            conflicts_resolved: sh.conflicts_resolved.load(Ordering::Relaxed),
            refused_frames: sh.refused_frames.load(Ordering::Relaxed),
            fenced_frames: sh.fenced_frames.load(Ordering::Relaxed),
            epoch: sh.epoch(),
            users_tracked,
            peers,
            modseq_checks: sh.modseq_checks.load(Ordering::Relaxed),
            modseqs_aligned: sh.modseqs_aligned.load(Ordering::Relaxed),
            pacing: sh.pacer.counters.status(sh.cfg.pacing.enabled),
            ghosts: sh.ghosts.nonzero(),
        }
    }

    /// `node sync -u USER [--full] [--peer NODE]` on the running node. Without `peer`, syncs
    /// with every configured peer in turn.
    pub async fn sync_user(
        &self,
        user: &str,
        peer: Option<NodeId>,
        full: bool,
    ) -> Result<Vec<crate::sync::SyncReport>> {
        let sh = &self.shared;
        let targets: Vec<_> = sh
            .cfg
            .peers
            .iter()
            .filter(|p| p.id != sh.cfg.node_id && peer.is_none_or(|x| x == p.id))
            .cloned()
            .collect();
        if targets.is_empty() {
            return Err(ReplError::Other(match peer {
                Some(p) => format!("node {p} is not a configured peer"),
                None => "no peers configured".into(),
            }));
        }
        let mut out = Vec::new();
        for p in targets {
            out.push(
                crate::sync::sync_user_at(
                    &sh.cfg.tls,
                    sh.store.clone(),
                    &p,
                    user,
                    full,
                    sh.resolves_conflicts(),
                    sh.epoch(),
                )
                .await?,
            );
        }
        Ok(out)
    }

    /// Before this node takes the active role: pulls from every peer it can reach each
    /// user's records it lacks, each peer bounded by `budget` (see [`crate::takeover`]).
    pub async fn take_over(&self, budget: Duration) -> crate::takeover::TakeOver {
        crate::takeover::take_over(&self.shared, budget).await
    }

    /// Merge and transport counters since start (cheap: atomics and a short lock per peer;
    /// for `/metrics`, where the async [`Handle::status`] is too heavy per scrape).
    pub fn counters(&self) -> ReplicationCounters {
        let sh = &self.shared;
        ReplicationCounters {
            degraded_events: sh.degraded_events.load(Ordering::Relaxed),
            conflicts_resolved: sh.conflicts_resolved.load(Ordering::Relaxed),
            refused_frames: sh.refused_frames.load(Ordering::Relaxed),
            fenced_frames: sh.fenced_frames.load(Ordering::Relaxed),
            modseq_checks: sh.modseq_checks.load(Ordering::Relaxed),
            modseqs_aligned: sh.modseqs_aligned.load(Ordering::Relaxed),
            peers: sh
                .peers
                .values()
                .map(|p| PeerCounters {
                    id: p.id,
                    connected: p.connected(),
                    connects: p.connects.load(Ordering::Relaxed),
                    records_sent: p.records_sent.load(Ordering::Relaxed),
                    objects_sent: p.objects_sent.load(Ordering::Relaxed),
                    bytes_sent: p.bytes_sent.load(Ordering::Relaxed),
                    users_behind: p.lag.lock().len() as u64,
                    batches_failed: p.batches_failed.load(Ordering::Relaxed),
                })
                .collect(),
            ghosts: sh.ghosts.all(),
        }
    }

    /// How much catch-up was held back for clients (cheap: atomics; for `/metrics`).
    pub fn pacing(&self) -> crate::pacing::PacingStatus {
        self.shared
            .pacer
            .counters
            .status(self.shared.cfg.pacing.enabled)
    }

    /// Stops every task (listener, shippers, sessions) and waits for them.
    pub async fn shutdown(&self) {
        self.shared.shutdown.cancel();
        self.shared.tasks.close();
        self.shared.tasks.wait().await;
    }
}
