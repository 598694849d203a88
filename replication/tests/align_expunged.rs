//! Expunge modseqs converge (invariant 5, for QRESYNC): both nodes expunge different messages
//! while cut off, so each gives the other's expunges its own modseqs when they meet; the
//! resolver's `Op::AlignExpunged` makes the tombstones equal, never lower, and `VANISHED
//! (EARLIER)` (the store's `changes_since`) then answers the same on both nodes for every modseq
//! a client could hold. Real `storage::Store`s, real mTLS on 127.0.0.1, `sync_user` as
//! `node sync` runs it.

mod common;

use common::Ca;
use replication::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use storage::{Flag, FlagMode, Flags, NewMessage, Store, StoreConfig, UserStore};

fn open(dir: &std::path::Path, id: u32) -> Arc<Store> {
    let mut c = StoreConfig::new(dir);
    c.node_id = id;
    Store::open(c).unwrap()
}

fn append(u: &UserStore, n: usize) -> u32 {
    let raw = format!("Subject: {n}\r\n\r\nbody {n}\r\n");
    u.append(
        "INBOX",
        NewMessage {
            raw: raw.as_bytes(),
            flags: Flags::new(),
            internal_date: Some((1_700_000_000, 0)),
            delivery_key: None,
        },
    )
    .unwrap()
    .uid
}

fn flag(u: &UserStore, uid: u32) {
    let f: Flags = [Flag::from_imap("\\Flagged")].into();
    u.store_flags("INBOX", &[uid], FlagMode::Add, &f, None)
        .unwrap();
}

/// INBOX's tombstones: UID -> (GUID, expunge modseq); and its HIGHESTMODSEQ.
fn tombs(u: &UserStore) -> (BTreeMap<u32, (storage::Guid, u64)>, u64) {
    let mb = u.mailbox("INBOX").unwrap();
    let t = u
        .tombstones(&mb.id)
        .unwrap()
        .unwrap()
        .into_iter()
        .map(|t| (t.uid, (t.guid, t.modseq)))
        .collect();
    (t, mb.highestmodseq)
}

/// What QRESYNC's `VANISHED (EARLIER)` would say to a client holding each modseq up to `high`.
fn vanished(u: &UserStore, high: u64) -> Vec<Vec<u32>> {
    (0..=high)
        .map(|m| u.changes_since("INBOX", m).unwrap().expunged)
        .collect()
}

/// Node 2 listens (its own pushes go nowhere: node 1 is "offline" to it); node 1 runs
/// `sync_user` against it, with or without resolving (only the resolver aligns).
struct Pair {
    sa: Arc<Store>,
    sb: Arc<Store>,
    ca: Ca,
    peer: PeerConfig,
    hb: Handle,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl Pair {
    async fn new() -> Pair {
        let ca = Ca::new();
        let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (sa, sb) = (open(da.path(), 1), open(db.path(), 2));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let mut cfg = ReplicationConfig::new(
            2,
            addr,
            vec![PeerConfig {
                id: 1,
                addr: "127.0.0.1:1".into(),
            }],
            ca.tls(2),
        );
        cfg.backoff_min = Duration::from_secs(5);
        let store_b: Arc<dyn store_api::ReplicaStore> =
            Arc::new(storage_adapter::StorageReplica(sb.clone()));
        let hb = Replicator::start_on(cfg, l, store_b).unwrap();
        Pair {
            sa,
            sb,
            peer: PeerConfig {
                id: 2,
                addr: addr.to_string(),
            },
            ca,
            hb,
            _dirs: (da, db),
        }
    }

    async fn sync(&self, resolve: bool) -> SyncReport {
        self.sync_with(false, resolve).await
    }

    async fn sync_with(&self, full: bool, resolve: bool) -> SyncReport {
        let store_a: Arc<dyn store_api::ReplicaStore> =
            Arc::new(storage_adapter::StorageReplica(self.sa.clone()));
        sync::sync_user(&self.ca.tls(1), store_a, &self.peer, "alice", full, resolve)
            .await
            .unwrap()
    }

    /// Syncs until nothing moves (bounded).
    async fn settle(&self) {
        for _ in 0..6 {
            let r = self.sync(true).await;
            if r.pushed_records == 0 && r.pulled_records == 0 {
                return;
            }
        }
        panic!("still moving after 6 syncs");
    }
}

/// Heals in one incremental sync (the resolver aligns in the same exchange, as `node sync`
/// does after records of both nodes moved).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expunges_on_both_sides_apart_get_the_same_modseqs() {
    expunges_apart(false).await;
}

