//! The public face of the store: [`Store`] (one per node) hands out [`UserStore`]s (one per user).
//!
//! Every method is synchronous and may block on disk I/O and fsync: async callers run them with
//! `tokio::task::spawn_blocking`. Write methods return only once the change is durable.
//!
//! SCAFFOLD: signatures are the contract between crates; bodies are being filled in (issue 3).

use crate::mime::MessageFacts;
use crate::record::Record;
use crate::types::*;
use crate::Result;
use std::path::PathBuf;
use std::sync::Arc;

/// Settings of the store (`[storage]` in the configuration).
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Root directory; each user lives under `<root>/users/<hashed-prefix>/<user>/`.
    pub root: PathBuf,
    /// This node's id: stamped on every record it originates and into every GUID it makes.
    pub node_id: NodeId,
    /// Largest message accepted, bytes.
    pub max_message_size: u64,
    /// How far the clock may run ahead of the wall clock because of a peer (ms).
    pub max_clock_drift_ms: u64,
    /// Default quota for users that have no quota rule of their own.
    pub default_quota: QuotaLimits,
    /// Window in which a retried delivery with the same key is recognised (seconds).
    pub delivery_dedupe_window_secs: u64,
}

/// One node's store for many users. Cheap to share (`Arc`).
pub struct Store {
    _p: (),
}

impl Store {
    /// Opens (creating if needed) the store at `config.root`.
    pub fn open(config: StoreConfig) -> Result<Arc<Store>> {
        let _ = config;
        todo!()
    }
    /// Same, with an injected wall clock (tests step it).
    pub fn open_with_clock(
        config: StoreConfig,
        clock: Arc<dyn crate::hlc::WallClock>,
    ) -> Result<Arc<Store>> {
        let _ = (config, clock);
        todo!()
    }
    pub fn node_id(&self) -> NodeId {
        todo!()
    }
    pub fn clock(&self) -> &crate::hlc::Hlc {
        todo!()
    }
    /// Opens a user's store, creating it with the default mailboxes (INBOX, Drafts, Sent,
    /// Trash, Junk, Archive) on first use. Recovers the user's log and index after a crash.
    pub fn user(&self, name: &str) -> Result<Arc<UserStore>> {
        let _ = name;
        todo!()
    }
    /// Users that exist on disk.
    pub fn list_users(&self) -> Result<Vec<String>> {
        todo!()
    }
}

/// One user's mail. Many sessions of the user share one `UserStore`; its writes go through one
/// group-commit writer; reads never wait for writers.
pub struct UserStore {
    _p: (),
}

/// A raw message to store, with what the client said about it.
#[derive(Clone, Debug)]
pub struct NewMessage<'a> {
    /// Raw RFC 5322 message; stored as given (callers convert bare LF to CRLF before).
    pub raw: &'a [u8],
    pub flags: Flags,
    /// Seconds since the epoch and UTC offset in minutes; None = now.
    pub internal_date: Option<(i64, i32)>,
    /// For LMTP exactly-once: a key (hash of message-id, sender, recipient, body) that makes a
    /// retried delivery within the dedupe window return the first outcome instead of storing again.
    pub delivery_key: Option<[u8; 32]>,
}

impl UserStore {
    pub fn name(&self) -> &str {
        todo!()
    }

