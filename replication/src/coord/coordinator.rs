//! The public handle: starts the Raft group for this node, decides when this node is active, and
//! exposes status, the active/epoch watch, planned hand-over and membership changes.
//!
//! **When is a node active?** Only while all of these hold:
//! - it is the Raft leader of the current term;
//! - the replicated state says `active = me`, confirmed in that term (an `Activate` entry this
//!   leader proposed and that committed, after the caller's activation hook ran);
//! - a majority acknowledged its heartbeats within the lease (`timeouts.lease`, by default the
//!   minimum election timeout). openraft 0.9 keeps an isolated leader in the leader state until
//!   it hears of a higher term, so this lease, computed from openraft's
//!   `millis_since_quorum_ack` (measured from the *sending* time of the acknowledged heartbeat),
//!   is what makes a partitioned minority leader stop being active. Followers refuse to vote
//!   for another candidate for `election_max` after the last heartbeat, so the old leader's
//!   lease lapses before any new leader can be elected;
//! - it is not handing over, and it is not a witness.
//!
//! [`Coordinator::is_active`] checks the lease's deadline against the monotonic clock at each
//! call, so it turns false at the deadline even if no task ran since.

use super::error::{CoordError, CoordResult};
use super::log_store::LogStore;
use super::network::{self, Factory, LinkStatus, NetShared, PeerClient};
use super::state_machine::StateMachine;
use super::types::{ClusterMode, ClusterState, Command, CoordNode, NodeId, TypeConfig};
use crate::tls::TlsMaterial;
use futures::future::BoxFuture;
use openraft::{ChangeMembers, Raft, RaftMetrics, ServerState};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What the activation hook is told: who was active before, at which epoch.
#[derive(Clone, Debug)]
pub struct Activation {
    pub previous_active: Option<NodeId>,
    pub previous_epoch: u64,
    /// The Raft term this node leads.
    pub term: u64,
}

/// Runs on the new leader before it proposes `active = me`: there the node pulls everything the
/// previous active node acknowledged that it can reach. An error is logged and the hook is run
/// again (the node stays inactive meanwhile).
pub type ActivationHook =
    Arc<dyn Fn(Activation) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// Timers of the group (monotonic clock).
#[derive(Clone, Debug)]
pub struct CoordTimeouts {
    pub heartbeat: Duration,
    pub election_min: Duration,
    pub election_max: Duration,
    /// How long after the last majority acknowledgement the leader still counts as active. Must
    /// be below `election_max`; the default is `election_min`.
    pub lease: Duration,
}

