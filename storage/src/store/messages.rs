//! Messages: listing, changes since a modseq, bodies and parsed facts, and the writes a
//! client makes (append, copy, move, flags, expunge); quota.

use super::*;
use crate::error::StoreError;
use crate::index::{self, ObjLoc};
use crate::mime::MessageFacts;
use crate::user_core::usage;
use crate::writer::{Reply, Req};
use crate::{log, pack, Result};
use std::sync::Arc;

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

/// Parse MIME facts at delivery, on the writer's own thread before the group commit (so writers
/// parse in parallel), and cache them beside the message. If the parser fails, `facts()` parses
/// on first use instead.
pub const PARSE_FACTS_AT_DELIVERY: bool = true;

impl UserStore {
    /// Every message of a mailbox in UID order (the SELECT snapshot).
    pub fn messages(&self, mailbox: &str) -> Result<Vec<MessageMeta>> {
        let mb = self.mailbox_rec(mailbox)?;
        self.core.view().message_metas(&mb.id)
    }

    /// The messages of a mailbox from UID `first` on, in UID order: a range scan, so the cost
    /// follows the messages returned, not the size of the mailbox.
    pub fn messages_from(&self, mailbox: &str, first: u32) -> Result<Vec<MessageMeta>> {
        let mb = self.mailbox_rec(mailbox)?;
        let v = self.core.view();
        let keys = self.core.ix.range_keys(
            &index::k_msg(&mb.id, first),
            &index::k_msg(&mb.id, u32::MAX),
        )?;
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            let uid = k
                .get(k.len().saturating_sub(4)..)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_be_bytes);
            if let Some(m) = uid.map(|u| v.msg(&mb.id, u)).transpose()?.flatten() {
                out.push(m.meta);
            }
        }
        Ok(out)
    }

    /// Messages changed (added or flags) and UIDs expunged after `modseq`.
    pub fn changes_since(&self, mailbox: &str, modseq: u64) -> Result<MailboxChanges> {
        let mb = self.mailbox_rec(mailbox)?;
        let v = self.core.view();
        // Range scans over the modseq-ordered keys: the cost follows the changes, not the size
        // of the mailbox. Keys are [tag][mailbox 16][modseq 8][uid 4].
        let since = |prefix: Vec<u8>| -> Result<Vec<u32>> {
            let start = [&prefix[..], &modseq.saturating_add(1).to_be_bytes()].concat();
            let mut end = prefix.clone();
            end.extend_from_slice(&[0xff; 12]);
            self.core
                .ix
                .range_keys(&start, &end)?
                .into_iter()
                .map(|k| {
                    k.get(25..29)
                        .and_then(|b| b.try_into().ok())
                        .map(u32::from_be_bytes)
                        .ok_or_else(|| {
                            StoreError::Index(format!("user {}: bad modseq key", self.core.name))
                        })
                })
                .collect()
        };
        let mut changed = Vec::new();
        for uid in since(index::k_changed_prefix(&mb.id))? {
            if let Some(m) = v.msg(&mb.id, uid)? {
                if m.meta.modseq > modseq {
                    changed.push(m.meta);
                }
            }
        }
        changed.sort_by_key(|m| m.uid);
        let mut expunged = since(index::k_expunged_prefix(&mb.id))?;
        expunged.sort_unstable();
        expunged.dedup();
        Ok(MailboxChanges {
            changed,
            expunged,
            highestmodseq: mb.highestmodseq,
            uidnext: mb.uidnext,
        })
    }

    /// The raw message (decompressed object), byte for byte as stored.
    pub fn read_message(&self, object: &ObjectId) -> Result<Vec<u8>> {
        self.read_located(object, |loc| self.read_at(loc, object))
    }

    /// `read` at the object's location; if that fails and the object has moved meanwhile (a
    /// purge between our lookup and our read), once more at its new location.
    fn read_located<T>(&self, object: &ObjectId, read: impl Fn(&ObjLoc) -> Result<T>) -> Result<T> {
        let lookup = || -> Result<ObjLoc> {
            self.core
                .view()
                .get(&index::k_object(object))?
                .ok_or_else(|| StoreError::Other(format!("object {} not found", object.to_hex())))
        };
        let loc = lookup()?;
        match read(&loc) {
            Err(e) => match lookup() {
                Ok(now) if now != loc => read(&now),
                _ => Err(e),
            },
            ok => ok,
        }
    }

    fn read_at(&self, loc: &ObjLoc, object: &ObjectId) -> Result<Vec<u8>> {
        if loc.in_log {
            let path = self.core.segment_path(loc.pack);
            pack::read_object(&path, &log::KIND, 1, &self.core.name, loc.offset, object)
        } else {
            let path = self.core.pack_path(loc.pack);
            pack::read_object(&path, &pack::KIND, 0, &self.core.name, loc.offset, object)
        }
    }

    /// The object as stored (id, raw length, zstd body), not decompressed: what is shipped to a
    /// peer, which verifies it ([`pack::verify`]) and stores the body as it came.
    pub fn read_object_stored(&self, object: &ObjectId) -> Result<pack::Prepared> {
        if let Some(o) = self.core.recent.lock().object(object) {
            return Ok(o);
        }
        self.read_located(object, |loc| self.read_stored_at(loc, object))
    }

    fn read_stored_at(&self, loc: &ObjLoc, object: &ObjectId) -> Result<pack::Prepared> {
        if loc.in_log {
            let path = self.core.segment_path(loc.pack);
            pack::read_stored(&path, &log::KIND, 1, &self.core.name, loc.offset, object)
        } else {
            let path = self.core.pack_path(loc.pack);
            pack::read_stored(&path, &pack::KIND, 0, &self.core.name, loc.offset, object)
        }
    }

    /// Envelope, body structure and part offsets, parsed once and cached.
    pub fn facts(&self, object: &ObjectId) -> Result<Arc<MessageFacts>> {
        let key = index::k_facts(object);
        if let Some(f) = self.core.view().get::<MessageFacts>(&key)? {
            return Ok(Arc::new(f));
        }
        let raw = self.read_message(object)?;
        let facts = std::panic::catch_unwind(|| crate::mime::parse_facts(&raw))
            .map_err(|_| StoreError::Other("MIME parser failed on this message".into()))?;
        // A cache keyed by an immutable object: written outside the log, never on the fsync path.
        self.core
            .tree
            .insert(key, index::encode(&facts))
            .map_err(|e| StoreError::Index(e.to_string()))?;
        Ok(Arc::new(facts))
    }

    pub fn append(&self, mailbox: &str, msg: NewMessage<'_>) -> Result<AppendOutcome> {
        let limit = self.core.shared.config.max_message_size;
        if msg.raw.len() as u64 > limit {
            return Err(StoreError::TooLarge {
                size: msg.raw.len() as u64,
                limit,
            });
        }
        // Hash, compress (and parse) here, in parallel with other writers, not in the leader.
        let object = pack::prepare(msg.raw)?;
        let facts = if PARSE_FACTS_AT_DELIVERY {
            std::panic::catch_unwind(|| crate::mime::parse_facts(msg.raw))
                .ok()
                .map(Box::new)
        } else {
            None
        };
        let date = msg
            .internal_date
            .unwrap_or(((self.core.shared.hlc.wall_ms() / 1000) as i64, 0));
        let object_id = object.id;
        let outcome = match self.submit(Req::Append(crate::writer::AppendReq {
            mailbox: mailbox.to_string(),
            object,
            facts,
            flags: msg.flags,
            internal_date: date,
            delivery_key: msg.delivery_key,
        }))? {
            Reply::Append(o) => o,
            _ => return Err(unexpected()),
        };
        if !outcome.duplicate {
            // The header cache (see `headers.rs`), outside the group commit: a cache of the
            // immutable object, so it needs no fsync and no place in the log.
            let value = super::headers::cache_value(crate::mime::header_block(msg.raw));
            self.core
                .tree
                .insert(index::k_header(&object_id), value)
                .map_err(|e| StoreError::Index(e.to_string()))?;
        }
        Ok(outcome)
    }

    pub fn copy(&self, from: &str, uids: &[u32], to: &str) -> Result<CopyOutcome> {
        self.copy_or_move(from, uids, to, false)
    }

    /// COPY then EXPUNGE of the source, as one change.
    pub fn move_messages(&self, from: &str, uids: &[u32], to: &str) -> Result<CopyOutcome> {
        self.copy_or_move(from, uids, to, true)
    }

    fn copy_or_move(&self, from: &str, uids: &[u32], to: &str, mv: bool) -> Result<CopyOutcome> {
        match self.submit(Req::Copy {
            from: from.to_string(),
            uids: uids.to_vec(),
            to: to.to_string(),
            mv,
        })? {
            Reply::Copy(c) => Ok(c),
            _ => Err(unexpected()),
        }
    }

    pub fn store_flags(
        &self,
        mailbox: &str,
        uids: &[u32],
        mode: FlagMode,
        flags: &Flags,
        unchanged_since: Option<u64>,
    ) -> Result<StoreOutcome> {
        match self.submit(Req::Flags {
            mailbox: mailbox.to_string(),
            uids: uids.to_vec(),
            mode,
            flags: flags.clone(),
            unchanged_since,
        })? {
            Reply::Store(s) => Ok(s),
            _ => Err(unexpected()),
        }
    }

    /// Expunges the given UIDs (those that exist); returns the UIDs expunged, ascending.
    pub fn expunge(&self, mailbox: &str, uids: &[u32]) -> Result<Vec<u32>> {
        match self.submit(Req::Expunge {
            mailbox: mailbox.to_string(),
            uids: uids.to_vec(),
        })? {
            Reply::Expunged(u) => Ok(u),
            _ => Err(unexpected()),
        }
    }

    pub fn quota(&self) -> Result<QuotaUsage> {
        let (bytes, messages) = usage(&self.core.view())?;
        Ok(QuotaUsage {
            bytes,
            messages,
            limits: self.core.quota_limits(),
        })
    }

    /// Sets this user's limits (from the userdb's quota_rule); kept in memory, not logged.
    pub fn set_quota_limits(&self, limits: QuotaLimits) {
        self.core.set_quota_limits(limits);
    }
}
