//! Writing a batch: large objects to the pack, then small objects and every record to the log
//! segment, each made durable by one fdatasync; both are series of numbered files that rotate
//! by one rule.

use super::plan::Batch;
use super::WriterState;
use crate::error::Result;
use crate::framed::{self, FramedWriter, HEADER_LEN};
use crate::index::{self, Meta, Txn};
use crate::log;
use crate::pack::{self, Prepared};
use crate::user_core::UserCore;

/// Objects up to this size (compressed) travel in the log with their records: one fdatasync
/// per batch instead of two. Larger ones go straight to a pack, where the extra sync is small
/// beside the write itself.
pub const INLINE_MAX: usize = 1 << 20;

impl UserCore {
    /// Refuses a batch that would leave less than `min_free_bytes` free on the store's
    /// filesystem (see `StoreConfig::min_free_bytes`).
    pub(super) fn check_free_space(&self, b: &Batch) -> Result<()> {
        let min = self.shared.config.min_free_bytes;
        if min == 0 {
            return Ok(());
        }
        let Some(free) = crate::disk::available(&self.dir) else {
            return Ok(());
        };
        let needed = b
            .objects
            .iter()
            .map(|o| o.compressed.len() as u64)
            .sum::<u64>()
            + b.encoded.iter().map(|p| p.len() as u64).sum::<u64>();
        if free < min.saturating_add(needed) {
            return Err(crate::error::StoreError::DiskFull(format!(
                "{} free on the filesystem of {}, {needed} bytes to write, {min} kept free \
                 ([storage] min_free_space); free space there and writes resume by themselves",
                free,
                self.dir.display()
            )));
        }
        Ok(())
    }

    /// Writes the batch: large objects to the pack (one write, one sync), then small objects and
    /// all records to the log in one write made durable by one fdatasync.
    pub(super) fn write_durably(
        &self,
        ws: &mut WriterState,
        tx: &mut Txn,
        meta: &mut Meta,
        b: &Batch,
    ) -> Result<()> {
        let (inline, big): (Vec<&Prepared>, Vec<&Prepared>) = b
            .objects
            .iter()
            .partition(|o| o.compressed.len() <= INLINE_MAX);
        if !big.is_empty() {
            let mut buf = Vec::with_capacity(big.iter().map(|o| pack::encoded_len(o, 0)).sum());
            let rel = encode_objects(big, &[], &mut buf);
            next_file_if_full(&mut ws.pack, buf.len(), &self.dir, &PACKS)?;
            let base = ws.pack.append(&buf)?;
            // Large objects first: a durable record never names an object that is not durable.
            ws.pack.sync()?;
            put_object_locations(tx, rel, ws.pack.no, base, false);
            meta.pack_no = ws.pack.no;
            meta.pack_off = ws.pack.end();
        }
        // Sized up front: one allocation for the whole group commit's write.
        let size = inline
            .iter()
            .map(|o| pack::encoded_len(o, 1))
            .sum::<usize>()
            + b.encoded
                .iter()
                .map(|p| framed::FRAME_OVERHEAD as usize + p.len())
                .sum::<usize>();
        let mut buf = Vec::with_capacity(size);
        let rel = encode_objects(inline, &[log::TAG_OBJECT], &mut buf);
        for payload in &b.encoded {
            framed::encode_frame(payload, &mut buf);
        }
        if buf.is_empty() {
            return Ok(());
        }
        next_file_if_full(&mut ws.log, buf.len(), &self.dir, &SEGMENTS)?;
        let base = ws.log.append(&buf)?;
        // DURABILITY POINT: after this fdatasync every record of the batch and every object it
        // carries (large ones were synced above) is on disk; only now are the writers answered.
        ws.log.sync()?;
        put_object_locations(tx, rel, ws.log.no, base, true);
        meta.log_seg = ws.log.no;
        meta.log_off = ws.log.end();
        Ok(())
    }
}

/// A series of numbered files the writer appends to: packs, or log segments.
struct Files {
    /// Directory below the user's.
    subdir: &'static str,
    /// Size past which the next write starts a new file.
    max: u64,
    ext: &'static str,
    kind: framed::Kind,
}

const PACKS: Files = Files {
    subdir: "packs",
    max: pack::PACK_MAX,
    ext: pack::EXT,
    kind: pack::KIND,
};

const SEGMENTS: Files = Files {
    subdir: "log",
    max: log::SEGMENT_MAX,
    ext: log::EXT,
    kind: log::KIND,
};

/// Moves `w` on to the next of `files` when `len` more bytes would take it past their maximum;
/// a file holds at least one write, however large.
fn next_file_if_full(
    w: &mut FramedWriter,
    len: usize,
    user_dir: &std::path::Path,
    files: &Files,
) -> Result<()> {
    if w.end() > HEADER_LEN && w.end() + len as u64 > files.max {
        let dir = user_dir.join(files.subdir);
        *w = FramedWriter::create(&dir, w.no + 1, files.ext, files.kind)?;
    }
    Ok(())
}

/// Encodes `objects` one after another into `buf`, each frame's payload after `prefix`; returns
/// each object with its frame's offset in `buf`.
fn encode_objects<'a>(
    objects: Vec<&'a Prepared>,
    prefix: &[u8],
    buf: &mut Vec<u8>,
) -> Vec<(&'a Prepared, u64)> {
    let mut at = Vec::with_capacity(objects.len());
    for o in objects {
        at.push((o, buf.len() as u64));
        pack::encode(o, prefix, buf);
    }
    at
}

/// Indexes where the objects just written went: file `file_no` (a pack, or a log segment when
/// `in_log`), each at `base` plus its offset in the write.
fn put_object_locations(
    tx: &mut Txn,
    written: Vec<(&Prepared, u64)>,
    file_no: u32,
    base: u64,
    in_log: bool,
) {
    for (o, off) in written {
        tx.put(
            index::k_object(&o.id),
            &index::ObjLoc {
                pack: file_no,
                offset: base + off,
                raw_len: o.raw_len,
                in_log,
            },
        );
    }
}
