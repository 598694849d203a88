//! Opening a user after a crash: the index is brought up to date from its checkpoint by
//! replaying the log's tail (and indexing the packs' new objects); a torn tail is cut. When the
//! index has no checkpoint, cannot be read, or is ahead of the log, it is rebuilt from the log.

use crate::error::{Result, StoreError};
use crate::framed::{self, FramedWriter, ScanEnd, HEADER_LEN};
use crate::index::{self, apply, Effects, EmptyTree, IndexTree, Meta, ObjLoc, Txn};
use crate::shared::Shared;
use crate::user_core::WriterState;
use crate::{log, pack};
use std::collections::HashSet;
use std::path::Path;

type Last = Option<(u32, ScanEnd)>;

/// Indexes the objects of packs from `from` on; returns the last pack's end.
fn index_packs(dir: &Path, user: &str, tx: &mut Txn, from: (u32, u64)) -> Result<Last> {
    let mut last = None;
    for (no, path) in framed::list_numbered(&dir.join("packs"), pack::EXT)? {
        if no < from.0 {
            continue;
        }
        let start = if no == from.0 { from.1 } else { HEADER_LEN };
        let end = framed::scan(&path, &pack::KIND, user, start, |off, payload| {
            let (id, raw_len, _) =
                pack::parse_payload(&payload).ok_or_else(|| StoreError::Corrupt {
                    user: user.to_string(),
                    path: path.clone(),
                    offset: off,
                    what: "short object frame".into(),
                })?;
            tx.put(
                index::k_object(&id),
                &ObjLoc {
                    pack: no,
                    offset: off,
                    raw_len,
                    in_log: false,
                },
            );
            Ok(())
        })?;
        last = Some((no, end));
    }
    Ok(last)
}

/// Applies the log's records from the checkpoint on, and indexes the objects carried in it.
fn replay(dir: &Path, user: &str, tx: &mut Txn, meta: &mut Meta) -> Result<Last> {
    let mut fx = Effects::default();
    let from = (meta.log_seg, meta.log_off);
    let last = log::read_entries(&dir.join("log"), user, from, None, |_, (seg, off), e| {
        match e {
            log::Entry::Record(rec) => apply(tx, meta, &rec, &mut fx)?,
            log::Entry::Object { id, raw_len } => tx.put(
                index::k_object(&id),
                &ObjLoc {
                    pack: seg,
                    offset: off,
                    raw_len,
                    in_log: true,
                },
            ),
        }
        Ok(())
    })?;
    if let Some((no, end)) = last {
        meta.log_seg = no;
        meta.log_off = end.end;
    }
    Ok(last)
}

/// Rebuilds a user's index from the packs and the log; replaces the tree's content atomically
/// (keeping only the parsed-facts cache). Returns the new checkpoint.
pub(crate) fn rebuild(dir: &Path, user: &str, tree: &sled::Tree) -> Result<Meta> {
    Ok(rebuild_inner(dir, user, tree)?.0)
}

fn rebuild_inner(dir: &Path, user: &str, tree: &sled::Tree) -> Result<(Meta, Last, Last)> {
    let empty = EmptyTree;
    let mut tx = Txn::new(user, &empty);
    let mut meta = Meta::default();
    let packs = index_packs(dir, user, &mut tx, (0, 0))?;
    if let Some((no, end)) = packs {
        meta.pack_no = no;
        meta.pack_off = end.end;
    }
    let logs = replay(dir, user, &mut tx, &mut meta)?;
    tx.put(index::META.to_vec(), &meta);
    tx.put(index::VERSION_KEY.to_vec(), &index::INDEX_VERSION);
    let fresh = tx.into_changes();
    let keep: HashSet<&Vec<u8>> = fresh.iter().map(|(k, _)| k).collect();
    let mut changes = Vec::new();
    for (k, _) in IndexTree::scan_prefix(tree, b"")? {
        if !k.starts_with(b"f") && !keep.contains(&k) {
            changes.push((k, None));
        }
    }
    changes.extend(fresh.iter().cloned());
    IndexTree::apply(tree, changes)?;
    tracing::info!(user, records = ?meta.vv, "index rebuilt from the log");
    Ok((meta, logs, packs))
}

fn catch_up(
    dir: &Path,
    user: &str,
    tree: &sled::Tree,
    mut meta: Meta,
) -> Result<Option<(Meta, Last, Last)>> {
    // Index ahead of the log (or of the packs)? Then it cannot be trusted: rebuild.
    let segs = framed::list_numbered(&dir.join("log"), log::EXT)?;
    if meta.log_seg != 0 {
        match segs.iter().find(|(n, _)| *n == meta.log_seg) {
            Some((_, p)) => {
                let len = std::fs::metadata(p)
                    .map_err(|e| StoreError::io(p, e))?
                    .len();
                if len < meta.log_off {
                    return Ok(None);
                }
            }
            None => return Ok(None),
        }
        if segs.last().is_some_and(|(n, _)| *n < meta.log_seg) {
            return Ok(None);
        }
    }
    let mut tx = Txn::new(user, tree);
    let packs = index_packs(dir, user, &mut tx, (meta.pack_no, meta.pack_off))?;
    if let Some((no, end)) = packs {
        if no < meta.pack_no || (no == meta.pack_no && end.end < meta.pack_off) {
            return Ok(None);
        }
        meta.pack_no = no;
        meta.pack_off = end.end;
    }
    let before = meta.vv.clone();
    let logs = replay(dir, user, &mut tx, &mut meta)?;
    if before != meta.vv {
        tracing::info!(user, from = ?before, to = ?meta.vv, "index caught up from the log after a restart");
    }
    tx.put(index::META.to_vec(), &meta);
    IndexTree::apply(tree, tx.into_changes())?;
    Ok(Some((meta, logs, packs)))
}

