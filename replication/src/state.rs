//! [`Shared`]: the state of one node's replication service that its tasks (shippers,
//! receivers, the resolver's checks) share.

use crate::config::ReplicationConfig;
use crate::error::Result;
use crate::fence::fence_verdict;
use crate::peer_state::PeerState;
use crate::store_api::{ReplicaStore, ReplicaUser};
use crate::util::blocking;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use storage::NodeId;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

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
        let view = self.cfg.epoch.as_ref().map(|rx| *rx.borrow());
        crate::policy::resolves_now(self.cfg.node_id, self.peers.keys().copied(), view.as_ref())
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
