//! Joins the `replication` crate to the node: its configuration from `[cluster]`, the
//! [`ClusterHooks`] that make `replicated` durability wait for a peer's ack, and the
//! `node cluster` / `node sync` helpers.

use crate::active::{ActiveRole, KeepalivedLed, VrrpReport};
use crate::backend::ClusterHooks;
use crate::config::{ClusterMode, Config, Durability};
use crate::keepalived_gate::KeepalivedGate;
use crate::raft::RaftGate;
use anyhow::Context as _;
use async_trait::async_trait;
use protocols::WriteRefused;
use replication::certs::{CA_CERT_FILE, NODE_CERT_FILE, NODE_KEY_FILE};
use replication::coord::Coordinator;
use replication::{Handle, PeerConfig, ReplicaWait, ReplicationConfig, TlsMaterial};
use std::sync::{Arc, OnceLock};
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

/// Hooks of a replicating node. keepalived-led: the node holding the service address takes
/// the writes and the two-way merge repairs a split afterwards. Raft: only the active node
/// writes ([`RaftGate`]).
pub struct Replicated {
    pub handle: Handle,
    pub sync_timeout: Duration,
    /// Who says whether this node may be active (keepalived-led or Raft).
    pub role: Arc<dyn ActiveRole>,
    /// Raft mode: the gate, backed by the coordinator.
    pub raft: Option<Arc<RaftGate>>,
    /// keepalived-led mode: writes follow the service address.
    pub keepalived: Option<Arc<KeepalivedGate>>,
}

#[async_trait]
impl ClusterHooks for Replicated {
    fn may_write(&self, user: &str) -> Result<(), WriteRefused> {
        match &self.raft {
            Some(gate) => gate.may_write(user),
            // keepalived-led: the holder of the service address writes; a split brain (both
            // hold it) is merged by replication afterwards.
            None => self.keepalived.as_ref().map_or(Ok(()), |g| g.may_write()),
        }
    }

    fn is_active(&self) -> bool {
        self.role.may_be_active()
    }

    fn active_mode(&self) -> &'static str {
        self.role.mode()
    }

    async fn write_committed(&self, user: &str) -> Result<(), WriteRefused> {
        // Raft mode with no mail peer alive by the raft link (two mail nodes and a witness,
        // one of them down): the write will be acknowledged alone, so it waits only a lease
        // for a peer that might answer after all, not the whole replication_sync_timeout (the
        // first write after such a fail-over took 2 s).
        let timeout = match &self.raft {
            Some(gate) if !self.mail_peer_alive(gate) => {
                self.sync_timeout.min(gate.coordinator().lease())
            }
            _ => self.sync_timeout,
        };
        let wait = self.handle.wait_replicated(user, timeout).await;
        let Some(gate) = &self.raft else {
            self.count_unreplicated(user, &wait, "acknowledging locally");
            return Ok(());
        };
        // Raft mode: a node that lost the role while the write was in flight (stopped, cut
        // off) never acknowledges it, even if the wait degraded to local durability.
        gate.may_acknowledge(user)?;
        // Nor does it acknowledge alone while a mail peer is alive (it answers this leader's
        // heartbeats) but has not taken the write (slow, or busy catching up): were this node
        // to crash now, the next active node would give the write's UID to another message
        // (the third 30-minute jepsen run: deliveries acknowledged alone by an active node
        // that crashed 1.6 s later). Refused, the write stays hidden until a peer holds it,
        // and the client or MTA retries. With no mail peer alive (two mail nodes and a
        // witness, one of them down) the node still acknowledges alone, degraded, as the
        // design's `replication_sync_timeout` says. Alive is judged by the raft link, not the
        // replication connection: a crashed peer's TCP connection looks open for seconds.
        if !may_acknowledge_alone(&wait, || self.mail_peer_alive(gate)) {
            metrics::counter!("node_replication_refused_unreplicated_total").increment(1);
            tracing::warn!(
                user,
                "replication: no peer acknowledged within replication_sync_timeout ({:?}) although one is alive: write refused (temporary failure), not acknowledged alone",
                self.sync_timeout
            );
            return Err(WriteRefused(
                "no peer holds this write yet (replication is behind); try again".into(),
            ));
        }
        self.count_unreplicated(user, &wait, "acknowledging locally");
        Ok(())
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

    fn coordinator(&self) -> Option<Coordinator> {
        self.raft.as_ref().map(|g| g.coordinator().clone())
    }
}

