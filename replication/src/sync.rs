//! `node sync -u USER [--peer NODE]`: one exchange with a peer, both directions, of what each
//! side's version vector says the other lacks. Prints (returns) what moved.

use crate::align::{self, Check};
use crate::config::PeerConfig;
use crate::conn::Conn;
use crate::error::Result;
use crate::exchange::{peer_vv, pull_all, push_batch};
use crate::store_api::{MessageKey, ReplicaStore, ReplicaUser};
use crate::tls::TlsMaterial;
use crate::util::blocking;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::{MailboxId, NodeId, VersionVector};

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
    /// Mailboxes whose modseqs this node (the resolver) aligned with the peer's
    /// (`Op::AlignModseqs`, see [`crate::align`]).
    #[serde(default)]
    pub modseqs_aligned: u64,
    /// `--full` on a node that does not resolve: mailboxes that differ from the peer only in
    /// modseqs. Not divergence: the resolver aligns them when it next syncs or ships the user.
    #[serde(default)]
    pub modseqs_differ: Vec<String>,
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
        for name in &self.modseqs_differ {
            writeln!(
                f,
                "{}: mailbox {name:?}: modseqs differ from node {} (messages and flags agree); \
                 the merge resolver (lowest node id) aligns them",
                self.user, self.peer
            )?;
        }
        if self.modseqs_aligned > 0 {
            writeln!(
                f,
                "{}: modseqs aligned with node {} in {} mailboxes",
                self.user, self.peer, self.modseqs_aligned
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
/// conflicts and aligns modseqs (see [`crate::policy`], [`crate::align`]). `full`: afterwards
/// compare every mailbox's digest of (UID, GUID, flags); where they differ, rebuild this node's
/// index from its log and compare again; what still differs is reported with the UIDs involved.
/// A difference only in modseqs is not divergence (no rebuild): the resolver aligns it.
pub async fn sync_user(
    tls: &TlsMaterial,
    store: Arc<dyn ReplicaStore>,
    peer: &PeerConfig,
    user: &str,
    full: bool,
    resolve: bool,
) -> Result<SyncReport> {
    sync_user_at(tls, store, peer, user, full, resolve, 0).await
}

/// [`sync_user`] from a node that holds the fencing `epoch` (raft mode): its pushes carry it,
/// so a peer that knows that epoch does not refuse them.
pub async fn sync_user_at(
    tls: &TlsMaterial,
    store: Arc<dyn ReplicaStore>,
    peer: &PeerConfig,
    user: &str,
    full: bool,
    resolve: bool,
    epoch: u64,
) -> Result<SyncReport> {
    let started = Instant::now();
    let mut conn = Conn::connect(tls, store.node_id(), store.now(), peer.id, &peer.addr).await?;
    if epoch > 0 {
        conn.send(&crate::wire::Message::Epoch { epoch }).await?;
    }
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
    let uu = u.clone();
    let ours_before = blocking(move || uu.version_vector()).await?;

    // Push: what the peer lacks, until its acks cover our log.
    let theirs_before = peer_vv(&mut conn, user, REPLY_TIMEOUT).await?;
    let mut theirs_after =
        push_all(&mut conn, &u, user, theirs_before.clone(), &mut report).await?;
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
    if pulled.conflicts_resolved > 0 {
        // The renumbering just written here: the peer gets it now, so one sync converges.
        let have = peer_vv(&mut conn, user, REPLY_TIMEOUT).await?;
        theirs_after = push_all(&mut conn, &u, user, have, &mut report).await?;
    }
    // Records of another node moved: the two nodes may have applied records in different
    // orders, so their modseqs may differ (only then: a push of our own records changes none).
    let uu = u.clone();
    let ours_after = blocking(move || uu.version_vector()).await?;
    let me = store.node_id();
    let foreign_moved = |before: &VersionVector, after: &VersionVector| {
        after
            .iter()
            .any(|(o, s)| *o != me && before.get(o).copied().unwrap_or(0) < *s)
    };
    if resolve
        && (full
            || foreign_moved(&ours_before, &ours_after)
            || foreign_moved(&theirs_before, &theirs_after))
    {
        align_modseqs(&mut conn, &u, user, &mut report).await?;
    }
    if full {
        full_compare(&mut conn, &u, user, peer.id, &mut report).await?;
    }
    report.seconds = started.elapsed().as_secs_f64();
    tracing::info!(%report, "replication: sync done");
    Ok(report)
}

/// The merge resolver's modseq check against the peer; our alignment records go to it at once.
async fn align_modseqs(
    conn: &mut Conn,
    u: &Arc<dyn ReplicaUser>,
    user: &str,
    report: &mut SyncReport,
) -> Result<()> {
    if let Check::Done(a) = align::check(conn, u, user, REPLY_TIMEOUT).await? {
        report.modseqs_aligned = a.mailboxes as u64;
        if a.mailboxes > 0 {
            // Our AlignModseqs records: the peer applies them now.
            let have = peer_vv(conn, user, REPLY_TIMEOUT).await?;
            push_all(conn, u, user, have, report).await?;
        }
    }
    Ok(())
}

/// `--full`: compares every mailbox with the peer; a difference rebuilds this node's index from
/// its log and compares again; what still differs is reported.
async fn full_compare(
    conn: &mut Conn,
    u: &Arc<dyn ReplicaUser>,
    user: &str,
    peer: storage::NodeId,
    report: &mut SyncReport,
) -> Result<()> {
    let (mut diverged, mut modseqs_only) = compare(conn, u, user).await?;
    if !diverged.is_empty() {
        let uu = u.clone();
        blocking(move || uu.rebuild_index()).await?;
        report.rebuilt_local_index = true;
        (diverged, modseqs_only) = compare(conn, u, user).await?;
        if diverged.is_empty() {
            tracing::warn!(
                user,
                peer,
                "replication: full sync found this node's index diverged from its log; rebuilt it"
            );
        } else {
            tracing::warn!(
                user,
                peer,
                mailboxes = diverged.len(),
                "replication: full sync found mailboxes that differ from the peer"
            );
        }
    }
    if !modseqs_only.is_empty() {
        tracing::info!(
            user,
            peer,
            mailboxes = modseqs_only.len(),
            "replication: full sync: modseqs differ from the peer; left to the merge resolver"
        );
    }
    report.diverged = diverged;
    report.modseqs_differ = modseqs_only;
    Ok(())
}

/// Pushes batches until the peer's acks cover our log; returns the peer's last known vector.
async fn push_all(
    conn: &mut Conn,
    u: &Arc<dyn ReplicaUser>,
    user: &str,
    mut have: VersionVector,
    report: &mut SyncReport,
) -> Result<VersionVector> {
    loop {
        let pushed = push_batch(
            conn,
            u,
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
            Some(vv) => return Ok(vv),
            None => return Ok(have),
        }
    }
}

const MAX_LISTED: usize = 1000;

/// Compares every mailbox's digest with the peer's; lists the UIDs where messages (UID, GUID,
/// flags) differ. Returns those, and the names of mailboxes that differ only in modseqs.
async fn compare(
    conn: &mut Conn,
    u: &Arc<dyn ReplicaUser>,
    user: &str,
) -> Result<(Vec<Divergence>, Vec<String>)> {
    let local = align::local_digests(u).await?;
    let remote = align::remote_digests(conn, user, REPLY_TIMEOUT).await?;
    let mut out = Vec::new();
    let mut modseqs_only = Vec::new();
    let ids: BTreeSet<MailboxId> = local.keys().chain(remote.keys()).copied().collect();
    for id in ids {
        let (l, r) = (local.get(&id), remote.get(&id));
        if let (Some(l), Some(r)) = (l, r) {
            if l == r {
                continue;
            }
            if l.same_content(r) {
                // Only a real modseq difference is reported: expunged UIDs' tombstones may
                // differ for good (after a renumbering each node keeps the GUID it held at
                // the old UID), and `sync --full` printed "modseqs differ" for that on every
                // run while both nodes showed identical modseqs.
                if l.modseq_hash != r.modseq_hash || l.highestmodseq != r.highestmodseq {
                    modseqs_only.push(l.name.clone());
                }
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
            align::remote_listing(conn, user, id, REPLY_TIMEOUT).await?
        } else {
            Vec::new()
        };
        // Modseqs aside: those are aligned, not repaired by a rebuild.
        let strip = |v: Vec<MessageKey>| -> BTreeMap<u32, MessageKey> {
            v.into_iter()
                .map(|m| (m.uid, MessageKey { modseq: 0, ..m }))
                .collect()
        };
        let (here, there) = (strip(here), strip(there));
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
        let same_mailbox = matches!((l, r), (Some(l), Some(r))
            if l.name == r.name && l.uidvalidity == r.uidvalidity);
        if same_mailbox
            && d.only_here.is_empty()
            && d.only_there.is_empty()
            && d.differing.is_empty()
        {
            // Only modseqs differ after all (or a write landed between the two reads).
            continue;
        }
        d.only_here.truncate(MAX_LISTED);
        d.only_there.truncate(MAX_LISTED);
        d.differing.truncate(MAX_LISTED);
        out.push(d);
    }
    Ok((out, modseqs_only))
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
