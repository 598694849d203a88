//! `node sync -u USER [--peer NODE]`: one exchange with a peer, both directions, of what each
//! side's version vector says the other lacks. Prints (returns) what moved.

use crate::conn::Conn;
use crate::error::Result;
use crate::exchange::{peer_vv, pull_all, push_batch};
use crate::replicator::{blocking, PeerConfig};
use crate::store_api::ReplicaStore;
use crate::tls::TlsMaterial;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::NodeId;

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
    pub seconds: f64,
}

impl std::fmt::Display for SyncReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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
/// conflicts (see [`crate::policy`]). `full` is accepted for the CLI but does not yet compare
/// per-mailbox hashes: the exchange is by version vectors only.
pub async fn sync_user(
    tls: &TlsMaterial,
    store: Arc<dyn ReplicaStore>,
    peer: &PeerConfig,
    user: &str,
    full: bool,
    resolve: bool,
) -> Result<SyncReport> {
    let _ = full;
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
    report.seconds = started.elapsed().as_secs_f64();
    tracing::info!(%report, "replication: sync done");
    Ok(report)
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
