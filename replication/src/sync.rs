//! `node sync -u USER [--peer NODE]`: one exchange with a peer, both directions, of what each
//! side's version vector says the other lacks. Prints (returns) what moved.

use crate::conn::Conn;
use crate::error::{ReplError, Result};
use crate::exchange::{peer_vv, pull_all, push_batch};
use crate::replicator::{blocking, PeerConfig};
use crate::store_api::{MailboxDigest, MessageKey, ReplicaStore, ReplicaUser};
use crate::tls::TlsMaterial;
use crate::wire::Message;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::{MailboxId, NodeId};

const BATCH: usize = 1000;
const BATCH_BYTES: u64 = 16 << 20;
const REPLY_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncReport {
    pub user: String,
    pub peer: NodeId,
    pub pushed_records: u64,
    pub pushed_objects: u64,
    pub pushed_bytes: u64,
    pub pulled_records: u64,
    pub pulled_objects: u64,
    pub pulled_bytes: u64,
    pub conflicts_resolved: u64,
    /// `--full` only: mailboxes whose state still differs after the exchange.
    #[serde(default)]
    pub diverged: Vec<Divergence>,
    /// `--full` only: this node's index differed and was rebuilt from its log.
    #[serde(default)]
    pub rebuilt_local_index: bool,
    pub seconds: f64,
}

/// A mailbox that differs between the two nodes although their version vectors agree: the
/// index of one of them no longer matches its log (or the logs differ under equal vectors).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Divergence {
    pub mailbox: MailboxId,
    pub name: String,
    /// UIDs only here / only on the peer / on both with another GUID or other flags (at most
    /// 1000 each).
    pub only_here: Vec<u32>,
    pub only_there: Vec<u32>,
    pub differing: Vec<u32>,
}

impl std::fmt::Display for SyncReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for d in &self.diverged {
            writeln!(
                f,
                "{}: mailbox {:?} differs from node {}: {} UIDs only here, {} only there, {} differ \
                 (run `node force-resync -u {}` on the node whose index is wrong)",
                self.user,
                d.name,
                self.peer,
                d.only_here.len(),
                d.only_there.len(),
                d.differing.len(),
                self.user
            )?;
        }
        if self.rebuilt_local_index {
            writeln!(
                f,
                "{}: this node's index differed and was rebuilt from its log",
                self.user
            )?;
        }
        write!(
            f,
            "{}: with node {}: sent {} records, {} objects, {} bytes; received {} records, {} objects, {} bytes; {} conflicts resolved; {:.3} s",
            self.user,
            self.peer,
            self.pushed_records,
            self.pushed_objects,
            self.pushed_bytes,
            self.pulled_records,
            self.pulled_objects,
            self.pulled_bytes,
            self.conflicts_resolved,
            self.seconds
        )
    }
}

/// Exchanges `user`'s differences with `peer`, both ways. `resolve`: this node resolves UID
/// conflicts (see [`crate::policy`]). `full`: afterwards compare every mailbox's digest of
/// (UID, GUID, flags); where they differ, rebuild this node's index from its log and compare
/// again; what still differs is reported with the UIDs involved.
pub async fn sync_user(
    tls: &TlsMaterial,
    store: Arc<dyn ReplicaStore>,
    peer: &PeerConfig,
    user: &str,
    full: bool,
    resolve: bool,
) -> Result<SyncReport> {
    let started = Instant::now();
    let mut conn = Conn::connect(tls, store.node_id(), store.now(), peer.id, &peer.addr).await?;
    if let Err(e) = store.observe(conn.peer_time) {
        tracing::warn!(peer = peer.id, error = %e, "replication: peer clock ahead");
    }
    let s = store.clone();
    let name = user.to_string();
    let u = blocking(move || s.user(&name)).await?;
    let mut report = SyncReport {
        user: user.into(),
        peer: peer.id,
        ..SyncReport::default()
    };

    // Push: what the peer lacks, until its acks cover our log.
    let mut have = peer_vv(&mut conn, user, REPLY_TIMEOUT).await?;
    loop {
        let pushed = push_batch(
            &mut conn,
            &u,
            user,
            &have,
            BATCH,
            BATCH_BYTES,
            REPLY_TIMEOUT,
            |_| {},
        )
        .await?;
        report.pushed_records += pushed.records as u64;
        report.pushed_objects += pushed.objects as u64;
        report.pushed_bytes += pushed.bytes;
        match pushed.acked {
            Some(vv) if pushed.more => have = vv,
            _ => break,
        }
    }
    // Pull: what we lack.
    let pulled = pull_all(
        &mut conn,
        &store,
        &u,
        user,
        BATCH as u32,
        resolve,
        REPLY_TIMEOUT,
    )
    .await?;
    report.pulled_records = pulled.records as u64;
    report.pulled_objects = pulled.objects as u64;
    report.pulled_bytes = pulled.bytes;
    report.conflicts_resolved = pulled.conflicts_resolved as u64;
    if full {
        let mut diverged = compare(&mut conn, &u, user).await?;
        if !diverged.is_empty() {
            let uu = u.clone();
            blocking(move || uu.rebuild_index()).await?;
            report.rebuilt_local_index = true;
            diverged = compare(&mut conn, &u, user).await?;
            if diverged.is_empty() {
                tracing::warn!(user, peer = peer.id, "replication: full sync found this node's index diverged from its log; rebuilt it");
            } else {
                tracing::warn!(
                    user,
                    peer = peer.id,
                    mailboxes = diverged.len(),
                    "replication: full sync found mailboxes that differ from the peer"
                );
            }
        }
        report.diverged = diverged;
    }
    report.seconds = started.elapsed().as_secs_f64();
    tracing::info!(%report, "replication: sync done");
    Ok(report)
}

