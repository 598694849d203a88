//! Raft RPCs over mutual-TLS peer links: the client side (openraft's `RaftNetworkFactory` /
//! `RaftNetwork`, one connection per target, one request in flight) and the serving side (the
//! coordination listener, and [`serve_conn`] for a connection accepted elsewhere).
//!
//! A test switch, [`NetShared::set_isolated`], makes the node refuse to send and receive, to play
//! a network partition.

use super::error::CoordError;
use super::frame::{self, RaftReply, RaftRequest};
use super::types::{CoordNode, NodeId, TypeConfig};
use crate::conn::{Conn, HANDSHAKE_TIMEOUT};
use crate::error::ReplError;
use crate::tls::TlsMaterial;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::Raft;
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use storage::HlcTime;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What a node knows of its link to one peer (for `status`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LinkStatus {
    pub peer: NodeId,
    /// The last RPC to the peer succeeded.
    pub connected: bool,
    /// Milliseconds since the last successful RPC to the peer.
    pub last_ok_ms_ago: Option<u64>,
    /// Why the last RPC failed, while it still holds.
    pub last_error: Option<String>,
}

#[derive(Default)]
struct Link {
    last_ok: Option<Instant>,
    last_error: Option<String>,
}

/// What the client and the serving side share.
pub struct NetShared {
    pub me: NodeId,
    pub tls: TlsMaterial,
    isolated: AtomicBool,
    links: Mutex<BTreeMap<NodeId, Link>>,
    /// Node ids that may connect (members and configured peers).
    allowed: Mutex<BTreeSet<NodeId>>,
    /// Frames refused from peers (protocol violations).
    pub refused_frames: AtomicU64,
    /// Set when a peer asks us to campaign now (planned hand-over); the coordinator acts on it.
    pub timeout_now: tokio::sync::Notify,
    /// When a leader's AppendEntries (a heartbeat or entries) last reached this node.
    last_append: Mutex<Option<tokio::time::Instant>>,
    /// Runs a hand-over a peer forwarded here (set by the coordinator once started).
    pub transfer_hook: std::sync::OnceLock<TransferHook>,
}

/// Runs `node cluster transfer-active TO` on this node for a peer: the new epoch or why not.
pub type TransferHook =
    Arc<dyn Fn(NodeId) -> futures::future::BoxFuture<'static, Result<u64, String>> + Send + Sync>;

impl NetShared {
    pub fn new(me: NodeId, tls: TlsMaterial, allowed: impl IntoIterator<Item = NodeId>) -> Self {
        NetShared {
            me,
            tls,
            isolated: AtomicBool::new(false),
            links: Mutex::new(BTreeMap::new()),
            allowed: Mutex::new(allowed.into_iter().collect()),
            refused_frames: AtomicU64::new(0),
            timeout_now: tokio::sync::Notify::new(),
            last_append: Mutex::new(None),
            transfer_hook: std::sync::OnceLock::new(),
        }
    }

    /// When a leader's AppendEntries last reached this node (None: never since start).
    pub fn last_append(&self) -> Option<tokio::time::Instant> {
        *self.last_append.lock()
    }

    /// Test switch: an isolated node neither sends nor answers raft frames (and drops the links
    /// it has), as if the network were cut around it.
    pub fn set_isolated(&self, on: bool) {
        self.isolated.store(on, Ordering::SeqCst);
    }

    pub fn is_isolated(&self) -> bool {
        self.isolated.load(Ordering::SeqCst)
    }

    pub fn allow(&self, ids: impl IntoIterator<Item = NodeId>) {
        self.allowed.lock().extend(ids);
    }

    /// Members and configured peers may connect; a node that knows no member yet (it waits to
    /// be added) accepts any node with a certificate from the cluster CA.
    pub(crate) fn is_allowed(&self, id: NodeId) -> bool {
        let a = self.allowed.lock();
        a.is_empty() || a.contains(&id)
    }

    fn link_ok(&self, peer: NodeId) {
        let mut l = self.links.lock();
        let e = l.entry(peer).or_default();
        e.last_ok = Some(Instant::now());
        e.last_error = None;
    }

    fn link_failed(&self, peer: NodeId, why: String) {
        self.links.lock().entry(peer).or_default().last_error = Some(why);
    }

    pub fn links(&self) -> Vec<LinkStatus> {
        let now = Instant::now();
        self.links
            .lock()
            .iter()
            .filter(|(id, _)| **id != self.me)
            .map(|(id, l)| LinkStatus {
                peer: *id,
                connected: l.last_error.is_none() && l.last_ok.is_some(),
                last_ok_ms_ago: l
                    .last_ok
                    .map(|t| now.saturating_duration_since(t).as_millis() as u64),
                last_error: l.last_error.clone(),
            })
            .collect()
    }
}

/// Makes one [`PeerClient`] per target (openraft asks for one per replication stream and per
/// election).
pub struct Factory {
    pub shared: Arc<NetShared>,
}

impl RaftNetworkFactory<TypeConfig> for Factory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &CoordNode) -> PeerClient {
        PeerClient {
            shared: self.shared.clone(),
            target,
            addr: node.addr.clone(),
            conn: None,
        }
    }
}

