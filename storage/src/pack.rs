//! Per-user pack files (`<user>/packs/NNNNNNNN.pack`): content-addressed message objects,
//! zstd-compressed, each in a checksummed frame: `[ObjectId 32][raw length u64 LE][zstd body]`.
//! Many messages per file, as Dovecot's mdbox, so a delivery creates no file.

use crate::error::{Result, StoreError};
use crate::framed::{self, Ctx, Kind};
use crate::types::ObjectId;
use std::cell::RefCell;
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

thread_local! {
    // One zstd context per thread, reused: creating one per object (what `zstd::bulk::compress`
    // does) was ~4 % of the CPU of a delivery, on every append, every read for shipping and
    // every apply on a peer. Level-1 contexts stay small (window at most 512 KiB).
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Compresses with this thread's context (the output is the same as with a fresh one).
fn compress(raw: &[u8]) -> std::io::Result<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let c = match slot.as_mut() {
            Some(c) => c,
            None => slot.insert(zstd::bulk::Compressor::new(ZSTD_LEVEL)?),
        };
        c.compress(raw)
    })
}

/// Decompresses into at most `capacity` bytes with this thread's context. After an error the
/// context is dropped, so a corrupt frame never leaves state behind for the next object.
fn decompress(body: &[u8], capacity: usize) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let d = match slot.as_mut() {
            Some(d) => d,
            None => slot.insert(zstd::bulk::Decompressor::new()?),
        };
        let r = d.decompress(body, capacity);
        if r.is_err() {
            *slot = None;
        }
        r
    })
}

pub fn prepare(raw: &[u8]) -> Result<Prepared> {
    let compressed = compress(raw).map_err(|e| StoreError::Other(format!("zstd compress: {e}")))?;
    Ok(Prepared {
        id: ObjectId::of(raw),
        raw_len: raw.len() as u64,
        compressed,
    })
}

/// A peer's object in its stored form (`Prepared`) that passed [`verify`]: its body
/// decompresses, within a bound, to exactly `raw_len` bytes hashing to `id`. The only way to
/// hand a peer's compressed bytes to the store, so none is stored unchecked.
#[derive(Clone, Debug)]
pub struct Verified(Prepared);

impl Verified {
    pub fn id(&self) -> ObjectId {
        self.0.id
    }
    pub fn compressed_len(&self) -> usize {
        self.0.compressed.len()
    }
    /// The stored form (what was verified).
    pub fn stored(&self) -> &Prepared {
        &self.0
    }
    /// The raw message, decompressed again (for stores that keep raw bodies, e.g. test doubles).
    pub fn to_raw(&self) -> Result<Vec<u8>> {
        decompress(&self.0.compressed, self.0.raw_len as usize)
            .map_err(|e| StoreError::Other(format!("zstd: {e}")))
    }
    pub(crate) fn into_prepared(self) -> Prepared {
        self.0
    }
}

/// Checks an object received in its stored form: `raw_len` must be at most `max_raw` (the
/// caller's bound, e.g. its frame limit: the peer's claim never sizes an allocation beyond
/// it), and the body must decompress into at most `raw_len` bytes (a body that would grow
/// further is an error, not an allocation), exactly `raw_len` of them, hashing to `id`.
/// Costs one decompression and one hash; the body is then stored as it came.
pub fn verify(id: ObjectId, raw_len: u64, compressed: Vec<u8>, max_raw: u64) -> Result<Verified> {
    let bad = |why: String| StoreError::Other(format!("object {}: {why}", id.to_hex()));
    if raw_len > max_raw.min(MAX_RAW) {
        return Err(bad(format!(
            "raw length {raw_len} above the limit {max_raw}"
        )));
    }
    let raw = decompress(&compressed, raw_len as usize).map_err(|e| bad(format!("zstd: {e}")))?;
    if raw.len() as u64 != raw_len {
        return Err(bad(format!(
            "decompresses to {} bytes, {raw_len} claimed",
            raw.len()
        )));
    }
    if ObjectId::of(&raw) != id {
        return Err(bad("content does not match its hash".into()));
    }
    Ok(Verified(Prepared {
        id,
        raw_len,
        compressed,
    }))
}

/// Appends the object's frame to `out`; its payload is `prefix` (the log's one-byte tag, or
/// nothing in a pack) then `[ObjectId 32][raw length u64 LE][zstd body]`.
pub fn encode(p: &Prepared, prefix: &[u8], out: &mut Vec<u8>) {
    framed::encode_frame_parts(
        &[prefix, &p.id.0, &p.raw_len.to_le_bytes(), &p.compressed],
        out,
    );
}

/// Bytes `encode` appends for `p` with a prefix of `prefix_len` bytes.
pub fn encoded_len(p: &Prepared, prefix_len: usize) -> usize {
    framed::FRAME_OVERHEAD as usize + prefix_len + 40 + p.compressed.len()
}

/// Splits a frame payload into (id, raw length, compressed body).
pub fn parse_payload(payload: &[u8]) -> Option<(ObjectId, u64, &[u8])> {
    let id: [u8; 32] = payload.get(..32)?.try_into().ok()?;
    let len: [u8; 8] = payload.get(32..40)?.try_into().ok()?;
    Some((ObjectId(id), u64::from_le_bytes(len), payload.get(40..)?))
}

