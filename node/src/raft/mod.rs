//! `[cluster] mode = "raft"` on the node side: the coordinator started from `[cluster]`, the
//! [`ActiveRole`] that follows it, the write gate (refuse on a node that is not active, and
//! never acknowledge a write whose node lost the role while it was in flight), and the
//! activation hook that pulls what the node lacks before it takes the role.

use crate::active::ActiveRole;
use crate::config::Config;
use anyhow::Context as _;
use parking_lot::Mutex;
use protocols::WriteRefused;
use replication::coord::{
    Activation, ActivationHook, CoordConfig, CoordPeer, CoordRole, CoordTimeouts, Coordinator,
};
use replication::TlsMaterial;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

pub mod witness;

/// The group's timers from `[cluster]`; the lease is the minimum election timeout (see
/// `replication::coord::coordinator`).
pub fn timeouts(config: &Config) -> CoordTimeouts {
    let c = &config.cluster;
    CoordTimeouts {
        heartbeat: c.raft_heartbeat.0,
        election_min: c.raft_election_timeout_min.0,
        election_max: c.raft_election_timeout_max.0,
        lease: c.raft_election_timeout_min.0,
    }
}

/// Every voter of the initial group: this node, its peers and the witness.
pub fn members(config: &Config) -> Vec<CoordPeer> {
    let c = &config.cluster;
    let mut m = vec![CoordPeer {
        id: c.node_id,
        addr: if c.raft_listen.is_empty() {
            c.listen.clone()
        } else {
            c.raft_listen.clone()
        },
        witness: false,
    }];
    m.extend(c.peers.iter().map(|p| CoordPeer {
        id: p.node_id,
        addr: p.raft_dial_address().to_string(),
        witness: false,
    }));
    m.extend(c.witness.iter().map(|w| CoordPeer {
        id: w.node_id,
        addr: w.raft_address.clone(),
        witness: true,
    }));
    m
}

