//! In-process nodes over real mutual TLS on 127.0.0.1, bounded in time.

use super::frame::{self, RaftReply, MAX_RAFT_FRAME, RAFT_MAGIC};
use super::*;
use crate::conn::Conn;
use crate::tls::test_support::TestCa;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use storage::HlcTime;
use tokio::net::TcpListener;
use tokio::time::Instant;

fn timeouts() -> CoordTimeouts {
    CoordTimeouts {
        heartbeat: Duration::from_millis(100),
        election_min: Duration::from_millis(400),
        election_max: Duration::from_millis(800),
        lease: Duration::from_millis(400),
    }
}

struct Cluster {
    /// Keeps the CA directory alive.
    _ca: TestCa,
    tls: BTreeMap<NodeId, crate::tls::TlsMaterial>,
    dirs: BTreeMap<NodeId, tempfile::TempDir>,
    addrs: BTreeMap<NodeId, SocketAddr>,
    members: Vec<CoordPeer>,
    nodes: BTreeMap<NodeId, Coordinator>,
}

impl Cluster {
    /// Binds a listener per node; `witnesses` are witness members.
    async fn new(ids: &[NodeId], witnesses: &[NodeId]) -> (Cluster, Vec<TcpListener>) {
        let mut listeners = Vec::new();
        let mut addrs = BTreeMap::new();
        let mut dirs = BTreeMap::new();
        for id in ids {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            addrs.insert(*id, l.local_addr().unwrap());
            dirs.insert(*id, tempfile::tempdir().unwrap());
            listeners.push(l);
        }
        let members = ids
            .iter()
            .map(|id| CoordPeer {
                id: *id,
                addr: addrs[id].to_string(),
                witness: witnesses.contains(id),
            })
            .collect();
        let ca = TestCa::new();
        let tls = ids.iter().map(|id| (*id, ca.node(*id))).collect();
        let c = Cluster {
            _ca: ca,
            tls,
            dirs,
            addrs,
            members,
            nodes: BTreeMap::new(),
        };
        (c, listeners)
    }

    async fn start(ids: &[NodeId], witnesses: &[NodeId]) -> Cluster {
        let (mut c, listeners) = Cluster::new(ids, witnesses).await;
        for (id, l) in ids.iter().zip(listeners) {
            let n = c.start_node(*id, Some(l), true).await;
            c.nodes.insert(*id, n);
        }
        c
    }

    fn config(&self, id: NodeId, bootstrap: bool) -> CoordConfig {
        let witness = self.members.iter().any(|m| m.id == id && m.witness);
        CoordConfig {
            node_id: id,
            data_dir: self.dirs[&id].path().to_path_buf(),
            listen: self.addrs[&id],
            members: if bootstrap {
                self.members.clone()
            } else {
                vec![]
            },
            role: if witness {
                CoordRole::Witness
            } else {
                CoordRole::Voter
            },
            timeouts: timeouts(),
            tls: self.tls[&id].clone(),
            on_activate: None,
        }
    }

    async fn start_node(&self, id: NodeId, l: Option<TcpListener>, bootstrap: bool) -> Coordinator {
        let cfg = self.config(id, bootstrap);
        match l {
            Some(l) => Coordinator::start_on(cfg, l).await.unwrap(),
            None => Coordinator::start(cfg).await.unwrap(),
        }
    }

    fn running(&self) -> Vec<&Coordinator> {
        self.nodes.values().collect()
    }

    async fn stop(&mut self, id: NodeId) {
        if let Some(n) = self.nodes.remove(&id) {
            n.shutdown().await;
        }
    }

    async fn shutdown(mut self) {
        for id in self.nodes.keys().cloned().collect::<Vec<_>>() {
            self.stop(id).await;
        }
    }
}

/// Polls `f` every 10 ms until it holds or `limit` passes.
async fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    f()
}