/// Opens a user's log and pack for writing, with the index up to date.
pub(crate) fn recover(
    shared: &Shared,
    dir: &Path,
    user: &str,
    tree: &sled::Tree,
) -> Result<WriterState> {
    remove_purge_leftovers(dir);
    let (meta, logs, packs) = bring_index_up_to_date(dir, user, tree)?;
    shared.hlc.raise_to(meta.last_time);
    let log = open_for_append(dir, "log", log::EXT, log::KIND, logs)?;
    if logs.is_some_and(|(_, e)| e.torn) {
        tracing::warn!(
            user,
            segment = log.no,
            offset = log.end(),
            "cut a torn record at the log's tail (never acknowledged)"
        );
    }
    let pack = open_for_append(dir, "packs", pack::EXT, pack::KIND, packs)?;
    let meta = checkpoint_at(tree, meta, &log, &pack)?;
    Ok(WriterState {
        log,
        pack,
        meta,
        poisoned: None,
        retry_at: None,
    })
}

/// A purge that crashed before a rename leaves a temporary pack or segment: it holds only
/// copies of what is still in place, so it is deleted.
fn remove_purge_leftovers(dir: &Path) {
    for sub in ["packs", "log"] {
        if let Ok(rd) = std::fs::read_dir(dir.join(sub)) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().ends_with(".tmp") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}

/// Catches the index up from its checkpoint, or rebuilds it from the log when it has none, is
/// of another version, cannot be read, or is ahead of the log. Returns the checkpoint and where
/// the log and the packs end.
fn bring_index_up_to_date(dir: &Path, user: &str, tree: &sled::Tree) -> Result<(Meta, Last, Last)> {
    match stored_checkpoint(user, tree) {
        Ok(Some(meta)) => match catch_up(dir, user, tree, meta)? {
            Some(s) => Ok(s),
            None => {
                tracing::warn!(
                    user,
                    "index is ahead of the log; rebuilding it from the log"
                );
                rebuild_inner(dir, user, tree)
            }
        },
        Ok(None) => rebuild_inner(dir, user, tree),
        Err(e) => {
            tracing::warn!(user, error = %e, "index unreadable; rebuilding it from the log");
            rebuild_inner(dir, user, tree)
        }
    }
}

/// The index's checkpoint; None when there is none or the index is of another version.
fn stored_checkpoint(user: &str, tree: &sled::Tree) -> Result<Option<Meta>> {
    let stored: Result<Option<Meta>> = match tree.get(index::META) {
        Ok(Some(b)) => index::decode(user, index::META, &b).map(Some),
        Ok(None) => Ok(None),
        Err(e) => Err(StoreError::Index(e.to_string())),
    };
    let version: Option<u32> = tree
        .get(index::VERSION_KEY)
        .ok()
        .flatten()
        .and_then(|b| index::decode(user, index::VERSION_KEY, &b).ok());
    if version == Some(index::INDEX_VERSION) {
        stored
    } else {
        Ok(None)
    }
}

/// Opens the last file of a series (`log` segments or `packs`) to append at its end, cutting a
/// torn tail; creates the first file when there is none.
fn open_for_append(
    dir: &Path,
    sub: &str,
    ext: &str,
    kind: framed::Kind,
    last: Last,
) -> Result<FramedWriter> {
    match last {
        Some((no, end)) => FramedWriter::open_at(
            &dir.join(sub).join(format!("{no:08}.{ext}")),
            no,
            kind,
            end.end,
            end.torn,
        ),
        None => FramedWriter::create(&dir.join(sub), 1, ext, kind),
    }
}

/// The checkpoint names the files just opened (or created), so a later rebuild, which scans
/// them, computes the same checkpoint; written to the index when it changed.
fn checkpoint_at(
    tree: &sled::Tree,
    mut meta: Meta,
    log: &FramedWriter,
    pack: &FramedWriter,
) -> Result<Meta> {
    if (meta.log_seg, meta.log_off, meta.pack_no, meta.pack_off)
        != (log.no, log.end(), pack.no, pack.end())
    {
        meta.log_seg = log.no;
        meta.log_off = log.end();
        meta.pack_no = pack.no;
        meta.pack_off = pack.end();
        IndexTree::apply(
            tree,
            vec![(index::META.to_vec(), Some(index::encode(&meta)))],
        )?;
    }
    Ok(meta)
}
