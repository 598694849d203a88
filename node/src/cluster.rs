//! Joins the `replication` crate to the node: its configuration from `[cluster]`, the
//! [`ClusterHooks`] that make `replicated` durability wait for a peer's ack, and the
//! `node cluster` / `node sync` helpers.

use crate::active::{ActiveRole, KeepalivedLed};
use crate::backend::ClusterHooks;
use crate::config::{Config, Durability};
use anyhow::Context as _;
use async_trait::async_trait;
use protocols::WriteRefused;
use replication::certs::{CA_CERT_FILE, NODE_CERT_FILE, NODE_KEY_FILE};
use replication::{Handle, PeerConfig, ReplicaWait, ReplicationConfig, TlsMaterial};
use std::sync::Arc;
use std::time::Duration;

/// Whether this node replicates at all (`[cluster] listen` set).
pub fn enabled(config: &Config) -> bool {
    !config.cluster.listen.is_empty()
}

pub fn peers(config: &Config) -> Vec<PeerConfig> {
    config
        .cluster
        .peers
        .iter()
        .map(|p| PeerConfig {
            id: p.node_id,
            addr: p.address.clone(),
        })
        .collect()
}

/// The cluster CA and this node's certificate from certs_dir, with what to do when missing.
pub fn load_tls(config: &Config) -> anyhow::Result<TlsMaterial> {
    let dir = config.cluster_certs_dir();
    TlsMaterial::load(&dir.join(CA_CERT_FILE), &dir.join(NODE_CERT_FILE), &dir.join(NODE_KEY_FILE)).with_context(|| {
        format!(
            "[cluster] certs_dir {}: cannot load {CA_CERT_FILE}, {NODE_CERT_FILE} and {NODE_KEY_FILE} \
             (make them with `node cluster init` and `node cluster cert {}` on one node, and copy them here)",
            dir.display(),
            config.cluster.node_id
        )
    })
}

pub fn replication_config(config: &Config) -> anyhow::Result<ReplicationConfig> {
    let listen = config
        .cluster
        .listen
        .parse()
        .with_context(|| format!("cluster.listen {:?}", config.cluster.listen))?;
    let mut rc = ReplicationConfig::new(
        config.cluster.node_id,
        listen,
        peers(config),
        load_tls(config)?,
    );
    rc.durability = match config.cluster.durability {
        Durability::Local => replication::Durability::Local,
        Durability::Replicated => replication::Durability::Replicated,
    };
    rc.sync_timeout = config.cluster.replication_sync_timeout.0;
    // Catch-up yields to this node's IMAP/POP3/LMTP sessions: their store calls in flight,
    // and how long none has been.
    rc.client_load = replication::ClientLoad::new(
        protocols::blocking::in_flight,
        protocols::blocking::idle_for,
    );
    rc.pacing.enabled = config.cluster.replication_yield;
    rc.pacing.max_wait = config.cluster.replication_yield_max_wait.0;
    rc.pacing.low_priority = config.cluster.replication_yield_low_priority;
    rc.pacing.busy_batch_records = config.cluster.replication_yield_batch_records.max(1);
    Ok(rc)
}

/// Hooks of a replicating node (keepalived-led: the node holding the service address takes
/// the writes; the two-way merge repairs a split afterwards).
pub struct Replicated {
    pub handle: Handle,
    pub sync_timeout: Duration,
    /// Who says whether this node may be active (keepalived-led now, Raft later).
    pub role: Arc<dyn ActiveRole>,
}

#[async_trait]
impl ClusterHooks for Replicated {
    fn may_write(&self, _user: &str) -> Result<(), WriteRefused> {
        // No fencing yet (the openraft group is not built): every node accepts writes and
        // replication merges them. This is the seam where a non-active node will refuse.
        Ok(())
    }

    fn is_active(&self) -> bool {
        self.role.may_be_active()
    }

    fn active_mode(&self) -> &'static str {
        self.role.mode()
    }

    async fn write_committed(&self, user: &str) {
        match self.handle.wait_replicated(user, self.sync_timeout).await {
            ReplicaWait::Acked(_) | ReplicaWait::NotRequired => {}
            ReplicaWait::Degraded => {
                metrics::counter!("node_replication_unreplicated_acks_total").increment(1);
            }
            ReplicaWait::TimedOut => {
                metrics::counter!("node_replication_unreplicated_acks_total").increment(1);
                tracing::warn!(
                    user,
                    "replication: no peer acknowledged within replication_sync_timeout ({:?}): acknowledging locally, degraded to local durability",
                    self.sync_timeout
                );
            }
        }
    }

    async fn user_opened(&self, user: &str) {
        if let Err(e) = self.handle.track_user(user).await {
            tracing::warn!(user, "replication: cannot start shipping this user: {e}");
        }
    }

    fn degraded(&self) -> bool {
        self.handle.is_degraded()
    }

    fn replication(&self) -> Option<Handle> {
        Some(self.handle.clone())
    }
}

/// Starts replication when `[cluster] listen` is set.
pub async fn start(
    config: &Config,
    store: Arc<storage::Store>,
) -> anyhow::Result<Option<Arc<Replicated>>> {
    if !enabled(config) {
        return Ok(None);
    }
    let rc = replication_config(config)?;
    let handle = replication::Replicator::start(rc, store)
        .await
        .with_context(|| format!("replication: cannot start on {}", config.cluster.listen))?;
    tracing::info!(
        "replication: node {} listening on {}, peers {:?}, durability {:?}",
        config.cluster.node_id,
        handle.local_addr(),
        config
            .cluster
            .peers
            .iter()
            .map(|p| p.node_id)
            .collect::<Vec<_>>(),
        config.cluster.durability
    );
    Ok(Some(Arc::new(Replicated {
        handle,
        sync_timeout: config.cluster.replication_sync_timeout.0,
        role: Arc::new(KeepalivedLed),
    })))
}
