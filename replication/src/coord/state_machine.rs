//! The replicated state machine in sled (openraft's `RaftStateMachine`): the cluster state and
//! openraft's last applied log id and membership, written and flushed after every applied batch;
//! snapshots are the same bytes.

use super::log_store::{dec, enc};
use super::types::{ClusterState, CommandResult, CoordNode, NodeId, TypeConfig};
use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend,
    RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use std::io::Cursor;
use tokio::sync::watch;

const STATE: &[u8] = b"state";
const SNAPSHOT: &[u8] = b"snapshot";

fn err(subject: ErrorSubject<NodeId>, verb: ErrorVerb, e: impl ToString) -> StorageError<NodeId> {
    StorageIOError::new(subject, verb, AnyError::error(e.to_string())).into()
}

/// Everything the state machine holds; also the snapshot's content.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SmData {
    pub last_applied: Option<LogId<NodeId>>,
    pub membership: StoredMembership<NodeId, CoordNode>,
    pub state: ClusterState,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, CoordNode>,
    data: Vec<u8>,
}

/// The state machine; `changes` publishes the cluster state after every apply.
pub struct StateMachine {
    db: sled::Db,
    tree: sled::Tree,
    data: SmData,
    snapshot_seq: u64,
    changes: watch::Sender<ClusterState>,
}

impl StateMachine {
    /// Opens the state machine and loads what was applied before a restart.
    pub fn open(db: &sled::Db) -> Result<StateMachine, String> {
        let tree = db.open_tree("raft_sm").map_err(|e| e.to_string())?;
        let data: SmData = match tree.get(STATE).map_err(|e| e.to_string())? {
            Some(b) => dec(&b).map_err(|e| format!("state machine: {e}"))?,
            None => SmData::default(),
        };
        let (changes, _) = watch::channel(data.state.clone());
        Ok(StateMachine {
            db: db.clone(),
            tree,
            data,
            snapshot_seq: 0,
            changes,
        })
    }

    /// The cluster state as applied, and its changes.
    pub fn subscribe(&self) -> watch::Receiver<ClusterState> {
        self.changes.subscribe()
    }

    async fn persist(&self) -> Result<(), StorageError<NodeId>> {
        let b =
            enc(&self.data).map_err(|e| err(ErrorSubject::StateMachine, ErrorVerb::Write, e))?;
        self.tree
            .insert(STATE, b)
            .map_err(|e| err(ErrorSubject::StateMachine, ErrorVerb::Write, e))?;
        self.db
            .flush_async()
            .await
            .map(|_| ())
            .map_err(|e| err(ErrorSubject::StateMachine, ErrorVerb::Write, e))
    }

    fn publish(&self) {
        self.changes.send_if_modified(|s| {
            if *s != self.data.state {
                *s = self.data.state.clone();
                true
            } else {
                false
            }
        });
    }
}

/// Builds a snapshot from a copy of the state taken when it was asked for.
pub struct SnapshotBuilder {
    tree: sled::Tree,
    data: SmData,
    id: String,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let bytes =
            enc(&self.data).map_err(|e| err(ErrorSubject::Snapshot(None), ErrorVerb::Write, e))?;
        let meta = SnapshotMeta {
            last_log_id: self.data.last_applied,
            last_membership: self.data.membership.clone(),
            snapshot_id: self.id.clone(),
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: bytes.clone(),
        };
        let b = enc(&stored).map_err(|e| err(ErrorSubject::Snapshot(None), ErrorVerb::Write, e))?;
        self.tree
            .insert(SNAPSHOT, b)
            .map_err(|e| err(ErrorSubject::Snapshot(None), ErrorVerb::Write, e))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, CoordNode>), StorageError<NodeId>>
    {
        Ok((self.data.last_applied, self.data.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResult>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut out = Vec::new();
        for e in entries {
            self.data.last_applied = Some(e.log_id);
            let r = match e.payload {
                EntryPayload::Blank => CommandResult {
                    applied: false,
                    active: self.data.state.active,
                    epoch: self.data.state.epoch,
                },
                EntryPayload::Normal(cmd) => {
                    let r = self.data.state.apply(&cmd);
                    tracing::info!(log_id = %e.log_id, ?cmd, applied = r.applied,
                        active = ?r.active, epoch = r.epoch, "coord: applied");
                    r
                }
                EntryPayload::Membership(m) => {
                    self.data.membership = StoredMembership::new(Some(e.log_id), m);
                    CommandResult {
                        applied: true,
                        active: self.data.state.active,
                        epoch: self.data.state.epoch,
                    }
                }
            };
            out.push(r);
        }
        self.persist().await?;
        self.publish();
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        self.snapshot_seq += 1;
        let id = format!(
            "{}-{}",
            self.data.last_applied.map(|l| l.index).unwrap_or_default(),
            self.snapshot_seq
        );
        SnapshotBuilder {
            tree: self.tree.clone(),
            data: self.data.clone(),
            id,
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, CoordNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let subject = ErrorSubject::Snapshot(Some(meta.signature()));
        let bytes = snapshot.into_inner();
        // A snapshot comes from a peer: decoded with a limit, refused if it does not fit.
        let mut data: SmData = dec(&bytes).map_err(|e| err(subject.clone(), ErrorVerb::Read, e))?;
        data.last_applied = meta.last_log_id;
        data.membership = meta.last_membership.clone();
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: bytes,
        };
        let b = enc(&stored).map_err(|e| err(subject.clone(), ErrorVerb::Write, e))?;
        self.tree
            .insert(SNAPSHOT, b)
            .map_err(|e| err(subject, ErrorVerb::Write, e))?;
        self.data = data;
        self.persist().await?;
        self.publish();
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let b = match self.tree.get(SNAPSHOT) {
            Err(e) => return Err(err(ErrorSubject::Snapshot(None), ErrorVerb::Read, e)),
            Ok(None) => return Ok(None),
            Ok(Some(b)) => b,
        };
        let s: StoredSnapshot =
            dec(&b).map_err(|e| err(ErrorSubject::Snapshot(None), ErrorVerb::Read, e))?;
        Ok(Some(Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}