    // ---- mailboxes ----
    /// All mailboxes, sorted by name.
    pub fn list_mailboxes(&self) -> Result<Vec<MailboxInfo>> {
        todo!()
    }
    /// Looks a mailbox up by name ("inbox" in any case is INBOX).
    pub fn mailbox(&self, name: &str) -> Result<MailboxInfo> {
        let _ = name;
        todo!()
    }
    pub fn create_mailbox(
        &self,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> Result<MailboxInfo> {
        let _ = (name, special_use);
        todo!()
    }
    /// Deletes a mailbox and expunges its messages. INBOX cannot be deleted.
    pub fn delete_mailbox(&self, name: &str) -> Result<()> {
        let _ = name;
        todo!()
    }
    /// Renames a mailbox and its children. Renaming INBOX moves its messages to the new
    /// mailbox and leaves INBOX empty (RFC 9051 6.3.6).
    pub fn rename_mailbox(&self, from: &str, to: &str) -> Result<()> {
        let _ = (from, to);
        todo!()
    }
    /// Subscriptions are by name and may name a mailbox that does not exist.
    pub fn subscribe(&self, name: &str) -> Result<()> {
        let _ = name;
        todo!()
    }
    pub fn unsubscribe(&self, name: &str) -> Result<()> {
        let _ = name;
        todo!()
    }
    pub fn subscriptions(&self) -> Result<Vec<String>> {
        todo!()
    }

    // ---- messages: reads ----
    /// Every message of a mailbox in UID order (the SELECT snapshot).
    pub fn messages(&self, mailbox: &str) -> Result<Vec<MessageMeta>> {
        let _ = mailbox;
        todo!()
    }
    /// Messages changed (added or flags) and UIDs expunged after `modseq`.
    pub fn changes_since(&self, mailbox: &str, modseq: u64) -> Result<MailboxChanges> {
        let _ = (mailbox, modseq);
        todo!()
    }
    /// The raw message (decompressed object), byte for byte as stored.
    pub fn read_message(&self, object: &ObjectId) -> Result<Vec<u8>> {
        let _ = object;
        todo!()
    }
    /// Envelope, body structure and part offsets, parsed once at delivery.
    pub fn facts(&self, object: &ObjectId) -> Result<Arc<MessageFacts>> {
        let _ = object;
        todo!()
    }

    // ---- messages: writes (each returns once durable) ----
    pub fn append(&self, mailbox: &str, msg: NewMessage<'_>) -> Result<AppendOutcome> {
        let _ = (mailbox, msg);
        todo!()
    }
    pub fn copy(&self, from: &str, uids: &[u32], to: &str) -> Result<CopyOutcome> {
        let _ = (from, uids, to);
        todo!()
    }
    /// COPY then EXPUNGE of the source, as one change.
    pub fn move_messages(&self, from: &str, uids: &[u32], to: &str) -> Result<CopyOutcome> {
        let _ = (from, uids, to);
        todo!()
    }
    pub fn store_flags(
        &self,
        mailbox: &str,
        uids: &[u32],
        mode: FlagMode,
        flags: &Flags,
        unchanged_since: Option<u64>,
    ) -> Result<StoreOutcome> {
        let _ = (mailbox, uids, mode, flags, unchanged_since);
        todo!()
    }
    /// Expunges the given UIDs (those that exist); returns the UIDs expunged, ascending.
    pub fn expunge(&self, mailbox: &str, uids: &[u32]) -> Result<Vec<u32>> {
        let _ = (mailbox, uids);
        todo!()
    }

    // ---- quota ----
    pub fn quota(&self) -> Result<QuotaUsage> {
        todo!()
    }
    /// Sets this user's limits (from the userdb's quota_rule); kept in memory, not logged.
    pub fn set_quota_limits(&self, limits: QuotaLimits) {
        let _ = limits;
        todo!()
    }

    // ---- notification ----
    /// Ticks after every durable change to this user (local or replicated): sessions (IDLE,
    /// untagged EXISTS/EXPUNGE/FETCH) and the replication shipper wait on it.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        todo!()
    }

    // ---- log, for replication and admin ----
    pub fn version_vector(&self) -> Result<VersionVector> {
        todo!()
    }
    /// Records this node has that `have` lacks, in log order, at most `limit`.
    pub fn records_since(&self, have: &VersionVector, limit: usize) -> Result<Vec<Record>> {
        let _ = (have, limit);
        todo!()
    }
    /// Applies records from a peer, idempotently (a record already applied changes nothing).
    /// Objects they need must already be present (`has_object` / `put_object`).
    pub fn apply_remote(&self, records: &[Record]) -> Result<usize> {
        let _ = records;
        todo!()
    }
    pub fn has_object(&self, object: &ObjectId) -> Result<bool> {
        let _ = object;
        todo!()
    }
    /// Stores an object received from a peer; verifies its hash. Durable on return.
    pub fn put_object(&self, raw: &[u8]) -> Result<ObjectId> {
        let _ = raw;
        todo!()
    }

    // ---- maintenance ----
    /// Rebuilds the index from the change log (`node force-resync -u USER`).
    pub fn rebuild_index(&self) -> Result<()> {
        todo!()
    }
    /// Reclaims pack space of objects no message refers to (`node purge -u USER`); crash-safe.
    pub fn purge(&self) -> Result<PurgeReport> {
        todo!()
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PurgeReport {
    pub objects_removed: u64,
    pub bytes_reclaimed: u64,
}
