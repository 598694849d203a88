//! The values the index stores under its keys (bincode of these structs).

use crate::record::NewEntry;
use crate::types::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

// ---- values ----
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxRec {
    pub id: MailboxId,
    pub name: String,
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub highestmodseq: u64,
    pub special_use: Option<SpecialUse>,
    pub exists: u32,
    pub unseen: u32,
    pub size: u64,
    pub created: HlcTime,
    /// When the mailbox took its current name (create or rename): name clashes between nodes
    /// are settled by it, the same way on every node.
    pub named: HlcTime,
    /// The name its create or last rename asked for; `name` differs (a suffix) only while an
    /// earlier-named mailbox wants the same name.
    pub wanted: String,
    /// Whether a rename (not a create) gave `wanted`: any rename beats every create.
    pub renamed: bool,
}

impl MailboxRec {
    pub fn info(&self, subscribed: bool) -> MailboxInfo {
        MailboxInfo {
            id: self.id,
            name: self.name.clone(),
            uidvalidity: self.uidvalidity,
            uidnext: self.uidnext,
            highestmodseq: self.highestmodseq,
            subscribed,
            special_use: self.special_use,
            exists: self.exists,
            unseen: self.unseen,
            size: self.size,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MsgRec {
    pub meta: MessageMeta,
    /// HLC time of each flag's last set or clear: flags merge last-writer-wins per flag.
    pub flag_times: BTreeMap<Flag, HlcTime>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tomb {
    pub guid: Guid,
    pub modseq: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub wall_ms: u64,
    pub outcome: AppendOutcome,
}

/// Where an object lives: pack (or, when `in_log`, log segment) number and frame offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjLoc {
    pub pack: u32,
    pub offset: u64,
    pub raw_len: u64,
    pub in_log: bool,
}

/// An attribute's value (None: removed) and the HLC time of the write that set it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttrRec {
    pub time: HlcTime,
    pub value: Option<Vec<u8>>,
}

/// A remote entry whose UID was taken here by another message: kept until a Renumber.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingEntry {
    pub entry: NewEntry,
    pub time: HlcTime,
    /// Flag changes reach a pending entry too (last writer wins, as for live messages).
    pub flag_times: BTreeMap<Flag, HlcTime>,
}

/// A message that a peer's record inserted without its object: the peer had purged it (its
/// message was expunged there, and the record removing it is still on its way). It holds its
/// UID (UIDNEXT moved past it) and takes every change a live message takes (flags, modseqs,
/// renumbering), so its removal leaves the same tombstone and modseqs as on the peer; but no
/// client ever sees it (not in the message keys, not in EXISTS/UNSEEN/size). An insertion that
/// brings its object here again makes it an ordinary message, as a rebuild (which finds the
/// object in its pack) would have. See `replication/src/purged.rs`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ghost {
    pub msg: MsgRec,
    /// HLC time of the record that inserted it (how long it has waited for its removal).
    pub since: HlcTime,
}

/// A ghost, as the store lists it for operators.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GhostInfo {
    pub mailbox: MailboxId,
    pub uid: u32,
    pub guid: Guid,
    pub object: ObjectId,
    pub since: HlcTime,
}

/// The per-user checkpoint and what is derived from the whole log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Meta {
    /// Log applied up to here (segment number, offset just past the last applied frame).
    pub log_seg: u32,
    pub log_off: u64,
    /// Pack objects indexed up to here.
    pub pack_no: u32,
    pub pack_off: u64,
    pub vv: VersionVector,
    pub last_time: HlcTime,
    pub max_uidvalidity: u32,
}

/// A remote Append/Copy/Move whose UID is taken in that mailbox by a different message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UidConflict {
    pub mailbox: MailboxId,
    pub uid: u32,
    /// The message that holds (or held) the UID here.
    pub local: Guid,
    /// The incoming message, now pending.
    pub remote: Guid,
}
