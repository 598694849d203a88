//! Checks on everything a peer sends before any of it is applied. A frame with one bad record is
//! refused whole (and the peer disconnected by the caller): nothing of it reaches the store.

use crate::error::{ReplError, Result};
use crate::wire::{StoredBody, WireRecord, MAX_FRAME, MAX_RECORDS_PER_FRAME};
use std::collections::BTreeMap;
use storage::pack::Verified;
use storage::record::{NewEntry, Op, Record};
use storage::{Flag, Flags, NodeId, ObjectId, VersionVector};

const MAX_NAME: usize = 1024;
const MAX_KEYWORD: usize = 256;
const MAX_MESSAGES_PER_RECORD: usize = 1_000_000;
/// No single message is bigger than this; a larger size is a corrupt or hostile record.
const MAX_MESSAGE_SIZE: u64 = 4 << 30;
/// Largest modseq a peer may ask for (RFC 7162's 63 bits).
const MAX_MODSEQ: u64 = (1 << 63) - 1;

fn bad(why: String) -> ReplError {
    ReplError::Protocol(why)
}

/// A peer's object in its stored form: its claimed raw length is at most a frame (what a raw
/// body could be before protocol 3; so the claim never sizes an allocation beyond that), and
/// it decompresses, within that length, to exactly that many bytes hashing to `id`. A
/// corrupt body, a wrong id or a zip bomb is a protocol error before anything is stored.
pub fn check_object(id: ObjectId, body: StoredBody) -> Result<Verified> {
    storage::pack::verify(id, body.raw_len, body.zstd.0, MAX_FRAME as u64)
        .map_err(|e| bad(format!("refused object: {e}")))
}

/// A user name as a peer may send it: never a path.
pub fn check_user_name(user: &str) -> Result<()> {
    if user.is_empty()
        || user.len() > 255
        || user == "."
        || user == ".."
        || user.contains('/')
        || user.contains('\\')
        || user.chars().any(|c| c.is_control())
    {
        return Err(bad(format!("invalid user name {user:?}")));
    }
    Ok(())
}

/// A mailbox name or subscription as a peer may send it: what the store would accept locally,
/// and never anything that could step outside the user's tree.
pub fn check_mailbox_name(name: &str) -> Result<()> {
    let why = if name.is_empty() {
        "empty"
    } else if name.len() > MAX_NAME {
        "too long"
    } else if name.chars().any(|c| c.is_control()) {
        "control character"
    } else if name.starts_with('/') || name.ends_with('/') {
        "leading or trailing /"
    } else if name.contains('\\') {
        "backslash"
    } else if name
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        "empty, . or .. component"
    } else {
        return Ok(());
    };
    Err(bad(format!("mailbox name {name:?} refused: {why}")))
}

fn check_flags(flags: &Flags) -> Result<()> {
    for f in flags {
        if let Flag::Keyword(k) = f {
            if k.is_empty()
                || k.len() > MAX_KEYWORD
                || k.starts_with('\\')
                || k.chars().any(|c| c.is_control() || c.is_whitespace())
            {
                return Err(bad(format!("keyword {k:?} refused")));
            }
        }
    }
    Ok(())
}

fn check_entry(e: &NewEntry) -> Result<()> {
    if e.uid == 0 {
        return Err(bad("message with UID 0".into()));
    }
    if e.size > MAX_MESSAGE_SIZE {
        return Err(bad(format!("message size {} is absurd", e.size)));
    }
    check_flags(&e.flags)
}

fn check_count(n: usize) -> Result<()> {
    if n > MAX_MESSAGES_PER_RECORD {
        return Err(bad(format!("{n} messages in one record")));
    }
    Ok(())
}

