//! Purge (`node purge -u USER`, like doveadm purge): moves the message objects carried in the
//! log into a pack and reclaims the space of objects no message refers to. Crash-safe at every
//! step; a live object always has a durable copy that the index (or a rebuild) reaches:
//! 1. the log is rolled if its open segment carries objects, so every segment with objects is
//!    closed;
//! 2. live objects of those segments and of the affected packs (packs with dead objects, and the
//!    open one) are copied into a new pack written under a temporary name, fsynced, renamed,
//!    directory fsynced (a crash before the rename leaves a `.tmp`, deleted at open; after it,
//!    recovery indexes the new pack);
//! 3. the index points the moved objects at the new pack and forgets the dead ones, flushed;
//! 4. closed segments that carried objects are rewritten without them, their records byte for
//!    byte (temporary file, fsync, rename, directory fsync);
//! 5. the old packs are deleted (a crash before leaves unreferenced packs the next purge deletes).
//!
//! Peers that have not yet received the Append of a message purged here still get its record,
//! without the object; they keep the message as an invisible ghost until the record removing it
//! arrives (replication's `purged` module, `apply_remote_purged`).

use crate::error::{Result, StoreError};
use crate::framed::{self, Ctx, FramedWriter, HEADER_LEN};
use crate::index::{self, IndexTree, MsgRec, ObjLoc, PendingEntry};
use crate::types::ObjectId;
use crate::user_core::{UserCore, WriterState};
use crate::{log, pack};
use std::collections::{BTreeSet, HashSet};
use std::fs::File;
use std::path::Path;

/// What a purge did, for `node purge` to report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PurgeReport {
    pub objects_removed: u64,
    pub bytes_reclaimed: u64,
}

/// Fault injection for the crash tests: exit the process at a named step.
fn crash_point(step: &str) {
    if std::env::var("STORAGE_PURGE_CRASH_AT").is_ok_and(|s| s == step) {
        std::process::exit(86);
    }
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

pub(crate) fn purge(us: &UserCore, ws: &mut WriterState) -> Result<PurgeReport> {
    // Objects about to be dropped must not be served from memory afterwards.
    us.recent.lock().forget_objects();
    let v = us.view();
    let mut live: HashSet<ObjectId> = HashSet::new();
    for (_, m) in v.scan::<MsgRec>(b"m")? {
        live.insert(m.meta.object);
    }
    for (_, p) in v.scan::<PendingEntry>(b"p")? {
        live.insert(p.entry.object);
    }
    let mut locs = Vec::new();
    for (k, l) in v.scan::<ObjLoc>(b"o")? {
        let id: [u8; 32] = k
            .get(1..)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| StoreError::Index(format!("user {}: bad object key", us.name)))?;
        locs.push((ObjectId(id), l));
    }
    let packs_dir = us.dir.join("packs");
    let log_dir = us.dir.join("log");
    let on_disk: BTreeSet<u32> = framed::list_numbered(&packs_dir, pack::EXT)?
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let referenced: BTreeSet<u32> = locs
        .iter()
        .filter(|(_, l)| !l.in_log)
        .map(|(_, l)| l.pack)
        .collect();
    let orphans: Vec<u32> = on_disk
        .iter()
        .copied()
        .filter(|n| !referenced.contains(n) && *n != ws.pack.no)
        .collect();
    let dead: Vec<ObjectId> = locs
        .iter()
        .filter(|(id, _)| !live.contains(id))
        .map(|(id, _)| *id)
        .collect();
    let in_log = locs.iter().any(|(_, l)| l.in_log);
    let mut report = PurgeReport::default();
    if dead.is_empty() && !in_log && orphans.is_empty() {
        return Ok(report);
    }
    let mut freed: u64 = 0;
    let mut added: u64 = 0;
    let mut affected: BTreeSet<u32> = BTreeSet::new();
    if !dead.is_empty() || in_log {
        // 1. Close the open segment if it carries objects.
        if locs.iter().any(|(_, l)| l.in_log && l.pack == ws.log.no) {
            ws.log = FramedWriter::create(&log_dir, ws.log.no + 1, log::EXT, log::KIND)?;
            ws.meta.log_seg = ws.log.no;
            ws.meta.log_off = ws.log.end();
        }
        affected = locs
            .iter()
            .filter(|(id, l)| !l.in_log && !live.contains(id))
            .map(|(_, l)| l.pack)
            .collect();
        affected.insert(ws.pack.no);
        // 2. The new pack.
        let new_no = on_disk.iter().max().copied().unwrap_or(0).max(ws.pack.no) + 1;
        let _ = std::fs::remove_file(packs_dir.join(format!("{new_no:08}.pack.tmp")));
        let mut tmp = FramedWriter::create(&packs_dir, new_no, "pack.tmp", pack::KIND)?;
        let mut moved = Vec::new();
        let mut buf = Vec::new();
        for (id, l) in &locs {
            if !live.contains(id) || (!l.in_log && !affected.contains(&l.pack)) {
                continue;
            }
            let (path, kind, prefix) = if l.in_log {
                (us.segment_path(l.pack), &log::KIND, 1)
            } else {
                (us.pack_path(l.pack), &pack::KIND, 0)
            };
            let file = File::open(&path).map_err(|e| StoreError::io(&path, e))?;
            let len = file.metadata().map_err(|e| StoreError::io(&path, e))?.len();
            let ctx = Ctx {
                user: &us.name,
                path: &path,
            };
            let payload = framed::read_frame(&file, l.offset, len, kind, &ctx)?
                .ok_or_else(|| ctx.corrupt(l.offset, "no object frame here"))?;
            let body = payload
                .get(prefix..)
                .filter(|b| pack::parse_payload(b).is_some_and(|(got, _, _)| got == *id))
                .ok_or_else(|| ctx.corrupt(l.offset, "not the object the index names"))?;
            buf.clear();
            framed::encode_frame(body, &mut buf);
            let at = tmp.append(&buf)?;
            moved.push((
                *id,
                ObjLoc {
                    pack: new_no,
                    offset: at,
                    raw_len: l.raw_len,
                    in_log: false,
                },
            ));
        }
        tmp.sync()?;
        crash_point("before-rename");
        let final_path = us.pack_path(new_no);
        std::fs::rename(&tmp.path, &final_path).map_err(|e| StoreError::io(&final_path, e))?;
        framed::sync_dir(&packs_dir)?;
        crash_point("after-rename");
        let end = tmp.end();
        drop(tmp);
        added += size(&final_path);
        // 3. The index follows.
        let mut changes: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
        for (id, l) in &moved {
            changes.push((index::k_object(id), Some(index::encode(l))));
        }
        for id in &dead {
            changes.push((index::k_object(id), None));
            changes.push((index::k_facts(id), None));
        }
        let mut meta = ws.meta.clone();
        meta.pack_no = new_no;
        meta.pack_off = end;
        changes.push((index::META.to_vec(), Some(index::encode(&meta))));
        us.tree.apply(changes)?;
        us.tree
            .flush()
            .map_err(|e| StoreError::Index(e.to_string()))?;
        ws.meta = meta;
        ws.pack = FramedWriter::open_at(&final_path, new_no, pack::KIND, end, false)?;
        crash_point("after-index");
        report.objects_removed = dead.len() as u64;
        // 4. Closed segments lose their objects; records stay byte for byte.
        for (no, path) in framed::list_numbered(&log_dir, log::EXT)? {
            if no >= ws.log.no {
                continue;
            }
            let (before, after) = rewrite_segment(us, &log_dir, no, &path)?;
            freed += before;
            added += after;
        }
    }
    // 5. Old packs go.
    for no in affected.iter().chain(orphans.iter()) {
        if *no == ws.pack.no {
            continue;
        }
        let p = us.pack_path(*no);
        freed += size(&p);
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io(&p, e)),
        }
    }
    framed::sync_dir(&packs_dir)?;
    report.bytes_reclaimed = freed.saturating_sub(added);
    tracing::info!(user = %us.name, removed = report.objects_removed,
        bytes = report.bytes_reclaimed, "purge done");
    Ok(report)
}

