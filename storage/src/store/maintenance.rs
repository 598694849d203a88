//! Maintenance: rebuild the index from the log, purge expunged messages, dump and verify.

use super::*;
use crate::error::StoreError;
use crate::framed::{self, HEADER_LEN};
use crate::index::IndexTree;
use crate::{log, pack, Result};

impl UserStore {
    /// Rebuilds the index from the change log (`node force-resync -u USER`).
    pub fn rebuild_index(&self) -> Result<()> {
        let mut ws = self.writer.lock_state();
        // Pending index changes first: the rebuild replaces what sled holds.
        self.core.ix.flush()?;
        let meta = crate::recovery::rebuild(&self.core.dir, &self.core.name, &self.core.tree)?;
        ws.meta = meta;
        drop(ws);
        self.core.notify_changed();
        Ok(())
    }

    /// Reclaims pack space of objects no message refers to (`node purge -u USER`); crash-safe.
    pub fn purge(&self) -> Result<PurgeReport> {
        let mut ws = self.writer.lock_state();
        // Purge reads and rewrites sled directly: it must see every committed change.
        self.core.ix.flush()?;
        crate::purge::purge(&self.core, &mut ws)
    }

    /// The whole index of this user, sorted, without what is not derived from the log: object
    /// locations (derived from the packs, which after an interrupted purge may still hold dead
    /// copies) and parsed facts (a cache). What "rebuilt == live" compares.
    pub fn dump_index(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        Ok(IndexTree::scan_prefix(&self.core.ix, b"")?
            .into_iter()
            .filter(|(k, _)| !k.starts_with(b"f") && !k.starts_with(b"o"))
            .collect())
    }

    /// Reads every log entry and every pack object, checking checksums and object hashes: the
    /// first corruption is returned with its file and offset. Returns the number of entries.
    pub fn verify(&self) -> Result<u64> {
        let mut n = 0u64;
        let log_dir = self.core.dir.join("log");
        log::read_entries(
            &log_dir,
            &self.core.name,
            (0, 0),
            None,
            |_, (seg, off), e| {
                if let log::Entry::Object { id, .. } = e {
                    pack::read_object(
                        &self.core.segment_path(seg),
                        &log::KIND,
                        1,
                        &self.core.name,
                        off,
                        &id,
                    )?;
                }
                n += 1;
                Ok(())
            },
        )?;
        for (_, path) in framed::list_numbered(&self.core.dir.join("packs"), pack::EXT)? {
            framed::scan(&path, &pack::KIND, &self.core.name, HEADER_LEN, |off, p| {
                let (id, _, _) = pack::parse_payload(&p).ok_or_else(|| StoreError::Corrupt {
                    user: self.core.name.clone(),
                    path: path.clone(),
                    offset: off,
                    what: "short object frame".into(),
                })?;
                pack::read_object(&path, &pack::KIND, 0, &self.core.name, off, &id)?;
                n += 1;
                Ok(())
            })?;
        }
        Ok(n)
    }
}
