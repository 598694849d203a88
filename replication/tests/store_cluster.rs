//! Two nodes with real `storage::Store`s in temporary directories, replicating over TCP on
//! 127.0.0.1 with mutual TLS.

mod common;

use common::{rec, Ca, Dump, Modseqs};
use replication::*;
use std::sync::Arc;
use std::time::Duration;
use storage::{Flag, FlagMode, Flags, Guid, NewMessage, Store};

use common::store_node::Node;

impl Node {
    async fn start(&mut self, ca: &Ca, peer: (u32, &str)) {
        start_tuned(self, ca, peer, |_| {}).await;
    }
}

async fn modseqs(store: &Arc<Store>, user: &str) -> Modseqs {
    let (store, user) = (store.clone(), user.to_string());
    tokio::task::spawn_blocking(move || common::modseqs(&store.user(&user).unwrap()))
        .await
        .unwrap()
}

async fn dump(store: &Arc<Store>, user: &str) -> Dump {
    let (store, user) = (store.clone(), user.to_string());
    tokio::task::spawn_blocking(move || common::dump(&store.user(&user).unwrap()))
        .await
        .unwrap()
}

/// INBOX's messages (UID, GUID, flags) in `d`.
fn inbox_of(d: &Dump) -> &Vec<(u32, Guid, Flags)> {
    &d.values().find(|m| m.0 == "INBOX").unwrap().3
}

