//! Pacing end to end (two replicators over mutual TLS on 127.0.0.1, in-memory stores): with
//! clients that never stop being busy, a backlog still drains (in waited-for, smaller batches),
//! and the live stream afterwards is never held back.

use replication::certs;
use replication::testing::MemStore;
use replication::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use storage::{Guid, MailboxId};
use tokio::net::TcpListener;

const INBOX: MailboxId = Guid([1; 16]);
/// Not a multiple of the busy batch (100), so the last catch-up batch is short and none
/// follows it.
const BACKLOG: usize = 1250;

fn tls(dir: &std::path::Path, id: u32) -> TlsMaterial {
    let out = dir.join(format!("n{id}"));
    if !out.join(certs::NODE_CERT_FILE).exists() {
        certs::issue_node_cert(dir, id, &[], &out).unwrap();
    }
    TlsMaterial::load(
        &dir.join(certs::CA_CERT_FILE),
        &out.join(certs::NODE_CERT_FILE),
        &out.join(certs::NODE_KEY_FILE),
    )
    .unwrap()
}

/// Clients with `busy` store calls in flight, for ever.
fn busy_clients(busy: &Arc<AtomicUsize>) -> ClientLoad {
    let b = busy.clone();
    ClientLoad::new(move || b.load(Ordering::SeqCst), || Duration::ZERO)
}

async fn start(
    ca: &std::path::Path,
    id: u32,
    addr: &str,
    peer: (u32, &str),
    store: Arc<MemStore>,
    load: ClientLoad,
) -> Handle {
    let mut c = ReplicationConfig::new(
        id,
        addr.parse().unwrap(),
        vec![PeerConfig {
            id: peer.0,
            addr: peer.1.to_string(),
        }],
        tls(ca, id),
    );
    c.backoff_min = Duration::from_millis(20);
    c.backoff_max = Duration::from_millis(200);
    c.rescan_interval = Duration::from_millis(200);
    c.lanes = 1;
    c.client_load = load;
    let l = TcpListener::bind(addr).await.unwrap();
    Replicator::start_on(c, l, store).unwrap()
}

async fn free_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().to_string()
}

/// Polls until `f` holds, at most 60 s (the drain is paced: at least 25 ms per batch).
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlog_drains_under_never_ending_client_load_and_live_changes_are_not_held() {
    let ca = tempfile::tempdir().unwrap();
    certs::init_ca(ca.path()).unwrap();
    let (addr_a, addr_b) = (free_addr().await, free_addr().await);
    let (sa, sb) = (MemStore::new(1), MemStore::new(2));
    let (ua, ub) = (sa.mem_user("alice"), sb.mem_user("alice"));
    let busy = Arc::new(AtomicUsize::new(3));

    // The backlog piles up on A while B is not running.
    let a = start(
        ca.path(),
        1,
        &addr_a,
        (2, &addr_b),
        sa.clone(),
        busy_clients(&busy),
    )
    .await;
    for i in 0..BACKLOG {
        ua.append(INBOX, format!("Subject: {i}\r\n\r\n{i}\r\n").as_bytes());
    }
    let b = start(
        ca.path(),
        2,
        &addr_b,
        (1, &addr_a),
        sb.clone(),
        busy_clients(&busy),
    )
    .await;
    eventually("B has the backlog", || {
        ub.dump().index.get(&INBOX).map_or(0, |m| m.len()) == BACKLOG
    })
    .await;
    eventually("identical state", || ua.dump() == ub.dump()).await;

    // Every catch-up batch waited for the clients and, as they stayed busy, went out small.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let p = loop {
        let p = a.status().await.pacing;
        if p.catch_up_batches_delayed == p.catch_up_batches
            || tokio::time::Instant::now() > deadline
        {
            break p;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(p.enabled);
    // The first batch after connecting ships as live and full (500); the other 750 records
    // are catch-up: 7 batches of 100 and one of 50.
    assert_eq!(p.catch_up_batches, 8, "{p:?}");
    assert_eq!(p.catch_up_batches_delayed, p.catch_up_batches, "{p:?}");
    assert!(p.catch_up_batches_shrunk >= 1, "{p:?}");
    // Each waited the full 25 ms: the clients never went quiet.
    assert!(
        p.yield_seconds >= 0.025 * p.catch_up_batches_delayed as f64 * 0.99,
        "{p:?}"
    );
    // B, whose clients are busy too, held back applying A's catch-up frames (100 records or
    // more) for them.
    assert!(b.status().await.pacing.applies_delayed >= 1);

    // Caught up: a new change is live, shipped without waiting for the still busy clients.
    let (uid, guid) = ua.append(INBOX, b"Subject: live\r\n\r\nlive\r\n");
    eventually("the live change on B", || {
        ub.dump().index.get(&INBOX).and_then(|m| m.get(&uid)) == Some(&guid)
    })
    .await;
    let after = a.status().await.pacing;
    assert_eq!(after.catch_up_batches, p.catch_up_batches, "{after:?}");
    assert_eq!(after.yield_seconds, p.yield_seconds, "{after:?}");
    a.shutdown().await;
    b.shutdown().await;
}
