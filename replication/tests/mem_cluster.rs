//! Two replicating nodes in one process over real TCP on 127.0.0.1 with mutual TLS, each over an
//! in-memory store (replication::testing::MemStore), so transport, shipping, apply, merge policy,
//! durability waits and hostile peers are tested independently of the disk store.

mod common;

use common::{eventually, free_addr, quick_config, rec, Ca};
use replication::conn::Conn;
use replication::testing::{MemStore, MemUser};
use replication::wire::{self, Message, Raw, WireRecord};
use replication::*;
use std::sync::Arc;
use std::time::Duration;
use storage::record::{NewEntry, Op, Record};
use storage::{Flags, Guid, HlcTime, MailboxId, ObjectId};
use tokio::net::TcpListener;

const INBOX: MailboxId = Guid([1; 16]);

struct Node {
    id: u32,
    store: Arc<MemStore>,
    addr: String,
    handle: Option<Handle>,
}

fn cfg(ca: &Ca, id: u32, addr: &str, peers: &[(u32, String)]) -> ReplicationConfig {
    let mut c = quick_config(ca, id, addr, peers);
    c.keepalive = Duration::from_millis(300);
    c.reply_timeout = Duration::from_secs(5);
    // One lane: every user shares one connection, the harder case for fairness.
    c.lanes = 1;
    c
}

impl Node {
    /// Node `id` over an empty in-memory store at a free address, not started.
    async fn new(id: u32) -> Node {
        Node {
            id,
            store: MemStore::new(id),
            addr: free_addr().await,
            handle: None,
        }
    }

    async fn start(&mut self, ca: &Ca, peers: &[(u32, String)], durability: Durability) {
        let mut c = cfg(ca, self.id, &self.addr, peers);
        c.durability = durability;
        c.sync_timeout = Duration::from_millis(300);
        let l = TcpListener::bind(&self.addr).await.unwrap();
        self.handle = Some(Replicator::start_on(c, l, self.store.clone()).unwrap());
    }
    /// Starts the node with one peer, `peer`, that nothing will ever run at its address.
    async fn start_with_absent_peer(&mut self, ca: &Ca, peer: u32) {
        self.start(ca, &[(peer, free_addr().await)], Durability::Local)
            .await;
    }
    fn peer_config(&self) -> PeerConfig {
        PeerConfig {
            id: self.id,
            addr: self.addr.clone(),
        }
    }
    async fn stop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await;
        }
    }
    fn user(&self, u: &str) -> Arc<MemUser> {
        self.store.mem_user(u)
    }
}

async fn pair(ca: &Ca, durability: Durability) -> (Node, Node) {
    let (mut n1, mut n2) = (Node::new(1).await, Node::new(2).await);
    n1.user("alice");
    n2.user("alice");
    n1.start(ca, &[(2, n2.addr.clone())], durability).await;
    n2.start(ca, &[(1, n1.addr.clone())], durability).await;
    (n1, n2)
}

/// Node 1 alone, alice subscribed to INBOX; its peer, node 2, is configured but never started:
/// the test plays node 2 by hand.
async fn lone_node(ca: &Ca) -> Node {
    let mut a = Node::new(1).await;
    a.user("alice").subscribe("INBOX");
    a.start_with_absent_peer(ca, 2).await;
    a
}

/// A connection to `addr` (node 1) as node 2, as a hostile peer would open one.
async fn connect_as_node_2(tls2: &TlsMaterial, addr: &str) -> Result<Conn, ReplError> {
    Conn::connect(tls2, 2, HlcTime::default(), 1, addr).await
}

/// A fresh connection to node 1 still gets its Ping answered.
async fn still_serving(tls2: &TlsMaterial, addr: &str) {
    let mut c = connect_as_node_2(tls2, addr).await.unwrap();
    c.send(&Message::Ping).await.unwrap();
    assert_eq!(
        c.recv_timeout(Duration::from_secs(5), "pong")
            .await
            .unwrap(),
        Message::Pong
    );
}

/// For `node sync` tests: node 1's store, offline (not listening), and node 2, not started yet,
/// each with user alice.
async fn offline_store_and_peer() -> (Arc<MemStore>, Arc<MemUser>, Node, Arc<MemUser>) {
    let a_store = MemStore::new(1);
    let b = Node::new(2).await;
    let (ua, ub) = (a_store.mem_user("alice"), b.user("alice"));
    (a_store, ua, b, ub)
}

