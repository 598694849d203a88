//! Cluster coordination: an openraft (0.9, storage-v2) group across the nodes, its log and state
//! machine in sled under the node's data directory, its RPCs on mutual-TLS peer links. It holds
//! the membership (with witnesses), the active node, the fencing epoch and the cluster mode, and
//! tells the node, at once, whether it is active.
//!
//! One file per job: [`types`] (type configuration, commands, replicated state),
//! [`log_store`] and [`state_machine`] (sled), [`frame`] (raft frames on a peer link),
//! [`network`] (client and serving side), [`coordinator`] (the public handle).
//! openraft stays behind this module: nothing else in the crate names it.
//!
//! **Transport.** A mail node's raft traffic shares the replication listener and its handshake
//! ([`crate::conn::Conn`]: mutual TLS, Hello, node id checked against the certificate): raft
//! frames start with `RAFT` ([`frame::is_raft_frame`]), which no replication frame can, so the
//! replication listener looks at a connection's first frame and hands raft connections to
//! [`Coordinator::serve_routed`] ([`Coordinator::start_routed`]). A witness, which has no
//! replication listener, and a node configured with a separate `raft_listen`, run the
//! coordinator's own listener ([`Coordinator::start`]) with the same handshake.
//!
//! **Restart.** The vote, log and state are in sled and flushed before openraft is told. A leader
//! that restarts within its own term (openraft restores a committed vote for itself) resumes its
//! reign with the same epoch once a majority acknowledges it; any other leader change is a new
//! term, a new `Activate` and a new epoch.

pub mod coordinator;
pub mod error;
pub mod frame;
pub mod log_store;
pub mod network;
pub mod state_machine;
pub mod types;

#[cfg(test)]
mod tests;

pub use coordinator::{
    Activation, ActivationHook, ActiveView, CoordConfig, CoordPeer, CoordRole, CoordStatus,
    CoordTimeouts, Coordinator, MemberStatus,
};
pub use error::{CoordError, CoordResult};
pub use network::LinkStatus;
pub use types::{ClusterMode, ClusterState, Command, CoordNode, NodeId};
