//! The dialing side's operations on a connection, shared by the continuous shipper and by
//! `sync_user`: push what the peer lacks (objects first, then records, then wait for the durable
//! Ack), pull what we lack, and the checked apply both sides use.

use crate::conn::Conn;
use crate::error::{ReplError, Result};
use crate::replicator::blocking;
use crate::store_api::{bytes_of, objects_of, Applied, ReplicaStore, ReplicaUser};
use crate::validate::check_records;
use crate::wire::{Message, Raw, WireRecord};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use storage::record::Record;
use storage::{ObjectId, VersionVector};

fn unexpected(m: &Message, wanted: &str) -> ReplError {
    match m {
        Message::Error { message } => ReplError::Refused(message.clone()),
        other => ReplError::protocol(format!("expected {wanted}, got {}", other.kind())),
    }
}

fn same_user(got: &str, want: &str) -> Result<()> {
    if got != want {
        return Err(ReplError::protocol(format!(
            "answer for user {got:?} to a request for {want:?}"
        )));
    }
    Ok(())
}

/// The peer's durable version vector for `user`.
pub(crate) async fn peer_vv(conn: &mut Conn, user: &str, t: Duration) -> Result<VersionVector> {
    conn.send(&Message::GetVersionVector { user: user.into() })
        .await?;
    match conn.recv_timeout(t, "version vector").await? {
        Message::VersionVector { user: u, vv } => {
            same_user(&u, user)?;
            Ok(vv)
        }
        m => Err(unexpected(&m, "VersionVector")),
    }
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Pushed {
    pub records: usize,
    pub objects: usize,
    pub bytes: u64,
    /// The batch was cut (by count or bytes): more may be waiting.
    pub more: bool,
    /// The peer's version vector from its durable Ack (None if nothing was sent).
    pub acked: Option<VersionVector>,
}

/// Sends one batch of what `peer_has` lacks. `on_loaded` sees the batch before it is sent.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn push_batch(
    conn: &mut Conn,
    u: &Arc<dyn ReplicaUser>,
    user: &str,
    peer_has: &VersionVector,
    limit: usize,
    max_bytes: u64,
    t: Duration,
    on_loaded: impl FnOnce(&[Record]),
) -> Result<Pushed> {
    let uu = u.clone();
    let have = peer_has.clone();
    let mut records = blocking(move || uu.records_since(&have, limit)).await?;
    if records.is_empty() {
        return Ok(Pushed::default());
    }
    let mut more = records.len() >= limit;
    // Cut by bytes, keeping at least one record.
    let mut total = 0u64;
    if let Some(cut) = records.iter().position(|r| {
        total += bytes_of(r);
        total > max_bytes
    }) {
        records.truncate(cut.max(1));
        more = true;
    }
    on_loaded(&records);

    // Objects of new appends go unasked (the peer lacks the records, so almost surely their
    // new objects too; storing one twice is harmless, objects are content-addressed). Objects
    // that copies and moves reuse are likely there already: ask first.
    let mut seen = BTreeSet::new();
    let mut send: Vec<ObjectId> = Vec::new();
    let mut ask: Vec<ObjectId> = Vec::new();
    for r in &records {
        let fresh = matches!(r.op, storage::record::Op::Append { .. });
        for o in objects_of(r) {
            if seen.insert(o) {
                if fresh {
                    send.push(o)
                } else {
                    ask.push(o)
                }
            }
        }
    }
    let mut out = Pushed {
        records: records.len(),
        more,
        ..Pushed::default()
    };
    if !ask.is_empty() {
        conn.send(&Message::HaveObjects {
            user: user.into(),
            ids: ask.clone(),
        })
        .await?;
        let missing = match conn.recv_timeout(t, "missing objects").await? {
            Message::MissingObjects { user: mu, ids: m } => {
                same_user(&mu, user)?;
                m
            }
            m => return Err(unexpected(&m, "MissingObjects")),
        };
        for id in missing {
            if !ask.contains(&id) {
                return Err(ReplError::protocol(format!(
                    "peer asked for object {id:?} it was not offered"
                )));
            }
            send.push(id);
        }
    }
    // Read in groups (one blocking hop per group, not per object), bounded in memory.
    for group in send.chunks(64) {
        let uu = u.clone();
        let ids = group.to_vec();
        let raws = blocking(move || {
            ids.into_iter()
                .map(|id| uu.read_object(&id).map(|raw| (id, raw)))
                .collect::<std::result::Result<Vec<_>, _>>()
        })
        .await?;
        for (id, raw) in raws {
            out.objects += 1;
            out.bytes += raw.len() as u64;
            conn.feed(&Message::Object {
                user: user.into(),
                id,
                raw: Raw(raw),
            })
            .await?;
        }
    }
    let wire = records
        .iter()
        .map(|r| WireRecord::encode(user, r))
        .collect::<Result<Vec<_>>>()?;
    out.bytes += wire.iter().map(|w| w.payload.len() as u64).sum::<u64>();
    conn.send(&Message::Records {
        user: user.into(),
        records: wire,
    })
    .await?;
    match conn.recv_timeout(t, "ack").await? {
        Message::Ack { user: au, vv } => {
            same_user(&au, user)?;
            out.acked = Some(vv);
        }
        m => return Err(unexpected(&m, "Ack")),
    }
    Ok(out)
}