/// Rewrites a closed segment without its object entries; returns (old size, new size), or
/// (0, 0) when it carries no objects.
fn rewrite_segment(us: &UserCore, log_dir: &Path, no: u32, path: &Path) -> Result<(u64, u64)> {
    let mut records: Vec<Vec<u8>> = Vec::new();
    let mut objects = 0;
    framed::scan(path, &log::KIND, &us.name, HEADER_LEN, |_, payload| {
        if payload.first() == Some(&log::TAG_OBJECT) {
            objects += 1;
        } else {
            records.push(payload);
        }
        Ok(())
    })?;
    if objects == 0 {
        return Ok((0, 0));
    }
    let _ = std::fs::remove_file(log_dir.join(format!("{no:08}.seg.tmp")));
    let mut tmp = FramedWriter::create(log_dir, no, "seg.tmp", log::KIND)?;
    let mut buf = Vec::new();
    for r in &records {
        framed::encode_frame(r, &mut buf);
    }
    tmp.append(&buf)?;
    tmp.sync()?;
    // The copy must hold exactly the records of the original before it replaces it.
    let mut n = 0;
    framed::scan(&tmp.path, &log::KIND, &us.name, HEADER_LEN, |_, p| {
        if records.get(n) != Some(&p) {
            return Err(StoreError::Other(format!(
                "purge: rewritten segment {} differs at record {n}",
                tmp.path.display()
            )));
        }
        n += 1;
        Ok(())
    })?;
    if n != records.len() {
        return Err(StoreError::Other(
            "purge: rewritten segment is short".into(),
        ));
    }
    crash_point("before-segment-rename");
    let before = size(path);
    std::fs::rename(&tmp.path, path).map_err(|e| StoreError::io(path, e))?;
    framed::sync_dir(log_dir)?;
    Ok((before, size(path)))
}
