//! What the service reports: counters for `/metrics`, status for `node replication status`.

use crate::config::Durability;
use serde::{Deserialize, Serialize};
use storage::NodeId;

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
    /// vector is not known yet, counted against an empty one: see `peer_state_known`).
    pub records: u64,
    /// Message bytes of the unacknowledged records (of the first 10 000 of them, and at least
    /// the batch in flight).
    pub bytes: u64,
    /// Age of the oldest unacknowledged record by its clock's wall time.
    pub seconds: f64,
    /// False while the peer has not told this node what it has for this user since this node
    /// started (the peer is down, or not asked yet): `records` is then an upper bound.
    #[serde(default = "known_default")]
    pub peer_state_known: bool,
}

fn known_default() -> bool {
    true
}