/// Raft mode: whether a write the replica wait ended with (`wait`) may be acknowledged: held
/// by a peer, or no mail peer alive to hold it (`peer_alive` is asked only then).
fn may_acknowledge_alone(wait: &ReplicaWait, peer_alive: impl FnOnce() -> bool) -> bool {
    matches!(wait, ReplicaWait::Acked(_) | ReplicaWait::NotRequired) || !peer_alive()
}

impl Replicated {
    /// Whether a mail peer answered this node's raft RPCs within a lease: alive and
    /// reachable, whatever its replication is doing (a crashed peer's TCP connection looks
    /// open for seconds, so the raft link judges).
    fn mail_peer_alive(&self, gate: &RaftGate) -> bool {
        let coord = gate.coordinator();
        let lease = coord.lease();
        self.handle
            .peer_ids()
            .into_iter()
            .any(|p| coord.peer_alive(p, lease))
    }

    /// `replicated` durability: counts and logs a write acknowledged without a peer's ack.
    fn count_unreplicated(&self, user: &str, wait: &ReplicaWait, what: &str) {
        match wait {
            ReplicaWait::Acked(_) | ReplicaWait::NotRequired => {}
            ReplicaWait::Degraded => {
                metrics::counter!("node_replication_unreplicated_acks_total").increment(1);
            }
            ReplicaWait::TimedOut => {
                metrics::counter!("node_replication_unreplicated_acks_total").increment(1);
                tracing::warn!(
                    user,
                    "replication: no peer acknowledged within replication_sync_timeout ({:?}): {what}, degraded to local durability",
                    self.sync_timeout
                );
            }
        }
    }
}

/// Starts replication when `[cluster] listen` is set.
pub async fn start(
    config: &Config,
    store: Arc<storage::Store>,
    vrrp: Arc<VrrpReport>,
) -> anyhow::Result<Option<Arc<Replicated>>> {
    if !enabled(config) {
        return Ok(None);
    }
    let mut rc = replication_config(config)?;
    // Bound before the coordinator starts: raft frames come on this port, and a peer's RPC in
    // the meantime waits in the backlog instead of being refused (openraft backs off 500 ms
    // on a refused peer, long enough for that peer to start an election).
    let listener = tokio::net::TcpListener::bind(rc.listen)
        .await
        .with_context(|| format!("replication: cannot listen on {}", config.cluster.listen))?;
    // Raft mode: the coordinator first, so replication ships under its epoch from the start;
    // its activation hook gets the replicator once it runs.
    let slot = Arc::new(OnceLock::new());
    let raft = if config.cluster.mode == ClusterMode::Raft {
        let hook = crate::raft::activation_hook(slot.clone(), config.cluster.takeover_timeout.0);
        let coord = crate::raft::start(config, rc.tls.clone(), hook).await?;
        rc.epoch = Some(coord.watch());
        // Raft connections may come on the replication port, whether or not the coordinator
        // also has a listener of its own.
        rc.raft_routes_to = Some(coord.clone());
        Some(RaftGate::new(config, coord))
    } else {
        None
    };
    let handle = replication::Replicator::start_on(
        rc,
        listener,
        Arc::new(replication::storage_adapter::StorageReplica(store)),
    )
    .with_context(|| format!("replication: cannot start on {}", config.cluster.listen))?;
    let _ = slot.set(handle.clone());
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
    let role: Arc<dyn ActiveRole> = match &raft {
        Some(gate) => gate.clone(),
        None => Arc::new(KeepalivedLed),
    };
    let keepalived = raft
        .is_none()
        .then(|| KeepalivedGate::start(vrrp, handle.clone(), config.cluster.takeover_timeout.0));
    Ok(Some(Arc::new(Replicated {
        handle,
        sync_timeout: config.cluster.replication_sync_timeout.0,
        role,
        raft,
        keepalived,
    })))
}