impl Default for CoordTimeouts {
    fn default() -> Self {
        CoordTimeouts {
            heartbeat: Duration::from_millis(100),
            election_min: Duration::from_millis(500),
            election_max: Duration::from_millis(1000),
            lease: Duration::from_millis(500),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CoordRole {
    /// A mail node: votes and may become active.
    #[default]
    Voter,
    /// Votes, stores no mail, never campaigns and never becomes active.
    Witness,
}

/// A member of the initial cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoordPeer {
    pub id: NodeId,
    /// host:port of its coordination listener.
    pub addr: String,
    pub witness: bool,
}

/// Everything [`Coordinator::start`] needs.
#[derive(Clone)]
pub struct CoordConfig {
    pub node_id: NodeId,
    /// The node's data directory; the group keeps its sled database in `<data_dir>/coord`.
    pub data_dir: PathBuf,
    /// Where the coordination listener binds (ignored by [`Coordinator::start_on`] and
    /// [`Coordinator::start_routed`]).
    pub listen: SocketAddr,
    /// The initial cluster, this node included. A mail node whose group is empty bootstraps
    /// it with these members (every mail node may do so: the same members give the same first
    /// entry). Empty for a node that joins later through [`Coordinator::add_member`].
    pub members: Vec<CoordPeer>,
    pub role: CoordRole,
    pub timeouts: CoordTimeouts,
    pub tls: TlsMaterial,
    /// Runs before this node claims the active role; `None`: nothing to do.
    pub on_activate: Option<ActivationHook>,
}

/// The active node as this node sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ActiveView {
    /// The active node per the replicated state (`None` before the first election or while a
    /// hand-over waits for its target).
    pub active: Option<NodeId>,
    pub epoch: u64,
    /// Whether this node is active now (see the module documentation).
    pub am_active: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MemberStatus {
    pub id: NodeId,
    pub addr: String,
    pub voter: bool,
    pub witness: bool,
    /// Highest log index known replicated to it (on the leader only).
    pub matched_index: Option<u64>,
}

/// `node cluster status` (Serialize for `--json`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CoordStatus {
    pub node: NodeId,
    pub role: CoordRole,
    /// Leader, Follower, Candidate, Learner or Shutdown.
    pub raft_state: String,
    pub term: u64,
    pub leader: Option<NodeId>,
    pub active: Option<NodeId>,
    pub epoch: u64,
    pub am_active: bool,
    pub mode: ClusterMode,
    pub members: Vec<MemberStatus>,
    pub links: Vec<LinkStatus>,
    pub last_log_index: Option<u64>,
    pub last_applied_index: Option<u64>,
    /// On the leader: milliseconds since a majority last acknowledged it.
    pub millis_since_quorum_ack: Option<u64>,
    /// Raft frames refused from peers (protocol violations).
    pub refused_frames: u64,
}

struct Inner {
    me: NodeId,
    witness: bool,
    timeouts: CoordTimeouts,
    raft: Raft<TypeConfig>,
    net: Arc<NetShared>,
    /// Its own listener's address; `None` when raft frames come through the replication
    /// listener ([`Coordinator::start_routed`]).
    local_addr: Option<SocketAddr>,
    sm: watch::Receiver<ClusterState>,
    view: watch::Sender<ActiveView>,
    /// While active: the lease's end.
    active_until: Mutex<Option<Instant>>,
    /// A hand-over this node started: (target, give-up time).
    handover: Mutex<Option<(NodeId, Instant)>>,
    /// Heartbeats stopped for a hand-over (restarted once no longer leader).
    heartbeats_off: AtomicBool,
    /// The term for which an activation is running or done.
    activating: Mutex<Option<u64>>,
    on_activate: Option<ActivationHook>,
    stop: CancellationToken,
    tasks: TaskTracker,
}

/// The running coordination group member. Cheap to clone.
#[derive(Clone)]
pub struct Coordinator {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("node", &self.inner.me)
            .field("witness", &self.inner.witness)
            .finish_non_exhaustive()
    }
}

fn is_leader(m: &RaftMetrics<NodeId, CoordNode>) -> bool {
    m.state == ServerState::Leader && m.current_leader == Some(m.id)
}

/// The timers openraft and the lease need: heartbeat < election_min <= election_max, and a
/// lease shorter than the longest election timeout (followers refuse other candidates' votes
/// until then, so no other node can be active while this one's lease runs).
fn check_timeouts(t: &CoordTimeouts) -> CoordResult<()> {
    if t.lease >= t.election_max || t.election_min > t.election_max || t.heartbeat >= t.election_min
    {
        return Err(CoordError::Raft(format!(
            "timeouts must satisfy heartbeat < election_min <= election_max and lease < election_max: {t:?}"
        )));
    }
    Ok(())
}

fn raft_config(t: &CoordTimeouts, witness: bool) -> CoordResult<openraft::Config> {
    openraft::Config {
        cluster_name: "mail-coord".into(),
        heartbeat_interval: t.heartbeat.as_millis() as u64,
        election_timeout_min: t.election_min.as_millis() as u64,
        election_timeout_max: t.election_max.as_millis() as u64,
        install_snapshot_timeout: (t.election_max.as_millis() as u64).max(1000),
        snapshot_max_chunk_size: super::frame::SNAPSHOT_CHUNK,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(1000),
        max_in_snapshot_log_to_keep: 100,
        // A witness never campaigns, so it is never leader and never active.
        enable_elect: !witness,
        ..Default::default()
    }
    .validate()
    .map_err(CoordError::raft)
}