/// The client side of the link to one peer: connects on first use and after any failure.
pub struct PeerClient {
    shared: Arc<NetShared>,
    target: NodeId,
    addr: String,
    conn: Option<Conn>,
}

enum Failure {
    /// Could not connect: openraft backs off.
    Unreachable(CoordError),
    Network(CoordError),
}

impl Failure {
    fn into_rpc<E: std::error::Error>(self) -> RPCError<NodeId, CoordNode, E> {
        match self {
            Failure::Unreachable(e) => RPCError::Unreachable(Unreachable::new(&e)),
            Failure::Network(e) => RPCError::Network(NetworkError::new(&e)),
        }
    }
}

fn repl(e: ReplError) -> CoordError {
    match e {
        ReplError::Io(e) => CoordError::Io(e),
        ReplError::Timeout(w) => CoordError::Timeout(w),
        ReplError::Protocol(p) => CoordError::Protocol(p),
        other => CoordError::Raft(other.to_string()),
    }
}

impl PeerClient {
    /// Sends one request and waits for its answer, within `ttl`.
    async fn call(&mut self, req: &RaftRequest, ttl: Duration) -> Result<RaftReply, Failure> {
        let r = self.call_inner(req, ttl).await;
        match &r {
            Ok(RaftReply::Refused(why)) => {
                self.conn = None;
                self.shared
                    .link_failed(self.target, format!("refused: {why}"));
            }
            Ok(_) => self.shared.link_ok(self.target),
            Err(Failure::Unreachable(e)) | Err(Failure::Network(e)) => {
                self.conn = None;
                tracing::debug!(peer = self.target, req = req.kind(), error = %e, "coord: rpc failed");
                self.shared.link_failed(self.target, e.to_string());
            }
        }
        r
    }

    async fn call_inner(&mut self, req: &RaftRequest, ttl: Duration) -> Result<RaftReply, Failure> {
        if self.shared.is_isolated() {
            self.conn = None;
            return Err(Failure::Unreachable(CoordError::Raft(
                "isolated (test switch)".into(),
            )));
        }
        let bytes = frame::encode(req).map_err(Failure::Network)?;
        let deadline = Instant::now() + ttl;
        if self.conn.is_none() {
            let c = tokio::time::timeout(
                ttl.min(HANDSHAKE_TIMEOUT),
                Conn::connect(
                    &self.shared.tls,
                    self.shared.me,
                    HlcTime::default(),
                    self.target,
                    &self.addr,
                ),
            )
            .await
            .map_err(|_| Failure::Unreachable(CoordError::Timeout("connect")))?
            .map_err(|e| Failure::Unreachable(repl(e)))?;
            self.conn = Some(c);
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(Failure::Unreachable(CoordError::Raft(
                "no connection".into(),
            )));
        };
        let exchange = async {
            conn.send_raw(bytes).await.map_err(repl)?;
            let f = conn.recv_frame().await.map_err(repl)?;
            frame::decode::<RaftReply>(&f)
        };
        match tokio::time::timeout_at(deadline, exchange).await {
            Err(_) => Err(Failure::Network(CoordError::Timeout("raft rpc"))),
            Ok(Err(e)) => Err(Failure::Network(e)),
            Ok(Ok(r)) => Ok(r),
        }
    }

    /// Asks the peer to campaign now (planned hand-over).
    pub async fn timeout_now(&mut self, ttl: Duration) -> Result<(), CoordError> {
        match self
            .call(
                &RaftRequest::TimeoutNow {
                    from: self.shared.me,
                },
                ttl,
            )
            .await
        {
            Ok(RaftReply::TimeoutNow) => Ok(()),
            Ok(other) => Err(CoordError::Protocol(format!("unexpected answer {other:?}"))),
            Err(Failure::Unreachable(e)) | Err(Failure::Network(e)) => Err(e),
        }
    }

    /// Asks this peer (the leader) to hand the active role to `to`; waits up to `ttl`.
    pub async fn transfer_active(&mut self, to: NodeId, ttl: Duration) -> Result<u64, CoordError> {
        match self.call(&RaftRequest::TransferActive { to }, ttl).await {
            Ok(RaftReply::TransferActive(Ok(epoch))) => Ok(epoch),
            Ok(RaftReply::TransferActive(Err(why))) => Err(CoordError::Handover { to, why }),
            Ok(other) => Err(CoordError::Protocol(format!("unexpected answer {other:?}"))),
            Err(Failure::Unreachable(e)) | Err(Failure::Network(e)) => Err(e),
        }
    }