/// Validates a frame of records from a peer and applies it: checksums, user binding, sequence
/// continuity and contents are checked for the whole frame before anything is applied.
/// `objects` (raw bodies that arrived with the frame) are stored in the same store call as the
/// first chunk of records: one group commit, one fsync for records and objects together.
/// Resolves reported UID conflicts when this node is the resolver.
pub(crate) async fn apply_checked(
    store: &Arc<dyn ReplicaStore>,
    u: &Arc<dyn ReplicaUser>,
    user: &str,
    wire: &[WireRecord],
    objects: Vec<Vec<u8>>,
    resolve: bool,
) -> Result<(Applied, Vec<Record>, usize)> {
    let uu = u.clone();
    let have = blocking(move || uu.version_vector()).await?;
    let records = check_records(user, wire, &have)?;
    // Merge peer clocks so our next changes order after what we have seen.
    if let Some(latest) = records.iter().map(|r| r.time).max() {
        if let Err(e) = store.observe(latest) {
            tracing::warn!(user, error = %e, "replication: peer clock ahead");
        }
    }
    let mut applied = Applied::default();
    let mut resolved = 0;
    let mut objects = Some(objects);
    for chunk in chunks_for_apply(&records, resolve) {
        let uu = u.clone();
        let recs = chunk.to_vec();
        // Later chunks find the objects stored by the first.
        let objs = objects.take().unwrap_or_default();
        // Durable on return: the store fsyncs the objects and records (one group commit)
        // before returning.
        let a = blocking(move || {
            let refs: Vec<&[u8]> = objs.iter().map(|o| o.as_slice()).collect();
            uu.apply_remote_with_objects(&refs, &recs)
        })
        .await?;
        applied.applied += a.applied;
        if resolve {
            for mb in a.conflicts.iter().copied() {
                let uu = u.clone();
                match blocking(move || uu.resolve_conflicts(mb)).await {
                    Ok(()) => {
                        resolved += 1;
                        tracing::info!(user, mailbox = %mb, "replication: UID conflict resolved by renumbering");
                    }
                    Err(e) => {
                        tracing::warn!(user, mailbox = %mb, error = %e, "replication: cannot resolve UID conflict")
                    }
                }
            }
        } else if !a.conflicts.is_empty() {
            tracing::info!(
                user,
                mailboxes = a.conflicts.len(),
                "replication: UID conflict pending; the cluster's resolver node will renumber"
            );
        }
        applied.conflicts.extend(a.conflicts);
    }
    Ok((applied, records, resolved))
}

