//! Checks on everything a peer sends before any of it is applied: frames, user names and
//! objects here, each record by the store's [`storage::merge::validate`]. A frame with one bad record is
//! refused whole (and the peer disconnected by the caller): nothing of it reaches the store.

use crate::error::{ReplError, Result};
use crate::wire::{StoredBody, WireRecord, MAX_FRAME, MAX_RECORDS_PER_FRAME};
use std::collections::BTreeMap;
use storage::merge::validate_peer_record;
use storage::pack::Verified;
use storage::record::Record;
use storage::{NodeId, ObjectId, VersionVector};

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
        // The store's one check of a peer's record (names, UIDs, modseqs, stamps, bounds);
        // the store runs it again before applying, so no path skips it.
        validate_peer_record(&r).map_err(|e| bad(e.to_string()))?;
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
        next.insert(r.origin, expect.max(r.seq.saturating_add(1)));
        out.push(r);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::merge::validate::MAX_MESSAGES_PER_RECORD;
    use storage::record::{NewEntry, Op};
    use storage::{Flags, Guid, HlcTime};

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
            "../x", "a/../b", "a/..", "/etc", "a//b", "a\u{0}b", "", ".", "a*",
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
