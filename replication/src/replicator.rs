//! The running replication service of one node: what `node serve` starts, and the [`Handle`]
//! the rest of the node uses (status, durability wait, on-demand sync, user tracking).

pub use crate::config::{Durability, PeerConfig, ReplicationConfig};
use crate::error::{ReplError, Result};
pub use crate::fence::FENCED_PREFIX;
use crate::peer_state::PeerState;
use crate::peer_state::{DirtyQueue, Lane};
use crate::state::Shared;
pub use crate::status::{
    PeerCounters, PeerStatus, ReplicaWait, ReplicationCounters, ReplicationStatus, UserLag,
};
use crate::store_api::{ReplicaStore, ReplicaUser};
use crate::util::blocking;
pub use crate::util::covers;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use storage::{NodeId, VersionVector};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

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
                        redial: tokio::sync::Notify::new(),
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
        if let Some(rx) = shared.cfg.epoch.clone() {
            shared
                .tasks
                .spawn(resolve_pending_on_activation(shared.clone(), rx));
        }
        Ok(Handle { shared, local_addr })
    }
}

/// Records read per lagging user to measure `node replication status`'s bytes and age.
const STATUS_SCAN_RECORDS: usize = 10_000;

/// Finds users on disk (at start and periodically) so every user is shipped.
async fn rescan(shared: Arc<Shared>) {
    let mut sweeps = 0u64;
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
        refresh_stale_ghosts(&shared).await;
        // Raft mode, while active: a conflict applied in the instant the role changed (its
        // frame asked who resolves just before) is renumbered here at the latest. Every
        // twelfth rescan (a minute at the default 5 s): it reads every user's mailboxes.
        sweeps += 1;
        if sweeps.is_multiple_of(12) && shared.cfg.epoch.is_some() && shared.resolves_conflicts() {
            resolve_all_pending(&shared).await;
        }
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tokio::time::sleep(shared.cfg.rescan_interval) => {}
        }
    }
}

/// Raft mode: each time this node becomes the active node (the resolver,
/// [`crate::policy`]), it renumbers the UID conflicts that wait pending here: those applied
/// while another node was active, or during the election, which nobody resolved then.
pub(crate) async fn resolve_pending_on_activation(
    shared: Arc<Shared>,
    mut rx: tokio::sync::watch::Receiver<crate::coord::ActiveView>,
) {
    let mut was_active = false;
    loop {
        let active = rx.borrow_and_update().am_active;
        if active && !was_active {
            resolve_all_pending(&shared).await;
        }
        was_active = active;
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            changed = rx.changed() => if changed.is_err() { return },
        }
    }
}