/// The (active, epoch) every given node agrees on, with exactly that node active.
fn agreed(nodes: &[&Coordinator]) -> Option<(NodeId, u64)> {
    let views: Vec<ActiveView> = nodes.iter().map(|n| *n.watch().borrow()).collect();
    let first = views.first()?;
    let active = first.active?;
    let all_same = views
        .iter()
        .all(|v| v.active == first.active && v.epoch == first.epoch);
    let only_active = nodes
        .iter()
        .all(|n| n.is_active() == (n.node_id() == active))
        && nodes.iter().any(|n| n.node_id() == active);
    (all_same && only_active && first.epoch >= 1).then_some((active, first.epoch))
}

async fn wait_agreed(nodes: &[&Coordinator], limit: Duration) -> (NodeId, u64) {
    let mut got = None;
    wait_until(limit, || {
        got = agreed(nodes);
        got.is_some()
    })
    .await;
    got.unwrap_or_else(|| {
        let st: Vec<_> = nodes.iter().map(|n| n.status()).collect();
        panic!("no agreement on the active node: {st:#?}")
    })
}

const AGREE: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coord_three_nodes_elect_an_active_leader_and_agree() {
    let c = Cluster::start(&[1, 2, 3], &[]).await;
    let t0 = Instant::now();
    let (active, epoch) = wait_agreed(&c.running(), AGREE).await;
    println!(
        "three nodes: node {active} active at epoch {epoch} after {:?}",
        t0.elapsed()
    );
    assert!(epoch >= 1);
    let st = c.nodes[&active].status();
    assert_eq!(st.leader, Some(active));
    assert_eq!(st.members.len(), 3);
    assert!(st.am_active && st.members.iter().all(|m| m.voter && !m.witness));
    serde_json_like(&st);
    c.shutdown().await;
}

