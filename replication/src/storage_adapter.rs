//! [`ReplicaStore`] for the node's real store.

use crate::store_api::{
    digest_with_expunged, Applied, MailboxDigest, MessageKey, ReplicaStore, ReplicaUser,
};
use std::sync::Arc;
use storage::pack::{Prepared, Verified};
use storage::record::Record;
use storage::{
    Guid, HlcTime, MailboxId, NodeId, ObjectId, Store, StoreError, UserStore, VersionVector,
};

pub struct StorageReplica(pub Arc<Store>);
pub struct StorageUser(pub Arc<UserStore>);

impl ReplicaStore for StorageReplica {
    fn node_id(&self) -> NodeId {
        self.0.node_id()
    }
    fn now(&self) -> HlcTime {
        self.0.clock().now()
    }
    fn observe(&self, t: HlcTime) -> Result<(), String> {
        self.0.clock().observe(t).map_err(|e| e.to_string())
    }
    fn wall_ms(&self) -> u64 {
        self.0.clock().wall_ms()
    }
    fn user(&self, name: &str) -> Result<Arc<dyn ReplicaUser>, StoreError> {
        Ok(Arc::new(StorageUser(self.0.user(name)?)))
    }
    fn list_users(&self) -> Result<Vec<String>, StoreError> {
        self.0.list_users()
    }
}

impl ReplicaUser for StorageUser {
    fn version_vector(&self) -> Result<VersionVector, StoreError> {
        self.0.version_vector()
    }
    fn confirm_own(&self, seq: u64) {
        self.0.confirm_own(seq);
    }
    fn has_unconfirmed(&self) -> bool {
        self.0.has_unconfirmed()
    }
    fn records_since(&self, have: &VersionVector, limit: usize) -> Result<Vec<Record>, StoreError> {
        self.0.records_since(have, limit)
    }
    fn apply_remote(&self, records: &[Record]) -> Result<Applied, StoreError> {
        self.apply_remote_with_objects(Vec::new(), records)
    }
    fn apply_remote_with_objects(
        &self,
        objects: Vec<Verified>,
        records: &[Record],
    ) -> Result<Applied, StoreError> {
        self.apply_remote_purged(objects, records, &Default::default())
    }
    fn apply_remote_purged(
        &self,
        objects: Vec<Verified>,
        records: &[Record],
        purged: &std::collections::HashSet<ObjectId>,
    ) -> Result<Applied, StoreError> {
        // One group commit: durable when the store's log fdatasync returns. The verified
        // objects' compressed bodies are written as they came.
        let out = self.0.apply_remote_purged(objects, records, purged)?;
        let mut conflicts: Vec<MailboxId> = out.conflicts.iter().map(|c| c.mailbox).collect();
        conflicts.sort();
        conflicts.dedup();
        Ok(Applied {
            applied: out.applied,
            conflicts,
        })
    }
    fn resolve_conflicts(&self, mailbox: MailboxId) -> Result<(), StoreError> {
        // The store resolves by name; the conflict names the mailbox by GUID (a rename may
        // have happened meanwhile, the GUID is what stays).
        let name = self
            .0
            .list_mailboxes()?
            .into_iter()
            .find(|m| m.id == mailbox)
            .map(|m| m.name)
            .ok_or_else(|| StoreError::NoSuchMailbox(mailbox.to_hex()))?;
        self.0.resolve_conflicts(&name).map(|_| ())
    }
    fn conflicted_mailboxes(&self) -> Result<Vec<MailboxId>, StoreError> {
        let mut out = Vec::new();
        for mb in self.0.list_mailboxes()? {
            if !self.0.pending_conflicts(&mb.name)?.is_empty() {
                out.push(mb.id);
            }
        }
        Ok(out)
    }
    fn align_modseqs(
        &self,
        mailbox: MailboxId,
        min_modseq: u64,
        guids: &[Guid],
    ) -> Result<Option<u64>, StoreError> {
        // By GUID: a rename meanwhile changes nothing; a deleted mailbox is simply None.
        self.0.align_modseqs(&mailbox, min_modseq, guids)
    }
    fn ghost_count(&self) -> Result<usize, StoreError> {
        Ok(self.0.ghosts()?.len())
    }
    fn has_object(&self, id: &ObjectId) -> Result<bool, StoreError> {
        self.0.has_object(id)
    }
    fn put_object(&self, raw: &[u8]) -> Result<ObjectId, StoreError> {
        self.0.put_object(raw)
    }
    fn put_verified(&self, object: Verified) -> Result<ObjectId, StoreError> {
        self.0.put_verified(object)
    }
    fn read_object(&self, id: &ObjectId) -> Result<Vec<u8>, StoreError> {
        self.0.read_message(id)
    }
    fn read_object_stored(&self, id: &ObjectId) -> Result<Prepared, StoreError> {
        self.0.read_object_stored(id)
    }
    fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.watch()
    }
    fn mailbox_digests(&self) -> Result<Vec<MailboxDigest>, StoreError> {
        self.0
            .list_mailboxes()?
            .into_iter()
            .map(|mb| {
                let msgs = listing(&self.0, &mb.name)?;
                let expunged = tombstone_keys(&self.0, &mb.id)?.unwrap_or_default();
                Ok(digest_with_expunged(
                    mb.id,
                    &mb.name,
                    mb.uidvalidity,
                    mb.highestmodseq,
                    &msgs,
                    &expunged,
                ))
            })
            .collect()
    }
    fn rebuild_index(&self) -> Result<(), StoreError> {
        self.0.rebuild_index()
    }
    fn mailbox_listing(&self, mailbox: MailboxId) -> Result<Vec<MessageKey>, StoreError> {
        let boxes = self.0.list_mailboxes()?;
        if let Some(mb) = boxes.iter().find(|m| m.id == mailbox) {
            return listing(&self.0, &mb.name);
        }
        Err(StoreError::NoSuchMailbox(mailbox.to_hex()))
    }
    fn expunged_listing(&self, mailbox: MailboxId) -> Result<Option<Vec<MessageKey>>, StoreError> {
        tombstone_keys(&self.0, &mailbox)
    }
    fn align_expunged(
        &self,
        mailbox: MailboxId,
        min_modseq: u64,
        uids: &[u32],
    ) -> Result<Option<u64>, StoreError> {
        self.0.align_expunged(&mailbox, min_modseq, uids)
    }
}

fn tombstone_keys(
    u: &UserStore,
    mailbox: &MailboxId,
) -> Result<Option<Vec<MessageKey>>, StoreError> {
    Ok(u.tombstones(mailbox)?.map(|ts| {
        ts.into_iter()
            .map(|t| MessageKey {
                uid: t.uid,
                guid: t.guid,
                flags: Vec::new(),
                modseq: t.modseq,
            })
            .collect()
    }))
}

fn listing(u: &UserStore, name: &str) -> Result<Vec<MessageKey>, StoreError> {
    Ok(u.messages(name)?
        .into_iter()
        .map(|m| {
            let mut flags: Vec<String> = m.flags.iter().map(|f| f.to_imap().to_string()).collect();
            flags.sort();
            MessageKey {
                uid: m.uid,
                guid: m.guid,
                flags,
                modseq: m.modseq,
            }
        })
        .collect())
}