/// How long a mail node whose group is empty waits to be contacted by a group that already
/// exists before it bootstraps one itself: the lowest-id mail node not at all, the others two
/// election timeouts plus one heartbeat per rank. A node started after the others (nodes of a
/// new cluster rarely start together) would otherwise campaign at once: openraft orders votes
/// of one term by node id, so its first vote outranks the sitting leader's and deposes it, and
/// the active role changes for nothing.
fn bootstrap_delay(cfg: &CoordConfig) -> Duration {
    let rank = cfg
        .members
        .iter()
        .filter(|m| !m.witness && m.id < cfg.node_id)
        .count() as u32;
    if rank == 0 {
        return Duration::ZERO;
    }
    cfg.timeouts.election_max * 2 + cfg.timeouts.heartbeat * rank
}

/// A mail node whose group is empty bootstraps it with the configured members, unless a
/// member reaches it first ([`bootstrap_delay`]); another member may also bootstrap at the
/// same time, which is as good.
async fn bootstrap(
    raft: &Raft<TypeConfig>,
    cfg: &CoordConfig,
    stop: &CancellationToken,
) -> CoordResult<()> {
    let deadline = Instant::now() + bootstrap_delay(cfg);
    loop {
        if raft.is_initialized().await.map_err(CoordError::raft)? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
    let members: BTreeMap<NodeId, CoordNode> = cfg
        .members
        .iter()
        .map(|m| {
            (
                m.id,
                CoordNode {
                    addr: m.addr.clone(),
                    witness: m.witness,
                },
            )
        })
        .collect();
    match raft.initialize(members).await {
        Ok(()) => tracing::info!(node = cfg.node_id, "coord: bootstrapped the group"),
        Err(e) => tracing::info!(error = %e, "coord: not bootstrapping"),
    }
    Ok(())
}

impl Coordinator {
    /// Binds `cfg.listen` and starts.
    pub async fn start(cfg: CoordConfig) -> CoordResult<Coordinator> {
        let listener = TcpListener::bind(cfg.listen).await?;
        Coordinator::start_on(cfg, listener).await
    }

    /// Starts on a listener the caller bound: opens (or creates) the sled database under
    /// `data_dir`, starts openraft, the listener and the task that decides activeness.
    pub async fn start_on(cfg: CoordConfig, listener: TcpListener) -> CoordResult<Coordinator> {
        Coordinator::start_with(cfg, Some(listener)).await
    }

    /// Starts without a listener of its own: peers' raft connections arrive on the replication
    /// listener, which hands them over ([`Coordinator::serve_routed`]); a mail node's raft
    /// traffic then shares the replication port and its mutual-TLS links.
    pub async fn start_routed(cfg: CoordConfig) -> CoordResult<Coordinator> {
        Coordinator::start_with(cfg, None).await
    }

    async fn start_with(
        cfg: CoordConfig,
        listener: Option<TcpListener>,
    ) -> CoordResult<Coordinator> {
        check_timeouts(&cfg.timeouts)?;
        let witness = cfg.role == CoordRole::Witness;
        let dir = cfg.data_dir.join("coord");
        std::fs::create_dir_all(&dir)?;
        let db = open_sled(&dir).await?;
        let log = LogStore::open(&db).map_err(|e| CoordError::Store(e.to_string()))?;
        let sm = StateMachine::open(&db).map_err(CoordError::Store)?;
        drop(db);
        let sm_rx = sm.subscribe();
        let raft_cfg = raft_config(&cfg.timeouts, witness)?;
        let net = Arc::new(NetShared::new(
            cfg.node_id,
            cfg.tls.clone(),
            cfg.members.iter().map(|m| m.id),
        ));
        let raft = Raft::new(
            cfg.node_id,
            Arc::new(raft_cfg),
            Factory {
                shared: net.clone(),
            },
            log,
            sm,
        )
        .await
        .map_err(CoordError::raft)?;
        let local_addr = match &listener {
            Some(l) => Some(l.local_addr()?),
            None => None,
        };
        let inner = Arc::new(Inner {
            me: cfg.node_id,
            witness,
            timeouts: cfg.timeouts.clone(),
            raft: raft.clone(),
            net: net.clone(),
            local_addr,
            sm: sm_rx,
            view: watch::channel(ActiveView::default()).0,
            active_until: Mutex::new(None),
            handover: Mutex::new(None),
            heartbeats_off: AtomicBool::new(false),
            activating: Mutex::new(None),
            on_activate: cfg.on_activate.clone(),
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        match listener {
            Some(listener) => {
                tracing::info!(node = cfg.node_id, listen = %listener.local_addr()?, ?cfg.role,
                    "coord: starting");
                inner.tasks.spawn(network::listen(
                    raft.clone(),
                    net,
                    listener,
                    inner.stop.clone(),
                    inner.tasks.clone(),
                ));
            }
            None => tracing::info!(node = cfg.node_id, ?cfg.role,
                "coord: starting; raft frames come through the replication listener"),
        }
        // Asked here, not only in `bootstrap`: the answer comes once the raft core has loaded
        // its state, so the status read right after start is the stored one.
        let initialized = raft.is_initialized().await.map_err(CoordError::raft)?;
        if !witness && !cfg.members.is_empty() && !initialized {
            // In the background: a routed coordinator hears from the group only once the
            // replication listener serves, after this returns.
            let (raft, cfg, stop) = (raft.clone(), cfg.clone(), inner.stop.clone());
            inner.tasks.spawn(async move {
                if let Err(e) = bootstrap(&raft, &cfg, &stop).await {
                    tracing::warn!(error = %e, "coord: cannot bootstrap the group");
                }
            });
        }
        inner.tasks.spawn(drive(inner.clone()));
        let weak = Arc::downgrade(&inner);
        let hook: network::TransferHook = Arc::new(move |to| {
            let weak = weak.clone();
            Box::pin(async move {
                let inner = weak.upgrade().ok_or("the coordinator is stopping")?;
                Coordinator { inner }
                    .transfer_active(to)
                    .await
                    .map_err(|e| e.to_string())
            })
        });
        let _ = inner.net.transfer_hook.set(hook);
        Ok(Coordinator { inner })
    }

    /// The coordination listener's address; `None` when it shares the replication listener.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.inner.local_addr
    }

    /// Whether `id` may open a raft link to this node (a member or a configured peer), for a
    /// listener that routes connections here.
    pub fn accepts_peer(&self, id: NodeId) -> bool {
        self.inner.net.is_allowed(id)
    }

    pub fn node_id(&self) -> NodeId {
        self.inner.me
    }

    /// Whether this node may write now (cheap: one lock and a clock read).
    pub fn is_active(&self) -> bool {
        self.inner
            .active_until
            .lock()
            .is_some_and(|t| Instant::now() < t)
    }

    /// The fencing epoch as applied here (whoever is active).
    pub fn epoch(&self) -> u64 {
        self.inner.sm.borrow().epoch
    }

    /// (active node, epoch, am I active), updated at every change, including the lease lapsing.
    pub fn watch(&self) -> watch::Receiver<ActiveView> {
        self.inner.view.subscribe()
    }

    /// The active node's lease (how long it writes without a majority's acknowledgement).
    pub fn lease(&self) -> Duration {
        self.inner.timeouts.lease
    }

    /// Whether `peer` answered a raft RPC (a heartbeat, while this node leads) within
    /// `within`: alive and reachable now, whatever its mail replication is doing.
    pub fn peer_alive(&self, peer: NodeId, within: Duration) -> bool {
        self.inner.net.links().iter().any(|l| {
            l.peer == peer
                && l.last_ok_ms_ago
                    .is_some_and(|ms| u128::from(ms) <= within.as_millis())
        })
    }

    pub fn status(&self) -> CoordStatus {
        let m = self.inner.raft.metrics().borrow().clone();
        let st = self.inner.sm.borrow().clone();
        let voters: BTreeSet<NodeId> = m.membership_config.voter_ids().collect();
        let matched = m.replication.clone().unwrap_or_default();
        CoordStatus {
            node: self.inner.me,
            role: if self.inner.witness {
                CoordRole::Witness
            } else {
                CoordRole::Voter
            },
            raft_state: format!("{:?}", m.state),
            term: m.current_term,
            leader: m.current_leader,
            active: st.active,
            epoch: st.epoch,
            am_active: self.is_active(),
            mode: st.mode,
            members: m
                .membership_config
                .nodes()
                .map(|(id, n)| MemberStatus {
                    id: *id,
                    addr: n.addr.clone(),
                    voter: voters.contains(id),
                    witness: n.witness,
                    matched_index: matched.get(id).cloned().flatten().map(|l| l.index),
                })
                .collect(),
            links: self.inner.net.links(),
            last_log_index: m.last_log_index,
            last_applied_index: m.last_applied.map(|l| l.index),
            millis_since_quorum_ack: m.millis_since_quorum_ack,
            refused_frames: self.inner.net.refused_frames.load(Ordering::Relaxed),
        }
    }

    fn leader_or_err(&self) -> CoordResult<RaftMetrics<NodeId, CoordNode>> {
        let m = self.inner.raft.metrics().borrow().clone();
        if is_leader(&m) {
            Ok(m)
        } else {
            Err(CoordError::NotLeader {
                leader: m.current_leader,
            })
        }
    }

    /// Sends `transfer-active target` to the leader and waits for its outcome.
    async fn forward_transfer(&self, leader: NodeId, target: NodeId) -> CoordResult<u64> {
        let m = self.inner.raft.metrics().borrow().clone();
        let addr = m
            .membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.addr.clone())
            .ok_or(CoordError::UnknownNode(leader))?;
        tracing::info!(leader, target, "coord: hand-over forwarded to the leader");
        let mut client = PeerClient::new(self.inner.net.clone(), leader, addr);
        // The leader's own bound (four election timeouts) plus a margin for the round trip.
        let ttl = self.inner.timeouts.election_max * 6;
        client.transfer_active(target, ttl).await
    }

    /// Planned hand-over, called on the active node: waits until `target` holds the whole log,
    /// commits `Handover { from: me, to: target }` (epoch + 1; from then on no node is active
    /// until the target confirms), stops this leader's heartbeats and asks the target to
    /// campaign (`TimeoutNow`); the target wins (its log is complete), runs the activation hook
    /// and confirms with `Activate` in its term without a new epoch. openraft 0.9 has no leader
    /// transfer of its own. Returns the target's epoch once this node has seen it confirmed.
    /// If the target does not take over within 4 maximum election timeouts, this node resumes
    /// heartbeats and, still leader, activates itself again (with a new epoch).
    // Long on purpose (about 100 lines): the hand-over's four numbered steps and the rollback
    // of a failed one, in the order they happen.
    pub async fn transfer_active(&self, target: NodeId) -> CoordResult<u64> {
        let inner = &self.inner;
        let m = match self.leader_or_err() {
            Ok(m) => m,
            // Run on another node: the leader does it (an operator need not find it first).
            Err(CoordError::NotLeader {
                leader: Some(leader),
            }) if leader != inner.me => return self.forward_transfer(leader, target).await,
            Err(e) => return Err(e),
        };
        if target == inner.me {
            return if self.is_active() {
                Ok(self.epoch())
            } else {
                Err(CoordError::Handover {
                    to: target,
                    why: "this node is leader but not active yet".into(),
                })
            };
        }
        if !self.is_active() {
            return Err(CoordError::Handover {
                to: target,
                why: "this node is not active".into(),
            });
        }
        let node = m
            .membership_config
            .membership()
            .get_node(&target)
            .cloned()
            .ok_or(CoordError::UnknownNode(target))?;
        if !m.membership_config.voter_ids().any(|v| v == target) {
            return Err(CoordError::UnknownNode(target));
        }
        if node.witness {
            return Err(CoordError::Witness(target));
        }
        let give_up = Instant::now() + inner.timeouts.election_max * 4;
        // 1. the target catches up
        let last = m.last_log_index;
        self.wait_metrics(give_up, "target catching up", |m| {
            matched(m, target) >= last
        })
        .await?;
        // 2. the hand-over entry
        *inner.handover.lock() = Some((target, give_up));
        let resp = match inner
            .raft
            .client_write(Command::Handover {
                from: inner.me,
                to: target,
            })
            .await
        {
            Ok(r) if r.data.applied => r,
            Ok(r) => {
                *inner.handover.lock() = None;
                return Err(CoordError::Handover {
                    to: target,
                    why: format!("refused by the state machine (active {:?})", r.data.active),
                });
            }
            Err(e) => {
                *inner.handover.lock() = None;
                return Err(CoordError::raft(e));
            }
        };
        let epoch = resp.data.epoch;
        let idx = Some(resp.log_id.index);
        tracing::info!(target, epoch, "coord: hand-over committed");
        let r = async {
            self.wait_metrics(give_up, "target receiving the hand-over", |m| {
                matched(m, target) >= idx
            })
            .await?;
            // 3. stop heartbeats, so the followers' leases lapse, and tell the target to campaign
            inner.heartbeats_off.store(true, Ordering::SeqCst);
            inner.raft.runtime_config().heartbeat(false);
            let mut client = PeerClient::new(inner.net.clone(), target, node.addr.clone());
            if let Err(e) = client.timeout_now(inner.timeouts.election_min).await {
                tracing::warn!(target, error = %e, "coord: TimeoutNow failed; the target campaigns when it applies the hand-over");
            }
            // 4. the target leads and confirmed
            let mut sm = inner.sm.clone();
            let epoch = tokio::time::timeout_at(
                give_up,
                sm.wait_for(|s| s.active == Some(target) && s.active_term.is_some()),
            )
            .await
            .map_err(|_| CoordError::Timeout("target confirming"))?
            .map_err(|_| CoordError::Shutdown)?
            .epoch;
            Ok::<u64, CoordError>(epoch)
        }
        .await;
        match r {
            Ok(e) => {
                tracing::info!(target, epoch = e, "coord: hand-over done");
                Ok(e)
            }
            Err(e) => {
                tracing::warn!(target, error = %e, "coord: hand-over failed; resuming");
                *inner.handover.lock() = None;
                inner.raft.runtime_config().heartbeat(true);
                inner.heartbeats_off.store(false, Ordering::SeqCst);
                Err(CoordError::Handover {
                    to: target,
                    why: format!("{e} (epoch {epoch} was given)"),
                })
            }
        }
    }

    async fn wait_metrics(
        &self,
        until: Instant,
        what: &'static str,
        f: impl Fn(&RaftMetrics<NodeId, CoordNode>) -> bool,
    ) -> CoordResult<()> {
        let mut rx = self.inner.raft.metrics();
        tokio::time::timeout_at(until, rx.wait_for(|m| f(m)))
            .await
            .map_err(|_| CoordError::Timeout(what))?
            .map_err(|_| CoordError::Shutdown)?;
        Ok(())
    }

    /// Adds a member (on the leader): first as a learner, which receives the whole log, then as
    /// a voter. A witness is added the same way, with `witness = true`.
    pub async fn add_member(&self, id: NodeId, addr: String, witness: bool) -> CoordResult<()> {
        self.leader_or_err()?;
        self.inner.net.allow([id]);
        let raft = &self.inner.raft;
        raft.add_learner(id, CoordNode { addr, witness }, true)
            .await
            .map_err(CoordError::raft)?;
        raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
            .await
            .map_err(CoordError::raft)?;
        tracing::info!(id, witness, "coord: member added");
        Ok(())
    }

    /// Removes a member (on the leader), voter or learner.
    pub async fn remove_member(&self, id: NodeId) -> CoordResult<()> {
        let m = self.leader_or_err()?;
        let raft = &self.inner.raft;
        if m.membership_config.voter_ids().any(|v| v == id) {
            raft.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), false)
                .await
                .map_err(CoordError::raft)?;
        } else {
            raft.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
                .await
                .map_err(CoordError::raft)?;
        }
        tracing::info!(id, "coord: member removed");
        Ok(())
    }

    /// Sets the cluster mode (on the leader).
    pub async fn set_mode(&self, mode: ClusterMode) -> CoordResult<()> {
        self.leader_or_err()?;
        self.inner
            .raft
            .client_write(Command::SetMode { mode })
            .await
            .map_err(CoordError::raft)?;
        Ok(())
    }

    /// Test switch: cut this node off the network (see [`NetShared::set_isolated`]).
    pub fn set_isolated(&self, on: bool) {
        self.inner.net.set_isolated(on);
    }

    /// Serves a peer connection accepted elsewhere: the replication listener hands over a
    /// connection whose first frame is a raft frame (put back with [`crate::conn::Conn::unread`]).
    /// Returns when the peer closes it or the coordinator stops.
    pub async fn serve_routed(&self, conn: crate::conn::Conn) {
        tokio::select! {
            _ = self.inner.stop.cancelled() => {}
            _ = network::serve_conn(self.inner.raft.clone(), self.inner.net.clone(), conn) => {}
        }
    }

    /// Stops: no longer active at once, Raft stopped, listener closed, sled flushed and closed.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        *inner.active_until.lock() = None;
        inner.view.send_modify(|v| v.am_active = false);
        inner.stop.cancel();
        if let Err(e) = inner.raft.shutdown().await {
            tracing::warn!(error = %e, "coord: raft shutdown");
        }
        inner.tasks.close();
        inner.tasks.wait().await;
        tracing::info!(node = inner.me, "coord: stopped");
    }
}