/// Heals first without the resolver (the state a client may see between the merge and the
/// alignment: tombstone modseqs differ), then `sync --full` aligns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expunge_modseqs_differ_after_the_merge_until_the_resolver_aligns() {
    expunges_apart(true).await;
}

async fn expunges_apart(observe_merge: bool) {
    let p = Pair::new().await;
    let (ua, ub) = (p.sa.user("alice").unwrap(), p.sb.user("alice").unwrap());
    let uids: Vec<u32> = (0..8).map(|i| append(&ua, i)).collect();
    p.settle().await;
    assert_eq!(tombs(&ua), tombs(&ub));

    // Cut off. Each side expunges its own messages, with flag changes between, so the same
    // expunge takes different modseqs on the two nodes once they meet.
    let (ua2, ub2, u2) = (ua.clone(), ub.clone(), uids.clone());
    tokio::task::spawn_blocking(move || {
        flag(&ua2, u2[6]);
        ua2.expunge("INBOX", &[u2[0]]).unwrap();
        ua2.expunge("INBOX", &[u2[1]]).unwrap();
        ub2.expunge("INBOX", &[u2[2]]).unwrap();
        flag(&ub2, u2[7]);
        flag(&ub2, u2[6]);
        ub2.expunge("INBOX", &[u2[3]]).unwrap();
        ub2.expunge("INBOX", &[u2[4]]).unwrap();
    })
    .await
    .unwrap();
    let before = [tombs(&ua), tombs(&ub)];

    let mut states = before.to_vec();
    if observe_merge {
        // Heal without the resolver's alignment: the records meet, the tombstone modseqs
        // differ (what a QRESYNC client failing over would be misled by).
        p.sync(false).await;
        let met = [tombs(&ua), tombs(&ub)];
        let keys = |t: &BTreeMap<u32, (storage::Guid, u64)>| -> BTreeSet<(u32, storage::Guid)> {
            t.iter().map(|(u, (g, _))| (*u, *g)).collect()
        };
        assert_eq!(keys(&met[0].0), keys(&met[1].0), "same UIDs expunged");
        assert_eq!(met[0].0.len(), 5);
        assert_ne!(
            met[0].0, met[1].0,
            "the scenario must make expunge modseqs differ"
        );
        states.extend(met);
        // Nothing moves any more, so only a full sync compares now.
        let r = p.sync_with(true, true).await;
        assert_eq!(r.modseqs_aligned, 1, "{r:?}");
    }
    // The resolver aligns (or has aligned) and both nodes apply it.
    p.settle().await;
    let after = [tombs(&ua), tombs(&ub)];
    assert_eq!(after[0], after[1], "tombstones and HIGHESTMODSEQ identical");
    assert_eq!(common::modseqs(&ua), common::modseqs(&ub));
    assert_eq!(common::dump(&ua), common::dump(&ub));
    let high = after[0].1;
    assert_eq!(
        vanished(&ua, high),
        vanished(&ub, high),
        "VANISHED (EARLIER) the same on both for every modseq"
    );

    // Never lowered (invariant 3), and a client that last saw any state of either node is told
    // of every expunge it has not seen, on both nodes.
    for seen in &states {
        for (uid, (_, ms)) in &seen.0 {
            assert!(
                after[0].0[uid].1 >= *ms,
                "UID {uid} lowered: {seen:?} {after:?}"
            );
        }
        for m in 0..=seen.1 {
            let owed: BTreeSet<u32> = after[0]
                .0
                .keys()
                .filter(|uid| seen.0.get(uid).is_none_or(|(_, ms)| *ms > m))
                .copied()
                .collect();
            for u in [&ua, &ub] {
                let told: BTreeSet<u32> = u
                    .changes_since("INBOX", m)
                    .unwrap()
                    .expunged
                    .into_iter()
                    .collect();
                assert!(
                    owed.is_subset(&told),
                    "client at modseq {m}: owed {owed:?}, told {told:?}"
                );
            }
        }
    }

    // Quiet: a full round (which always compares) writes nothing more: no alignment loop.
    let r = p.sync_with(true, true).await;
    assert_eq!((r.pushed_records, r.pulled_records), (0, 0), "{r:?}");
    assert_eq!(r.modseqs_aligned, 0, "{r:?}");
    assert!(r.diverged.is_empty() && !r.rebuilt_local_index, "{r:?}");
    p.hb.shutdown().await;
}