/// The status serializes (as `--json` will).
fn serde_json_like(st: &CoordStatus) {
    let b = bincode::serde::encode_to_vec(st, bincode::config::standard()).unwrap();
    assert!(!b.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coord_stopping_the_active_node_fails_over_with_a_larger_epoch() {
    let mut c = Cluster::start(&[1, 2, 3], &[]).await;
    let (old, epoch) = wait_agreed(&c.running(), AGREE).await;
    let t0 = Instant::now();
    c.stop(old).await;
    let (new, epoch2) = wait_agreed(&c.running(), AGREE).await;
    let took = t0.elapsed();
    println!("fail-over after stopping node {old}: node {new} active at epoch {epoch2} (was {epoch}) after {took:?}");
    assert_ne!(new, old);
    assert!(epoch2 > epoch);
    let t = timeouts();
    assert!(took < t.election_max * 6, "fail-over took {took:?}");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coord_isolated_leader_steps_down_within_the_lease() {
    let c = Cluster::start(&[1, 2, 3], &[]).await;
    let (old, epoch) = wait_agreed(&c.running(), AGREE).await;
    let n_old = c.nodes[&old].clone();
    let mut watch = n_old.watch();
    let t0 = Instant::now();
    n_old.set_isolated(true);
    assert!(wait_until(Duration::from_secs(5), || !n_old.is_active()).await);
    let took = t0.elapsed();
    // the watch says so too
    tokio::time::timeout(Duration::from_secs(2), watch.wait_for(|v| !v.am_active))
        .await
        .unwrap()
        .unwrap();
    let watch_took = t0.elapsed();
    println!(
        "isolated leader {old}: is_active false after {took:?}, watch after {watch_took:?} (lease {:?}, election timeout {:?}..{:?})",
        timeouts().lease,
        timeouts().election_min,
        timeouts().election_max
    );
    assert!(
        took <= timeouts().election_min + Duration::from_millis(150),
        "{took:?}"
    );
    // the majority elects a new active node with a larger epoch
    let rest: Vec<&Coordinator> = c.nodes.values().filter(|n| n.node_id() != old).collect();
    let (new, epoch2) = wait_agreed(&rest, AGREE).await;
    println!(
        "majority side: node {new} active at epoch {epoch2} after {:?}",
        t0.elapsed()
    );
    assert_ne!(new, old);
    assert!(epoch2 > epoch);
    assert!(!n_old.is_active());
    // heal: the old node learns the new epoch and stays passive
    n_old.set_isolated(false);
    let (a, e) = wait_agreed(&c.running(), AGREE).await;
    assert_eq!((a, e), (new, epoch2));
    assert_eq!(n_old.epoch(), epoch2);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coord_transfer_active_moves_the_role_with_one_more_epoch() {
    let c = Cluster::start(&[1, 2, 3], &[]).await;
    let (old, epoch) = wait_agreed(&c.running(), AGREE).await;
    let target = if old == 1 { 3 } else { 1 };
    // asked on another node to move the role where it already is: forwarded, nothing changes
    assert_eq!(c.nodes[&target].transfer_active(old).await.unwrap(), epoch);
    let t0 = Instant::now();
    let e = c.nodes[&old].transfer_active(target).await.unwrap();
    let took = t0.elapsed();
    let (a, e2) = wait_agreed(&c.running(), AGREE).await;
    println!("transfer_active {old} -> {target}: epoch {epoch} -> {e} in {took:?}");
    assert_eq!((a, e, e2), (target, epoch + 1, epoch + 1));
    assert!(!c.nodes[&old].is_active());
    c.shutdown().await;
}

/// `transfer-active` run on a node that is neither active nor the target: the leader does it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coord_transfer_active_asked_elsewhere_is_forwarded_to_the_leader() {
    let c = Cluster::start(&[1, 2, 3], &[]).await;
    let (old, epoch) = wait_agreed(&c.running(), AGREE).await;
    let others: Vec<u32> = [1, 2, 3].into_iter().filter(|n| *n != old).collect();
    let (asked, target) = (others[0], others[1]);
    let e = c.nodes[&asked].transfer_active(target).await.unwrap();
    let (a, e2) = wait_agreed(&c.running(), AGREE).await;
    assert_eq!((a, e, e2), (target, epoch + 1, epoch + 1));
    assert!(!c.nodes[&old].is_active() && !c.nodes[&asked].is_active());
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coord_two_nodes_and_a_witness_survive_a_mail_node() {
    let mut c = Cluster::start(&[1, 2, 9], &[9]).await;
    let (a, epoch) = wait_agreed(&c.running(), AGREE).await;
    assert_ne!(a, 9, "the witness never becomes active");
    let st = c.nodes[&9].status();
    assert_eq!(st.role, CoordRole::Witness);
    assert!(st.members.iter().any(|m| m.id == 9 && m.witness && m.voter));
    // the witness refuses to be handed the role
    assert!(matches!(
        c.nodes[&a].transfer_active(9).await,
        Err(CoordError::Witness(9))
    ));
    let t0 = Instant::now();
    c.stop(a).await;
    let (b, epoch2) = wait_agreed(&c.running(), AGREE).await;
    println!(
        "2 nodes + witness: node {a} stopped, node {b} active at epoch {epoch2} after {:?}",
        t0.elapsed()
    );
    assert!(b != a && b != 9 && epoch2 > epoch);
    assert!(!c.nodes[&9].is_active());
    c.shutdown().await;
}

/// Nodes of a new cluster seldom start together: one that starts after the others elected
/// an active node joins their group instead of bootstrapping its own. (Before, its first
/// vote outranked the sitting leader's and the active role moved for nothing, with a new
/// epoch: a delivery in flight got 451.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coord_a_node_started_late_joins_without_deposing_the_active_node() {
    let (mut c, mut listeners) = Cluster::new(&[1, 2, 3], &[]).await;
    let l3 = listeners.pop().unwrap();
    for (id, l) in [1, 2].into_iter().zip(listeners) {
        let n = c.start_node(id, Some(l), true).await;
        c.nodes.insert(id, n);
    }
    let (active, epoch) = wait_agreed(&c.running(), AGREE).await;
    let n3 = c.start_node(3, Some(l3), true).await;
    c.nodes.insert(3, n3);
    assert_eq!(wait_agreed(&c.running(), AGREE).await, (active, epoch));
    // Longer than node 3's bootstrap delay and several election timeouts.
    tokio::time::sleep(timeouts().election_max * 6).await;
    assert_eq!(
        agreed(&c.running()),
        Some((active, epoch)),
        "the active node or the epoch changed after node 3 started"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coord_restart_keeps_vote_log_and_state() {
    let mut c = Cluster::start(&[1, 2, 3], &[]).await;
    let (active, epoch) = wait_agreed(&c.running(), AGREE).await;
    let f = if active == 1 { 2 } else { 1 };
    // let the follower apply the activation, then stop it
    assert!(
        wait_until(AGREE, || c.nodes[&f].status().last_applied_index
            == c.nodes[&active].status().last_applied_index)
        .await
    );
    let before = c.nodes[&f].status();
    c.stop(f).await;
    let n = c.start_node(f, None, true).await;
    // before it hears from anyone: its term, log and state are those it had
    let after = n.status();
    println!(
        "restarted node {f}: before {:?}/{:?}/{}, after {:?}/{:?}/{}",
        before.term,
        before.last_log_index,
        before.epoch,
        after.term,
        after.last_log_index,
        after.epoch
    );
    assert!(after.term >= before.term);
    assert!(after.last_log_index >= before.last_log_index);
    assert_eq!(after.epoch, epoch);
    assert_eq!(after.members.len(), 3);
    c.nodes.insert(f, n);
    assert_eq!(wait_agreed(&c.running(), AGREE).await, (active, epoch));
    // the whole cluster restarts: the state survives and the next active takes a new epoch
    for id in [1, 2, 3] {
        c.stop(id).await;
    }
    for id in [1, 2, 3] {
        let n = c.start_node(id, None, true).await;
        assert_eq!(n.epoch(), epoch);
        c.nodes.insert(id, n);
    }
    let (a3, epoch3) = wait_agreed(&c.running(), AGREE).await;
    println!("whole cluster restarted: node {a3} active at epoch {epoch3} (was node {active} at {epoch})");
    // A leader that comes back in its own term (openraft restores a committed vote for itself)
    // resumes its reign with its epoch; any other outcome is a new term and a new epoch.
    assert!(epoch3 > epoch || (a3 == active && epoch3 == epoch));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coord_malformed_and_oversized_raft_frames_are_refused() {
    let c = Cluster::start(&[1, 2, 3], &[]).await;
    let (active, _) = wait_agreed(&c.running(), AGREE).await;
    let target = c.nodes[&active].clone();
    let me = if active == 1 { 2 } else { 1 };
    let tls = c.tls[&me].clone();
    let addr = target.local_addr().unwrap().to_string();
    // garbage after the magic
    let mut conn = Conn::connect(&tls, me, HlcTime::default(), active, &addr)
        .await
        .unwrap();
    let mut bad = RAFT_MAGIC.to_vec();
    bad.extend_from_slice(&[0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    conn.send_raw(bad.into()).await.unwrap();
    let reply = conn.recv_frame().await.unwrap();
    match frame::decode::<RaftReply>(&reply).unwrap() {
        RaftReply::Refused(why) => println!("refused: {why}"),
        other => panic!("{other:?}"),
    }
    assert!(
        conn.recv_frame().await.is_err(),
        "the link is closed after it"
    );
    // a frame larger than a raft frame may be
    let mut conn = Conn::connect(&tls, me, HlcTime::default(), active, &addr)
        .await
        .unwrap();
    let mut big = RAFT_MAGIC.to_vec();
    big.resize(MAX_RAFT_FRAME + 1, 0);
    conn.send_raw(big.into()).await.unwrap();
    let reply = conn.recv_frame().await.unwrap();
    assert!(matches!(
        frame::decode::<RaftReply>(&reply).unwrap(),
        RaftReply::Refused(_)
    ));
    // a frame without the magic
    let mut conn = Conn::connect(&tls, me, HlcTime::default(), active, &addr)
        .await
        .unwrap();
    conn.send_raw(bytes::Bytes::from_static(b"\x01\x02\x03"))
        .await
        .unwrap();
    let reply = conn.recv_frame().await.unwrap();
    assert!(matches!(
        frame::decode::<RaftReply>(&reply).unwrap(),
        RaftReply::Refused(_)
    ));
    assert_eq!(target.status().refused_frames, 3);
    // the node is unharmed and the group still agrees
    assert_eq!(wait_agreed(&c.running(), AGREE).await.0, active);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coord_add_and_remove_a_member() {
    let (mut c, mut listeners) = Cluster::new(&[1, 2, 3, 4], &[]).await;
    c.members.retain(|m| m.id != 4);
    let l4 = listeners.pop().unwrap();
    for (id, l) in [1, 2, 3].into_iter().zip(listeners) {
        let n = c.start_node(id, Some(l), true).await;
        c.nodes.insert(id, n);
    }
    let (active, epoch) = wait_agreed(&c.running(), AGREE).await;
    let n4 = c.start_node(4, Some(l4), false).await;
    c.nodes.insert(4, n4);
    c.nodes[&active]
        .add_member(4, c.addrs[&4].to_string(), false)
        .await
        .unwrap();
    let st = c.nodes[&active].status();
    assert!(st.members.iter().any(|m| m.id == 4 && m.voter));
    assert_eq!(wait_agreed(&c.running(), AGREE).await, (active, epoch));
    assert_eq!(c.nodes[&4].status().members.len(), 4);
    c.nodes[&active].remove_member(4).await.unwrap();
    assert!(c.nodes[&active].status().members.iter().all(|m| m.id != 4));
    c.shutdown().await;
}

/// Raft on the replication port: two mail nodes whose coordinators have no listener of their
/// own (their replication listeners route raft frames to them) and a witness on its own port.
/// They elect, replicate mail over the same port, and the survivor takes over with the witness.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coord_raft_routed_through_the_replication_listener() {
    use crate::testing::MemStore;
    use crate::{PeerConfig, ReplicationConfig, Replicator};
    let inbox = storage::Guid([1; 16]);
    let (mut c, mut listeners) = Cluster::new(&[1, 2, 9], &[9]).await;
    let witness_l = listeners.pop().unwrap();
    let w = c.start_node(9, Some(witness_l), true).await;
    c.nodes.insert(9, w);
    let mut repl = BTreeMap::new();
    let mut stores = BTreeMap::new();
    for (id, l) in [1u32, 2].into_iter().zip(listeners) {
        let coord = Coordinator::start_routed(c.config(id, true)).await.unwrap();
        assert_eq!(coord.local_addr(), None);
        let other = 3 - id;
        let mut rc = ReplicationConfig::new(
            id,
            c.addrs[&id],
            vec![PeerConfig {
                id: other,
                addr: c.addrs[&other].to_string(),
            }],
            c.tls[&id].clone(),
        );
        rc.backoff_min = Duration::from_millis(20);
        rc.backoff_max = Duration::from_millis(200);
        rc.rescan_interval = Duration::from_millis(200);
        rc.epoch = Some(coord.watch());
        rc.raft_routes_to = Some(coord.clone());
        let store = MemStore::new(id);
        repl.insert(id, Replicator::start_on(rc, l, store.clone()).unwrap());
        stores.insert(id, store);
        c.nodes.insert(id, coord);
    }
    let (a, epoch) = wait_agreed(&c.running(), AGREE).await;
    assert_ne!(a, 9);
    let b = 3 - a;
    // Mail written on the active node reaches the other over the same port.
    let (uid, guid) = stores[&a]
        .mem_user("alice")
        .append(inbox, b"Subject: routed\r\n\r\nbody\r\n");
    let ub = stores[&b].mem_user("alice");
    let arrived = wait_until(Duration::from_secs(15), || {
        ub.dump().index.get(&inbox).and_then(|m| m.get(&uid)) == Some(&guid)
    })
    .await;
    assert!(arrived, "the message did not reach node {b}");
    // A node of the same CA that is neither a peer nor a member is refused at the handshake.
    let stranger = Conn::connect(
        &c._ca.node(5),
        5,
        HlcTime::default(),
        a,
        &c.addrs[&a].to_string(),
    )
    .await;
    assert!(stranger.is_err(), "a stranger got a link");
    // The active mail node goes: the other wins with the witness's vote.
    c.stop(a).await;
    repl.remove(&a).unwrap().shutdown().await;
    let (b2, epoch2) = wait_agreed(&c.running(), AGREE).await;
    assert_eq!(b2, b);
    assert!(epoch2 > epoch);
    for (_, h) in repl {
        h.shutdown().await;
    }
    c.shutdown().await;
}