    pub fn new(shared: Arc<NetShared>, target: NodeId, addr: String) -> PeerClient {
        PeerClient {
            shared,
            target,
            addr,
            conn: None,
        }
    }
}

fn unexpected<E: std::error::Error>(
    target: NodeId,
    r: RaftReply,
) -> RPCError<NodeId, CoordNode, E> {
    let e = CoordError::Protocol(format!("unexpected answer from node {target}: {r:?}"));
    RPCError::Network(NetworkError::new(&e))
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, CoordNode, RaftError<NodeId>>> {
        match self
            .call(&RaftRequest::Append(rpc), option.hard_ttl())
            .await
        {
            Ok(RaftReply::Append(Ok(r))) => Ok(r),
            Ok(RaftReply::Append(Err(e))) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(other) => Err(unexpected(self.target, other)),
            Err(f) => Err(f.into_rpc()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, CoordNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        match self
            .call(&RaftRequest::Snapshot(rpc), option.hard_ttl())
            .await
        {
            Ok(RaftReply::Snapshot(Ok(r))) => Ok(r),
            Ok(RaftReply::Snapshot(Err(e))) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(other) => Err(unexpected(self.target, other)),
            Err(f) => Err(f.into_rpc()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, CoordNode, RaftError<NodeId>>> {
        match self.call(&RaftRequest::Vote(rpc), option.hard_ttl()).await {
            Ok(RaftReply::Vote(Ok(r))) => Ok(r),
            Ok(RaftReply::Vote(Err(e))) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(other) => Err(unexpected(self.target, other)),
            Err(f) => Err(f.into_rpc()),
        }
    }
}

/// Accepts peers on the coordination listener until `stop`.
pub async fn listen(
    raft: Raft<TypeConfig>,
    shared: Arc<NetShared>,
    listener: TcpListener,
    stop: CancellationToken,
    tasks: TaskTracker,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok((tcp, addr)) => {
                    let (raft, shared, stop) = (raft.clone(), shared.clone(), stop.clone());
                    tasks.spawn(async move {
                        let sh = shared.clone();
                        let conn = match Conn::accept(&shared.tls, shared.me, HlcTime::default(), tcp,
                            move |id| sh.is_allowed(id)).await {
                            Ok(c) => c,
                            Err(e) => {
                                tracing::warn!(remote = %addr, error = %e, "coord: refused connection");
                                return;
                            }
                        };
                        tokio::select! {
                            _ = stop.cancelled() => {}
                            _ = serve_conn(raft, shared, conn) => {}
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "coord: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// Serves raft requests on an authenticated connection until it ends. A frame that is not a
/// well-formed raft request is answered with `Refused`, counted, logged, and ends the connection.
pub async fn serve_conn(raft: Raft<TypeConfig>, shared: Arc<NetShared>, mut conn: Conn) {
    let peer = conn.peer;
    loop {
        let f = match conn.recv_frame().await {
            Ok(f) => f,
            Err(ReplError::Closed) => return,
            Err(e) => {
                if matches!(e, ReplError::Protocol(_)) {
                    shared.refused_frames.fetch_add(1, Ordering::Relaxed);
                }
                tracing::warn!(peer, error = %e, "coord: peer link ended");
                return;
            }
        };
        if shared.is_isolated() {
            return;
        }
        let req = match frame::decode::<RaftRequest>(&f) {
            Ok(r) => r,
            Err(e) => {
                shared.refused_frames.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(peer, error = %e, "coord: refusing a raft frame; disconnecting");
                if let Ok(b) = frame::encode(&RaftReply::Refused(e.to_string())) {
                    let _ = conn.send_raw(b).await;
                }
                return;
            }
        };
        let reply = match req {
            RaftRequest::Vote(v) => RaftReply::Vote(raft.vote(v).await),
            RaftRequest::Append(a) => {
                *shared.last_append.lock() = Some(tokio::time::Instant::now());
                RaftReply::Append(raft.append_entries(a).await)
            }
            RaftRequest::Snapshot(s) => RaftReply::Snapshot(raft.install_snapshot(s).await),
            RaftRequest::TimeoutNow { from } => {
                tracing::info!(from, "coord: asked to campaign now (hand-over)");
                shared.timeout_now.notify_one();
                RaftReply::TimeoutNow
            }
            RaftRequest::TransferActive { to } => {
                tracing::info!(peer, to, "coord: hand-over asked by a peer");
                RaftReply::TransferActive(match shared.transfer_hook.get() {
                    Some(hook) => hook(to).await,
                    None => Err("this node's coordinator is not started yet".into()),
                })
            }
        };
        let bytes = match frame::encode(&reply) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(peer, error = %e, "coord: cannot encode a reply");
                return;
            }
        };
        if shared.is_isolated() {
            return;
        }
        if let Err(e) = conn.send_raw(bytes).await {
            tracing::debug!(peer, error = %e, "coord: peer link ended");
            return;
        }
    }
}
