//! The Raft log and vote in sled (openraft's `RaftLogStorage`), durable before openraft is told:
//! every write is followed by a sled flush (fsync) before it returns or calls back.

// openraft's trait methods return its `StorageError` (large); the helpers here return it too.
#![allow(clippy::result_large_err)]

use super::types::{NodeId, TypeConfig};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    AnyError, Entry, ErrorSubject, ErrorVerb, LogId, LogState, OptionalSend, RaftLogReader,
    StorageError, StorageIOError, Vote,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

/// Largest stored log entry or meta value read back (the commands are tiny; a membership entry
/// is a few hundred bytes).
const MAX_VALUE: usize = 1 << 20;

const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const PURGED: &[u8] = b"purged";

pub(crate) fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>, String> {
    bincode::serde::encode_to_vec(v, bincode::config::standard().with_limit::<MAX_VALUE>())
        .map_err(|e| format!("encode: {e}"))
}

/// Decodes a value read from disk, refusing trailing bytes (a torn or foreign value).
pub(crate) fn dec<T: DeserializeOwned>(b: &[u8]) -> Result<T, String> {
    let (v, used) =
        bincode::serde::decode_from_slice(b, bincode::config::standard().with_limit::<MAX_VALUE>())
            .map_err(|e| format!("decode: {e}"))?;
    if used != b.len() {
        return Err(format!("{} trailing bytes", b.len() - used));
    }
    Ok(v)
}

fn err(subject: ErrorSubject<NodeId>, verb: ErrorVerb, e: impl ToString) -> StorageError<NodeId> {
    StorageIOError::new(subject, verb, AnyError::error(e.to_string())).into()
}

/// The log store: tree `raft_log` (index, big-endian -> entry) and `raft_meta` (vote, committed,
/// last purged log id). Cheap to clone (sled trees are shared handles).
#[derive(Clone)]
pub struct LogStore {
    db: sled::Db,
    log: sled::Tree,
    meta: sled::Tree,
}

impl LogStore {
    pub fn open(db: &sled::Db) -> Result<LogStore, sled::Error> {
        Ok(LogStore {
            db: db.clone(),
            log: db.open_tree("raft_log")?,
            meta: db.open_tree("raft_meta")?,
        })
    }

    async fn flush(&self, subject: ErrorSubject<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.db
            .flush_async()
            .await
            .map(|_| ())
            .map_err(|e| err(subject, ErrorVerb::Write, e))
    }

    fn get_meta<T: DeserializeOwned>(
        &self,
        key: &[u8],
        subject: ErrorSubject<NodeId>,
    ) -> Result<Option<T>, StorageError<NodeId>> {
        match self.meta.get(key) {
            Err(e) => Err(err(subject, ErrorVerb::Read, e)),
            Ok(None) => Ok(None),
            Ok(Some(v)) => dec(&v)
                .map(Some)
                .map_err(|e| err(subject, ErrorVerb::Read, e)),
        }
    }

    fn put_meta<T: Serialize>(
        &self,
        key: &[u8],
        v: &T,
        subject: ErrorSubject<NodeId>,
    ) -> Result<(), StorageError<NodeId>> {
        let b = enc(v).map_err(|e| err(subject.clone(), ErrorVerb::Write, e))?;
        self.meta
            .insert(key, b)
            .map(|_| ())
            .map_err(|e| err(subject, ErrorVerb::Write, e))
    }

    fn decode_entry(index: &[u8], v: &[u8]) -> Result<Entry<TypeConfig>, StorageError<NodeId>> {
        let idx = <[u8; 8]>::try_from(index).map(u64::from_be_bytes).ok();
        let e: Entry<TypeConfig> = dec(v).map_err(|e| {
            err(
                ErrorSubject::LogIndex(idx.unwrap_or_default()),
                ErrorVerb::Read,
                e,
            )
        })?;
        if idx != Some(e.log_id.index) {
            return Err(err(
                ErrorSubject::LogIndex(e.log_id.index),
                ErrorVerb::Read,
                format!("entry stored under the wrong key {idx:?}"),
            ));
        }
        Ok(e)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => e.checked_add(1),
            Bound::Excluded(&e) => Some(e),
            Bound::Unbounded => None,
        };
        let mut out = Vec::new();
        for kv in self.log.range(start.to_be_bytes()..) {
            let (k, v) = kv.map_err(|e| err(ErrorSubject::Logs, ErrorVerb::Read, e))?;
            let entry = Self::decode_entry(&k, &v)?;
            if end.is_some_and(|end| entry.log_id.index >= end) {
                break;
            }
            out.push(entry);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let purged: Option<LogId<NodeId>> = self.get_meta(PURGED, ErrorSubject::Logs)?;
        let last = match self.log.last() {
            Err(e) => return Err(err(ErrorSubject::Logs, ErrorVerb::Read, e)),
            Ok(None) => purged,
            Ok(Some((k, v))) => Some(Self::decode_entry(&k, &v)?.log_id),
        };
        Ok(LogState {
            last_purged_log_id: purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.put_meta(VOTE, vote, ErrorSubject::Vote)?;
        self.flush(ErrorSubject::Vote).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        self.get_meta(VOTE, ErrorSubject::Vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        // Not flushed on its own: losing it only makes a restart re-apply from the snapshot.
        self.put_meta(COMMITTED, &committed, ErrorSubject::Store)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self
            .get_meta::<Option<LogId<NodeId>>>(COMMITTED, ErrorSubject::Store)?
            .flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = sled::Batch::default();
        for e in entries {
            let b = enc(&e).map_err(|x| err(ErrorSubject::Log(e.log_id), ErrorVerb::Write, x))?;
            batch.insert(&e.log_id.index.to_be_bytes(), b);
        }
        self.log
            .apply_batch(batch)
            .map_err(|e| err(ErrorSubject::Logs, ErrorVerb::Write, e))?;
        let r = self.db.flush_async().await;
        match r {
            Ok(_) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let msg = e.to_string();
                callback.log_io_completed(Err(std::io::Error::other(msg.clone())));
                Err(err(ErrorSubject::Logs, ErrorVerb::Write, msg))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        tracing::debug!(%log_id, "coord: truncating log");
        let mut batch = sled::Batch::default();
        for kv in self.log.range(log_id.index.to_be_bytes()..) {
            let (k, _) = kv.map_err(|e| err(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
            batch.remove(k);
        }
        self.log
            .apply_batch(batch)
            .map_err(|e| err(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
        self.flush(ErrorSubject::Logs).await
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        // Record the purge point first: a crash in between leaves entries that are ignored.
        self.put_meta(PURGED, &log_id, ErrorSubject::Logs)?;
        self.flush(ErrorSubject::Logs).await?;
        let mut batch = sled::Batch::default();
        for kv in self.log.range(..=log_id.index.to_be_bytes()) {
            let (k, _) = kv.map_err(|e| err(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
            batch.remove(k);
        }
        self.log
            .apply_batch(batch)
            .map_err(|e| err(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
        self.flush(ErrorSubject::Logs).await
    }
}
