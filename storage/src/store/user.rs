//! [`UserStore`]: one user's mail, opened once and shared by every session of the user.
//!
//! The facade over the user's layers: a [`UserCore`] (what the writer, purge and recovery
//! share), the group-commit [`Writer`], and the scan cursors replication reads the log with.

use super::*;
use crate::error::StoreError;
use crate::framed;
use crate::user_core::UserCore;
use crate::writer::{Reply, Req, Writer};
use crate::Result;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::Path;

/// One user's mail. Many sessions of the user share one `UserStore`; its writes go through one
/// group-commit writer; reads never wait for writers.
pub struct UserStore {
    pub(crate) core: UserCore,
    pub(crate) writer: Writer,
    /// Per closed log segment, the highest sequence of each origin in it: lets `records_since`
    /// skip segments a peer already has.
    pub(super) segment_max: Mutex<HashMap<u32, VersionVector>>,
    /// Where recent `records_since` scans stopped (see [`super::replica::ScanCursor`]): a peer catching up is
    /// served batch after batch from one 64 MiB segment, and without these each batch re-read
    /// and re-checked the segment from its start.
    pub(super) cursors: Mutex<std::collections::VecDeque<super::replica::ScanCursor>>,
}

impl UserStore {
    /// Opens a user: makes its directories on first use, then recovery brings the index up to
    /// date with the log and opens the files the writer appends to.
    pub(super) fn open(shared: Arc<Shared>, db: &sled::Db, name: &str) -> Result<UserStore> {
        let dir = user_dir(&shared.config.root, name);
        for d in [dir.join("log"), dir.join("packs")] {
            if !d.exists() {
                std::fs::create_dir_all(&d).map_err(|e| StoreError::io(&d, e))?;
                // Make the new directories themselves durable.
                for p in [
                    Some(d.as_path()),
                    d.parent(),
                    d.parent().and_then(Path::parent),
                ]
                .into_iter()
                .flatten()
                {
                    framed::sync_dir(p)?;
                }
            }
        }
        let tree = db
            .open_tree(format!("user:{name}"))
            .map_err(|e| StoreError::Index(e.to_string()))?;
        let ws = crate::recovery::recover(&shared, &dir, name, &tree)?;
        Ok(UserStore {
            core: UserCore::new(shared, name, dir, tree, &ws),
            writer: Writer::new(ws),
            segment_max: Mutex::new(HashMap::new()),
            cursors: Mutex::new(Default::default()),
        })
    }

    /// Hands a request to the group commit; returns once it is durable (or refused).
    pub(crate) fn submit(&self, req: Req) -> Result<Reply> {
        self.writer.submit(&self.core, req)
    }

    pub fn name(&self) -> &str {
        &self.core.name
    }

    pub fn dir(&self) -> &Path {
        &self.core.dir
    }
}
