//! Replication between the nodes of a cluster: a mutual-TLS peer transport, continuous shipping of
//! each user's change log (with the message objects it needs), idempotent apply on the receiving
//! side, merge policy for conflicts, on-demand `node sync`, and status for operators.
//!
//! Entry points for `node`: [`Replicator::start`] -> [`Handle`] (`status`, `wait_replicated`,
//! `sync_user`, `track_user`, `shutdown`); [`sync::sync_user_with_store`] for `node sync` when the
//! server is not running; [`certs::init_ca`] / [`certs::issue_node_cert`] for `node cluster`.

mod align;
mod align_turn;
mod background;
pub mod certs;
pub mod config;
mod confirm;
pub mod conn;
pub mod coord;
pub mod error;
mod exchange;
mod fence;
pub mod ghosts;
pub mod pacing;
mod peer_state;
pub mod policy;
mod purged;
mod receiver;
pub mod replicator;
mod shipper;
mod state;
pub mod status;
pub mod storage_adapter;
pub mod store_api;
pub mod sync;
pub mod takeover;
/// Test doubles (an in-memory replica store): for this crate's tests, behind the `testing`
/// feature, which only its dev-dependency on itself turns on.
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod tls;
mod util;
pub mod validate;
pub mod wire;

pub use error::{ReplError, Result};
pub use ghosts::UserGhosts;
pub use pacing::{ClientLoad, PacingConfig, PacingStatus};
pub use replicator::{
    Durability, Handle, PeerConfig, PeerCounters, PeerStatus, ReplicaWait, ReplicationConfig,
    ReplicationCounters, ReplicationStatus, Replicator, UserLag, FENCED_PREFIX,
};
pub use sync::SyncReport;
pub use takeover::{TakeOver, TakeOverPeer};
pub use tls::TlsMaterial;
