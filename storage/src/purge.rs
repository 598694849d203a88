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

/// Purges one user; the caller holds the writer's lock (`ws`) and has flushed the index
/// overlay, so sled holds every committed change and no batch runs meanwhile. The numbered
/// steps are those of the module's documentation.
pub(crate) fn purge(us: &UserCore, ws: &mut WriterState) -> Result<PurgeReport> {
    // Objects about to be dropped must not be served from memory afterwards.
    us.recent.lock().forget_objects();
    let survey = Survey::take(us, ws)?;
    let mut report = PurgeReport::default();
    if survey.dead.is_empty() && !survey.in_log && survey.orphans.is_empty() {
        return Ok(report);
    }
    let mut freed: u64 = 0;
    let mut added: u64 = 0;
    let mut affected: BTreeSet<u32> = BTreeSet::new();
    if !survey.dead.is_empty() || survey.in_log {
        close_segment_with_objects(us, ws, &survey)?;
        affected = survey.affected_packs(ws.pack.no);
        let new_pack = copy_live_objects(us, ws, &survey, &affected)?;
        added += size(&new_pack.path);
        point_index_at(us, ws, new_pack, &survey.dead)?;
        report.objects_removed = survey.dead.len() as u64;
        let (before, after) = strip_closed_segments(us, ws)?;
        freed += before;
        added += after;
    }
    freed += delete_old_packs(us, ws, affected.iter().chain(survey.orphans.iter()))?;
    report.bytes_reclaimed = freed.saturating_sub(added);
    tracing::info!(user = %us.name, removed = report.objects_removed,
        bytes = report.bytes_reclaimed, "purge done");
    Ok(report)
}

/// What the index and the packs directory say before a purge starts.
struct Survey {
    /// Objects a message (or a pending remote entry) refers to.
    live: HashSet<ObjectId>,
    /// Every object the index knows, with where it is.
    locs: Vec<(ObjectId, ObjLoc)>,
    /// Objects no one refers to.
    dead: Vec<ObjectId>,
    /// Packs on disk that no object location names (left by a crashed purge), but the open one.
    orphans: Vec<u32>,
    /// Whether some object is still carried in the log.
    in_log: bool,
    /// Pack numbers on disk.
    on_disk: BTreeSet<u32>,
}

impl Survey {
    fn take(us: &UserCore, ws: &WriterState) -> Result<Survey> {
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
        let on_disk: BTreeSet<u32> = framed::list_numbered(&us.dir.join("packs"), pack::EXT)?
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
        Ok(Survey {
            live,
            locs,
            dead,
            orphans,
            in_log,
            on_disk,
        })
    }

    /// Packs to rewrite: those holding dead objects, and the open one.
    fn affected_packs(&self, open_pack: u32) -> BTreeSet<u32> {
        let mut affected: BTreeSet<u32> = self
            .locs
            .iter()
            .filter(|(id, l)| !l.in_log && !self.live.contains(id))
            .map(|(_, l)| l.pack)
            .collect();
        affected.insert(open_pack);
        affected
    }
}

/// 1. Closes the open segment if it carries objects (the writer goes on in a new one), so every
///    segment with objects is closed and step 4 may rewrite it.
fn close_segment_with_objects(us: &UserCore, ws: &mut WriterState, survey: &Survey) -> Result<()> {
    if survey
        .locs
        .iter()
        .any(|(_, l)| l.in_log && l.pack == ws.log.no)
    {
        ws.log = FramedWriter::create(&us.dir.join("log"), ws.log.no + 1, log::EXT, log::KIND)?;
        ws.meta.log_seg = ws.log.no;
        ws.meta.log_off = ws.log.end();
    }
    Ok(())
}

/// The pack step 2 wrote, durable under its final name, and where each object went in it.
struct NewPack {
    no: u32,
    path: std::path::PathBuf,
    end: u64,
    moved: Vec<(ObjectId, ObjLoc)>,
}

