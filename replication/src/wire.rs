//! The replication wire protocol: length-delimited frames (tokio-util) carrying one bincode-encoded
//! [`Message`] each, decoded with a size limit and refused if any byte is left over.
//!
//! Records travel as [`WireRecord`]s: the record's bincode bytes plus a blake3 checksum keyed by
//! the user they belong to, so a corrupted record, or a record of one user's log sent under
//! another user's name, fails the checksum and is refused before anything is applied.

use crate::error::{ReplError, Result};
use bytes::{Bytes, BytesMut};
use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use storage::record::Record;
use storage::{HlcTime, MailboxId, NodeId, ObjectId, VersionVector};
use tokio_util::codec::LengthDelimitedCodec;

/// Bumped on any incompatible change of [`Message`] or of the records it carries; both sides
/// must speak the same one. 2: `Op::AlignModseqs`, modseqs in digests and listings.
/// 3: objects travel in their stored (zstd) form, [`StoredBody`].
/// 4: `Op::AlignExpunged` (a protocol 3 peer cannot decode it), tombstones in digests, and
/// `GetExpunged`/`Expunged` (a mailbox's tombstones, for the merge resolver).
/// 5: `Epoch` (the fencing epoch the sender holds, for the `Records` that follow it) and
/// `GetUsers`/`Users` (the take-over pull of a node about to become active).
/// 6: `Op::Attribute` (METADATA, ACL, URLAUTH keys) and the raft link's `TransferActive`.
pub const PROTOCOL_VERSION: u32 = 6;

/// Largest frame accepted (and so the largest object that can be replicated in one piece).
pub const MAX_FRAME: usize = 96 * 1024 * 1024;
/// Limit handed to bincode for a whole message (a frame never holds more anyway).
const MSG_LIMIT: usize = MAX_FRAME;
/// Limit for one record inside a [`WireRecord`].
pub const MAX_RECORD: usize = 4 * 1024 * 1024;
/// Largest number of records in one Records frame.
pub const MAX_RECORDS_PER_FRAME: usize = 10_000;
/// Largest number of user names in one `Users` reply (a bigger store answers in pages).
pub const MAX_USERS_PER_FRAME: usize = 10_000;

fn msg_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MSG_LIMIT>()
}
fn record_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_RECORD>()
}

/// A byte string serialized as one length-prefixed blob (serde's `Vec<u8>` would go byte by byte).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Raw(pub Vec<u8>);

impl std::fmt::Debug for Raw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Raw({} bytes)", self.0.len())
    }
}

impl std::ops::Deref for Raw {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl Serialize for Raw {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Raw, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Raw;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> std::result::Result<Raw, E> {
                Ok(Raw(v.to_vec()))
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> std::result::Result<Raw, E> {
                Ok(Raw(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> std::result::Result<Raw, A::Error> {
                let mut v = Vec::new();
                while let Some(b) = a.next_element::<u8>()? {
                    v.push(b);
                }
                Ok(Raw(v))
            }
        }
        d.deserialize_byte_buf(V)
    }
}

/// A message object as the sender stores it: the zstd body and the raw length it claims. The
/// receiver checks it with [`crate::validate::check_object`] (bounded decompression, length,
/// hash) and stores the body as it came: neither side compresses, the sender does not
/// decompress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredBody {
    pub raw_len: u64,
    pub zstd: Raw,
}

impl From<storage::pack::Prepared> for StoredBody {
    fn from(p: storage::pack::Prepared) -> StoredBody {
        StoredBody {
            raw_len: p.raw_len,
            zstd: Raw(p.compressed),
        }
    }
}

/// One change-log record as shipped: exact bytes and a checksum bound to the user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireRecord {
    pub payload: Raw,
    pub sum: [u8; 32],
}

fn record_sum(user: &str, payload: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(b"mail-replication record v1\0");
    h.update(&(user.len() as u64).to_le_bytes());
    h.update(user.as_bytes());
    h.update(payload);
    *h.finalize().as_bytes()
}

impl WireRecord {
    pub fn encode(user: &str, record: &Record) -> Result<WireRecord> {
        let payload = bincode::serde::encode_to_vec(record, record_config())
            .map_err(|e| ReplError::Other(format!("encoding record: {e}")))?;
        let sum = record_sum(user, &payload);
        Ok(WireRecord {
            payload: Raw(payload),
            sum,
        })
    }

