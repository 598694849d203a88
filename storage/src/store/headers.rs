//! The header cache: each object's top-level header block, kept in the index beside its facts,
//! so what clients list folders with (HEADER.FIELDS, ENVELOPE), SEARCH on header fields, SORT
//! and THREAD are answered without reading, verifying and decompressing the message (the cost
//! of a large mailbox: docs/performance.md, issue 18). Like Dovecot's `dovecot.index.cache`, it
//! is derived data of this node: written at delivery (the message is parsed then anyway),
//! filled on first use for messages that arrived otherwise (replicated, or from before the
//! cache), kept by index rebuilds and dropped by purge with the object. The whole block is kept,
//! not chosen fields, so any field a client asks for is there.

use super::*;
use crate::error::StoreError;
use crate::index;
use crate::mime::header_block;

/// Header blocks longer than this are not kept (a hostile message must not grow the index by
/// its size); such a message is read whenever its header is wanted.
pub const MAX_CACHED_HEADER: usize = 64 << 10;

/// The stored value: a tag byte, then the header block when the tag says it is kept.
const KEPT: u8 = 0;
const TOO_LONG: u8 = 1;

/// What the index keeps for a header block.
pub(crate) fn cache_value(block: &[u8]) -> Vec<u8> {
    if block.len() > MAX_CACHED_HEADER {
        return vec![TOO_LONG];
    }
    let mut v = Vec::with_capacity(block.len() + 1);
    v.push(KEPT);
    v.extend_from_slice(block);
    v
}

impl UserStore {
    /// The message's top-level header block (the blank line that ends it included), from the
    /// cache; read from the message (and cached) when it is not there yet.
    pub fn header(&self, object: &ObjectId) -> Result<Vec<u8>> {
        let key = index::k_header(object);
        let known = match self.core.view().get_raw(&key)? {
            Some(mut v) if v.first() == Some(&KEPT) => {
                v.remove(0);
                return Ok(v);
            }
            Some(_) => true, // too long to keep: read it
            None => false,
        };
        let raw = self.read_message(object)?;
        let block = header_block(&raw).to_vec();
        if !known {
            // A cache of an immutable object: written outside the log, never on the fsync path.
            self.core
                .tree
                .insert(key, cache_value(&block))
                .map_err(|e| StoreError::Index(e.to_string()))?;
        }
        Ok(block)
    }

    /// Whether the header of `object` is answered from the cache (for tests and metrics).
    pub fn header_cached(&self, object: &ObjectId) -> Result<bool> {
        Ok(self
            .core
            .view()
            .get_raw(&index::k_header(object))?
            .is_some_and(|v| v.first() == Some(&KEPT)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_headers_are_not_kept() {
        assert_eq!(
            cache_value(b"Subject: x\r\n\r\n")[1..],
            b"Subject: x\r\n\r\n"[..]
        );
        assert_eq!(
            cache_value(&vec![b'x'; MAX_CACHED_HEADER + 1]),
            vec![TOO_LONG]
        );
    }
}
