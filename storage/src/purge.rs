//! Purge (`node purge -u USER`, like doveadm purge): reclaims the pack space of objects no
//! message refers to. Crash-safe at every step:
//! 1. live objects of the affected packs (those with dead objects, and the open one) are copied
//!    into a new pack written under a temporary name, fsynced;
//! 2. renamed to its final name, directory fsynced (a crash before this leaves only a `.tmp`,
//!    deleted at open; after it, recovery indexes the new pack, whose copies then win);
//! 3. the index points the moved objects at the new pack and forgets the dead ones, flushed;
//! 4. only then are the old packs deleted (a crash before leaves unreferenced packs that the
//!    next purge deletes). A live object always has a durable copy the index can reach.

use crate::error::{Result, StoreError};
use crate::framed::{self, Ctx, FramedWriter};
use crate::index::{self, IndexTree, MsgRec, ObjLoc, PendingEntry};
use crate::pack;
use crate::store::{PurgeReport, UserStore};
use crate::types::ObjectId;
use crate::writer::WriterState;
use std::collections::{BTreeSet, HashSet};
use std::fs::File;

/// Test hook: exit the process at a named step (crash tests).
fn crash_point(step: &str) {
    if std::env::var("STORAGE_PURGE_CRASH_AT").is_ok_and(|s| s == step) {
        std::process::exit(86);
    }
}

pub(crate) fn purge(us: &UserStore, ws: &mut WriterState) -> Result<PurgeReport> {
    let v = us.view();
    let mut live: HashSet<ObjectId> = HashSet::new();
    for (_, m) in v.scan::<MsgRec>(b"m")? {
        live.insert(m.meta.object);
    }
    for (_, p) in v.scan::<PendingEntry>(b"p")? {
        live.insert(p.entry.object);
    }
    let locs = v.scan::<ObjLoc>(b"o")?;
    let packs_dir = us.dir.join("packs");
    let on_disk: BTreeSet<u32> = framed::list_numbered(&packs_dir, pack::EXT)?
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let referenced: BTreeSet<u32> = locs.iter().map(|(_, l)| l.pack).collect();
    let mut affected: BTreeSet<u32> = BTreeSet::new();
    let mut report = PurgeReport::default();
    let mut dead = Vec::new();
    for (k, l) in &locs {
        let id = ObjectId(
            k[1..]
                .try_into()
                .map_err(|_| StoreError::Index("bad object key".into()))?,
        );
        if !live.contains(&id) {
            affected.insert(l.pack);
            dead.push(id);
        }
    }
    // Packs nothing points to (left by a purge that crashed after its index update).
    let orphans: Vec<u32> = on_disk
        .iter()
        .copied()
        .filter(|n| !referenced.contains(n) && *n != ws.pack.no)
        .collect();
    if dead.is_empty() && orphans.is_empty() {
        return Ok(report);
    }
    let mut moved = Vec::new();
    if !dead.is_empty() {
        affected.insert(ws.pack.no);
        let new_no = on_disk.iter().max().copied().unwrap_or(0).max(ws.pack.no) + 1;
        let mut tmp = FramedWriter::create(&packs_dir, new_no, "pack.tmp", pack::KIND)?;
        let mut buf = Vec::new();
        for (k, l) in &locs {
            let id = ObjectId(
                k[1..]
                    .try_into()
                    .map_err(|_| StoreError::Index("bad object key".into()))?,
            );
            if !affected.contains(&l.pack) || !live.contains(&id) {
                continue;
            }
            let path = us.pack_path(l.pack);
            let file = File::open(&path).map_err(|e| StoreError::io(&path, e))?;
            let len = file.metadata().map_err(|e| StoreError::io(&path, e))?.len();
            let ctx = Ctx {
                user: &us.name,
                path: &path,
            };
            let payload = framed::read_frame(&file, l.offset, len, &pack::KIND, &ctx)?
                .ok_or_else(|| ctx.corrupt(l.offset, "no object frame here"))?;
            buf.clear();
            framed::encode_frame(&payload, &mut buf);
            let at = tmp.append(&buf)?;
            moved.push((
                id,
                ObjLoc {
                    pack: new_no,
                    offset: at,
                    raw_len: l.raw_len,
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
    }
    for no in affected.iter().chain(orphans.iter()) {
        if *no == ws.pack.no {
            continue;
        }
        let p = us.pack_path(*no);
        if let Ok(m) = std::fs::metadata(&p) {
            report.bytes_reclaimed += m.len();
        }
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io(&p, e)),
        }
    }
    // Net: the old files' sizes minus the new pack that took their live objects.
    if !dead.is_empty() {
        if let Ok(m) = std::fs::metadata(us.pack_path(ws.pack.no)) {
            report.bytes_reclaimed = report.bytes_reclaimed.saturating_sub(m.len());
        }
    }
    framed::sync_dir(&packs_dir)?;
    tracing::info!(user = %us.name, removed = report.objects_removed, bytes = report.bytes_reclaimed, "purge done");
    Ok(report)
}
