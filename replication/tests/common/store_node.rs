//! A node over a real `storage::Store` in a temporary directory, replicating over mutual TLS on
//! 127.0.0.1: what the real-store cluster tests start, stop and restart.

use super::{free_addr, quick_config, Ca};
use replication::*;
use std::sync::Arc;
use std::time::Duration;
use storage::{Store, StoreConfig};
use tokio::net::TcpListener;

pub struct Node {
    pub id: u32,
    pub dir: tempfile::TempDir,
    pub store: Option<Arc<Store>>,
    pub addr: String,
    pub handle: Option<Handle>,
}

impl Node {
    pub async fn new(id: u32) -> Node {
        let mut n = Node {
            id,
            dir: tempfile::tempdir().unwrap(),
            store: None,
            addr: free_addr().await,
            handle: None,
        };
        n.open_store();
        n
    }

    /// A node whose store reads the wall clock from `clock`.
    pub async fn with_clock(id: u32, clock: Arc<dyn storage::hlc::WallClock>) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let mut c = StoreConfig::new(dir.path());
        c.node_id = id;
        let store = Some(Store::open_with_clock(c, clock).unwrap());
        Node {
            id,
            dir,
            store,
            addr: free_addr().await,
            handle: None,
        }
    }

    pub fn open_store(&mut self) {
        let mut c = StoreConfig::new(self.dir.path());
        c.node_id = self.id;
        self.store = Some(Store::open(c).unwrap());
    }

    /// Reopens the store as a `replicated`-durability node does: its own writes hidden from
    /// readers until a peer holds them.
    pub fn reopen_store_hiding_unconfirmed(&mut self) {
        self.store = None;
        let mut c = StoreConfig::new(self.dir.path());
        c.node_id = self.id;
        c.hide_unconfirmed_writes = true;
        self.store = Some(Store::open(c).unwrap());
    }

    pub fn store(&self) -> Arc<Store> {
        self.store.clone().unwrap()
    }

    /// Starts replication with `peers`, `reply_timeout` as given and `tune` applied last.
    pub async fn start_with(
        &mut self,
        ca: &Ca,
        peers: &[(u32, String)],
        reply_timeout: Duration,
        tune: impl FnOnce(&mut ReplicationConfig),
    ) {
        let mut c = quick_config(ca, self.id, &self.addr, peers);
        c.reply_timeout = reply_timeout;
        tune(&mut c);
        let l = TcpListener::bind(&self.addr).await.unwrap();
        let store: Arc<dyn store_api::ReplicaStore> =
            Arc::new(storage_adapter::StorageReplica(self.store()));
        self.handle = Some(Replicator::start_on(c, l, store).unwrap());
    }

    pub async fn stop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await;
        }
    }

    /// Stops replication and closes the store, as a stopped node process would.
    pub async fn restart_store(&mut self) {
        self.stop().await;
        self.store = None;
        self.open_store();
    }
}
