//! What every user of one node shares: the settings ([`StoreConfig`]), the hybrid logical clock,
//! the metrics counters and the GUID maker ([`Shared`]). The bottom of the per-user layers: the
//! user core, the writer, purge and recovery read it; nothing here knows about them.

use crate::hlc::Hlc;
use crate::types::*;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;

/// Default bound for all users together ([`StoreConfig::recent_objects_bytes`]): an idle user's
/// few objects stay until it is closed, so a busy node's many users are bounded here rather
/// than by each user's cap. A shipper sends an object milliseconds after its commit, so a few
/// MiB serve the live stream.
pub const RECENT_OBJECTS_TOTAL: usize = 16 << 20;

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
    /// Bytes of just-committed objects kept in memory, all users together, for replication
    /// shippers to send without reading them back (see `recent::Recent`); 0 on a node without peers.
    pub recent_objects_bytes: usize,
    /// Space left free on the store's filesystem (bytes): a write that would leave less is
    /// refused (`StoreError::DiskFull`) rather than made, so the index (sled, which cannot go
    /// on after a failed write of its own) and recovery always have room. 0 disables it.
    pub min_free_bytes: u64,
    /// `replicated` durability: readers do not see this node's writes until a peer holds them
    /// (see `unconfirmed`); the node confirms them as peers acknowledge.
    pub hide_unconfirmed_writes: bool,
}

/// Default free space kept: a few of sled's segments and a log segment's worth of recovery.
pub const DEFAULT_MIN_FREE: u64 = 64 << 20;

impl StoreConfig {
    /// Defaults for a store at `root` (node 1, 50 MiB messages, 1 h dedupe window).
    pub fn new(root: impl Into<PathBuf>) -> StoreConfig {
        StoreConfig {
            root: root.into(),
            node_id: 1,
            max_message_size: 50 << 20,
            max_clock_drift_ms: 60_000,
            default_quota: QuotaLimits::default(),
            delivery_dedupe_window_secs: 3600,
            recent_objects_bytes: RECENT_OBJECTS_TOTAL,
            min_free_bytes: DEFAULT_MIN_FREE,
            hide_unconfirmed_writes: false,
        }
    }
}

/// Counters for metrics (plain atomics).
#[derive(Debug, Default)]
pub struct Counters {
    pub appends: AtomicU64,
    pub commits: AtomicU64,
    pub records: AtomicU64,
}

/// What every user of one node shares: settings, the clock, counters.
pub(crate) struct Shared {
    pub config: StoreConfig,
    pub hlc: Hlc,
    pub counters: Counters,
    guid_counter: AtomicU16,
    /// Bytes of objects held by all users' [`crate::recent::Recent`] tails.
    pub(crate) recent_objects: Arc<std::sync::atomic::AtomicUsize>,
    /// Set when the index (sled) failed a write: sled does not go on after its own I/O error
    /// (a full disk filled by someone else, a failing device), so this node takes no more
    /// writes until it is restarted, which replays the log into a working index.
    pub(crate) index_failed: parking_lot::Mutex<Option<String>>,
}

impl Shared {
    pub(crate) fn new(config: StoreConfig, hlc: Hlc) -> Shared {
        Shared {
            config,
            hlc,
            counters: Counters::default(),
            guid_counter: AtomicU16::new(rand::random()),
            recent_objects: Default::default(),
            index_failed: Default::default(),
        }
    }

    /// Records an index write failure (see `index_failed`); logged once.
    pub(crate) fn index_write_failed(&self, e: &crate::error::StoreError) {
        if let crate::error::StoreError::Index(why) = e {
            let mut f = self.index_failed.lock();
            if f.is_none() {
                tracing::error!(error = %why, "the index cannot be written any more: this node \
                    refuses writes and reports itself unhealthy until it is restarted \
                    (the restart replays the log: nothing acknowledged is lost)");
                *f = Some(why.clone());
            }
        }
    }

    /// A new GUID: the HLC time (never repeats on this node, even when the wall clock steps
    /// back) in 112 bits, the node id's low 16 bits... and 16 counter bits as a guard against a
    /// node id restored from a backup. Layout: wall ms (48) | logical (32) | node (32) | counter (16).
    pub fn new_guid(&self) -> Guid {
        let t = self.hlc.now();
        let mut b = [0u8; 16];
        b[..6].copy_from_slice(&t.wall_ms.to_be_bytes()[2..]);
        b[6..10].copy_from_slice(&t.logical.to_be_bytes());
        b[10..14].copy_from_slice(&t.node.to_be_bytes());
        let c = self.guid_counter.fetch_add(1, Ordering::Relaxed);
        b[14..].copy_from_slice(&c.to_be_bytes());
        Guid(b)
    }
}
