//! The replication service's settings (`[cluster]` in the node's configuration).

use crate::tls::TlsMaterial;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;
use storage::NodeId;

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
    /// Raft mode with the raft traffic on the replication port: connections whose first frame
    /// is a raft frame go to this coordinator (started with `Coordinator::start_routed`).
    pub raft_routes_to: Option<crate::coord::Coordinator>,
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
            raft_routes_to: None,
        }
    }
}