/// How the resolver splits a frame for applying. A message that arrives and conflicts must be
/// renumbered before a later record of the same frame expunges or moves it away: otherwise its
/// pending entry vanishes here, the resolver sees nothing left to renumber, and the local
/// message holding the contested UID keeps it while the other nodes hold our message pending.
/// So the resolver cuts the frame before each removal that follows an insertion. Nodes that
/// do not resolve apply the frame whole (one fsync).
pub(crate) fn chunks_for_apply(records: &[Record], resolve: bool) -> Vec<&[Record]> {
    use storage::record::Op;
    if !resolve {
        return vec![records];
    }
    let mut out = Vec::new();
    let mut start = 0;
    let mut inserted = false;
    for (i, r) in records.iter().enumerate() {
        let removes = matches!(
            r.op,
            Op::Expunge { .. }
                | Op::Move { .. }
                | Op::MailboxDelete { .. }
                | Op::MailboxRename { .. }
        );
        if removes && inserted && i > start {
            out.push(&records[start..i]);
            start = i;
            inserted = false;
        }
        if matches!(r.op, Op::Append { .. } | Op::Copy { .. } | Op::Move { .. }) {
            inserted = true;
        }
    }
    if start < records.len() {
        out.push(&records[start..]);
    }
    out
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Pulled {
    pub records: usize,
    pub objects: usize,
    pub bytes: u64,
    pub conflicts_resolved: usize,
}

/// Pulls everything the peer has that we lack, fetching the objects we miss first.
pub(crate) async fn pull_all(
    conn: &mut Conn,
    store: &Arc<dyn ReplicaStore>,
    u: &Arc<dyn ReplicaUser>,
    user: &str,
    limit: u32,
    resolve: bool,
    t: Duration,
) -> Result<Pulled> {
    let mut out = Pulled::default();
    loop {
        let uu = u.clone();
        let have = blocking(move || uu.version_vector()).await?;
        conn.send(&Message::Pull {
            user: user.into(),
            have: have.clone(),
            limit,
        })
        .await?;
        let (wire, more) = match conn.recv_timeout(t, "pull reply").await? {
            Message::PullReply {
                user: pu,
                records,
                more,
            } => {
                same_user(&pu, user)?;
                (records, more)
            }
            m => return Err(unexpected(&m, "PullReply")),
        };
        if wire.is_empty() {
            return Ok(out);
        }
        // Check before fetching anything the records name.
        let records = check_records(user, &wire, &have)?;
        let mut seen = BTreeSet::new();
        let wanted: Vec<ObjectId> = records
            .iter()
            .flat_map(objects_of)
            .filter(|id| seen.insert(*id))
            .collect();
        let uu = u.clone();
        let missing = blocking(move || {
            let mut m = Vec::new();
            for id in wanted {
                if !uu.has_object(&id)? {
                    m.push(id);
                }
            }
            Ok(m)
        })
        .await?;
        let mut puts: std::collections::VecDeque<
            tokio::task::JoinHandle<std::result::Result<ObjectId, storage::StoreError>>,
        > = Default::default();
        let mut next = 0;
        while next < missing.len() {
            let ask = &missing[next..(next + 1000).min(missing.len())];
            conn.send(&Message::GetObjects {
                user: user.into(),
                ids: ask.to_vec(),
            })
            .await?;
            let objects = match conn.recv_timeout(t, "objects").await? {
                Message::ObjectsData { user: ou, objects } => {
                    same_user(&ou, user)?;
                    objects
                }
                m => return Err(unexpected(&m, "ObjectsData")),
            };
            if objects.is_empty() || objects.len() > ask.len() {
                return Err(ReplError::protocol(format!(
                    "{} objects in answer to {} asked",
                    objects.len(),
                    ask.len()
                )));
            }
            for ((id, raw), want) in objects.into_iter().zip(ask) {
                if id != *want {
                    return Err(ReplError::protocol(
                        "objects answered out of order".to_string(),
                    ));
                }
                let raw = raw.ok_or_else(|| {
                    ReplError::Other(format!("peer lacks object {id:?} its records need"))
                })?;
                if ObjectId::of(&raw) != id {
                    return Err(ReplError::protocol(format!(
                        "object {id:?} failed its hash check"
                    )));
                }
                out.objects += 1;
                out.bytes += raw.len() as u64;
                next += 1;
                // Stored concurrently so the store's group commit shares fsyncs; all are
                // durable before the records that need them are applied.
                if puts.len() >= 128 {
                    if let Some(p) = puts.pop_front() {
                        p.await.map_err(|e| ReplError::Other(e.to_string()))??;
                    }
                }
                let uu = u.clone();
                puts.push_back(tokio::task::spawn_blocking(move || uu.put_object(&raw.0)));
            }
        }
        for p in puts {
            p.await.map_err(|e| ReplError::Other(e.to_string()))??;
        }
        let (applied, _, resolved) =
            apply_checked(store, u, user, &wire, Vec::new(), resolve).await?;
        out.records += applied.applied;
        out.bytes += wire.iter().map(|w| w.payload.len() as u64).sum::<u64>();
        out.conflicts_resolved += resolved;
        if !more {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::record::Op;
    use storage::{Guid, HlcTime};

    fn r(seq: u64, op: Op) -> Record {
        Record {
            origin: 2,
            seq,
            time: HlcTime {
                wall_ms: seq,
                logical: 0,
                node: 2,
            },
            op,
        }
    }

    #[test]
    fn resolver_cuts_before_removal_after_insertion() {
        let mb = Guid([1; 16]);
        let ins = |s| {
            r(
                s,
                Op::Copy {
                    from: mb,
                    to: mb,
                    entries: vec![],
                    modseq: 1,
                },
            )
        };
        let exp = |s| {
            r(
                s,
                Op::Expunge {
                    mailbox: mb,
                    messages: vec![],
                    modseq: 1,
                },
            )
        };
        let recs = vec![exp(1), ins(2), ins(3), exp(4), exp(5), ins(6), exp(7)];
        let sizes: Vec<usize> = chunks_for_apply(&recs, true)
            .iter()
            .map(|c| c.len())
            .collect();
        assert_eq!(sizes, vec![3, 3, 1]);
        assert_eq!(chunks_for_apply(&recs, false).len(), 1);
        assert!(chunks_for_apply(&[], true).is_empty());
    }
}