async fn converge(a: &Node, b: &Node, user: &str) -> Dump {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (da, db) = (dump(&a.store(), user).await, dump(&b.store(), user).await);
        let (ma, mb) = (
            modseqs(&a.store(), user).await,
            modseqs(&b.store(), user).await,
        );
        if da == db && ma == mb {
            return da;
        }
        if tokio::time::Instant::now() > deadline {
            assert_eq!(da, db, "nodes did not converge");
            assert_eq!(ma, mb, "modseqs did not converge");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn append(store: &Arc<Store>, user: &str, mailbox: &str, body: &str) -> storage::AppendOutcome {
    let raw = format!("From: a@example.org\r\nSubject: {body}\r\n\r\n{body}\r\n");
    store
        .user(user)
        .unwrap()
        .append(
            mailbox,
            NewMessage {
                raw: raw.as_bytes(),
                flags: Flags::new(),
                internal_date: None,
                delivery_key: None,
            },
        )
        .unwrap()
}

async fn pair(ca: &Ca) -> (Node, Node) {
    let (mut a, mut b) = (Node::new(1).await, Node::new(2).await);
    start_both(ca, &mut a, &mut b).await;
    (a, b)
}

/// Starts `a` and `b`, each with the other as its peer.
async fn start_both(ca: &Ca, a: &mut Node, b: &mut Node) {
    let (aa, ba) = (a.addr.clone(), b.addr.clone());
    a.start(ca, (b.id, &ba)).await;
    b.start(ca, (a.id, &aa)).await;
}

/// A running pair that has replicated one message to both, then stopped: what each writes
/// now, it writes apart; [`start_both`] heals the split.
async fn split_pair(ca: &Ca) -> (Node, Node) {
    let (mut a, mut b) = pair(ca).await;
    append(&a.store(), "alice", "INBOX", "before");
    converge(&a, &b, "alice").await;
    a.stop().await;
    b.stop().await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_on_a_is_on_b_with_same_uid_and_guid() {
    let ca = Ca::new();
    let (mut a, mut b) = pair(&ca).await;
    let out = append(&a.store(), "alice", "INBOX", "hello");
    let d = converge(&a, &b, "alice").await;
    let inbox = inbox_of(&d);
    assert_eq!(inbox.len(), 1);
    assert_eq!((inbox[0].0, inbox[0].1), (out.uid, out.guid));
    // The object came along: B can read the message.
    let bs = b.store();
    let obj = bs.user("alice").unwrap().messages("INBOX").unwrap()[0].object;
    let raw = bs.user("alice").unwrap().read_message(&obj).unwrap();
    assert!(String::from_utf8_lossy(&raw).contains("Subject: hello"));
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_stopped_then_restarted_catches_up() {
    let ca = Ca::new();
    let (mut a, mut b) = pair(&ca).await;
    append(&a.store(), "alice", "INBOX", "first");
    converge(&a, &b, "alice").await;
    b.stop().await;
    for i in 0..50 {
        append(&a.store(), "alice", "INBOX", &format!("m{i}"));
    }
    let au = a.store().user("alice").unwrap();
    au.store_flags(
        "INBOX",
        &[1, 2],
        FlagMode::Add,
        &[Flag::Seen].into_iter().collect(),
        None,
    )
    .unwrap();
    au.expunge("INBOX", &[3]).unwrap();
    au.create_mailbox("Lists/rust", None).unwrap();
    let aa = a.addr.clone();
    b.start(&ca, (1, &aa)).await;
    let d = converge(&a, &b, "alice").await;
    let inbox = inbox_of(&d);
    assert_eq!(inbox.len(), 50);
    assert!(d.values().any(|m| m.0 == "Lists/rust"));
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_on_both_while_disconnected_converge() {
    let ca = Ca::new();
    let (mut a, mut b) = split_pair(&ca).await;
    let oa = append(&a.store(), "alice", "INBOX", "only on a");
    let ob = append(&b.store(), "alice", "INBOX", "only on b");
    assert_eq!(oa.uid, ob.uid, "both took the same UID while apart");
    append(&b.store(), "alice", "INBOX", "second on b");
    a.store()
        .user("alice")
        .unwrap()
        .store_flags("INBOX", &[1], FlagMode::Add, &[Flag::Flagged].into(), None)
        .unwrap();
    b.store()
        .user("alice")
        .unwrap()
        .store_flags("INBOX", &[1], FlagMode::Add, &[Flag::Seen].into(), None)
        .unwrap();
    start_both(&ca, &mut a, &mut b).await;
    let d = converge(&a, &b, "alice").await;
    let inbox = inbox_of(&d);
    let guids: Vec<Guid> = inbox.iter().map(|m| m.1).collect();
    assert_eq!(inbox.len(), 4, "nothing lost: {inbox:?}");
    assert!(guids.contains(&oa.guid) && guids.contains(&ob.guid));
    assert!(
        !inbox.iter().any(|m| m.0 == oa.uid),
        "the contested UID is retired: {inbox:?}"
    );
    let first = &inbox[0];
    assert!(first.2.contains(&Flag::Seen) && first.2.contains(&Flag::Flagged));
    // `converge` also compared modseqs: they differed (each node applied the other's changes
    // after its own) until node 1, the resolver, aligned them.
    let st = a.handle.as_ref().unwrap().status().await;
    assert!(st.modseqs_aligned >= 1, "{st:?}");
    let m = modseqs(&a.store(), "alice").await;
    let inbox_id = d.iter().find(|(_, m)| m.0 == "INBOX").map(|(id, _)| *id);
    let (high, msgs) = &m[&inbox_id.unwrap()];
    assert!(msgs.iter().all(|(_, ms)| ms <= high), "{m:?}");
    a.stop().await;
    b.stop().await;
}

/// Writes only on A (active/passive, the common case): no modseq comparison after the first
/// turns and no `AlignModseqs` record, however long the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_writer_stream_triggers_no_modseq_alignment() {
    let ca = Ca::new();
    let (mut a, mut b) = pair(&ca).await;
    // Warm-up: both nodes' first records (each creates the user's default mailboxes) meet.
    for i in 0..2 {
        append(&a.store(), "alice", "INBOX", &format!("warm-up {i}"));
        converge(&a, &b, "alice").await;
    }
    let h = a.handle.clone().unwrap();
    let mut checks = h.status().await.modseq_checks;
    let settle = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = h.status().await.modseq_checks;
        if now == checks || tokio::time::Instant::now() > settle {
            break;
        }
        checks = now;
    }
    for i in 0..150 {
        append(&a.store(), "alice", "INBOX", &format!("stream {i}"));
        if i % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let d = converge(&a, &b, "alice").await;
    assert_eq!(inbox_of(&d).len(), 152);
    let st = h.status().await;
    assert_eq!(
        st.modseq_checks, checks,
        "no comparison during the stream: {st:?}"
    );
    assert_eq!(st.modseqs_aligned, 0, "{st:?}");
    for n in [&a, &b] {
        let recs = n
            .store()
            .user("alice")
            .unwrap()
            .records_since(&storage::VersionVector::new(), 100_000)
            .unwrap();
        assert!(
            !recs
                .iter()
                .any(|r| matches!(r.op, storage::record::Op::AlignModseqs { .. })),
            "no AlignModseqs record on node {}",
            n.id
        );
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_with_clock_stepped_back_an_hour_keeps_replicating() {
    let ca = Ca::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let clock = storage::hlc::ManualClock::new(now);
    let mut a = Node::with_clock(1, clock.clone()).await;
    let mut b = Node::new(2).await;
    start_both(&ca, &mut a, &mut b).await;
    let first = append(&a.store(), "alice", "INBOX", "before the step");
    converge(&a, &b, "alice").await;
    clock.set(now - 3_600_000);
    let second = append(&a.store(), "alice", "INBOX", "after the step");
    assert!(second.uid > first.uid);
    assert!(second.guid != first.guid);
    // B writes too, and A must still order its changes after what it has seen.
    let third = append(&b.store(), "alice", "INBOX", "from b");
    let d = converge(&a, &b, "alice").await;
    let inbox = inbox_of(&d);
    let uids: Vec<u32> = inbox.iter().map(|m| m.0).collect();
    assert_eq!(inbox.len(), 3, "{inbox:?}");
    assert!(uids.windows(2).all(|w| w[0] < w[1]));
    assert!(inbox.iter().any(|m| m.1 == third.guid));
    assert!(a.store().clock().backward_steps() >= 1);
    a.stop().await;
    b.stop().await;
}

// ---- purge and replication (purged objects of expunged messages) ----

/// Starts replication on `n` with `tune` applied to its configuration (small batches, so a
/// test reaches the batch cut with few messages).
async fn start_tuned(
    n: &mut Node,
    ca: &Ca,
    peer: (u32, &str),
    tune: impl FnOnce(&mut ReplicationConfig),
) {
    start_peers_tuned(n, ca, &[(peer.0, peer.1.to_string())], tune).await;
}

/// Starts replication on `n` with `peers` and `tune` applied to its configuration.
async fn start_peers_tuned(
    n: &mut Node,
    ca: &Ca,
    peers: &[(u32, String)],
    tune: impl FnOnce(&mut ReplicationConfig),
) {
    n.start_with(ca, peers, Duration::from_secs(10), tune).await;
}

fn uid_of(store: &Arc<Store>, user: &str, mailbox: &str, guid: Guid) -> u32 {
    let u = store.user(user).unwrap();
    u.messages(mailbox)
        .unwrap()
        .into_iter()
        .find(|m| m.guid == guid)
        .map(|m| m.uid)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_down_during_append_expunge_and_purge_converges() {
    let ca = Ca::new();
    let mut a = Node::new(1).await;
    let mut b = Node::new(2).await;
    let (aa, ba) = (a.addr.clone(), b.addr.clone());
    // Batches of 4 records on A: the cut falls between an append and its expunge.
    start_tuned(&mut a, &ca, (2, &ba), |c| c.batch_records = 4).await;
    b.start(&ca, (1, &aa)).await;
    append(&a.store(), "alice", "INBOX", "before");
    converge(&a, &b, "alice").await;
    b.stop().await;

    let sa = a.store();
    let doomed = append(&sa, "alice", "INBOX", "doomed");
    let doomed_object = sa
        .user("alice")
        .unwrap()
        .messages("INBOX")
        .unwrap()
        .into_iter()
        .find(|m| m.guid == doomed.guid)
        .unwrap()
        .object;
    let copied = append(&sa, "alice", "INBOX", "copied then both expunged");
    let au = sa.user("alice").unwrap();
    au.copy("INBOX", &[copied.uid], "Archive").unwrap();
    let kept: Vec<_> = (0..10)
        .map(|i| append(&sa, "alice", "INBOX", &format!("kept {i}")))
        .collect();
    au.expunge("INBOX", &[doomed.uid, copied.uid]).unwrap();
    let archived = au.messages("Archive").unwrap();
    au.expunge("Archive", &[archived[0].uid]).unwrap();
    let report = au.purge().unwrap();
    assert_eq!(report.objects_removed, 2, "{report:?}");
    assert!(!au.has_object(&doomed_object).unwrap());

    b.start(&ca, (1, &aa)).await;
    let d = converge(&a, &b, "alice").await;
    let inbox = inbox_of(&d);
    assert_eq!(inbox.len(), 11, "{inbox:?}");
    // What B holds is readable, and nothing expunged on A is visible there.
    let bu = b.store().user("alice").unwrap();
    for m in bu.messages("INBOX").unwrap() {
        bu.read_message(&m.object).unwrap();
    }
    assert!(bu.messages("Archive").unwrap().is_empty());
    let last = kept.last().unwrap();
    assert_eq!(uid_of(&b.store(), "alice", "INBOX", last.guid), last.uid);
    let st = a.handle.as_ref().unwrap().status().await;
    assert!(st.peers[0].last_error.is_none(), "{st:?}");

    // A new, empty node pulls the user's whole history from A (`node sync` on it).
    let c = Node::new(2).await;
    let peer = PeerConfig {
        id: 1,
        addr: aa.clone(),
    };
    let r = replication::sync::sync_user_with_store(
        &ca.tls(2),
        c.store(),
        &peer,
        "alice",
        false,
        false,
    )
    .await
    .unwrap();
    assert!(r.to_string().contains("received"), "{r}");
    assert_eq!(dump(&c.store(), "alice").await, d);
    a.stop().await;
    b.stop().await;
}

/// A peer that sends an Append without its object (purged there) makes a ghost here: accepted,
/// never visible, until its removal comes in a later frame. One whose bodiless Append names a
/// message visible here contradicts itself: refused as a protocol violation, and nothing of its
/// frame is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_lying_about_a_purged_object_is_refused() {
    use replication::conn::Conn;
    use replication::wire::{Message, WireRecord};
    use storage::record::{NewEntry, Op, Record};
    use storage::{HlcTime, ObjectId};

    let ca = Ca::new();
    let mut a = Node::new(1).await;
    a.start(&ca, (2, "127.0.0.1:1")).await;
    let mine = append(&a.store(), "alice", "INBOX", "mine");
    let mbs = a.store().user("alice").unwrap().list_mailboxes().unwrap();
    let inbox = mbs.iter().find(|m| m.name == "INBOX").unwrap().id;
    let trash = mbs.iter().find(|m| m.name == "Trash").unwrap().id;
    let before = dump(&a.store(), "alice").await;

    let bodiless_as = |seq: u64, guid: Guid| {
        rec(
            seq,
            Op::Append {
                mailbox: inbox,
                entry: NewEntry {
                    guid,
                    uid: 76 + seq as u32,
                    object: ObjectId::of(b"a body nobody sent"),
                    size: 18,
                    internal_date: 0,
                    internal_date_tz_min: 0,
                    flags: Flags::new(),
                },
                modseq: 1,
                delivery_key: None,
            },
        )
    };
    let bodiless = bodiless_as(1, Guid([7; 16]));
    let expunge_in = |seq: u64, mailbox| {
        rec(
            seq,
            Op::Expunge {
                mailbox,
                messages: vec![Guid([7; 16])],
                modseq: 2,
            },
        )
    };
    let frame = |recs: Vec<Record>| Message::Records {
        user: "alice".into(),
        records: recs
            .iter()
            .map(|r| WireRecord::encode("alice", r).unwrap())
            .collect(),
    };
    let tls2 = ca.tls(2);
    for (what, recs) in [
        (
            "append without object of a message visible here",
            vec![bodiless_as(1, mine.guid)],
        ),
        (
            "a ghost, then an append without object of a message visible here",
            vec![bodiless.clone(), bodiless_as(2, mine.guid)],
        ),
    ] {
        let mut c = Conn::connect(&tls2, 2, HlcTime::default(), 1, &a.addr)
            .await
            .unwrap();
        c.send(&frame(recs)).await.unwrap();
        let r = c.recv_timeout(Duration::from_secs(5), "close").await;
        assert!(r.is_err(), "{what}: connection must be closed, got {r:?}");
        assert_eq!(
            dump(&a.store(), "alice").await,
            before,
            "{what}: nothing applied"
        );
    }
    let st = a.handle.as_ref().unwrap().status().await;
    assert_eq!(st.refused_frames, 2, "{st:?}");

    // The honest form: a ghost, whatever comes later in other frames, until its removal.
    let mut c = Conn::connect(&tls2, 2, HlcTime::default(), 1, &a.addr)
        .await
        .unwrap();
    let ghosts = || a.store().user("alice").unwrap().ghosts().unwrap().len();
    for (seq, recs, left) in [
        (1, vec![bodiless], 1),
        // An expunge in another mailbox removes nothing.
        (2, vec![expunge_in(2, trash)], 1),
        (3, vec![expunge_in(3, inbox)], 0),
    ] {
        c.send(&frame(recs)).await.unwrap();
        match c.recv_timeout(Duration::from_secs(5), "ack").await.unwrap() {
            Message::Ack { vv, .. } => assert_eq!(vv.get(&2), Some(&seq)),
            m => panic!("expected Ack, got {m:?}"),
        }
        let after = dump(&a.store(), "alice").await;
        assert_eq!(
            after[&inbox].3, before[&inbox].3,
            "the message is not visible"
        );
        assert_eq!(ghosts(), left, "after record {seq}");
    }
    let inbox_now = a.store().user("alice").unwrap().mailbox("INBOX").unwrap();
    assert_eq!(inbox_now.uidnext, 78, "the ghost's UID stays taken");
    assert_eq!(a.handle.as_ref().unwrap().status().await.refused_frames, 2);
    a.stop().await;
}

/// Starts replication on `n` with several peers.
async fn start_peers(n: &mut Node, ca: &Ca, peers: &[(u32, String)]) {
    start_peers_tuned(n, ca, peers, |_| {}).await;
}

/// Three nodes: C is down while A delivers a message that B expunges, and both A and B purge
/// it; C then gets the Append (A's) and the Expunge (B's) from whichever ships first, without
/// the object, and converges with the message never visible.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_purge_on_two_while_the_third_is_down() {
    let ca = Ca::new();
    let mut a = Node::new(1).await;
    let mut b = Node::new(2).await;
    let mut c = Node::new(3).await;
    let addrs = [
        (1, a.addr.clone()),
        (2, b.addr.clone()),
        (3, c.addr.clone()),
    ];
    let others = |me: u32| -> Vec<(u32, String)> {
        addrs.iter().filter(|(i, _)| *i != me).cloned().collect()
    };
    start_peers(&mut a, &ca, &others(1)).await;
    start_peers(&mut b, &ca, &others(2)).await;
    start_peers(&mut c, &ca, &others(3)).await;
    append(&a.store(), "alice", "INBOX", "first");
    converge(&a, &b, "alice").await;
    converge(&a, &c, "alice").await;
    c.stop().await;

    let doomed = append(&a.store(), "alice", "INBOX", "doomed");
    let kept = append(&a.store(), "alice", "INBOX", "kept");
    converge(&a, &b, "alice").await;
    let uid_on_b = uid_of(&b.store(), "alice", "INBOX", doomed.guid);
    b.store()
        .user("alice")
        .unwrap()
        .expunge("INBOX", &[uid_on_b])
        .unwrap();
    converge(&a, &b, "alice").await;
    for n in [&a, &b] {
        let r = n.store().user("alice").unwrap().purge().unwrap();
        assert_eq!(r.objects_removed, 1, "node {}: {r:?}", n.id);
    }

    start_peers(&mut c, &ca, &others(3)).await;
    let d = converge(&a, &c, "alice").await;
    converge(&b, &c, "alice").await;
    let inbox = inbox_of(&d);
    let guids: Vec<Guid> = inbox.iter().map(|m| m.1).collect();
    assert_eq!(guids.len(), 2, "{inbox:?}");
    assert!(guids.contains(&kept.guid) && !guids.contains(&doomed.guid));
    // No batch failed, and no error is left once C is back: a lane that was backing off while
    // another reconnected may still show a connection error for a moment, until it reconnects
    // (backoff_max is 200 ms here), so poll within a deadline.
    for n in [&a, &b] {
        let h = n.handle.as_ref().unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let st = h.status().await;
            if st.peers.iter().all(|p| p.last_error.is_none()) {
                break;
            }
            assert!(
                st.peers.iter().all(|p| p.batches_failed == 0),
                "a batch failed on node {}: {st:?}",
                n.id
            );
            assert!(
                tokio::time::Instant::now() < deadline,
                "node {}: an error is still shown: {st:?}",
                n.id
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(h.status().await.ghosts.is_empty());
    }
    let st = c.handle.as_ref().unwrap().status().await;
    assert_eq!(st.refused_frames, 0);
    // C received the doomed message's Append without its object and its Expunge: no ghost.
    assert!(st.ghosts.is_empty(), "{st:?}");
    a.stop().await;
    b.stop().await;
    c.stop().await;
}

/// While apart, both nodes take the same UID for different messages, and the non-resolver
/// expunges and purges its own before the heal: its Append then travels without its object,
/// together with its removal, so the resolver never holds it pending. The resolver's message
/// must still leave the contested UID (the other node's clients saw that UID name another
/// message), or it stays pending, invisible, on the other node for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contested_uid_whose_other_message_was_purged_is_still_renumbered() {
    let ca = Ca::new();
    let (mut a, mut b) = split_pair(&ca).await;
    let oa = append(&a.store(), "alice", "INBOX", "only on a");
    let ob = append(&b.store(), "alice", "INBOX", "only on b, then purged");
    assert_eq!(oa.uid, ob.uid, "both took the same UID while apart");
    let bu = b.store().user("alice").unwrap();
    bu.expunge("INBOX", &[ob.uid]).unwrap();
    assert_eq!(bu.purge().unwrap().objects_removed, 1);
    drop(bu);
    start_both(&ca, &mut a, &mut b).await;
    let d = converge(&a, &b, "alice").await;
    let inbox = inbox_of(&d);
    let guids: Vec<Guid> = inbox.iter().map(|m| m.1).collect();
    assert_eq!(guids.len(), 2, "{inbox:?}");
    assert!(guids.contains(&oa.guid), "{inbox:?}");
    assert!(
        !inbox.iter().any(|m| m.0 == oa.uid),
        "the contested UID is retired: {inbox:?}"
    );
    a.stop().await;
    b.stop().await;
}

/// INBOX's tombstones (UID, expunge modseq) and HIGHESTMODSEQ on a node.
async fn inbox_tombs(store: &Arc<Store>, user: &str) -> (Vec<(u32, u64)>, u64) {
    let (store, user) = (store.clone(), user.to_string());
    tokio::task::spawn_blocking(move || {
        let u = store.user(&user).unwrap();
        let mb = u.mailbox("INBOX").unwrap();
        let t = u.tombstones(&mb.id).unwrap().unwrap_or_default();
        (
            t.iter().map(|t| (t.uid, t.modseq)).collect(),
            mb.highestmodseq,
        )
    })
    .await
    .unwrap()
}

/// Both nodes expunge different messages while apart; the live stream (the resolver's check
/// after its shipping turn, not `node sync`) makes the expunge modseqs equal, so QRESYNC's
/// `VANISHED (EARLIER)` answers alike on both nodes for every modseq a client could hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expunges_on_both_while_disconnected_get_the_same_modseqs() {
    let ca = Ca::new();
    let (mut a, mut b) = pair(&ca).await;
    let uids: Vec<u32> = (0..6)
        .map(|i| append(&a.store(), "alice", "INBOX", &format!("m{i}")).uid)
        .collect();
    converge(&a, &b, "alice").await;
    a.stop().await;
    b.stop().await;
    let (ua, ub) = (
        a.store().user("alice").unwrap(),
        b.store().user("alice").unwrap(),
    );
    let flagged: Flags = [Flag::Flagged].into();
    ua.store_flags("INBOX", &[uids[5]], FlagMode::Add, &flagged, None)
        .unwrap();
    ua.expunge("INBOX", &[uids[0]]).unwrap();
    ub.expunge("INBOX", &[uids[1]]).unwrap();
    ub.store_flags("INBOX", &[uids[4]], FlagMode::Add, &flagged, None)
        .unwrap();
    ub.expunge("INBOX", &[uids[2]]).unwrap();
    start_both(&ca, &mut a, &mut b).await;
    converge(&a, &b, "alice").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let (ta, tb) = loop {
        let (ta, tb) = (
            inbox_tombs(&a.store(), "alice").await,
            inbox_tombs(&b.store(), "alice").await,
        );
        if ta == tb || tokio::time::Instant::now() > deadline {
            break (ta, tb);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(ta, tb, "expunge modseqs did not converge");
    assert_eq!(ta.0.len(), 3, "{ta:?}");
    for m in 0..=ta.1 {
        assert_eq!(
            ua.changes_since("INBOX", m).unwrap().expunged,
            ub.changes_since("INBOX", m).unwrap().expunged,
            "VANISHED (EARLIER) since modseq {m}"
        );
    }
    a.stop().await;
    b.stop().await;
}

/// A peer's message received without its object (purged there) is counted per user in
/// `status()` and, after the periodic recount, in `counters()` (what /metrics shows); its
/// removal brings both back to zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ghosts_are_counted_in_status_and_counters_until_their_removal() {
    use storage::record::{NewEntry, Op};
    let ca = Ca::new();
    let mut b = Node::new(1).await;
    append(&b.store(), "alice", "INBOX", "mine");
    append(&b.store(), "bob", "INBOX", "his");
    b.start(&ca, (2, "127.0.0.1:1")).await;
    let h = b.handle.clone().unwrap();
    h.track_user("alice").await.unwrap();
    h.track_user("bob").await.unwrap();
    let bu = b.store().user("alice").unwrap();
    let inbox = bu.mailbox("INBOX").unwrap().id;
    let object = storage::ObjectId::of(b"purged at the sender");
    let guid = Guid([7; 16]);
    let insert = rec(
        1,
        Op::Append {
            mailbox: inbox,
            entry: NewEntry {
                guid,
                uid: 77,
                object,
                size: 20,
                internal_date: 0,
                internal_date_tz_min: 0,
                flags: Flags::new(),
            },
            modseq: 1,
            delivery_key: None,
        },
    );
    bu.apply_remote_purged(vec![], &[insert], &[object].into_iter().collect())
        .unwrap();
    assert_eq!(bu.ghosts().unwrap().len(), 1);
    let st = h.status().await;
    assert_eq!(
        st.ghosts,
        vec![UserGhosts {
            user: "alice".into(),
            ghosts: 1
        }],
        "{st:?}"
    );
    let counted = |user: &str| -> Option<u64> {
        h.counters()
            .ghosts
            .iter()
            .find(|g| g.user == user)
            .map(|g| g.ghosts)
    };
    // The status call recounted alice; the rescan keeps the cache current without it.
    assert_eq!(counted("alice"), Some(1));
    assert_eq!(counted("bob"), None, "a user without ghosts is not listed");

    // Its removal arrives: nothing left, and the metric's series goes back to 0.
    let removal = rec(
        2,
        Op::Expunge {
            mailbox: inbox,
            messages: vec![guid],
            modseq: 2,
        },
    );
    bu.apply_remote_purged(vec![], &[removal], &Default::default())
        .unwrap();
    common::eventually("the rescan recounts alice", || counted("alice") == Some(0)).await;
    assert!(h.status().await.ghosts.is_empty());
    b.stop().await;
}

/// Raft mode: the active node renumbers UID conflicts (its renumbering takes UIDs from the same
/// UIDNEXT as its clients' appends), not the lowest node id; while no node is active the
/// conflict waits pending on both, and the node that becomes active resolves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_raft_mode_the_node_that_becomes_active_renumbers() {
    use replication::coord::ActiveView;
    let ca = Ca::new();
    let (mut a, mut b) = split_pair(&ca).await;
    let oa = append(&a.store(), "alice", "INBOX", "only on a");
    let ob = append(&b.store(), "alice", "INBOX", "only on b");
    assert_eq!(oa.uid, ob.uid, "both took the same UID while apart");
    // An election under way: nobody is active.
    let none = ActiveView {
        active: None,
        epoch: 3,
        am_active: false,
    };
    let (tx_a, rx_a) = tokio::sync::watch::channel(none);
    let (tx_b, rx_b) = tokio::sync::watch::channel(none);
    let (aa, ba) = (a.addr.clone(), b.addr.clone());
    start_tuned(&mut a, &ca, (b.id, &ba), move |c| c.epoch = Some(rx_a)).await;
    start_tuned(&mut b, &ca, (a.id, &aa), move |c| c.epoch = Some(rx_b)).await;
    // Both hold both messages' records; the copies wait pending, renumbered by nobody.
    common::eventually("records exchanged", || {
        let va = a.store().user("alice").unwrap().version_vector().unwrap();
        let vb = b.store().user("alice").unwrap().version_vector().unwrap();
        va == vb && va.len() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for n in [&a, &b] {
        let p = n
            .store()
            .user("alice")
            .unwrap()
            .pending_conflicts("INBOX")
            .unwrap();
        assert!(!p.is_empty(), "node {}: the conflict is not pending", n.id);
    }
    // Node 2 wins the election.
    let won = ActiveView {
        active: Some(2),
        epoch: 4,
        am_active: false,
    };
    tx_a.send(won).unwrap();
    tx_b.send(ActiveView {
        am_active: true,
        ..won
    })
    .unwrap();
    common::eventually("the conflict renumbered on both", || {
        [&a, &b].iter().all(|n| {
            let u = n.store().user("alice").unwrap();
            u.pending_conflicts("INBOX").unwrap().is_empty()
                && u.messages("INBOX").unwrap().len() == 3
        })
    })
    .await;
    let d = converge(&a, &b, "alice").await;
    let inbox = inbox_of(&d);
    let guids: Vec<Guid> = inbox.iter().map(|m| m.1).collect();
    assert!(
        guids.contains(&oa.guid) && guids.contains(&ob.guid),
        "{inbox:?}"
    );
    assert!(!inbox.iter().any(|m| m.0 == oa.uid), "{inbox:?}");
    // The renumbering is node 2's record, none is node 1's (node 1 wrote only its append).
    let recs = a
        .store()
        .user("alice")
        .unwrap()
        .records_since(&storage::VersionVector::new(), 100_000)
        .unwrap();
    let renumbered_by: Vec<u32> = recs
        .iter()
        .filter(|r| matches!(r.op, storage::record::Op::Renumber { .. }))
        .map(|r| r.origin)
        .collect();
    assert_eq!(renumbered_by, vec![2]);
    a.stop().await;
    b.stop().await;
}

/// Raft mode: a node elected again after a stint as the active node that was cut off holds
/// writes of that stint no peer confirmed, hidden from its readers with every later change of
/// their mailboxes. Before it takes the role, it gets them confirmed (the fifth 30-minute jepsen
/// run: a reader saw HIGHESTMODSEQ 7239 on the previous active node, then 7193 on the new one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_about_to_become_active_first_gets_its_hidden_writes_confirmed() {
    use replication::coord::ActiveView;
    let ca = Ca::new();
    let (mut a, mut b) = split_pair(&ca).await;
    a.reopen_store_hiding_unconfirmed();
    let cut_off = append(&a.store(), "alice", "INBOX", "written while cut off");
    let ua = a.store().user("alice").unwrap();
    assert!(ua.has_unconfirmed());
    let inbox = ua.mailbox("INBOX").unwrap();
    let limit = ua.visible_limit(&inbox.id).expect("the write is hidden");
    assert!(limit.uidnext <= cut_off.uid);
    // Node 2 was active; node 1 is about to take over (same epoch on both: not fenced).
    let view = ActiveView {
        active: Some(2),
        epoch: 7,
        am_active: false,
    };
    let (_tx_a, rx_a) = tokio::sync::watch::channel(view);
    let (_tx_b, rx_b) = tokio::sync::watch::channel(ActiveView {
        am_active: true,
        ..view
    });
    let (aa, ba) = (a.addr.clone(), b.addr.clone());
    start_tuned(&mut b, &ca, (a.id, &aa), move |c| c.epoch = Some(rx_b)).await;
    start_tuned(&mut a, &ca, (b.id, &ba), move |c| c.epoch = Some(rx_a)).await;
    let h = a.handle.clone().unwrap();
    h.track_user("alice").await.unwrap();
    let left = h.wait_own_writes_visible(Duration::from_secs(20)).await;
    assert!(left.is_empty(), "still hidden: {left:?}");
    assert!(!ua.has_unconfirmed());
    assert_eq!(ua.visible_limit(&inbox.id), None);
    let on_b = b.store().user("alice").unwrap().messages("INBOX").unwrap();
    assert!(
        on_b.iter().any(|m| m.guid == cut_off.guid),
        "node 2 lacks the write"
    );
    a.stop().await;
    b.stop().await;
}
