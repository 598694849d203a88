//! Plain data types shared by the store, the protocols and replication.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Cluster-wide node identifier (from `[cluster] node_id`; 1 in the embedded default).
pub type NodeId = u32;

/// A hybrid-logical-clock time: wall-clock milliseconds, a logical counter, the node that made it.
/// Ordered lexicographically, so two times from different nodes never compare equal.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct HlcTime {
    pub wall_ms: u64,
    pub logical: u32,
    pub node: NodeId,
}

/// 128-bit identifier, unique in the cluster, never reused (messages and mailboxes).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl std::fmt::Debug for Guid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Guid({})", self.to_hex())
    }
}

impl std::fmt::Display for Guid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// blake3 hash of a message's raw bytes: the name of its object in the user's packs.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectId(pub [u8; 32]);

impl ObjectId {
    pub fn of(raw: &[u8]) -> ObjectId {
        ObjectId(*blake3::hash(raw).as_bytes())
    }
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl std::fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ObjectId({})", &self.to_hex()[..16])
    }
}

/// Mailboxes are identified by GUID, so renames and deletes on two nodes resolve by identity.
pub type MailboxId = Guid;

/// A stored message flag. `\Recent` is per-session in IMAP and never stored.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Flag {
    Seen,
    Answered,
    Flagged,
    Deleted,
    Draft,
    /// An IMAP keyword (atom), stored as the client sent it.
    Keyword(String),
}

impl Flag {
    /// Parses the IMAP spelling (`\Seen`, case-insensitive for system flags; anything else is a keyword).
    pub fn from_imap(s: &str) -> Flag {
        match s.to_ascii_lowercase().as_str() {
            "\\seen" => Flag::Seen,
            "\\answered" => Flag::Answered,
            "\\flagged" => Flag::Flagged,
            "\\deleted" => Flag::Deleted,
            "\\draft" => Flag::Draft,
            _ => Flag::Keyword(s.to_string()),
        }
    }
    pub fn to_imap(&self) -> &str {
        match self {
            Flag::Seen => "\\Seen",
            Flag::Answered => "\\Answered",
            Flag::Flagged => "\\Flagged",
            Flag::Deleted => "\\Deleted",
            Flag::Draft => "\\Draft",
            Flag::Keyword(k) => k,
        }
    }
}

pub type Flags = BTreeSet<Flag>;

/// RFC 6154 special-use attribute of a mailbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SpecialUse {
    All,
    Archive,
    Drafts,
    Flagged,
    Junk,
    Sent,
    Trash,
}

impl SpecialUse {
    pub fn to_imap(&self) -> &'static str {
        match self {
            SpecialUse::All => "\\All",
            SpecialUse::Archive => "\\Archive",
            SpecialUse::Drafts => "\\Drafts",
            SpecialUse::Flagged => "\\Flagged",
            SpecialUse::Junk => "\\Junk",
            SpecialUse::Sent => "\\Sent",
            SpecialUse::Trash => "\\Trash",
        }
    }
}

/// How STORE changes flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FlagMode {
    Add,
    Remove,
    Replace,
}

/// A mailbox as the index knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxInfo {
    pub id: MailboxId,
    /// Full name with "/" as hierarchy separator, UTF-8 ("INBOX" is always spelled so).
    pub name: String,
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub highestmodseq: u64,
    pub subscribed: bool,
    pub special_use: Option<SpecialUse>,
    /// Number of messages.
    pub exists: u32,
    /// Number of messages without \Seen.
    pub unseen: u32,
    /// Sum of message sizes in bytes.
    pub size: u64,
}

/// One message's index entry: what SELECT, FETCH FLAGS/UID/INTERNALDATE/RFC822.SIZE and SEARCH need
/// without opening the message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageMeta {
    pub uid: u32,
    pub guid: Guid,
    pub object: ObjectId,
    pub flags: Flags,
    pub modseq: u64,
    /// Internal date: seconds since the Unix epoch, and the sender's UTC offset in minutes.
    pub internal_date: i64,
    pub internal_date_tz_min: i32,
    /// RFC822.SIZE: size of the raw message in bytes (CRLF line endings, as stored).
    pub size: u64,
    /// SAVEDATE (RFC 8514): when the message entered this mailbox, in milliseconds since the
    /// epoch, from the hybrid-logical-clock time of the record that put it there (so every
    /// node shows the same date, and a clock step cannot make it run backwards).
    pub saved_ms: u64,
}

/// The result of an append or a delivery, as UIDPLUS's APPENDUID reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendOutcome {
    pub mailbox: MailboxId,
    pub uidvalidity: u32,
    pub uid: u32,
    pub guid: Guid,
    pub modseq: u64,
    /// True when this was a retried delivery (same delivery key) and nothing new was stored.
    pub duplicate: bool,
}

/// What an import batch did (`UserStore::import`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportOutcome {
    /// Messages stored at their UIDs.
    pub imported: u32,
    /// Messages whose UID already held the same bytes (an import resumed): left as they are.
    pub present: u32,
    /// UIDs below the mailbox's UIDNEXT held by nothing or by another message: not imported.
    pub refused: Vec<u32>,
    pub uidvalidity: u32,
    pub uidnext: u32,
}

/// The result of COPY/MOVE, as UIDPLUS's COPYUID reports it: (source uid, destination uid) pairs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyOutcome {
    pub dst_uidvalidity: u32,
    pub pairs: Vec<(u32, u32)>,
}

/// The result of STORE.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct StoreOutcome {
    /// Messages whose flags are now as given, with their new modseq (changed or not, every
    /// existing target uid that passed the UNCHANGEDSINCE test is listed).
    pub updated: Vec<(u32, Flags, u64)>,
    /// UIDs that failed an UNCHANGEDSINCE test (RFC 7162 MODIFIED response code).
    pub modified: Vec<u32>,
}

/// Changes in one mailbox since a modseq: what a session must tell its client (and QRESYNC).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct MailboxChanges {
    /// Messages added or whose flags changed after the given modseq, in UID order.
    pub changed: Vec<MessageMeta>,
    /// UIDs expunged after the given modseq, ascending.
    pub expunged: Vec<u32>,
    pub highestmodseq: u64,
    pub uidnext: u32,
}

/// Quota limits (None = unlimited) and usage for one user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct QuotaLimits {
    pub max_bytes: Option<u64>,
    pub max_messages: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct QuotaUsage {
    pub bytes: u64,
    pub messages: u64,
    pub limits: QuotaLimits,
}

/// Per-origin highest applied sequence number: what this node has of each origin's log.
pub type VersionVector = std::collections::BTreeMap<NodeId, u64>;