/// 2. Copies the live objects of the log and of the `affected` packs into a new pack, each read
///    back and checked against the id the index names.
fn copy_live_objects(
    us: &UserCore,
    ws: &WriterState,
    survey: &Survey,
    affected: &BTreeSet<u32>,
) -> Result<NewPack> {
    let packs_dir = us.dir.join("packs");
    let new_no = survey
        .on_disk
        .iter()
        .max()
        .copied()
        .unwrap_or(0)
        .max(ws.pack.no)
        + 1;
    let _ = std::fs::remove_file(packs_dir.join(format!("{new_no:08}.pack.tmp")));
    let mut tmp = FramedWriter::create(&packs_dir, new_no, "pack.tmp", pack::KIND)?;
    let mut moved = Vec::new();
    let mut buf = Vec::new();
    for (id, l) in &survey.locs {
        if !survey.live.contains(id) || (!l.in_log && !affected.contains(&l.pack)) {
            continue;
        }
        let body = read_object_frame(us, id, l)?;
        buf.clear();
        framed::encode_frame(&body, &mut buf);
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
    // DURABILITY POINT: the copies are on disk (fsync) before the pack takes its final name,
    // and the name is durable (directory fsync) before the index points at it in step 3.
    tmp.sync()?;
    crash_point("before-rename");
    let path = us.pack_path(new_no);
    std::fs::rename(&tmp.path, &path).map_err(|e| StoreError::io(&path, e))?;
    framed::sync_dir(&packs_dir)?;
    crash_point("after-rename");
    Ok(NewPack {
        no: new_no,
        path,
        end: tmp.end(),
        moved,
    })
}

/// The stored payload of object `id` at `l` (in a pack, or in a log segment after its tag),
/// checked to be that object.
fn read_object_frame(us: &UserCore, id: &ObjectId, l: &ObjLoc) -> Result<Vec<u8>> {
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
    payload
        .get(prefix..)
        .filter(|b| pack::parse_payload(b).is_some_and(|(got, _, _)| got == *id))
        .map(<[u8]>::to_vec)
        .ok_or_else(|| ctx.corrupt(l.offset, "not the object the index names"))
}

/// 3. The index points the moved objects at the new pack, forgets the dead ones (and their
///    cached facts), and takes the new pack as the writer's; flushed before anything is deleted.
fn point_index_at(
    us: &UserCore,
    ws: &mut WriterState,
    new_pack: NewPack,
    dead: &[ObjectId],
) -> Result<()> {
    let mut changes: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
    for (id, l) in &new_pack.moved {
        changes.push((index::k_object(id), Some(index::encode(l))));
    }
    for id in dead {
        changes.push((index::k_object(id), None));
        changes.push((index::k_facts(id), None));
        changes.push((index::k_header(id), None));
    }
    let mut meta = ws.meta.clone();
    meta.pack_no = new_pack.no;
    meta.pack_off = new_pack.end;
    changes.push((index::META.to_vec(), Some(index::encode(&meta))));
    us.tree.apply(changes)?;
    // The old copies may go only once the index no longer names them, durably.
    us.tree
        .flush()
        .map_err(|e| StoreError::Index(e.to_string()))?;
    ws.meta = meta;
    ws.pack = FramedWriter::open_at(&new_pack.path, new_pack.no, pack::KIND, new_pack.end, false)?;
    crash_point("after-index");
    Ok(())
}

/// 4. Closed segments lose their objects; records stay byte for byte. Returns the rewritten
///    segments' sizes (before, after).
fn strip_closed_segments(us: &UserCore, ws: &WriterState) -> Result<(u64, u64)> {
    let log_dir = us.dir.join("log");
    let (mut before, mut after) = (0, 0);
    for (no, path) in framed::list_numbered(&log_dir, log::EXT)? {
        if no >= ws.log.no {
            continue;
        }
        let (b, a) = rewrite_segment(us, &log_dir, no, &path)?;
        before += b;
        after += a;
    }
    Ok((before, after))
}

/// 5. The old packs go (never the writer's open one); returns the bytes they held.
fn delete_old_packs<'a>(
    us: &UserCore,
    ws: &WriterState,
    packs: impl Iterator<Item = &'a u32>,
) -> Result<u64> {
    let mut freed = 0;
    for no in packs {
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
    framed::sync_dir(&us.dir.join("packs"))?;
    Ok(freed)
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