    /// Checks the checksum against `user` and decodes, refusing trailing bytes.
    pub fn decode(&self, user: &str) -> Result<Record> {
        if record_sum(user, &self.payload) != self.sum {
            return Err(ReplError::protocol(format!(
                "record checksum mismatch for user {user:?} (corrupt, or another user's record)"
            )));
        }
        let (rec, used): (Record, usize) =
            bincode::serde::decode_from_slice(&self.payload, record_config())
                .map_err(|e| ReplError::protocol(format!("undecodable record: {e}")))?;
        if used != self.payload.len() {
            return Err(ReplError::protocol(format!(
                "{} trailing bytes after a record",
                self.payload.len() - used
            )));
        }
        Ok(rec)
    }
}

/// Every frame of the protocol. The dialing node (the shipper) sends requests; the accepting node
/// answers. Only `Object` has no answer: it always precedes the `Records` that need it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// First frame in each direction.
    Hello {
        version: u32,
        node: NodeId,
        time: HlcTime,
    },
    /// Request: the receiver's version vector for `user`.
    GetVersionVector {
        user: String,
    },
    /// Answer to GetVersionVector, and to Pull when nothing more is to come.
    VersionVector {
        user: String,
        vv: VersionVector,
    },
    /// Request: which of these objects does the receiver lack?
    HaveObjects {
        user: String,
        ids: Vec<ObjectId>,
    },
    /// Answer to HaveObjects.
    MissingObjects {
        user: String,
        ids: Vec<ObjectId>,
    },
    /// One message object in its stored form, verified on receipt. No answer.
    Object {
        user: String,
        id: ObjectId,
        body: StoredBody,
    },
    /// Request: apply these records. Answer: `Ack` once they are durable.
    Records {
        user: String,
        records: Vec<WireRecord>,
    },
    /// Durable acknowledgement: the receiver's version vector after applying (fsync'd).
    Ack {
        user: String,
        vv: VersionVector,
    },
    /// Request (sync, pull direction): records the receiver has that `have` lacks, at most `limit`.
    Pull {
        user: String,
        have: VersionVector,
        limit: u32,
    },
    /// Answer to Pull.
    PullReply {
        user: String,
        records: Vec<WireRecord>,
        more: bool,
    },
    /// Request (sync, pull direction): objects in their stored form.
    GetObjects {
        user: String,
        ids: Vec<ObjectId>,
    },
    /// Answer to GetObjects: a prefix of the ids asked, in order (as many as fit in one reply,
    /// at least one); `None` where the answering side does not have the object.
    ObjectsData {
        user: String,
        objects: Vec<(ObjectId, Option<StoredBody>)>,
    },
    /// Request (sync --full): every mailbox's digest.
    GetDigests {
        user: String,
    },
    Digests {
        user: String,
        mailboxes: Vec<crate::store_api::MailboxDigest>,
    },
    /// Request (sync --full): one mailbox's messages, where digests differ.
    GetListing {
        user: String,
        mailbox: MailboxId,
    },
    Listing {
        user: String,
        mailbox: MailboxId,
        messages: Vec<crate::store_api::MessageKey>,
    },
    /// Request (the merge resolver, where digests' tombstones differ): one mailbox's expunged
    /// UIDs with their GUIDs and expunge modseqs.
    GetExpunged {
        user: String,
        mailbox: MailboxId,
    },
    Expunged {
        user: String,
        mailbox: MailboxId,
        tombstones: Vec<crate::store_api::MessageKey>,
    },
    /// Keep-alive request on an idle connection; answered by Pong.
    Ping,
    Pong,
    /// The answering side refused a request it could not serve (store error); the connection
    /// stays up.
    Error {
        message: String,
    },
    /// The fencing epoch the sender holds now (raft mode); applies to the `Records` frames it
    /// sends after it on this connection (before any: 0). No answer.
    Epoch {
        epoch: u64,
    },
    /// Request: the users the receiver stores, in name order, after `after`, at most
    /// [`MAX_USERS_PER_FRAME`].
    GetUsers {
        after: Option<String>,
    },
    /// Answer to GetUsers; `more` when another page follows.
    Users {
        names: Vec<String>,
        more: bool,
    },
}

impl Message {
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Hello { .. } => "Hello",
            Message::GetVersionVector { .. } => "GetVersionVector",
            Message::VersionVector { .. } => "VersionVector",
            Message::HaveObjects { .. } => "HaveObjects",
            Message::MissingObjects { .. } => "MissingObjects",
            Message::Object { .. } => "Object",
            Message::Records { .. } => "Records",
            Message::Ack { .. } => "Ack",
            Message::Pull { .. } => "Pull",
            Message::PullReply { .. } => "PullReply",
            Message::GetObjects { .. } => "GetObjects",
            Message::ObjectsData { .. } => "ObjectsData",
            Message::GetDigests { .. } => "GetDigests",
            Message::Digests { .. } => "Digests",
            Message::GetListing { .. } => "GetListing",
            Message::Listing { .. } => "Listing",
            Message::GetExpunged { .. } => "GetExpunged",
            Message::Expunged { .. } => "Expunged",
            Message::Ping => "Ping",
            Message::Pong => "Pong",
            Message::Error { .. } => "Error",
            Message::Epoch { .. } => "Epoch",
            Message::GetUsers { .. } => "GetUsers",
            Message::Users { .. } => "Users",
        }
    }
}

