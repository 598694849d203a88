//! Set-up shared by the replication integration tests (`mod common;` in each): a CA that issues
//! node certificates, free loopback addresses, a configuration that retries fast, polling, and
//! what must be identical on every node of a real store.

// Each test file uses only part of this module.
#![allow(dead_code)]

pub mod store_node;

use replication::certs;
use replication::{PeerConfig, ReplicationConfig, TlsMaterial};
use std::collections::BTreeMap;
use std::time::Duration;
use storage::record::{Op, Record};
use storage::{Flags, Guid, HlcTime, UserStore};
use tokio::net::TcpListener;

/// A test CA in a temporary directory; node certificates are issued on first use.
pub struct Ca {
    dir: tempfile::TempDir,
}

impl Ca {
    pub fn new() -> Ca {
        let dir = tempfile::tempdir().unwrap();
        certs::init_ca(dir.path()).unwrap();
        Ca { dir }
    }

    pub fn tls(&self, id: u32) -> TlsMaterial {
        let out = self.dir.path().join(format!("n{id}"));
        if !out.join(certs::NODE_CERT_FILE).exists() {
            certs::issue_node_cert(self.dir.path(), id, &[], &out).unwrap();
        }
        TlsMaterial::load(
            &self.dir.path().join(certs::CA_CERT_FILE),
            &out.join(certs::NODE_CERT_FILE),
            &out.join(certs::NODE_KEY_FILE),
        )
        .unwrap()
    }
}

/// A loopback address nothing listens on (the listener is closed again at once).
pub async fn free_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().to_string()
}

/// Node `id` at `addr` replicating to `peers`, retrying and rescanning within a fraction of a
/// second so a test's reconnects and new users are not waited for.
pub fn quick_config(ca: &Ca, id: u32, addr: &str, peers: &[(u32, String)]) -> ReplicationConfig {
    let mut c = ReplicationConfig::new(
        id,
        addr.parse().unwrap(),
        peers
            .iter()
            .map(|(id, addr)| PeerConfig {
                id: *id,
                addr: addr.clone(),
            })
            .collect(),
        ca.tls(id),
    );
    c.backoff_min = Duration::from_millis(20);
    c.backoff_max = Duration::from_millis(200);
    c.rescan_interval = Duration::from_millis(200);
    c
}

/// Record `seq` of node 2's log, as a test playing node 2 by hand sends it.
pub fn rec(seq: u64, op: Op) -> Record {
    Record {
        origin: 2,
        seq,
        time: HlcTime {
            wall_ms: 1_000,
            logical: seq as u32,
            node: 2,
        },
        op,
    }
}

/// Polls until `f` holds, at most 10 s.
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !f() {
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// What must be identical on every node: mailboxes (GUID, name, UIDVALIDITY, UIDNEXT) and their
/// messages (UID, GUID, flags); and, see [`Modseqs`], modseqs.
pub type Dump = BTreeMap<Guid, (String, u32, u32, Vec<(u32, Guid, Flags)>)>;

/// Per mailbox: HIGHESTMODSEQ and each message's (UID, modseq). Identical on every node once
/// quiet (invariant 5): the resolver aligns them after writes on both sides.
pub type Modseqs = BTreeMap<Guid, (u64, Vec<(u32, u64)>)>;

pub fn dump(u: &UserStore) -> Dump {
    let mut out = Dump::new();
    for mb in u.list_mailboxes().unwrap() {
        let msgs = u
            .messages(&mb.name)
            .unwrap()
            .into_iter()
            .map(|m| (m.uid, m.guid, m.flags))
            .collect();
        out.insert(mb.id, (mb.name, mb.uidvalidity, mb.uidnext, msgs));
    }
    out
}

pub fn modseqs(u: &UserStore) -> Modseqs {
    let mut out = Modseqs::new();
    for mb in u.list_mailboxes().unwrap() {
        let msgs = u.messages(&mb.name).unwrap();
        let msgs = msgs.into_iter().map(|m| (m.uid, m.modseq)).collect();
        out.insert(mb.id, (mb.highestmodseq, msgs));
    }
    out
}