/// What to do about a peer-link TLS error (rustls names it `UnknownIssuer`, `UnknownCA`, ...),
/// for `node replication status` and `node sync`; None when the error is not a certificate one.
pub fn tls_hint(error: &str) -> Option<&'static str> {
    const SAME_CA: &str = "both nodes must hold the same cluster CA: make it once \
        (`node cluster init`), issue every node's certificate from it (`node cluster cert N`) \
        and copy ca.pem, node.pem and node.key into each node's [cluster] certs_dir, then restart \
        the node whose files changed (docs/operations.md, \"A cluster\")";
    if error.contains("UnknownIssuer") || error.contains("BadSignature") {
        Some(
            "the peer's certificate is not signed by this node's cluster CA ([cluster] \
             certs_dir/ca.pem): both nodes must hold the same cluster CA; issue every node's \
             certificate from it (`node cluster cert N`), copy ca.pem, node.pem and node.key \
             into each node's certs_dir, and restart the node whose files changed \
             (docs/operations.md, \"A cluster\")",
        )
    } else if error.contains("UnknownCA") || error.contains("unknown ca") {
        Some("the peer does not trust this node's certificate (it was issued by another CA than \
              the peer's ca.pem): both nodes must hold the same cluster CA; reissue this node's \
              certificate with `node cluster cert N` on the node that holds ca.key and copy it here")
    } else if error.contains("NotValidForName") {
        Some(
            "the peer's certificate does not name the address this node dials: reissue it with \
              `node cluster cert N --hostname ADDRESS` for the address in [cluster] peers",
        )
    } else if error.contains("Expired") {
        Some("a node certificate has expired: reissue it with `node cluster cert N` and restart that node")
    } else if error.contains("BadCertificate") || error.contains("certificate") {
        Some(SAME_CA)
    } else {
        None
    }
}

/// `error` with [`tls_hint`] appended when there is one.
pub fn with_tls_hint(error: &str) -> String {
    match tls_hint(error) {
        Some(h) => format!("{error} ({h})"),
        None => error.to_string(),
    }
}

#[cfg(test)]
mod hint_tests {
    use super::*;

    #[test]
    fn certificate_errors_say_what_to_do() {
        let e = "invalid peer certificate: UnknownIssuer";
        assert!(with_tls_hint(e).contains("same cluster CA"));
        assert!(tls_hint("received fatal alert: UnknownCA")
            .unwrap()
            .contains("reissue"));
        assert!(tls_hint("NotValidForName").unwrap().contains("--hostname"));
        assert_eq!(tls_hint("connection refused"), None);
        assert_eq!(with_tls_hint("connection refused"), "connection refused");
    }
}

#[cfg(test)]
mod ack_tests {
    use super::*;

    #[test]
    fn a_write_no_peer_holds_is_acknowledged_alone_only_with_no_peer_alive() {
        // held by a peer: acknowledged, liveness not even asked
        assert!(may_acknowledge_alone(
            &ReplicaWait::Acked(2),
            || unreachable!()
        ));
        // timed out (or already degraded) while a peer answers heartbeats: refused
        assert!(!may_acknowledge_alone(&ReplicaWait::TimedOut, || true));
        assert!(!may_acknowledge_alone(&ReplicaWait::Degraded, || true));
        // no mail peer alive (a witness pair with one mail node down): acknowledged, degraded
        assert!(may_acknowledge_alone(&ReplicaWait::TimedOut, || false));
        assert!(may_acknowledge_alone(&ReplicaWait::Degraded, || false));
    }
}
