//! A message whose expunge and purge come far behind its delivery (more records between them
//! than one frame holds) while a peer is down, or while a new node pulls the user's history:
//! its Append travels without the object, the peer keeps it as a ghost (never visible) until
//! the Expunge arrives frames later, and shipping never stalls. Real stores, mutual TLS on
//! 127.0.0.1.

mod common;

use common::{Ca, Dump, Modseqs};
use replication::conn::Conn;
use replication::store_api::ReplicaUser;
use replication::wire::{Message, StoredBody, WireRecord, MAX_RECORDS_PER_FRAME};
use replication::*;
use std::sync::Arc;
use std::time::Duration;
use storage::record::Op;
use storage::{Flags, Guid, HlcTime, NewMessage, Store, VersionVector};

use common::store_node::Node;

impl Node {
    async fn start(&mut self, ca: &Ca, peer: (u32, &str)) {
        let peers = [(peer.0, peer.1.to_string())];
        self.start_with(ca, &peers, Duration::from_secs(30), |_| {})
            .await;
    }
}

/// What clients see of a user, identical on every node once quiet: mailboxes and messages
/// (UID, GUID, flags), and modseqs (the shared dump helpers).
type State = (Dump, Modseqs);

async fn state(store: &Arc<Store>, user: &str) -> State {
    let (store, user) = (store.clone(), user.to_string());
    tokio::task::spawn_blocking(move || {
        let u = store.user(&user).unwrap();
        (common::dump(&u), common::modseqs(&u))
    })
    .await
    .unwrap()
}

/// INBOX's messages (UID, GUID, flags) in `s`.
fn inbox_of(s: &State) -> &Vec<(u32, Guid, Flags)> {
    &s.0.values().find(|m| m.0 == "INBOX").unwrap().3
}