fn check_op(op: &Op) -> Result<()> {
    match op {
        Op::MailboxCreate { name, .. } => check_mailbox_name(name),
        Op::MailboxRename { new_name, .. } => check_mailbox_name(new_name),
        Op::Subscribe { name } | Op::Unsubscribe { name } => check_mailbox_name(name),
        Op::MailboxDelete { .. } => Ok(()),
        Op::UidValidity { uidvalidity, .. } => {
            if *uidvalidity == 0 {
                Err(bad("UIDVALIDITY 0".into()))
            } else {
                Ok(())
            }
        }
        Op::Append { entry, .. } => check_entry(entry),
        Op::Copy { entries, .. } | Op::Move { entries, .. } => {
            check_count(entries.len())?;
            entries.iter().try_for_each(|(_, e)| check_entry(e))
        }
        Op::Flags {
            messages,
            add,
            remove,
            ..
        } => {
            check_count(messages.len())?;
            check_flags(add)?;
            check_flags(remove)
        }
        Op::Expunge { messages, .. } => check_count(messages.len()),
        Op::Renumber { moves, .. } => {
            check_count(moves.len())?;
            if moves.iter().any(|(_, uid)| *uid == 0) {
                return Err(bad("renumber to UID 0".into()));
            }
            Ok(())
        }
        Op::AlignModseqs {
            modseq, messages, ..
        } => {
            check_count(messages.len())?;
            // RFC 7162: a mod-sequence is a positive 63-bit number; a larger one would also
            // leave no room for the mailbox's later modseqs.
            if *modseq == 0 || *modseq > MAX_MODSEQ {
                return Err(bad(format!("modseq {modseq} out of range")));
            }
            Ok(())
        }
        Op::AlignExpunged { modseq, uids, .. } => {
            check_count(uids.len())?;
            if *modseq == 0 || *modseq > MAX_MODSEQ {
                return Err(bad(format!("modseq {modseq} out of range")));
            }
            if uids.contains(&0) {
                return Err(bad("expunge alignment of UID 0".into()));
            }
            Ok(())
        }
    }
}

