//! Cluster coordination: an openraft (0.9, storage-v2) group across the nodes, its log and state
//! machine in sled under the node's data directory, its RPCs on mutual-TLS peer links. It holds
//! the membership (with witnesses), the active node, the fencing epoch and the cluster mode, and
//! tells the node, at once, whether it is active.
//!
//! One file per job: [`types`] (type configuration, commands, replicated state),
//! [`log_store`] and [`state_machine`] (sled), [`frame`] (raft frames on a peer link),
//! [`network`] (client and serving side), [`coordinator`] (the public handle).
//! openraft stays behind this module: nothing else in the crate names it.

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
