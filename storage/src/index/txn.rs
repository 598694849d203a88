//! [`Txn`]: staged changes over the tree, with savepoints, typed reads and the value codec.

use super::keys::*;
use super::tree::{laid_over, IndexTree};
use super::values::*;
use crate::error::{Result, StoreError};
use crate::types::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;

pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // Encoding plain in-memory structs cannot fail (no maps with non-serializable keys).
    bincode::serde::encode_to_vec(v, bincode::config::standard()).unwrap_or_default()
}

pub fn decode<T: DeserializeOwned>(user: &str, key: &[u8], bytes: &[u8]) -> Result<T> {
    let cfg = bincode::config::standard().with_limit::<{ 64 << 20 }>();
    match bincode::serde::decode_from_slice::<T, _>(bytes, cfg) {
        Ok((v, n)) if n == bytes.len() => Ok(v),
        Ok(_) => Err(StoreError::Index(format!(
            "user {user}: trailing bytes in index value of key {}",
            hex(key)
        ))),
        Err(e) => Err(StoreError::Index(format!(
            "user {user}: undecodable index value of key {}: {e}",
            hex(key)
        ))),
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A staged value: Some(bytes) to write, None to delete.
type Staged = Option<Vec<u8>>;

/// Staged changes over a base tree: reads see the staged writes; savepoints roll back one
/// failed request of a batch without touching the others.
pub struct Txn<'a> {
    pub user: &'a str,
    base: &'a dyn IndexTree,
    over: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    journal: Vec<(Vec<u8>, Option<Staged>)>,
}

impl<'a> Txn<'a> {
    pub fn new(user: &'a str, base: &'a dyn IndexTree) -> Txn<'a> {
        Txn {
            user,
            base,
            over: BTreeMap::new(),
            journal: Vec::new(),
        }
    }
    pub fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.over.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.base.get(key),
        }
    }
    pub fn get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>> {
        match self.get_raw(key)? {
            Some(b) => Ok(Some(decode(self.user, key, &b)?)),
            None => Ok(None),
        }
    }
    fn set(&mut self, key: Vec<u8>, v: Option<Vec<u8>>) {
        let prev = self.over.insert(key.clone(), v);
        self.journal.push((key, prev));
    }
    pub fn put<T: Serialize>(&mut self, key: Vec<u8>, v: &T) {
        self.set(key, Some(encode(v)));
    }
    pub fn put_raw(&mut self, key: Vec<u8>, v: Vec<u8>) {
        self.set(key, Some(v));
    }
    pub fn del(&mut self, key: Vec<u8>) {
        self.set(key, None);
    }
    pub fn savepoint(&self) -> usize {
        self.journal.len()
    }
    pub fn rollback(&mut self, sp: usize) {
        while self.journal.len() > sp {
            let Some((k, prev)) = self.journal.pop() else {
                break;
            };
            match prev {
                Some(p) => {
                    self.over.insert(k, p);
                }
                None => {
                    self.over.remove(&k);
                }
            }
        }
    }
    pub fn scan_raw(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        Ok(laid_over(
            self.base.scan_prefix(prefix)?,
            &self.over,
            prefix,
        ))
    }
    pub fn scan<T: DeserializeOwned>(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, T)>> {
        self.scan_raw(prefix)?
            .into_iter()
            .map(|(k, v)| {
                let t = decode(self.user, &k, &v)?;
                Ok((k, t))
            })
            .collect()
    }
    pub fn is_empty(&self) -> bool {
        self.over.is_empty()
    }
    pub fn into_changes(self) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        self.over.into_iter().collect()
    }

    // ---- typed helpers ----
    pub fn mailbox(&self, id: &MailboxId) -> Result<Option<MailboxRec>> {
        self.get(&k_mailbox(id))
    }
    pub fn mailbox_by_name(&self, name: &str) -> Result<Option<MailboxRec>> {
        match self.get::<MailboxId>(&k_name(name))? {
            Some(id) => self.mailbox(&id),
            None => Ok(None),
        }
    }
    pub fn put_mailbox(&mut self, mb: &MailboxRec) {
        self.put(k_mailbox(&mb.id), mb);
    }
    pub fn mailboxes(&self) -> Result<Vec<MailboxRec>> {
        Ok(self
            .scan::<MailboxRec>(b"M")?
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }
    pub fn msg(&self, mb: &MailboxId, uid: u32) -> Result<Option<MsgRec>> {
        self.get(&k_msg(mb, uid))
    }
    pub fn messages(&self, mb: &MailboxId) -> Result<Vec<MsgRec>> {
        Ok(self
            .scan::<MsgRec>(&k_msg_prefix(mb))?
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }
    /// The entries of a mailbox's messages without their flag times: what a SELECT snapshot
    /// takes. A [`MsgRec`] is encoded as its fields in order (bincode has no struct framing),
    /// so its `meta` is the prefix of the value and the rest is not decoded.
    pub fn message_metas(&self, mb: &MailboxId) -> Result<Vec<MessageMeta>> {
        let cfg = bincode::config::standard().with_limit::<{ 64 << 20 }>();
        self.scan_raw(&k_msg_prefix(mb))?
            .into_iter()
            .map(|(k, v)| {
                bincode::serde::decode_from_slice::<MessageMeta, _>(&v, cfg)
                    .map(|(m, _)| m)
                    .map_err(|e| {
                        StoreError::Index(format!(
                            "user {}: undecodable index value of key {}: {e}",
                            self.user,
                            hex(&k)
                        ))
                    })
            })
            .collect()
    }
    pub fn meta(&self) -> Result<Meta> {
        Ok(self.get(META)?.unwrap_or_default())
    }
    /// Every ghost of the user (see [`Ghost`]), by mailbox and UID.
    pub fn ghosts(&self) -> Result<Vec<GhostInfo>> {
        Ok(self
            .scan::<Ghost>(b"h")?
            .into_iter()
            .filter_map(|(k, g)| {
                let mb = <[u8; 16]>::try_from(k.get(1..17)?).ok()?;
                Some(GhostInfo {
                    mailbox: Guid(mb),
                    uid: g.msg.meta.uid,
                    guid: g.msg.meta.guid,
                    object: g.msg.meta.object,
                    since: g.since,
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::EmptyTree;

    #[test]
    fn message_metas_are_the_records_metas() {
        let base = EmptyTree;
        let mut tx = Txn::new("u", &base);
        let mb = Guid([7; 16]);
        let mut want = Vec::new();
        for uid in 1..5u32 {
            let mut flags = Flags::new();
            flags.insert(Flag::Keyword(format!("k{uid}")));
            let meta = MessageMeta {
                uid,
                guid: Guid([uid as u8; 16]),
                object: ObjectId([uid as u8; 32]),
                flags: flags.clone(),
                modseq: u64::from(uid) * 3,
                internal_date: -5,
                internal_date_tz_min: -60,
                size: 1 << 40,
                saved_ms: 9,
            };
            let flag_times = flags.into_iter().map(|f| (f, HlcTime::default())).collect();
            tx.put(
                k_msg(&mb, uid),
                &MsgRec {
                    meta: meta.clone(),
                    flag_times,
                },
            );
            want.push(meta);
        }
        assert_eq!(tx.message_metas(&mb).unwrap(), want);
        let full: Vec<MessageMeta> = tx
            .messages(&mb)
            .unwrap()
            .into_iter()
            .map(|m| m.meta)
            .collect();
        assert_eq!(full, want);
    }
}