/// Reads the object at `offset` as stored, without decompressing (what a peer is sent; the peer
/// verifies it): the frame checksum and the id are checked here.
pub fn read_stored(
    path: &Path,
    kind: &Kind,
    prefix: usize,
    user: &str,
    offset: u64,
    want: &ObjectId,
) -> Result<Prepared> {
    let ctx = Ctx { user, path };
    let (mut payload, raw_len, body_at) = read_object_frame(&ctx, kind, prefix, offset, want)?;
    // The compressed body is the payload's tail: keep its allocation.
    payload.drain(..body_at);
    Ok(Prepared {
        id: *want,
        raw_len,
        compressed: payload,
    })
}

/// Reads the object frame at `offset` and checks its checksum and id: the payload, the raw
/// length it claims, and where in the payload the compressed body starts.
fn read_object_frame(
    ctx: &Ctx,
    kind: &Kind,
    prefix: usize,
    offset: u64,
    want: &ObjectId,
) -> Result<(Vec<u8>, u64, usize)> {
    let path = ctx.path;
    let file = File::open(path).map_err(|e| StoreError::io(path, e))?;
    let len = file.metadata().map_err(|e| StoreError::io(path, e))?.len();
    let payload = framed::read_frame(&file, offset, len, kind, ctx)?
        .ok_or_else(|| ctx.corrupt(offset, "no object frame here"))?;
    let (id, raw_len, body) = payload
        .get(prefix..)
        .and_then(parse_payload)
        .ok_or_else(|| ctx.corrupt(offset, "short object frame"))?;
    if id != *want {
        return Err(ctx.corrupt(offset, format!("expected object {want:?}, found {id:?}")));
    }
    let body_at = payload.len() - body.len();
    Ok((payload, raw_len, body_at))
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
    let (payload, raw_len, body_at) = read_object_frame(&ctx, kind, prefix, offset, want)?;
    if raw_len > MAX_RAW {
        return Err(ctx.corrupt(offset, format!("object length {raw_len} out of bounds")));
    }
    let body = payload.get(body_at..).unwrap_or_default();
    let raw = decompress(body, raw_len as usize)
        .map_err(|e| ctx.corrupt(offset, format!("zstd: {e}")))?;
    if raw.len() as u64 != raw_len || ObjectId::of(&raw) != *want {
        return Err(ctx.corrupt(offset, "object content does not match its hash"));
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reused_contexts_roundtrip_and_survive_a_corrupt_body() {
        let a = b"Subject: a\r\n\r\nhello hello hello hello".repeat(50);
        let b = vec![0u8; 10_000];
        for raw in [&a[..], &b[..], &a[..]] {
            let p = prepare(raw).unwrap();
            // The same bytes as a fresh context gives: reuse changes nothing on disk.
            assert_eq!(p.compressed, zstd::bulk::compress(raw, ZSTD_LEVEL).unwrap());
            assert_eq!(decompress(&p.compressed, raw.len()).unwrap(), raw);
        }
        let p = prepare(&a).unwrap();
        let mut bad = p.compressed.clone();
        let mid = bad.len() / 2;
        bad.truncate(mid);
        assert!(decompress(&bad, a.len()).is_err());
        // The context dropped after the error; the next object decompresses.
        assert_eq!(decompress(&p.compressed, a.len()).unwrap(), a);
    }

    #[test]
    fn verify_accepts_the_stored_form_and_refuses_lies() {
        let raw = b"Subject: v\r\n\r\nbody body body body".repeat(20);
        let p = prepare(&raw).unwrap();
        let n = raw.len() as u64;
        let v = verify(p.id, n, p.compressed.clone(), 1 << 20).unwrap();
        assert_eq!((v.id(), v.compressed_len()), (p.id, p.compressed.len()));
        // Wrong length claims, either way.
        assert!(verify(p.id, n - 1, p.compressed.clone(), 1 << 20).is_err());
        assert!(verify(p.id, n + 1, p.compressed.clone(), 1 << 20).is_err());
        // Above the caller's bound: refused before any allocation.
        assert!(verify(p.id, n, p.compressed.clone(), n - 1).is_err());
        // Another object's id.
        assert!(verify(ObjectId::of(b"x"), n, p.compressed.clone(), 1 << 20).is_err());
        // A corrupt body.
        let mut bad = p.compressed.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        bad.truncate(last);
        assert!(verify(p.id, n, bad, 1 << 20).is_err());
        // A bomb: tiny claim, 64 MiB of zeros inside.
        let bomb = zstd::bulk::compress(&vec![0u8; 64 << 20], 1).unwrap();
        assert!(verify(p.id, 100, bomb, 1 << 20).is_err());
        // The context survives all that.
        assert!(verify(p.id, n, p.compressed, 1 << 20).is_ok());
    }

    #[test]
    fn object_frame_parses_back() {
        let p = prepare(b"body").unwrap();
        let mut out = Vec::new();
        encode(&p, &[7], &mut out);
        assert_eq!(out.len(), encoded_len(&p, 1));
        let payload = &out[framed::FRAME_OVERHEAD as usize..];
        assert_eq!(payload[0], 7);
        let (id, len, body) = parse_payload(&payload[1..]).unwrap();
        assert_eq!((id, len, body), (p.id, 4, &p.compressed[..]));
    }
}