async fn converge(a: &Node, b: &Node, user: &str, within: Duration) -> State {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let (sa, sb) = (state(&a.store(), user).await, state(&b.store(), user).await);
        if sa == sb {
            return sa;
        }
        if tokio::time::Instant::now() > deadline {
            let count = |s: &State| s.0.values().map(|m| m.3.len()).sum::<usize>();
            let st = match &b.handle {
                Some(h) => format!("{:?}", h.status().await),
                None => "not running".into(),
            };
            panic!(
                "nodes did not converge within {within:?}: {} messages on A, {} on B; B: {st}",
                count(&sa),
                count(&sb)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn raw(body: &str) -> Vec<u8> {
    format!("From: a@example.org\r\nSubject: {body}\r\n\r\n{body}\r\n").into_bytes()
}

fn append(store: &Arc<Store>, user: &str, body: &str) -> storage::AppendOutcome {
    let raw = raw(body);
    store
        .user(user)
        .unwrap()
        .append(
            "INBOX",
            NewMessage {
                raw: &raw,
                flags: Flags::new(),
                internal_date: None,
                delivery_key: None,
            },
        )
        .unwrap()
}

/// `n` small deliveries from 16 threads, so group commit shares the fsyncs (the test needs the
/// records, not the disk time).
async fn deliver_many(store: &Arc<Store>, user: &str, n: usize) {
    const THREADS: usize = 16;
    let mut tasks = Vec::new();
    for t in 0..THREADS {
        let (store, user) = (store.clone(), user.to_string());
        tasks.push(tokio::task::spawn_blocking(move || {
            for i in (t..n).step_by(THREADS) {
                append(&store, &user, &format!("filler {i}"));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

fn ghosts(store: &Arc<Store>, user: &str) -> usize {
    store.user(user).unwrap().ghosts().unwrap().len()
}

/// Records between the doomed message's delivery and its expunge: more than one frame.
const FAR: usize = MAX_RECORDS_PER_FRAME + 500;

/// On A: `doomed`, then FAR deliveries, then `doomed` expunged and purged. Returns `doomed`.
async fn doomed_far_behind(a: &Node, user: &str) -> storage::AppendOutcome {
    let sa = a.store();
    let doomed = append(&sa, user, "doomed");
    deliver_many(&sa, user, FAR).await;
    let au = sa.user(user).unwrap();
    au.expunge("INBOX", &[doomed.uid]).unwrap();
    let report = au.purge().unwrap();
    assert_eq!(report.objects_removed, 1, "{report:?}");
    // The expunge is more than one frame after the append in A's log.
    let recs = au.records_since(&VersionVector::new(), usize::MAX).unwrap();
    let at = |f: &dyn Fn(&Op) -> bool| recs.iter().position(|r| f(&r.op)).unwrap();
    let ins = at(&|op| matches!(op, Op::Append { entry, .. } if entry.guid == doomed.guid));
    let rm =
        at(&|op| matches!(op, Op::Expunge { messages, .. } if messages.contains(&doomed.guid)));
    assert!(rm - ins > MAX_RECORDS_PER_FRAME, "{ins}..{rm}");
    doomed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_down_gets_a_message_purged_far_behind_its_delivery_and_what_follows() {
    let ca = Ca::new();
    let mut a = Node::new(1).await;
    let mut b = Node::new(2).await;
    let (aa, ba) = (a.addr.clone(), b.addr.clone());
    a.start(&ca, (2, &ba)).await;
    b.start(&ca, (1, &aa)).await;
    append(&a.store(), "alice", "before");
    converge(&a, &b, "alice", Duration::from_secs(20)).await;
    b.stop().await;

    let doomed = doomed_far_behind(&a, "alice").await;

    b.start(&ca, (1, &aa)).await;
    let s = converge(&a, &b, "alice", Duration::from_secs(240)).await;
    let inbox = inbox_of(&s);
    assert_eq!(inbox.len(), FAR + 1, "every delivery but the expunged one");
    assert!(!inbox.iter().any(|m| m.1 == doomed.guid));
    assert_eq!(
        ghosts(&b.store(), "alice"),
        0,
        "the removal reached the ghost"
    );
    // No batch of the user failed (`last_error` only shows a failure that still holds).
    let st = a.handle.as_ref().unwrap().status().await;
    assert_eq!(
        st.peers[0].batches_failed, 0,
        "shipping never failed: {st:?}"
    );

    // A delivery after all that reaches B.
    let after = append(&a.store(), "alice", "after");
    let s = converge(&a, &b, "alice", Duration::from_secs(20)).await;
    assert!(inbox_of(&s)
        .iter()
        .any(|m| m.1 == after.guid && m.0 == after.uid));
    let bu = b.store().user("alice").unwrap();
    let on_b = bu
        .messages("INBOX")
        .unwrap()
        .into_iter()
        .find(|m| m.guid == after.guid)
        .unwrap();
    assert_eq!(bu.read_message(&on_b.object).unwrap(), raw("after"));
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_node_pulls_a_history_with_a_purge_far_behind_its_delivery() {
    let ca = Ca::new();
    let mut a = Node::new(1).await;
    a.start(&ca, (2, "127.0.0.1:1")).await;
    append(&a.store(), "alice", "before");
    doomed_far_behind(&a, "alice").await;

    // `node sync` on an empty node 2: pulls everything A has, in frames of 1,000 records.
    let c = Node::new(2).await;
    let peer = PeerConfig {
        id: 1,
        addr: a.addr.clone(),
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
    assert!(r.pulled_records as usize > FAR, "{r}");
    assert_eq!(
        state(&c.store(), "alice").await,
        state(&a.store(), "alice").await
    );
    assert_eq!(ghosts(&c.store(), "alice"), 0);
    a.stop().await;
}

/// B receives the doomed message's Append without its object (a peer's frame), is restarted,
/// and only then gets the Expunge: the ghost survives the restart invisible, `--full` digests
/// see no difference with A (where it is expunged), and the removal clears it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ghost_survives_a_restart_invisible_until_its_removal() {
    let ca = Ca::new();
    let mut a = Node::new(1).await;
    let mut b = Node::new(2).await;
    let (aa, ba) = (a.addr.clone(), b.addr.clone());
    let sa = a.store();
    let doomed = append(&sa, "alice", "doomed");
    let kept = append(&sa, "alice", "kept");
    let au = sa.user("alice").unwrap();
    au.expunge("INBOX", &[doomed.uid]).unwrap();
    assert_eq!(au.purge().unwrap().objects_removed, 1);
    let recs = au.records_since(&VersionVector::new(), 10_000).unwrap();
    let rm = recs
        .iter()
        .position(|r| matches!(r.op, Op::Expunge { .. }))
        .unwrap();

    // A's records up to the expunge reach B as a peer ships them: the kept message's object
    // first, the doomed one's not at all (purged).
    b.start(&ca, (1, &aa)).await;
    let mut conn = Conn::connect(&ca.tls(1), 1, HlcTime::default(), 2, &b.addr)
        .await
        .unwrap();
    let kept_object = au.messages("INBOX").unwrap()[0].object;
    conn.send(&Message::Object {
        user: "alice".into(),
        id: kept_object,
        body: StoredBody::from(au.read_object_stored(&kept_object).unwrap()),
    })
    .await
    .unwrap();
    conn.send(&Message::Records {
        user: "alice".into(),
        records: recs[..rm]
            .iter()
            .map(|r| WireRecord::encode("alice", r).unwrap())
            .collect(),
    })
    .await
    .unwrap();
    match conn
        .recv_timeout(Duration::from_secs(10), "ack")
        .await
        .unwrap()
    {
        Message::Ack { vv, .. } => assert_eq!(vv.get(&1), Some(&recs[rm - 1].seq)),
        m => panic!("expected Ack, got {m:?}"),
    }
    drop(conn);
    assert_eq!(ghosts(&b.store(), "alice"), 1);

    b.restart_store().await;
    let sb = b.store();
    assert_eq!(ghosts(&sb, "alice"), 1, "the ghost survives the restart");
    let bu = sb.user("alice").unwrap();
    let listed: Vec<Guid> = bu
        .messages("INBOX")
        .unwrap()
        .iter()
        .map(|m| m.guid)
        .collect();
    assert_eq!(listed, vec![kept.guid], "and stays invisible");
    let inbox_b = bu.mailbox("INBOX").unwrap();
    assert_eq!((inbox_b.exists, inbox_b.uidnext), (1, kept.uid + 1));
    // `sync --full` compares digests of what clients see: a ghost here and an expunged message
    // on A are the same.
    let da = storage_adapter::StorageUser(sa.user("alice").unwrap())
        .mailbox_digests()
        .unwrap();
    let db = storage_adapter::StorageUser(bu.clone())
        .mailbox_digests()
        .unwrap();
    let inbox_digest =
        |d: &[store_api::MailboxDigest]| d.iter().find(|m| m.name == "INBOX").cloned().unwrap();
    assert!(inbox_digest(&da).same_content(&inbox_digest(&db)));
    assert_eq!(inbox_digest(&da).modseq_hash, inbox_digest(&db).modseq_hash);
    drop(bu);

    // Replication resumes: the expunge arrives and turns the ghost into an expunged entry.
    a.start(&ca, (2, &ba)).await;
    b.start(&ca, (1, &aa)).await;
    converge(&a, &b, "alice", Duration::from_secs(20)).await;
    assert_eq!(ghosts(&b.store(), "alice"), 0);
    let ch = b
        .store()
        .user("alice")
        .unwrap()
        .changes_since("INBOX", 0)
        .unwrap();
    assert_eq!(ch.expunged, vec![doomed.uid]);
    a.stop().await;
    b.stop().await;
}

/// Warnings (and errors) logged by this test binary, for the test that needs one.
fn warnings() -> Arc<std::sync::Mutex<Vec<String>>> {
    use tracing::span;
    static LOG: std::sync::OnceLock<Arc<std::sync::Mutex<Vec<String>>>> =
        std::sync::OnceLock::new();
    struct Capture(Arc<std::sync::Mutex<Vec<String>>>);
    struct Fields(String);
    impl tracing::field::Visit for Fields {
        fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
            self.0.push_str(&format!("{}={v:?} ", f.name()));
        }
    }
    impl tracing::Subscriber for Capture {
        fn enabled(&self, m: &tracing::Metadata<'_>) -> bool {
            m.is_event() && *m.level() <= tracing::Level::WARN
        }
        fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
            span::Id::from_u64(1)
        }
        fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
        fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
        fn event(&self, e: &tracing::Event<'_>) {
            let mut f = Fields(String::new());
            e.record(&mut f);
            self.0.lock().unwrap().push(f.0);
        }
        fn enter(&self, _: &span::Id) {}
        fn exit(&self, _: &span::Id) {}
    }
    LOG.get_or_init(|| {
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        tracing::subscriber::set_global_default(Capture(log.clone())).unwrap();
        log
    })
    .clone()
}

/// A peer ships a message without its object and never its removal (a lying or buggy peer):
/// the message stays a ghost, never visible, and when a node has pulled everything its peer
/// has with the ghost still waiting, the operator is told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ghost_whose_removal_never_comes_is_logged_for_the_operator() {
    use storage::record::{NewEntry, Record};
    let log = warnings();
    let ca = Ca::new();
    let mut a = Node::new(1).await;
    a.start(&ca, (2, "127.0.0.1:1")).await;
    append(&a.store(), "alice", "mine");
    let inbox = a
        .store()
        .user("alice")
        .unwrap()
        .mailbox("INBOX")
        .unwrap()
        .id;
    // Relayed by peer 2 from an origin 3 that claims to have purged the object.
    let lie = Record {
        origin: 3,
        seq: 1,
        time: HlcTime {
            wall_ms: 1_000,
            logical: 0,
            node: 3,
        },
        op: Op::Append {
            mailbox: inbox,
            entry: NewEntry {
                guid: Guid([7; 16]),
                uid: 77,
                object: storage::ObjectId::of(b"never sent"),
                size: 10,
                internal_date: 0,
                internal_date_tz_min: 0,
                flags: Flags::new(),
            },
            modseq: 1,
            delivery_key: None,
        },
    };
    let mut conn = Conn::connect(&ca.tls(2), 2, HlcTime::default(), 1, &a.addr)
        .await
        .unwrap();
    conn.send(&Message::Records {
        user: "alice".into(),
        records: vec![WireRecord::encode("alice", &lie).unwrap()],
    })
    .await
    .unwrap();
    match conn
        .recv_timeout(Duration::from_secs(10), "ack")
        .await
        .unwrap()
    {
        Message::Ack { vv, .. } => assert_eq!(vv.get(&3), Some(&1)),
        m => panic!("expected Ack, got {m:?}"),
    }
    drop(conn);
    assert_eq!(ghosts(&a.store(), "alice"), 1);
    let before = state(&a.store(), "alice").await;

    // A new node pulls everything A has: the ghost too (A has no object to send), and
    // nothing will ever remove it.
    let c = Node::new(2).await;
    let peer = PeerConfig {
        id: 1,
        addr: a.addr.clone(),
    };
    replication::sync::sync_user_with_store(&ca.tls(2), c.store(), &peer, "alice", false, false)
        .await
        .unwrap();
    assert_eq!(ghosts(&c.store(), "alice"), 1);
    assert_eq!(state(&c.store(), "alice").await, before, "never visible");
    let warned = log
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("still wait") && l.contains("alice") && l.contains("ghosts=1"));
    assert!(warned, "{:?}", log.lock().unwrap());
    a.stop().await;
}
