//! Per-user pack files (`<user>/packs/NNNNNNNN.pack`): content-addressed message objects,
//! zstd-compressed, each in a checksummed frame: `[ObjectId 32][raw length u64 LE][zstd body]`.
//! Many messages per file, as Dovecot's mdbox, so a delivery creates no file.

use crate::error::{Result, StoreError};
use crate::framed::{self, Ctx, Kind};
use crate::types::ObjectId;
use std::fs::File;
use std::path::Path;

pub const KIND: Kind = Kind {
    magic: *b"MPACK\0\0\0",
    version: 1,
    max_frame: 1 << 30,
    first_chunk: 256 << 10,
    max_chunk: 16 << 20,
};
pub const EXT: &str = "pack";
/// A pack is closed and a new one started once it passes this size.
pub const PACK_MAX: u64 = 256 << 20;
const ZSTD_LEVEL: i32 = 1;
/// No object is larger than this (far above any configured message size limit).
const MAX_RAW: u64 = 4 << 30;

/// A message ready to be written: hashed and compressed by the caller's thread, so the
/// group-commit leader only writes.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub id: ObjectId,
    pub raw_len: u64,
    pub compressed: Vec<u8>,
}

pub fn prepare(raw: &[u8]) -> Result<Prepared> {
    let compressed = zstd::bulk::compress(raw, ZSTD_LEVEL)
        .map_err(|e| StoreError::Other(format!("zstd compress: {e}")))?;
    Ok(Prepared {
        id: ObjectId::of(raw),
        raw_len: raw.len() as u64,
        compressed,
    })
}

/// The object payload: `[ObjectId 32][raw length u64 LE][zstd body]`, after `prefix`.
pub fn payload(p: &Prepared, prefix: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(prefix.len() + 40 + p.compressed.len());
    payload.extend_from_slice(prefix);
    payload.extend_from_slice(&p.id.0);
    payload.extend_from_slice(&p.raw_len.to_le_bytes());
    payload.extend_from_slice(&p.compressed);
    payload
}

pub fn encode(p: &Prepared, out: &mut Vec<u8>) {
    framed::encode_frame(&payload(p, &[]), out);
}

/// Splits a frame payload into (id, raw length, compressed body).
pub fn parse_payload(payload: &[u8]) -> Option<(ObjectId, u64, &[u8])> {
    let id: [u8; 32] = payload.get(..32)?.try_into().ok()?;
    let len: [u8; 8] = payload.get(32..40)?.try_into().ok()?;
    Some((ObjectId(id), u64::from_le_bytes(len), payload.get(40..)?))
}

/// Reads, checks and decompresses the object at `offset` of a pack (or, with the log's kind and
/// a one-byte tag prefix, of a log segment); verifies its hash.
pub fn read_object(
    path: &Path,
    kind: &Kind,
    prefix: usize,
    user: &str,
    offset: u64,
    want: &ObjectId,
) -> Result<Vec<u8>> {
    let ctx = Ctx { user, path };
    let file = File::open(path).map_err(|e| StoreError::io(path, e))?;
    let len = file.metadata().map_err(|e| StoreError::io(path, e))?.len();
    let payload = framed::read_frame(&file, offset, len, kind, &ctx)?
        .ok_or_else(|| ctx.corrupt(offset, "no object frame here"))?;
    let (id, raw_len, body) = payload
        .get(prefix..)
        .and_then(parse_payload)
        .ok_or_else(|| ctx.corrupt(offset, "short object frame"))?;
    if id != *want {
        return Err(ctx.corrupt(offset, format!("expected object {want:?}, found {id:?}")));
    }
    if raw_len > MAX_RAW {
        return Err(ctx.corrupt(offset, format!("object length {raw_len} out of bounds")));
    }
    let raw = zstd::bulk::decompress(body, raw_len as usize)
        .map_err(|e| ctx.corrupt(offset, format!("zstd: {e}")))?;
    if raw.len() as u64 != raw_len || ObjectId::of(&raw) != id {
        return Err(ctx.corrupt(offset, "object content does not match its hash"));
    }
    Ok(raw)
}