/// The frame codec both sides use.
pub fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_type::<u32>()
        .max_frame_length(MAX_FRAME)
        .new_codec()
}

pub fn encode(msg: &Message) -> Result<Bytes> {
    bincode::serde::encode_to_vec(msg, msg_config())
        .map(Bytes::from)
        .map_err(|e| ReplError::Other(format!("encoding {}: {e}", msg.kind())))
}

/// Decodes one frame; a frame that does not decode exactly to one message is a protocol error.
pub fn decode(frame: &BytesMut) -> Result<Message> {
    let (msg, used): (Message, usize) = bincode::serde::decode_from_slice(frame, msg_config())
        .map_err(|e| ReplError::protocol(format!("undecodable frame: {e}")))?;
    if used != frame.len() {
        return Err(ReplError::protocol(format!(
            "{} trailing bytes after a {} frame",
            frame.len() - used,
            msg.kind()
        )));
    }
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::record::Op;
    use tokio_util::codec::{Decoder, Encoder};

    fn rec() -> Record {
        Record {
            origin: 1,
            seq: 7,
            time: HlcTime {
                wall_ms: 5,
                logical: 0,
                node: 1,
            },
            op: Op::Subscribe {
                name: "INBOX".into(),
            },
        }
    }

    #[test]
    fn message_round_trips() {
        let m = Message::Records {
            user: "alice".into(),
            records: vec![WireRecord::encode("alice", &rec()).unwrap()],
        };
        let b = encode(&m).unwrap();
        assert_eq!(decode(&BytesMut::from(&b[..])).unwrap(), m);
    }

    #[test]
    fn epoch_and_users_round_trip() {
        for m in [
            Message::Epoch { epoch: u64::MAX },
            Message::GetUsers {
                after: Some("bob".into()),
            },
            Message::Users {
                names: vec!["alice".into(), "bob".into()],
                more: true,
            },
        ] {
            let b = encode(&m).unwrap();
            assert_eq!(decode(&BytesMut::from(&b[..])).unwrap(), m);
        }
    }

    #[test]
    fn trailing_garbage_is_refused() {
        let mut b =
            BytesMut::from(&encode(&Message::GetVersionVector { user: "a".into() }).unwrap()[..]);
        b.extend_from_slice(b"xx");
        let err = decode(&b).unwrap_err().to_string();
        assert!(err.contains("trailing"), "{err}");
    }

    #[test]
    fn garbage_frame_is_refused() {
        assert!(decode(&BytesMut::from(&[0xff, 0xff, 0xff, 0xff, 0xff][..])).is_err());
        assert!(decode(&BytesMut::new()).is_err());
    }

    #[test]
    fn oversized_frame_is_refused_by_codec() {
        let mut c = codec();
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&((MAX_FRAME as u32) + 1).to_be_bytes());
        buf.extend_from_slice(&[0u8; 16]);
        assert!(c.decode(&mut buf).is_err());
        // and the encoder refuses to build one
        let big = Bytes::from(vec![0u8; MAX_FRAME + 1]);
        assert!(c.encode(big, &mut BytesMut::new()).is_err());
    }

    #[test]
    fn absurd_vec_length_inside_frame_is_refused_without_allocating() {
        // A Records frame claiming 2^60 records in a few bytes.
        let mut b = BytesMut::new();
        let good = encode(&Message::Records {
            user: "a".into(),
            records: vec![],
        })
        .unwrap();
        // variant tag + user string, then a huge varint length
        b.extend_from_slice(&good[..good.len() - 1]);
        b.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0x10]);
        assert!(decode(&b).is_err());
    }

    #[test]
    fn record_checksum_binds_user() {
        let w = WireRecord::encode("alice", &rec()).unwrap();
        assert_eq!(w.decode("alice").unwrap(), rec());
        let e = w.decode("bob").unwrap_err().to_string();
        assert!(e.contains("checksum"), "{e}");
        let mut bad = w.clone();
        bad.payload.0[0] ^= 1;
        assert!(bad.decode("alice").is_err());
    }

    #[test]
    fn record_with_trailing_bytes_is_refused() {
        let mut w = WireRecord::encode("alice", &rec()).unwrap();
        w.payload.0.push(0);
        w.sum = record_sum("alice", &w.payload);
        assert!(w
            .decode("alice")
            .unwrap_err()
            .to_string()
            .contains("trailing"));
    }
}