async fn resolve_all_pending(sh: &Arc<Shared>) {
    let store = sh.store.clone();
    let users = match blocking(move || store.list_users()).await {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(error = %e, "replication: cannot list users to resolve pending UID conflicts");
            return;
        }
    };
    for user in users {
        let Ok(u) = sh.track(&user).await else {
            continue;
        };
        let name = user.clone();
        let outcome = blocking(move || {
            let boxes = u.conflicted_mailboxes()?;
            for mb in &boxes {
                u.resolve_conflicts(*mb)?;
            }
            Ok(boxes.len())
        })
        .await;
        match outcome {
            Ok(0) => {}
            Ok(n) => {
                sh.conflicts_resolved.fetch_add(n as u64, Ordering::Relaxed);
                tracing::info!(user = %name, mailboxes = n,
                    "replication: pending UID conflicts resolved on becoming the active node");
            }
            Err(e) => tracing::warn!(user = %name, error = %e,
                "replication: cannot resolve pending UID conflicts"),
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

    /// The configured replication peers' node ids.
    pub fn peer_ids(&self) -> Vec<NodeId> {
        self.shared.peers.keys().copied().collect()
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
        let stores: HashMap<String, Arc<dyn ReplicaUser>> = users.iter().cloned().collect();
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
            // (user, records behind, what the peer is known to have: None = not learned since
            // this node started, counted against an empty vector: an upper bound).
            let mut lagging = Vec::new();
            for (user, vv) in &local {
                let known = acked.get(user).cloned();
                let empty = VersionVector::new();
                let a = known.as_ref().unwrap_or(&empty);
                let records: u64 = vv
                    .iter()
                    .map(|(o, s)| s.saturating_sub(a.get(o).copied().unwrap_or(0)))
                    .sum();
                if records > 0 {
                    lagging.push((user.clone(), records, known));
                }
            }
            // Bytes and age from the unacknowledged records themselves (the batch in flight
            // alone says nothing about a peer that is down); bounded per user.
            let read: Vec<_> = lagging
                .iter()
                .map(|(user, _, known)| {
                    (
                        user.clone(),
                        stores.get(user).cloned(),
                        known.clone().unwrap_or_default(),
                    )
                })
                .collect();
            let measured: HashMap<String, (u64, u64)> = blocking(move || {
                Ok(read
                    .into_iter()
                    .filter_map(|(user, u, have)| {
                        let recs = u?.records_since(&have, STATUS_SCAN_RECORDS).ok()?;
                        let bytes = recs.iter().map(crate::store_api::bytes_of).sum();
                        let oldest = recs.iter().map(|r| r.time.wall_ms).min().unwrap_or(0);
                        Some((user, (bytes, oldest)))
                    })
                    .collect())
            })
            .await
            .unwrap_or_default();
            let mut behind = Vec::new();
            for (user, records, known) in lagging {
                let m = lag.get(&user).copied().unwrap_or_default();
                let (scanned_bytes, scanned_oldest) =
                    measured.get(&user).copied().unwrap_or_default();
                let oldest = match (m.oldest_unacked_ms, scanned_oldest) {
                    (0, o) | (o, 0) => o,
                    (a, b) => a.min(b),
                };
                let seconds = if oldest > 0 {
                    now.saturating_sub(oldest) as f64 / 1000.0
                } else {
                    0.0
                };
                behind.push(UserLag {
                    user,
                    records,
                    bytes: m.bytes.max(scanned_bytes),
                    seconds,
                    peer_state_known: known.is_some(),
                });
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
        crate::takeover::take_over(&self.shared, budget, false).await
    }

    /// Raft mode, after [`Handle::take_over`]: waits (up to `budget`) until none of this
    /// node's own writes is hidden from readers (see [`crate::takeover::wait_own_writes_visible`]);
    /// the users still hidden at the deadline.
    pub async fn wait_own_writes_visible(&self, budget: Duration) -> Vec<String> {
        crate::takeover::wait_own_writes_visible(&self.shared, budget).await
    }

    /// At start-up, before serving clients: pulls from every reachable peer what this node
    /// lacks (each peer bounded by `budget`), so a restarted node does not show its clients
    /// what the cluster replaced while it was down (a UID its survivors gave to another
    /// message, an expunged message) until replication catches up.
    pub async fn catch_up(&self, budget: Duration) -> crate::takeover::TakeOver {
        crate::takeover::take_over(&self.shared, budget, true).await
    }

    /// At start-up, after [`Handle::catch_up`]: waits (up to `budget`) until a peer holds every
    /// record this node wrote (see [`crate::takeover::wait_own_records_shipped`]).
    pub async fn wait_own_records_shipped(&self, budget: Duration) -> crate::takeover::Shipped {
        crate::takeover::wait_own_records_shipped(&self.shared, budget).await
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

/// Recounts the users changed since the last call (the periodic rescan calls this).
async fn refresh_stale_ghosts(sh: &Arc<Shared>) {
    let stale = sh.ghosts.take_stale();
    if stale.is_empty() {
        return;
    }
    let users: Vec<(String, Arc<dyn ReplicaUser>)> = {
        let tracked = sh.users.lock();
        stale
            .into_iter()
            .filter_map(|n| tracked.get(&n).cloned().map(|u| (n, u)))
            .collect()
    };
    if let Ok(counted) = blocking(move || Ok(crate::ghosts::count(&users))).await {
        sh.ghosts.record(&counted);
    }
}