const MAX_LISTED: usize = 1000;

/// Compares every mailbox's digest with the peer's; lists the UIDs where they differ.
async fn compare(conn: &mut Conn, u: &Arc<dyn ReplicaUser>, user: &str) -> Result<Vec<Divergence>> {
    let uu = u.clone();
    let local: BTreeMap<MailboxId, MailboxDigest> = blocking(move || uu.mailbox_digests())
        .await?
        .into_iter()
        .map(|d| (d.mailbox, d))
        .collect();
    conn.send(&Message::GetDigests { user: user.into() })
        .await?;
    let remote: BTreeMap<MailboxId, MailboxDigest> =
        match conn.recv_timeout(REPLY_TIMEOUT, "digests").await? {
            Message::Digests {
                user: du,
                mailboxes,
            } if du == user => mailboxes.into_iter().map(|d| (d.mailbox, d)).collect(),
            m => {
                return Err(ReplError::protocol(format!(
                    "expected Digests, got {}",
                    m.kind()
                )))
            }
        };
    let mut out = Vec::new();
    let ids: BTreeSet<MailboxId> = local.keys().chain(remote.keys()).copied().collect();
    for id in ids {
        let (l, r) = (local.get(&id), remote.get(&id));
        if let (Some(l), Some(r)) = (l, r) {
            if l == r {
                continue;
            }
        }
        let name = l.or(r).map(|d| d.name.clone()).unwrap_or_default();
        let here = if l.is_some() {
            let uu = u.clone();
            blocking(move || uu.mailbox_listing(id)).await?
        } else {
            Vec::new()
        };
        let there = if r.is_some() {
            conn.send(&Message::GetListing {
                user: user.into(),
                mailbox: id,
            })
            .await?;
            match conn.recv_timeout(REPLY_TIMEOUT, "listing").await? {
                Message::Listing {
                    user: lu,
                    mailbox,
                    messages,
                } if lu == user && mailbox == id => messages,
                m => {
                    return Err(ReplError::protocol(format!(
                        "expected Listing, got {}",
                        m.kind()
                    )))
                }
            }
        } else {
            Vec::new()
        };
        let here: BTreeMap<u32, MessageKey> = here.into_iter().map(|m| (m.uid, m)).collect();
        let there: BTreeMap<u32, MessageKey> = there.into_iter().map(|m| (m.uid, m)).collect();
        let mut d = Divergence {
            mailbox: id,
            name,
            ..Divergence::default()
        };
        for (uid, m) in &here {
            match there.get(uid) {
                None => d.only_here.push(*uid),
                Some(o) if o != m => d.differing.push(*uid),
                _ => {}
            }
        }
        d.only_there = there
            .keys()
            .filter(|k| !here.contains_key(k))
            .copied()
            .collect();
        d.only_here.truncate(MAX_LISTED);
        d.only_there.truncate(MAX_LISTED);
        d.differing.truncate(MAX_LISTED);
        out.push(d);
    }
    Ok(out)
}

/// `node sync` when the server is not running: opens nothing itself; the caller passes the
/// node's opened store.
pub async fn sync_user_with_store(
    tls: &TlsMaterial,
    store: Arc<storage::Store>,
    peer: &PeerConfig,
    user: &str,
    full: bool,
    resolve: bool,
) -> Result<SyncReport> {
    sync_user(
        tls,
        Arc::new(crate::storage_adapter::StorageReplica(store)),
        peer,
        user,
        full,
        resolve,
    )
    .await
}