/// `node sync` of alice on node 1, whose store is `store`, with `peer`.
async fn sync_alice(
    ca: &Ca,
    store: &Arc<MemStore>,
    peer: &Node,
    full: bool,
    resolve: bool,
) -> replication::sync::SyncReport {
    replication::sync::sync_user(
        &ca.tls(1),
        store.clone(),
        &peer.peer_config(),
        "alice",
        full,
        resolve,
    )
    .await
    .unwrap()
}

async fn restart(n: &mut Node, ca: &Ca, peer: &Node, durability: Durability) {
    n.start(ca, &[(peer.id, peer.addr.clone())], durability)
        .await;
}

async fn converge(a: &Node, b: &Node, user: &str) {
    let (ua, ub) = (a.user(user), b.user(user));
    eventually("identical state", || {
        let (da, db) = (ua.dump(), ub.dump());
        da == db && da.pending == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_on_a_appears_on_b_with_same_uid_and_guid() {
    let ca = Ca::new();
    let (mut a, mut b) = pair(&ca, Durability::Local).await;
    let (uid, guid) = a
        .user("alice")
        .append(INBOX, b"Subject: hi\r\n\r\nbody\r\n");
    let ub = b.user("alice");
    eventually("message on B", || {
        ub.dump().index.get(&INBOX).and_then(|m| m.get(&uid)) == Some(&guid)
    })
    .await;
    assert!(ub
        .dump()
        .objects
        .contains(&ObjectId::of(b"Subject: hi\r\n\r\nbody\r\n")));
    converge(&a, &b, "alice").await;
    // A user created after start is found (rescan) and shipped too.
    a.user("bob").subscribe("Lists/rust");
    let bb = b.user("bob");
    eventually("bob on B", || bb.dump().records.len() == 1).await;
    // B applies before it acks, and A counts on the ack: wait for the count.
    let h = a.handle.clone().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut st = h.status().await;
    while st.peers[0].records_sent < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
        st = h.status().await;
    }
    assert!(st.peers[0].connected);
    assert!(st.peers[0].records_sent >= 2, "{st:?}");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_peer_catches_up_after_restart() {
    let ca = Ca::new();
    let (mut a, mut b) = pair(&ca, Durability::Local).await;
    b.stop().await;
    let ua = a.user("alice");
    for i in 0..300 {
        ua.append(INBOX, format!("Subject: {i}\r\n\r\n{i}\r\n").as_bytes());
    }
    // A shows B behind while B is down.
    let h = a.handle.clone().unwrap();
    h.track_user("alice").await.unwrap();
    let st = h.status().await;
    assert_eq!(st.peers[0].records_behind, 300, "{st:?}");
    assert!(!st.peers[0].connected);
    restart(&mut b, &ca, &a, Durability::Local).await;
    converge(&a, &b, "alice").await;
    assert_eq!(b.user("alice").dump().index[&INBOX].len(), 300);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_on_both_sides_while_apart_converge_with_renumbering() {
    let ca = Ca::new();
    let (mut a, mut b) = pair(&ca, Durability::Local).await;
    a.stop().await;
    b.stop().await;
    let (ua, ub) = (a.user("alice"), b.user("alice"));
    let (uid_a, g_a) = ua.append(INBOX, b"from a\r\n");
    let (uid_b, g_b) = ub.append(INBOX, b"from b\r\n");
    assert_eq!(uid_a, uid_b, "both sides took the same UID");
    ub.append(INBOX, b"second from b\r\n");
    ua.subscribe("Sent");
    restart(&mut a, &ca, &b, Durability::Local).await;
    restart(&mut b, &ca, &a, Durability::Local).await;
    converge(&a, &b, "alice").await;
    let idx = ua.dump().index[&INBOX].clone();
    let uids: Vec<u32> = idx.keys().copied().collect();
    let guids: Vec<Guid> = idx.values().copied().collect();
    assert_eq!(idx.len(), 3, "nothing lost: {idx:?}");
    assert!(guids.contains(&g_a) && guids.contains(&g_b));
    assert!(
        !idx.contains_key(&uid_a),
        "the contested UID is not reused: {uids:?}"
    );
    let st = a.handle.as_ref().unwrap().status().await;
    assert!(st.conflicts_resolved >= 1, "node 1 resolves: {st:?}");
    // Both applied the other's records after their own, so modseqs differed until node 1
    // aligned them (`converge` compares modseqs and HIGHESTMODSEQ too).
    assert!(st.modseqs_aligned >= 1, "node 1 aligns modseqs: {st:?}");
    let sb = b.handle.as_ref().unwrap().status().await;
    assert_eq!(sb.modseqs_aligned, 0, "only the resolver aligns: {sb:?}");
    a.stop().await;
    b.stop().await;
}

/// Both nodes restarted after writing apart, with no UID conflict (so no renumbering to ship
/// afterwards): the modseqs still converge, whichever node's records arrive first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_after_writes_on_both_aligns_modseqs_without_a_uid_conflict() {
    let ca = Ca::new();
    let (mut a, mut b) = pair(&ca, Durability::Local).await;
    let (ua, ub) = (a.user("alice"), b.user("alice"));
    let (_, x) = ua.append(INBOX, b"x\r\n");
    converge(&a, &b, "alice").await;
    a.stop().await;
    b.stop().await;
    // A's append and B's expunge each take INBOX's next modseq; each node applies the other's
    // change after its own.
    ua.append(INBOX, b"a1\r\n");
    ub.expunge(INBOX, vec![x]);
    restart(&mut b, &ca, &a, Durability::Local).await;
    restart(&mut a, &ca, &b, Durability::Local).await;
    converge(&a, &b, "alice").await;
    let st = a.handle.as_ref().unwrap().status().await;
    assert!(st.modseqs_aligned >= 1, "{st:?}");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicated_durability_waits_for_ack_then_degrades_and_recovers() {
    let ca = Ca::new();
    let (mut a, mut b) = pair(&ca, Durability::Replicated).await;
    let h = a.handle.clone().unwrap();
    let ua = a.user("alice");
    ua.append(INBOX, b"one\r\n");
    assert_eq!(
        h.wait_replicated("alice", Duration::from_secs(5)).await,
        ReplicaWait::Acked(2)
    );
    b.stop().await;
    ua.append(INBOX, b"two\r\n");
    assert_eq!(
        h.wait_replicated("alice", Duration::from_millis(300)).await,
        ReplicaWait::TimedOut
    );
    assert!(h.is_degraded());
    ua.append(INBOX, b"three\r\n");
    assert_eq!(
        h.wait_replicated("alice", Duration::from_millis(300)).await,
        ReplicaWait::Degraded
    );
    restart(&mut b, &ca, &a, Durability::Replicated).await;
    eventually("recovered from degraded", || !h.is_degraded()).await;
    converge(&a, &b, "alice").await;
    assert_eq!(h.status().await.degraded_events, 1);
    a.stop().await;
    b.stop().await;
}

fn hostile_records(user_in_sum: &str, r: Record) -> Vec<WireRecord> {
    vec![WireRecord::encode(user_in_sum, &r).unwrap()]
}

/// `raw` as the store keeps it, the way it travels.
fn stored(raw: &[u8]) -> wire::StoredBody {
    storage::pack::prepare(raw).unwrap().into()
}

/// A hostile Object frame followed by the Records frame that appends it.
fn with_append(object: Message) -> Vec<Message> {
    vec![
        object,
        Message::Records {
            user: "alice".into(),
            records: hostile_records("alice", rec(1, append_op(1, b"evil\r\n"))),
        },
    ]
}

fn append_op(uid: u32, raw: &[u8]) -> Op {
    Op::Append {
        mailbox: INBOX,
        entry: NewEntry {
            guid: Guid([9; 16]),
            uid,
            object: ObjectId::of(raw),
            size: raw.len() as u64,
            internal_date: 0,
            internal_date_tz_min: 0,
            flags: Flags::new(),
        },
        modseq: 1,
        delivery_key: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_peer_is_disconnected_and_nothing_applied() {
    let ca = Ca::new();
    let mut a = lone_node(&ca).await;
    let addr = a.addr.clone();
    let h = a.handle.clone().unwrap();
    let before = a.user("alice").dump();
    let tls2 = ca.tls(2);

    let mut good =
        WireRecord::encode("alice", &rec(1, Op::Subscribe { name: "ok".into() })).unwrap();
    good.sum[0] ^= 0xff;
    let mut other_user = hostile_records("bob", rec(1, Op::Subscribe { name: "x".into() }));
    let raw = b"evil\r\n";
    let cases: Vec<(&str, Vec<Message>)> = vec![
        (
            "bad checksum",
            vec![Message::Records {
                user: "alice".into(),
                records: vec![good],
            }],
        ),
        (
            "another user's record",
            vec![Message::Records {
                user: "alice".into(),
                records: std::mem::take(&mut other_user),
            }],
        ),
        (
            "mailbox name with ../ (after a valid record in the same frame)",
            vec![Message::Records {
                user: "alice".into(),
                records: [
                    hostile_records(
                        "alice",
                        rec(
                            1,
                            Op::Subscribe {
                                name: "fine".into(),
                            },
                        ),
                    ),
                    hostile_records(
                        "alice",
                        rec(
                            2,
                            Op::MailboxRename {
                                mailbox: INBOX,
                                new_name: "../../etc".into(),
                            },
                        ),
                    ),
                ]
                .concat(),
            }],
        ),
        (
            "object failing its hash",
            vec![Message::Object {
                user: "alice".into(),
                id: ObjectId([7; 32]),
                body: stored(raw),
            }],
        ),
        // Objects travel compressed (protocol 3); each lie below is refused at the Object
        // frame, and the Records that would use it never apply.
        (
            "corrupted compressed body",
            with_append(Message::Object {
                user: "alice".into(),
                id: ObjectId::of(raw),
                body: {
                    let mut b = stored(raw);
                    let n = b.zstd.0.len();
                    b.zstd.0[n / 2] ^= 0xff;
                    b.zstd.0.truncate(n - 1);
                    b
                },
            }),
        ),
        (
            "compressed body decompressing to another object",
            with_append(Message::Object {
                user: "alice".into(),
                id: ObjectId::of(raw),
                body: stored(b"good\r\n"),
            }),
        ),
        (
            "zip bomb: small raw length claimed, 64 MiB inside",
            with_append(Message::Object {
                user: "alice".into(),
                id: ObjectId::of(raw),
                body: wire::StoredBody {
                    raw_len: raw.len() as u64,
                    zstd: Raw(zstd::bulk::compress(&vec![b'a'; 64 << 20], 1).unwrap()),
                },
            }),
        ),
        (
            "raw length claimed beyond a frame",
            with_append(Message::Object {
                user: "alice".into(),
                id: ObjectId::of(raw),
                body: wire::StoredBody {
                    raw_len: 1 << 40,
                    zstd: stored(raw).zstd,
                },
            }),
        ),
        (
            "path in user name",
            vec![Message::GetVersionVector {
                user: "../alice".into(),
            }],
        ),
        (
            "sequence gap",
            vec![Message::Records {
                user: "alice".into(),
                records: hostile_records("alice", rec(5, append_op(1, raw))),
            }],
        ),
        (
            "unexpected message kind",
            vec![Message::Ack {
                user: "alice".into(),
                vv: Default::default(),
            }],
        ),
    ];
    let n_cases = cases.len() as u64;
    for (what, msgs) in cases {
        let mut c = connect_as_node_2(&tls2, &addr).await.unwrap();
        for m in &msgs {
            c.send(m).await.unwrap();
        }
        let r = c.recv_timeout(Duration::from_secs(5), "close").await;
        assert!(r.is_err(), "{what}: connection must be closed, got {r:?}");
    }
    // Raw frames: trailing garbage, undecodable bytes, an absurd length prefix.
    let mut frame = wire::encode(&Message::Ping).unwrap().to_vec();
    frame.extend_from_slice(b"junk");
    for f in [frame, vec![0xff; 32]] {
        let mut c = connect_as_node_2(&tls2, &addr).await.unwrap();
        c.send_raw(f.into()).await.unwrap();
        assert!(c
            .recv_timeout(Duration::from_secs(5), "close")
            .await
            .is_err());
    }
    {
        use tokio::io::AsyncWriteExt;
        let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let mut s = tokio_rustls::TlsConnector::from(tls2.client.clone())
            .connect(replication::tls::server_name_for(1).unwrap(), tcp)
            .await
            .unwrap();
        let hello = wire::encode(&Message::Hello {
            version: wire::PROTOCOL_VERSION,
            node: 2,
            time: HlcTime::default(),
        })
        .unwrap();
        s.write_all(&(hello.len() as u32).to_be_bytes())
            .await
            .unwrap();
        s.write_all(&hello).await.unwrap();
        s.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        s.flush().await.unwrap();
        let mut buf = vec![0u8; 1024];
        use tokio::io::AsyncReadExt;
        // Hello back, then end of stream.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let n = tokio::time::timeout_at(deadline, s.read(&mut buf))
                .await
                .expect("server must close")
                .unwrap_or(0);
            if n == 0 {
                break;
            }
        }
    }
    let st = h.status().await;
    assert!(st.refused_frames >= n_cases + 2, "{st:?}");
    assert_eq!(a.user("alice").dump(), before, "nothing applied");
    // A well-behaved peer still works afterwards.
    still_serving(&tls2, &addr).await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_user_exchanges_both_ways_and_reports() {
    let ca = Ca::new();
    let (a_store, ua, mut b, ub) = offline_store_and_peer().await;
    for i in 0..20 {
        ua.append(INBOX, format!("a{i}\r\n").as_bytes());
    }
    let other = Guid([2; 16]);
    for i in 0..5 {
        ub.append(other, format!("b{i}\r\n").as_bytes());
    }
    // B runs; A is offline (not listening): `node sync` on A.
    b.start_with_absent_peer(&ca, 1).await;
    let report = sync_alice(&ca, &a_store, &b, false, true).await;
    assert_eq!(report.pushed_records, 20, "{report}");
    assert_eq!(report.pushed_objects, 20, "{report}");
    assert_eq!(report.pulled_records, 5, "{report}");
    assert_eq!(report.pulled_objects, 5, "{report}");
    assert_eq!(ua.dump(), ub.dump());
    // Incremental: nothing more to move.
    let again = sync_alice(&ca, &a_store, &b, false, true).await;
    assert_eq!((again.pushed_records, again.pulled_records), (0, 0));
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_sync_finds_divergence_the_vectors_cannot_see() {
    let ca = Ca::new();
    let (a_store, ua, mut b, ub) = offline_store_and_peer().await;
    for i in 0..10 {
        ua.append(INBOX, format!("a{i}\r\n").as_bytes());
    }
    b.start_with_absent_peer(&ca, 1).await;
    let sync = |full| sync_alice(&ca, &a_store, &b, full, true);
    let r = sync(true).await;
    assert!(r.diverged.is_empty() && !r.rebuilt_local_index, "{r}");
    // This node's index loses a message behind its log's back: full sync rebuilds it.
    ua.lose_from_index(INBOX, 3);
    assert!(
        sync(false).await.diverged.is_empty(),
        "incremental cannot see it"
    );
    let r = sync(true).await;
    assert!(r.rebuilt_local_index && r.diverged.is_empty(), "{r}");
    assert_eq!(ua.dump(), ub.dump());
    // The peer's index loses one: reported with the UID, and what to do.
    ub.lose_from_index(INBOX, 7);
    let r = sync(true).await;
    assert_eq!(r.diverged.len(), 1, "{r}");
    assert_eq!(r.diverged[0].only_here, vec![7]);
    assert!(r.to_string().contains("force-resync"), "{r}");
    b.stop().await;
}

/// Both nodes applied the same records in different orders: same messages, other modseqs. A
/// full sync by a node that does not resolve reports it without rebuilding anything; the
/// resolver's sync aligns it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_sync_aligns_a_difference_only_in_modseqs() {
    let ca = Ca::new();
    let (a_store, ua, mut b, ub) = offline_store_and_peer().await;
    let (_, x) = ua.append(INBOX, b"x\r\n");
    b.start_with_absent_peer(&ca, 1).await;
    let sync = |full, resolve| sync_alice(&ca, &a_store, &b, full, resolve);
    sync(false, true).await;
    assert_eq!(ua.dump(), ub.dump());
    // Apart: A appends (INBOX's next modseq), B expunges x (INBOX's next modseq): each applies
    // the other's change after its own, so the new message's modseq differs.
    ua.append(INBOX, b"a1\r\n");
    ub.expunge(INBOX, vec![x]);
    let r = sync(true, false).await;
    let (da, db) = (ua.dump(), ub.dump());
    assert_eq!(da.index, db.index, "same messages");
    assert_ne!(da.modseqs, db.modseqs, "other modseqs");
    assert!(r.diverged.is_empty() && !r.rebuilt_local_index, "{r}");
    assert_eq!(r.modseqs_differ, vec![INBOX.to_hex()], "{r}");
    assert!(r.to_string().contains("modseqs differ"), "{r}");
    assert_eq!(r.modseqs_aligned, 0);
    // The resolver's full sync aligns them (one AlignModseqs, applied on both).
    let r = sync(true, true).await;
    assert_eq!(r.modseqs_aligned, 1, "{r}");
    assert!(r.modseqs_differ.is_empty() && r.diverged.is_empty(), "{r}");
    assert_eq!(ua.dump(), ub.dump());
    let high = ua.dump().modseqs[&INBOX].0;
    assert!(high > da.modseqs[&INBOX].0.max(db.modseqs[&INBOX].0));
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_converge_and_only_node_1_resolves() {
    let ca = Ca::new();
    let mut nodes = vec![Node::new(1).await, Node::new(2).await, Node::new(3).await];
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    let peers_of = |id: u32| -> Vec<(u32, String)> {
        (1..=3u32)
            .filter(|&p| p != id)
            .map(|p| (p, addrs[p as usize - 1].clone()))
            .collect()
    };
    for n in nodes.iter_mut() {
        n.user("alice");
        let peers = peers_of(n.id);
        n.start(&ca, &peers, Durability::Local).await;
    }
    let (_, g1) = nodes[0].user("alice").append(INBOX, b"from node 1\r\n");
    let all_have = |nodes: &[Node], g: Guid| {
        nodes.iter().all(|n| {
            n.user("alice")
                .dump()
                .index
                .get(&INBOX)
                .is_some_and(|m| m.values().any(|x| *x == g))
        })
    };
    eventually("node 1's message everywhere", || all_have(&nodes, g1)).await;
    // Split: nodes 2 and 3 both write while everything is down, then all come back.
    for n in nodes.iter_mut() {
        n.stop().await;
    }
    let (u2, g2) = nodes[1].user("alice").append(INBOX, b"from node 2\r\n");
    let (u3, g3) = nodes[2].user("alice").append(INBOX, b"from node 3\r\n");
    assert_eq!(u2, u3);
    for n in nodes.iter_mut() {
        let peers = peers_of(n.id);
        n.start(&ca, &peers, Durability::Local).await;
    }
    eventually("three identical states", || {
        let d: Vec<_> = nodes.iter().map(|n| n.user("alice").dump()).collect();
        d[0] == d[1] && d[1] == d[2] && d[0].pending == 0
    })
    .await;
    assert!(all_have(&nodes, g2) && all_have(&nodes, g3));
    let idx = nodes[0].user("alice").dump().index[&INBOX].clone();
    assert_eq!(idx.len(), 3);
    assert!(!idx.contains_key(&u2), "contested UID retired: {idx:?}");
    // Every renumbering was written by node 1.
    let renumbers: Vec<u32> = nodes[0]
        .user("alice")
        .dump()
        .records
        .values()
        .filter(|r| matches!(r.op, Op::Renumber { .. }))
        .map(|r| r.origin)
        .collect();
    assert!(
        !renumbers.is_empty() && renumbers.iter().all(|&o| o == 1),
        "{renumbers:?}"
    );
    // Modseqs were compared too (the dumps hold them); any alignment is node 1's, and it
    // reached the third node (identical record sets above).
    let aligns: Vec<u32> = nodes[2]
        .user("alice")
        .dump()
        .records
        .values()
        .filter(|r| matches!(r.op, Op::AlignModseqs { .. }))
        .map(|r| r.origin)
        .collect();
    assert!(aligns.iter().all(|&o| o == 1), "{aligns:?}");
    for n in nodes.iter_mut() {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_that_cannot_be_shipped_does_not_hold_back_others() {
    let ca = Ca::new();
    let (mut a, mut b) = pair(&ca, Durability::Local).await;
    a.stop().await;
    let broken = a.user("broken");
    broken.append(INBOX, b"lost object\r\n");
    broken.forget_object(&ObjectId::of(b"lost object\r\n"));
    let (ua, ub) = (a.user("alice"), b.user("alice"));
    let peer = (b.id, b.addr.clone());
    a.start(&ca, &[peer], Durability::Local).await;
    for i in 0..20 {
        ua.append(INBOX, format!("m{i}\r\n").as_bytes());
    }
    eventually("alice shipped despite broken", || {
        ub.dump().index.get(&INBOX).is_some_and(|m| m.len() == 20)
    })
    .await;
    // The broken user was tried (and is retried later) on the same, still connected lane.
    let h = a.handle.clone().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let st = h.status().await;
        let tried = st.peers[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("broken"));
        if tried {
            assert!(st.peers[0].connected, "{st:?}");
            assert!(
                st.peers[0].behind.iter().any(|u| u.user == "broken"),
                "{st:?}"
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{st:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_lost_its_log_takes_its_own_changes_back_from_the_peer() {
    let ca = Ca::new();
    let (mut a, mut b) = pair(&ca, Durability::Local).await;
    let ua = a.user("alice");
    let first: Vec<_> = (0..5)
        .map(|i| ua.append(INBOX, format!("m{i}\r\n").as_bytes()))
        .collect();
    converge(&a, &b, "alice").await;
    // A's disk is replaced by an empty one (same node id).
    a.stop().await;
    a.store = MemStore::new(1);
    a.user("alice");
    let peer = (b.id, b.addr.clone());
    a.start(&ca, &[peer], Durability::Local).await;
    let ua = a.user("alice");
    eventually("own changes back", || {
        ua.dump().index.get(&INBOX).is_some_and(|m| m.len() == 5)
    })
    .await;
    let (uid, _) = ua.append(INBOX, b"new after restore\r\n");
    assert!(uid > first.last().unwrap().0, "UIDs are not reused");
    converge(&a, &b, "alice").await;
    assert_eq!(ua.dump().records.len(), 6);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_frames_from_a_peer_never_break_the_node() {
    let ca = Ca::new();
    let mut a = lone_node(&ca).await;
    let addr = a.addr.clone();
    let before = a.user("alice").dump();
    let tls2 = ca.tls(2);
    // Valid frames with bytes flipped, truncated or extended, and pure noise: 300 frames in
    // all, bounded in time.
    let seed_msgs = [
        wire::encode(&Message::Records {
            user: "alice".into(),
            records: hostile_records("alice", rec(1, append_op(1, b"x"))),
        })
        .unwrap(),
        wire::encode(&Message::GetVersionVector {
            user: "alice".into(),
        })
        .unwrap(),
        wire::encode(&Message::Pull {
            user: "alice".into(),
            have: Default::default(),
            limit: 10,
        })
        .unwrap(),
    ];
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut c = connect_as_node_2(&tls2, &addr).await.unwrap();
    for i in 0..300u32 {
        assert!(tokio::time::Instant::now() < deadline, "took too long");
        let mut f = seed_msgs[(rnd() % 3) as usize].to_vec();
        match rnd() % 4 {
            0 => {
                let n = f.len();
                for _ in 0..1 + rnd() % 4 {
                    f[(rnd() as usize) % n] ^= (rnd() % 255 + 1) as u8;
                }
            }
            1 => f.truncate((rnd() as usize) % f.len()),
            2 => f.extend((0..rnd() % 16).map(|_| rnd() as u8)),
            _ => f = (0..rnd() % 64).map(|_| rnd() as u8).collect(),
        }
        if c.send_raw(f.into()).await.is_err() {
            c = connect_as_node_2(&tls2, &addr)
                .await
                .unwrap_or_else(|e| panic!("node stopped accepting after frame {i}: {e}"));
            continue;
        }
        // Whatever came back (an answer, an Error, or the end of the connection), move on;
        // reconnect when the node hung up.
        if c.recv_timeout(Duration::from_millis(500), "answer")
            .await
            .is_err()
        {
            c = connect_as_node_2(&tls2, &addr)
                .await
                .unwrap_or_else(|e| panic!("node stopped accepting after frame {i}: {e}"));
        }
    }
    // Still serving, and nothing that failed its checks was applied.
    drop(c);
    still_serving(&tls2, &addr).await;
    let after = a.user("alice").dump();
    assert!(
        after.records.len() <= before.records.len() + 1,
        "at most the one valid record"
    );
    a.stop().await;
}
