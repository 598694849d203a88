//! The change log's records: one per change to a user's mail. Serialized with serde + bincode;
//! the log framing (length, blake3 checksum) lives in [`crate::log`].
//!
//! Records name messages by GUID, not by UID: a two-way merge may give a message a new UID, and
//! a later record from the other side must still find it.

use crate::types::*;
use serde::{Deserialize, Serialize};

/// One change, stamped by the node that made it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The node that first made this change.
    pub origin: NodeId,
    /// The origin's sequence number for this user: 1, 2, 3, ... without gaps.
    pub seq: u64,
    /// When, by the origin's hybrid logical clock: orders conflicting changes.
    pub time: HlcTime,
    pub op: Op,
}

/// A message as an Append, Copy or Move brings it into a mailbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewEntry {
    pub guid: Guid,
    pub uid: u32,
    pub object: ObjectId,
    pub size: u64,
    pub internal_date: i64,
    pub internal_date_tz_min: i32,
    pub flags: Flags,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    MailboxCreate {
        mailbox: MailboxId,
        name: String,
        uidvalidity: u32,
        special_use: Option<SpecialUse>,
    },
    MailboxRename {
        mailbox: MailboxId,
        new_name: String,
    },
    /// Deletes the mailbox and every message in it.
    MailboxDelete {
        mailbox: MailboxId,
    },
    /// A new UIDVALIDITY (and so a fresh UID space) for a mailbox: only where a merge could not
    /// otherwise keep invariant 2.
    UidValidity {
        mailbox: MailboxId,
        uidvalidity: u32,
    },
    Subscribe {
        name: String,
    },
    Unsubscribe {
        name: String,
    },
    Append {
        mailbox: MailboxId,
        entry: NewEntry,
        modseq: u64,
        /// Set for LMTP deliveries: recognises a retried delivery (exactly-once).
        delivery_key: Option<[u8; 32]>,
    },
    /// New messages in `to` sharing objects with the `from` messages.
    Copy {
        from: MailboxId,
        to: MailboxId,
        entries: Vec<(Guid, NewEntry)>,
        modseq: u64,
    },
    /// Copy, then expunge of the sources, as one change.
    Move {
        from: MailboxId,
        to: MailboxId,
        entries: Vec<(Guid, NewEntry)>,
        modseq: u64,
        from_modseq: u64,
    },
    /// Flag set/clear operations; `add` and `remove` are applied in that order.
    Flags {
        mailbox: MailboxId,
        messages: Vec<Guid>,
        add: Flags,
        remove: Flags,
        modseq: u64,
    },
    Expunge {
        mailbox: MailboxId,
        messages: Vec<Guid>,
        modseq: u64,
    },
    /// Merge resolution of a UID taken by different messages on two nodes: each listed message gets
    /// a new UID above every UIDNEXT (its old UID is expunged for every client). Made only by the
    /// node that resolves the conflict, so every node applies the same renumbering.
    Renumber {
        mailbox: MailboxId,
        moves: Vec<(Guid, u32)>,
        modseq: u64,
    },
    /// Merge resolution of modseqs: after two nodes applied the same records in different orders
    /// (concurrent writes on both), the listed messages and the mailbox's HIGHESTMODSEQ take one
    /// common modseq, `max(modseq, HIGHESTMODSEQ + 1)` on each node, so modseqs converge while
    /// still only growing. Made only by the resolver (see `replication::policy`). Kept last:
    /// bincode numbers variants by position, so older logs keep decoding.
    AlignModseqs {
        mailbox: MailboxId,
        modseq: u64,
        messages: Vec<Guid>,
    },
    /// Merge resolution of expunge modseqs, as `AlignModseqs` is for messages: the tombstones of
    /// the listed UIDs (those this node holds) and the mailbox's HIGHESTMODSEQ take one common
    /// modseq, `max(modseq, HIGHESTMODSEQ + 1)` on each node, so a QRESYNC client that fails over
    /// is told of the same expunges (`VANISHED (EARLIER)`) on every node. Made only by the
    /// resolver. Kept last, for the same reason as `AlignModseqs`.
    AlignExpunged {
        mailbox: MailboxId,
        modseq: u64,
        uids: Vec<u32>,
    },
    /// A METADATA entry (RFC 5464, key `/private/...` or `/shared/...`) or an ACL entry
    /// (RFC 4314, key `acl:IDENTIFIER`, value the rights) of a mailbox, or of the user's
    /// server when `mailbox` is None; `value` None removes it. Per key the later record by
    /// HLC time wins, in whatever order records arrive ([`crate::merge::attributes`]). Kept
    /// last, for the same reason as `AlignModseqs`.
    Attribute {
        mailbox: Option<MailboxId>,
        key: String,
        value: Option<Vec<u8>>,
    },
}

impl Op {
    /// The kind of change, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::MailboxCreate { .. } => "mailbox-create",
            Op::MailboxRename { .. } => "mailbox-rename",
            Op::MailboxDelete { .. } => "mailbox-delete",
            Op::UidValidity { .. } => "uidvalidity",
            Op::Subscribe { .. } => "subscribe",
            Op::Unsubscribe { .. } => "unsubscribe",
            Op::Append { .. } => "append",
            Op::Copy { .. } => "copy",
            Op::Move { .. } => "move",
            Op::Flags { .. } => "flags",
            Op::Expunge { .. } => "expunge",
            Op::Renumber { .. } => "renumber",
            Op::AlignModseqs { .. } => "align-modseqs",
            Op::AlignExpunged { .. } => "align-expunged",
            Op::Attribute { .. } => "attribute",
        }
    }
}
