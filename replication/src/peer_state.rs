//! Per peer: its lanes, what it has acknowledged per user, what is dirty, its last error.

use parking_lot::Mutex;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use storage::{NodeId, VersionVector};
use tokio::sync::Notify;

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
    /// Wakes the lanes waiting out a connect back-off, to dial again now (a node about to
    /// take the active role needs its peers at once, not after up to `backoff_max`).
    pub redial: tokio::sync::Notify,
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