/// Starts this mail node's coordinator: on its own listener if `raft_listen` is set, else
/// without one (the replication listener hands it raft connections: see
/// `replication::ReplicationConfig::raft_routes_to`).
pub async fn start(
    config: &Config,
    tls: TlsMaterial,
    on_activate: ActivationHook,
) -> anyhow::Result<Coordinator> {
    let c = &config.cluster;
    let own = if c.raft_listen.is_empty() {
        None
    } else {
        Some(
            c.raft_listen
                .parse()
                .with_context(|| format!("cluster.raft_listen {:?}", c.raft_listen))?,
        )
    };
    let cfg = CoordConfig {
        node_id: c.node_id,
        data_dir: config.storage.data_dir.clone(),
        // Unused without a listener of its own.
        listen: own.unwrap_or(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
        members: members(config),
        role: CoordRole::Voter,
        timeouts: timeouts(config),
        tls,
        on_activate: Some(on_activate),
    };
    let coord = match own {
        Some(addr) => Coordinator::start(cfg)
            .await
            .with_context(|| format!("raft: cannot start on {addr}"))?,
        None => Coordinator::start_routed(cfg)
            .await
            .context("raft: cannot start the coordinator")?,
    };
    Ok(coord)
}

/// Before this node claims the active role: pull from every reachable peer what it lacks
/// (`takeover_timeout` per peer). Fails (and the coordinator retries) only while
/// replication is not started yet.
pub fn activation_hook(
    replication: Arc<OnceLock<replication::Handle>>,
    budget: Duration,
) -> ActivationHook {
    Arc::new(move |a: Activation| {
        let replication = replication.clone();
        Box::pin(async move {
            let Some(handle) = replication.get().cloned() else {
                return Err("replication is not started yet".to_string());
            };
            let started = Instant::now();
            let report = handle.take_over(budget).await;
            let incomplete: Vec<_> = report.peers.iter().filter(|p| p.error.is_some()).collect();
            tracing::info!(
                previous_active = ?a.previous_active,
                previous_epoch = a.previous_epoch,
                term = a.term,
                records = report.records(),
                ms = started.elapsed().as_millis() as u64,
                "raft: pulled from the peers before becoming active: {report}"
            );
            // Writes of an earlier stint as the active node that no peer confirmed keep their
            // mailboxes' later changes out of readers' sight: get them confirmed first.
            let hidden_since = Instant::now();
            // Twice the pull's budget: worth a second of fail-over time rather than readers
            // seeing HIGHESTMODSEQ go back.
            let hidden = handle.wait_own_writes_visible(budget * 2).await;
            if hidden.is_empty() {
                tracing::debug!(
                    ms = hidden_since.elapsed().as_millis() as u64,
                    "raft: own writes visible before becoming active"
                );
            } else {
                tracing::warn!(
                    users = ?hidden,
                    ms = hidden_since.elapsed().as_millis() as u64,
                    "raft: becoming active with writes of this node no peer confirmed yet: readers see those mailboxes as before them until a peer holds them"
                );
            }
            for p in incomplete {
                tracing::warn!(
                    peer = p.id,
                    previous_active = ?a.previous_active,
                    "raft: take-over pull from node {} incomplete: {}",
                    p.id,
                    p.error.as_deref().unwrap_or_default()
                );
            }
            Ok(())
        })
    })
}

/// Raft mode's answer to "may I be active?" and "may I write?".
pub struct RaftGate {
    coord: Coordinator,
    /// Node id -> host, to name the active node in refusals.
    hosts: BTreeMap<u32, String>,
    /// Bumped at every change of the coordinator's active view (see [`RaftGate::watch`]).
    generation: AtomicU64,
    /// Per user: the view generation when its oldest write not yet checked at commit passed
    /// the gate. A write whose generation moved before its commit is not acknowledged.
    pending: Mutex<HashMap<String, u64>>,
}

impl RaftGate {
    pub fn new(config: &Config, coord: Coordinator) -> Arc<RaftGate> {
        let host = |addr: &str| {
            addr.rsplit_once(':')
                .map_or(addr, |(h, _)| h)
                .trim_matches(['[', ']'])
                .to_string()
        };
        let mut hosts: BTreeMap<u32, String> = config
            .cluster
            .peers
            .iter()
            .map(|p| (p.node_id, host(&p.address)))
            .collect();
        hosts.insert(config.cluster.node_id, host(&config.cluster.listen));
        Arc::new(RaftGate {
            coord,
            hosts,
            generation: AtomicU64::new(0),
            pending: Mutex::new(HashMap::new()),
        })
    }

    pub fn coordinator(&self) -> &Coordinator {
        &self.coord
    }

    /// Follows the coordinator's view: bumps the generation and calls `on_change(am_active)`
    /// at every change, until the coordinator stops.
    pub fn watch(self: &Arc<Self>, on_change: impl Fn(bool) + Send + 'static) {
        let me = self.clone();
        let mut rx = self.coord.watch();
        tokio::spawn(async move {
            loop {
                let am_active = rx.borrow_and_update().am_active;
                on_change(am_active);
                if rx.changed().await.is_err() {
                    return;
                }
                me.generation.fetch_add(1, Ordering::SeqCst);
            }
        });
    }

    /// The gate before a write: only the active node writes.
    pub fn may_write(&self, user: &str) -> Result<(), WriteRefused> {
        if !self.coord.is_active() {
            return Err(self.refusal(""));
        }
        let g = self.generation.load(Ordering::SeqCst);
        self.pending.lock().entry(user.to_string()).or_insert(g);
        Ok(())
    }

    /// The check after a write is durable (and replicated, or timed out), before its reply:
    /// still active, with no change of the active view since the write passed the gate.
    pub fn may_acknowledge(&self, user: &str) -> Result<(), WriteRefused> {
        let began = self.pending.lock().remove(user);
        let now = self.generation.load(Ordering::SeqCst);
        if self.coord.is_active() && began.is_none_or(|g| g == now) {
            return Ok(());
        }
        tracing::warn!(
            user,
            epoch = self.coord.epoch(),
            "raft: a write finished after this node lost the active role: not acknowledged"
        );
        Err(self.refusal(" (lost the active role while the write was in flight)"))
    }

    fn refusal(&self, why: &str) -> WriteRefused {
        let view = *self.coord.watch().borrow();
        let me = self.coord.node_id();
        let text = match view.active {
            Some(a) if a != me => format!(
                "this node is not active (epoch {}){why}; the active node is node {a}{}",
                view.epoch,
                self.hosts
                    .get(&a)
                    .map(|h| format!(" ({h})"))
                    .unwrap_or_default()
            ),
            Some(_) => format!(
                "this node is not active (epoch {}){why}; it is taking or losing the role, try again",
                view.epoch
            ),
            None => format!(
                "this node is not active (epoch {}){why}; no node is active yet (election in progress)",
                view.epoch
            ),
        };
        WriteRefused(text)
    }
}

impl ActiveRole for RaftGate {
    fn may_be_active(&self) -> bool {
        self.coord.is_active()
    }
    fn mode(&self) -> &'static str {
        "raft"
    }
}