fn matched(m: &RaftMetrics<NodeId, CoordNode>, id: NodeId) -> Option<u64> {
    m.replication
        .as_ref()
        .and_then(|r| r.get(&id).cloned().flatten())
        .map(|l| l.index)
}

/// Opens sled, retrying a little while a previous instance in this process still closes.
async fn open_sled(dir: &std::path::Path) -> CoordResult<sled::Db> {
    let mut tries = 0;
    loop {
        match sled::Config::new().path(dir).open() {
            Ok(db) => return Ok(db),
            Err(e) if tries < 50 => {
                tries += 1;
                tracing::debug!(error = %e, "coord: sled busy, retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(CoordError::Store(format!("{}: {e}", dir.display()))),
        }
    }
}

/// Decides, at every change of Raft metrics or replicated state and on a short tick, whether
/// this node is active, starts activation when it leads, and campaigns when handed the role.
// Long on purpose (about 100 lines): one event loop whose steps (lease, published view, claim,
// hand-over campaign) read the same per-tick snapshot of metrics and state, in order.
async fn drive(inner: Arc<Inner>) {
    let mut metrics = inner.raft.metrics();
    let mut sm = inner.sm.clone();
    let tick = inner.timeouts.heartbeat / 2;
    let mut last_ack: Option<Instant> = None;
    let mut campaign_until: Option<Instant> = None;
    let mut last_elect: Option<Instant> = None;
    loop {
        let mut metrics_changed = false;
        tokio::select! {
            _ = inner.stop.cancelled() => return,
            r = metrics.changed() => { if r.is_err() { return; } metrics_changed = true; }
            r = sm.changed() => { if r.is_err() { return; } }
            _ = inner.net.timeout_now.notified() => {
                campaign_until = Some(Instant::now() + inner.timeouts.election_max * 2);
            }
            _ = tokio::time::sleep(tick) => {}
        }
        let now = Instant::now();
        let m = metrics.borrow_and_update().clone();
        let st = sm.borrow_and_update().clone();
        let leader = is_leader(&m);
        if metrics_changed || !leader {
            last_ack = if leader {
                m.millis_since_quorum_ack
                    .map(|ms| now.checked_sub(Duration::from_millis(ms)).unwrap_or(now))
            } else {
                None
            };
        }
        inner
            .net
            .allow(m.membership_config.nodes().map(|(id, _)| *id));
        let term = m.current_term;
        let handing_over = {
            let mut h = inner.handover.lock();
            if h.is_some_and(|(_, until)| now >= until) {
                *h = None;
            }
            h.is_some()
        };
        if !leader && inner.heartbeats_off.swap(false, Ordering::SeqCst) {
            inner.raft.runtime_config().heartbeat(true);
            *inner.handover.lock() = None;
        }
        let lease_end = last_ack.map(|t| t + inner.timeouts.lease);
        let active = leader
            && !inner.witness
            && !handing_over
            && st.mode == ClusterMode::Raft
            && st.is_active_in(inner.me, term)
            && lease_end.is_some_and(|t| now < t);
        *inner.active_until.lock() = if active { lease_end } else { None };
        let view = ActiveView {
            active: st.active,
            epoch: st.epoch,
            am_active: active,
        };
        inner.view.send_if_modified(|v| {
            if *v != view {
                tracing::info!(node = inner.me, active = ?view.active, epoch = view.epoch,
                    am_active = view.am_active, term, "coord: active view");
                *v = view;
                true
            } else {
                false
            }
        });
        // Leading but not active in this term: claim the role.
        if leader
            && !inner.witness
            && !handing_over
            && st.mode == ClusterMode::Raft
            && !st.is_active_in(inner.me, term)
        {
            let mut a = inner.activating.lock();
            if *a != Some(term) {
                *a = Some(term);
                inner.tasks.spawn(activate(inner.clone(), term, st.clone()));
            }
        }
        // Handed the role (told so, or the hand-over applied here): campaign until leader.
        if !leader
            && st.active == Some(inner.me)
            && st.active_term.is_none()
            && campaign_until.is_none()
        {
            campaign_until = Some(now + inner.timeouts.election_max * 2);
        }
        if leader || campaign_until.is_some_and(|t| now >= t) {
            campaign_until = None;
        }
        // The leader went silent (crashed, paused, cut off): campaign as soon as the voters'
        // leases are over. openraft's own timer waits the lease plus a random election timeout
        // after the last heartbeat, and twice the longest timeout more once any vote of this
        // node was ever refused for a longer log (1.4 s after a crash with a witness, measured;
        // the target is a fail-over under 1 s). Offsets by node id keep two survivors from
        // splitting the votes. A planned hand-over also stops the heartbeats: its target
        // campaigns every half `election_min` from the start, so it wins before this waits
        // out (half `election_min` more), and a node that applied the hand-over stays quiet.
        let handover_applied = st.active.is_some() && st.active_term.is_none();
        if !leader
            && !inner.witness
            && st.mode == ClusterMode::Raft
            && campaign_until.is_none()
            && !handover_applied
        {
            if let Some(heard) = inner.net.last_append() {
                let stagger =
                    inner.timeouts.election_min / 2 + inner.timeouts.heartbeat * (1 + inner.me % 3);
                let silent = now.saturating_duration_since(heard);
                if silent >= inner.timeouts.election_max + stagger
                    && last_elect.is_none_or(|t| now >= t + inner.timeouts.election_min)
                {
                    last_elect = Some(now);
                    tracing::info!(
                        node = inner.me,
                        silent_ms = silent.as_millis() as u64,
                        "coord: no word from the leader: campaigning"
                    );
                    if let Err(e) = inner.raft.trigger().elect().await {
                        tracing::warn!(error = %e, "coord: cannot campaign");
                    }
                }
            }
        }
        if campaign_until.is_some()
            && !inner.witness
            && last_elect.is_none_or(|t| now >= t + inner.timeouts.election_min / 2)
        {
            last_elect = Some(now);
            tracing::info!(node = inner.me, "coord: campaigning (hand-over)");
            if let Err(e) = inner.raft.trigger().elect().await {
                tracing::warn!(error = %e, "coord: cannot campaign");
            }
        }
    }
}

/// Runs the activation hook, then proposes `Activate { me, term }`; on failure, lets the driver
/// try again after a short pause.
async fn activate(inner: Arc<Inner>, term: u64, st: ClusterState) {
    let info = Activation {
        previous_active: st.active.filter(|a| *a != inner.me),
        previous_epoch: st.epoch,
        term,
    };
    let r = async {
        if let Some(hook) = &inner.on_activate {
            hook(info.clone()).await.map_err(CoordError::Raft)?;
        }
        inner
            .raft
            .client_write(Command::Activate {
                node: inner.me,
                term,
            })
            .await
            .map_err(CoordError::raft)
    }
    .await;
    match r {
        Ok(resp) => tracing::info!(
            node = inner.me,
            term,
            epoch = resp.data.epoch,
            applied = resp.data.applied,
            "coord: activation committed"
        ),
        Err(e) => {
            tracing::warn!(node = inner.me, term, error = %e, "coord: activation failed; retrying");
            tokio::select! {
                _ = inner.stop.cancelled() => {}
                _ = tokio::time::sleep(inner.timeouts.election_min) => {}
            }
            let mut a = inner.activating.lock();
            if *a == Some(term) {
                *a = None;
            }
        }
    }
}
