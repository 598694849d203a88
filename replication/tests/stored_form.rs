//! Objects travel in their stored (zstd) form: a node that pulls a user's history (`node sync`
//! with the server stopped) gets small objects (carried in the log) and large ones (in the
//! pack) byte for byte, and a pushed stream does the same.

mod common;

use common::{quick_config, Ca};
use replication::*;
use std::sync::Arc;
use std::time::Duration;
use storage::{Flags, NewMessage, Store, StoreConfig};
use tokio::net::TcpListener;

fn open(dir: &std::path::Path, id: u32) -> Arc<Store> {
    let mut c = StoreConfig::new(dir);
    c.node_id = id;
    Store::open(c).unwrap()
}

/// A body of `len` bytes that zstd cannot shrink much (so a large one lands in the pack).
fn noisy_body(len: usize, seed: u64) -> String {
    let mut x = seed | 1;
    (0..len)
        .map(|i| {
            if i % 76 == 75 {
                return '\n';
            }
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (b'!' + (x % 90) as u8) as char
        })
        .collect::<String>()
        .replace('\n', "\r\n")
}

fn append(store: &Arc<Store>, user: &str, subject: &str, body: &str) -> storage::AppendOutcome {
    let raw = format!("From: a@example.org\r\nSubject: {subject}\r\n\r\n{body}\r\n");
    store
        .user(user)
        .unwrap()
        .append(
            "INBOX",
            NewMessage {
                raw: raw.as_bytes(),
                flags: Flags::new(),
                internal_date: None,
                delivery_key: None,
            },
        )
        .unwrap()
}

/// Every INBOX message's raw bytes, by UID.
fn contents(store: &Arc<Store>, user: &str) -> Vec<(u32, Vec<u8>)> {
    let u = store.user(user).unwrap();
    u.messages("INBOX")
        .unwrap()
        .into_iter()
        .map(|m| (m.uid, u.read_message(&m.object).unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_pulls_objects_in_their_stored_form() {
    let ca = Ca::new();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());

    // B runs and holds the mail: small messages and two larger than the inline bound.
    let sb = open(db.path(), 2);
    for i in 0..20 {
        append(&sb, "alice", &format!("small {i}"), &format!("body {i}"));
    }
    append(&sb, "alice", "large 1", &noisy_body(1_500_000, 1));
    append(&sb, "alice", "large 2", &noisy_body(2_500_000, 2));
    append(&sb, "alice", "after", "the last one");
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let baddr = l.local_addr().unwrap().to_string();
    let c = quick_config(&ca, 2, &baddr, &[(1, "127.0.0.1:1".into())]);
    let hb =
        Replicator::start_on(c, l, Arc::new(storage_adapter::StorageReplica(sb.clone()))).unwrap();

    // A is stopped (no replicator): `node sync -u alice` on it pulls from B.
    let sa = open(da.path(), 1);
    let peer = PeerConfig { id: 2, addr: baddr };
    let r = tokio::time::timeout(
        Duration::from_secs(60),
        replication::sync::sync_user_with_store(
            &ca.tls(1),
            sa.clone(),
            &peer,
            "alice",
            false,
            false,
        ),
    )
    .await
    .expect("sync did not finish within 60 s")
    .unwrap();
    assert!(r.to_string().contains("received"), "{r}");
    let (ca_, cb_) = (contents(&sa, "alice"), contents(&sb, "alice"));
    assert_eq!(ca_.len(), 23);
    assert!(ca_ == cb_, "pulled messages differ from B's");
    hb.shutdown().await;
}

fn start(ca: &Ca, id: u32, l: TcpListener, peer: (u32, String), store: &Arc<Store>) -> Handle {
    let c = quick_config(ca, id, &l.local_addr().unwrap().to_string(), &[peer]);
    Replicator::start_on(
        c,
        l,
        Arc::new(storage_adapter::StorageReplica(store.clone())),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_stream_carries_small_and_large_objects() {
    let ca = Ca::new();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (sa, sb) = (open(da.path(), 1), open(db.path(), 2));
    let (la, lb) = (
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
    );
    let (aa, ba) = (
        la.local_addr().unwrap().to_string(),
        lb.local_addr().unwrap().to_string(),
    );
    let ha = start(&ca, 1, la, (2, ba), &sa);
    let hb = start(&ca, 2, lb, (1, aa), &sb);
    append(&sa, "alice", "small", "first");
    ha.track_user("alice").await.unwrap();
    append(&sa, "alice", "large", &noisy_body(1_800_000, 3));
    for i in 0..10 {
        append(&sa, "alice", &format!("small {i}"), &format!("body {i}"));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (x, y) = (contents(&sa, "alice"), contents(&sb, "alice"));
        if x == y {
            assert_eq!(x.len(), 12);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "B did not get A's messages"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ha.shutdown().await;
    hb.shutdown().await;
}