/// Decodes and checks a frame of records for `user`, given the receiver's version vector:
/// checksums bound to the user, origins stamped consistently, sequence numbers per origin
/// consecutive and without a gap after what the receiver has, and sane contents.
pub fn check_records(user: &str, wire: &[WireRecord], have: &VersionVector) -> Result<Vec<Record>> {
    if wire.len() > MAX_RECORDS_PER_FRAME {
        return Err(bad(format!("{} records in one frame", wire.len())));
    }
    let mut next: BTreeMap<NodeId, u64> = BTreeMap::new();
    let mut out = Vec::with_capacity(wire.len());
    for w in wire {
        let r = w.decode(user)?;
        if r.seq == 0 {
            return Err(bad(format!("record from node {} with seq 0", r.origin)));
        }
        if r.time.node != r.origin {
            return Err(bad(format!(
                "record {}:{} stamped by node {}",
                r.origin, r.seq, r.time.node
            )));
        }
        let expect = next
            .get(&r.origin)
            .copied()
            .unwrap_or_else(|| have.get(&r.origin).copied().unwrap_or(0).saturating_add(1));
        // Records at or below what we have are harmless re-sends (apply is idempotent); a
        // record past the next expected one would leave a hole in the origin's sequence.
        if r.seq > expect {
            return Err(bad(format!(
                "record {}:{} leaves a gap (expected {}:{})",
                r.origin, r.seq, r.origin, expect
            )));
        }
        next.insert(r.origin, expect.max(r.seq + 1));
        check_op(&r.op)?;
        out.push(r);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::{Guid, HlcTime, ObjectId};

    fn rec(origin: NodeId, seq: u64, op: Op) -> Record {
        Record {
            origin,
            seq,
            time: HlcTime {
                wall_ms: 1000 + seq,
                logical: 0,
                node: origin,
            },
            op,
        }
    }
    fn sub(name: &str) -> Op {
        Op::Subscribe { name: name.into() }
    }
    fn wire(user: &str, rs: &[Record]) -> Vec<WireRecord> {
        rs.iter()
            .map(|r| WireRecord::encode(user, r).unwrap())
            .collect()
    }

    #[test]
    fn accepts_consecutive_records() {
        let rs = vec![
            rec(1, 1, sub("a")),
            rec(2, 1, sub("b")),
            rec(1, 2, sub("c/d")),
        ];
        assert_eq!(
            check_records("u", &wire("u", &rs), &VersionVector::new()).unwrap(),
            rs
        );
    }

    #[test]
    fn resend_of_known_records_is_fine_but_gap_is_not() {
        let mut have = VersionVector::new();
        have.insert(1, 5);
        assert!(check_records("u", &wire("u", &[rec(1, 3, sub("a"))]), &have).is_ok());
        assert!(check_records("u", &wire("u", &[rec(1, 6, sub("a"))]), &have).is_ok());
        let e = check_records("u", &wire("u", &[rec(1, 7, sub("a"))]), &have).unwrap_err();
        assert!(e.to_string().contains("gap"), "{e}");
    }

    #[test]
    fn refuses_path_escape_names() {
        for n in [
            "../x", "a/../b", "a/..", "/etc", "a//b", "a\u{0}b", "", "a\\b", ".",
        ] {
            let rs = [rec(1, 1, sub(n))];
            assert!(
                check_records("u", &wire("u", &rs), &VersionVector::new()).is_err(),
                "{n:?}"
            );
        }
        let rs = [rec(
            1,
            1,
            Op::MailboxRename {
                mailbox: Guid([1; 16]),
                new_name: "../../etc".into(),
            },
        )];
        assert!(check_records("u", &wire("u", &rs), &VersionVector::new()).is_err());
    }

    #[test]
    fn refuses_other_users_record_and_forged_stamp() {
        let rs = [rec(1, 1, sub("a"))];
        assert!(check_records("bob", &wire("alice", &rs), &VersionVector::new()).is_err());
        let mut r = rec(1, 1, sub("a"));
        r.time.node = 3;
        assert!(check_records("u", &wire("u", &[r]), &VersionVector::new()).is_err());
    }

    #[test]
    fn refuses_absurd_sizes() {
        let entry = NewEntry {
            guid: Guid([2; 16]),
            uid: 1,
            object: ObjectId([0; 32]),
            size: u64::MAX,
            internal_date: 0,
            internal_date_tz_min: 0,
            flags: Flags::new(),
        };
        let rs = [rec(
            1,
            1,
            Op::Append {
                mailbox: Guid([1; 16]),
                entry,
                modseq: 1,
                delivery_key: None,
            },
        )];
        let e = check_records("u", &wire("u", &rs), &VersionVector::new()).unwrap_err();
        assert!(e.to_string().contains("absurd"), "{e}");
    }

    #[test]
    fn objects_are_checked_in_their_stored_form() {
        let raw = b"Subject: x\r\n\r\nhello\r\n".repeat(10);
        let p = storage::pack::prepare(&raw).unwrap();
        let id = p.id;
        let ok = check_object(id, p.clone().into()).unwrap();
        assert_eq!(ok.id(), id);
        // A claim above a frame is refused before decompressing.
        let mut big = StoredBody::from(p.clone());
        big.raw_len = MAX_FRAME as u64 + 1;
        let e = check_object(id, big).unwrap_err();
        assert!(matches!(e, ReplError::Protocol(_)), "{e}");
        // Another object's id.
        assert!(check_object(ObjectId::of(b"other"), p.into()).is_err());
    }

    #[test]
    fn align_modseqs_is_bounded() {
        let align = |modseq: u64, n: usize| {
            let op = Op::AlignModseqs {
                mailbox: Guid([1; 16]),
                modseq,
                messages: vec![Guid([2; 16]); n],
            };
            check_records("u", &wire("u", &[rec(1, 1, op)]), &VersionVector::new())
        };
        assert!(align(7, 3).is_ok());
        assert!(align(7, 0).is_ok(), "HIGHESTMODSEQ alone");
        for bad in [0, 1 << 63, u64::MAX] {
            let e = align(bad, 1).unwrap_err();
            assert!(e.to_string().contains("out of range"), "{e}");
        }
    }

    #[test]
    fn align_expunged_is_bounded() {
        let align = |modseq: u64, uids: Vec<u32>| {
            let op = Op::AlignExpunged {
                mailbox: Guid([1; 16]),
                modseq,
                uids,
            };
            check_records("u", &wire("u", &[rec(1, 1, op)]), &VersionVector::new())
        };
        assert!(align(7, vec![1, 5]).is_ok());
        assert!(align(7, vec![]).is_ok(), "HIGHESTMODSEQ alone");
        for bad in [0, 1 << 63, u64::MAX] {
            let e = align(bad, vec![1]).unwrap_err();
            assert!(e.to_string().contains("out of range"), "{e}");
        }
        let e = align(7, vec![3, 0]).unwrap_err();
        assert!(e.to_string().contains("UID 0"), "{e}");
        let e = align(7, vec![1; MAX_MESSAGES_PER_RECORD + 1]).unwrap_err();
        assert!(e.to_string().contains("in one record"), "{e}");
    }
}
