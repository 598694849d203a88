//! The one check of a record that came from a peer, run by replication when a frame arrives and
//! again by the store before it applies anything: what a peer sends is held to the rules a
//! client's change is held to (mailbox names, UIDs, flags) and to bounds that keep every later
//! computation on its values in range (UIDs below `u32::MAX`, modseqs within 63 bits, counts
//! and sizes that a real change could have). A record that fails refuses its whole frame.

use super::modseqs::MAX_MODSEQ;
use super::uids;
use crate::names;
use crate::record::{NewEntry, Op, Record};
use crate::types::{Flag, Flags};

/// Longest keyword (Dovecot refuses longer ones too).
pub const MAX_KEYWORD: usize = 256;
/// Most messages one record may name; the writer cuts changes into records of 2,000.
pub const MAX_MESSAGES_PER_RECORD: usize = 1_000_000;
/// No single message is bigger than this; a larger size is a corrupt or hostile record.
pub const MAX_MESSAGE_SIZE: u64 = 4 << 30;
/// Internal dates from year 1 to year 9999 (seconds since the epoch): what IMAP can show.
const MIN_DATE: i64 = -62_135_596_800;
const MAX_DATE: i64 = 253_402_300_799;
/// A zone offset as IMAP writes it: at most +-99:59.
const MAX_ZONE_MIN: i32 = 99 * 60 + 59;

/// Why a peer's record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refused record {origin}:{seq} from a peer: {why}")]
pub struct PeerRecordError {
    pub origin: u32,
    pub seq: u64,
    pub why: String,
}

/// Checks one record a peer sent; see the module doc.
pub fn validate_peer_record(rec: &Record) -> Result<(), PeerRecordError> {
    check_record(rec).map_err(|why| PeerRecordError {
        origin: rec.origin,
        seq: rec.seq,
        why,
    })
}

fn check_record(rec: &Record) -> Result<(), String> {
    if rec.seq == 0 {
        return Err("sequence number 0".into());
    }
    if rec.time.node != rec.origin {
        return Err(format!("stamped by node {}", rec.time.node));
    }
    check_op(&rec.op)
}

fn check_op(op: &Op) -> Result<(), String> {
    match op {
        Op::MailboxCreate {
            name, uidvalidity, ..
        } => {
            check_name(name)?;
            if *uidvalidity == 0 {
                return Err("UIDVALIDITY 0".into());
            }
            Ok(())
        }
        Op::MailboxRename { new_name, .. } => check_name(new_name),
        Op::Subscribe { name } | Op::Unsubscribe { name } => check_name(name),
        Op::MailboxDelete { .. } => Ok(()),
        Op::UidValidity { uidvalidity, .. } => match uidvalidity {
            0 => Err("UIDVALIDITY 0".into()),
            _ => Ok(()),
        },
        Op::Append { entry, modseq, .. } => {
            check_modseq(*modseq)?;
            check_entry(entry)
        }
        Op::Copy {
            entries, modseq, ..
        } => {
            check_modseq(*modseq)?;
            check_count(entries.len())?;
            entries.iter().try_for_each(|(_, e)| check_entry(e))
        }
        Op::Move {
            entries,
            modseq,
            from_modseq,
            ..
        } => {
            check_modseq(*modseq)?;
            check_modseq(*from_modseq)?;
            check_count(entries.len())?;
            entries.iter().try_for_each(|(_, e)| check_entry(e))
        }
        Op::Flags {
            messages,
            add,
            remove,
            modseq,
            ..
        } => {
            check_modseq(*modseq)?;
            check_count(messages.len())?;
            check_flags(add)?;
            check_flags(remove)
        }
        Op::Expunge {
            messages, modseq, ..
        } => {
            check_modseq(*modseq)?;
            check_count(messages.len())
        }
        Op::Renumber { moves, modseq, .. } => {
            check_modseq(*modseq)?;
            check_count(moves.len())?;
            moves.iter().try_for_each(|(_, uid)| check_uid(*uid))
        }
        Op::AlignModseqs {
            modseq, messages, ..
        } => {
            check_modseq(*modseq)?;
            check_count(messages.len())
        }
        Op::AlignExpunged { modseq, uids, .. } => {
            check_modseq(*modseq)?;
            check_count(uids.len())?;
            uids.iter().try_for_each(|uid| check_uid(*uid))
        }
        Op::Attribute { key, value, .. } => super::attributes::check(key, value.as_deref()),
    }
}

/// What the store accepts from a client, in its canonical spelling (so never a path).
fn check_name(name: &str) -> Result<(), String> {
    match names::validate_mailbox(name) {
        Ok(c) if c == name => Ok(()),
        Ok(c) => Err(format!("mailbox name {name:?} is not canonical ({c:?})")),
        Err(e) => Err(e.to_string()),
    }
}

fn check_uid(uid: u32) -> Result<(), String> {
    if uids::is_valid(uid) {
        Ok(())
    } else {
        Err(format!("invalid UID {uid}"))
    }
}

/// RFC 7162: positive and 63-bit; 0 never names a change.
fn check_modseq(modseq: u64) -> Result<(), String> {
    if modseq == 0 || modseq > MAX_MODSEQ {
        return Err(format!("modseq {modseq} out of range"));
    }
    Ok(())
}

fn check_count(n: usize) -> Result<(), String> {
    if n > MAX_MESSAGES_PER_RECORD {
        return Err(format!("{n} messages in one record"));
    }
    Ok(())
}

fn check_entry(e: &NewEntry) -> Result<(), String> {
    check_uid(e.uid)?;
    if e.size > MAX_MESSAGE_SIZE {
        return Err(format!("message size {} is absurd", e.size));
    }
    if !(MIN_DATE..=MAX_DATE).contains(&e.internal_date)
        || e.internal_date_tz_min.abs() > MAX_ZONE_MIN
    {
        return Err(format!(
            "internal date {} {:+} min out of range",
            e.internal_date, e.internal_date_tz_min
        ));
    }
    check_flags(&e.flags)
}

fn check_flags(flags: &Flags) -> Result<(), String> {
    for f in flags {
        if let Flag::Keyword(k) = f {
            if k.is_empty()
                || k.len() > MAX_KEYWORD
                || k.starts_with('\\')
                || k.chars().any(|c| c.is_control() || c.is_whitespace())
            {
                return Err(format!("keyword {k:?} refused"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Guid, HlcTime, ObjectId};

    fn rec(op: Op) -> Record {
        Record {
            origin: 1,
            seq: 1,
            time: HlcTime {
                wall_ms: 1000,
                logical: 0,
                node: 1,
            },
            op,
        }
    }
    fn entry(uid: u32) -> NewEntry {
        NewEntry {
            guid: Guid([2; 16]),
            uid,
            object: ObjectId([0; 32]),
            size: 10,
            internal_date: 0,
            internal_date_tz_min: 0,
            flags: Flags::new(),
        }
    }
    fn append(uid: u32, modseq: u64) -> Op {
        Op::Append {
            mailbox: Guid([1; 16]),
            entry: entry(uid),
            modseq,
            delivery_key: None,
        }
    }
    fn why(op: Op) -> String {
        validate_peer_record(&rec(op)).unwrap_err().to_string()
    }

    #[test]
    fn extreme_uids_are_refused_everywhere_a_uid_travels() {
        assert!(validate_peer_record(&rec(append(uids::MAX_UID, 1))).is_ok());
        for uid in [0, u32::MAX] {
            assert!(why(append(uid, 1)).contains("invalid UID"));
            let copy = Op::Copy {
                from: Guid([1; 16]),
                to: Guid([3; 16]),
                entries: vec![(Guid([4; 16]), entry(5)), (Guid([5; 16]), entry(uid))],
                modseq: 1,
            };
            assert!(why(copy).contains("invalid UID"));
            let renumber = Op::Renumber {
                mailbox: Guid([1; 16]),
                moves: vec![(Guid([4; 16]), uid)],
                modseq: 1,
            };
            assert!(why(renumber).contains("invalid UID"));
            let align = Op::AlignExpunged {
                mailbox: Guid([1; 16]),
                modseq: 3,
                uids: vec![uid],
            };
            assert!(why(align).contains("invalid UID"));
        }
    }

    #[test]
    fn extreme_modseqs_are_refused() {
        for m in [0, MAX_MODSEQ + 1, u64::MAX] {
            assert!(why(append(1, m)).contains("out of range"), "{m}");
            let align = Op::AlignModseqs {
                mailbox: Guid([1; 16]),
                modseq: m,
                messages: vec![],
            };
            assert!(why(align).contains("out of range"), "{m}");
        }
        assert!(validate_peer_record(&rec(append(1, MAX_MODSEQ))).is_ok());
    }

    #[test]
    fn names_must_be_what_a_client_could_make() {
        for n in [
            "../x", "a/../b", "/etc", "a//b", "a\u{0}b", "", ".", "a*", "inbox",
        ] {
            let e = why(Op::Subscribe { name: n.into() });
            assert!(e.contains("refused record 1:1"), "{n:?}: {e}");
        }
        assert!(validate_peer_record(&rec(Op::Subscribe {
            name: "INBOX/x".into()
        }))
        .is_ok());
    }

    #[test]
    fn stamps_sizes_dates_and_keywords() {
        let mut r = rec(append(1, 1));
        r.time.node = 2;
        assert!(validate_peer_record(&r)
            .unwrap_err()
            .why
            .contains("stamped"));
        r = rec(append(1, 1));
        r.seq = 0;
        assert!(validate_peer_record(&r).is_err());
        let mut e = entry(1);
        e.size = u64::MAX;
        let op = |e: NewEntry| Op::Append {
            mailbox: Guid([1; 16]),
            entry: e,
            modseq: 1,
            delivery_key: None,
        };
        assert!(why(op(e.clone())).contains("absurd"));
        e = entry(1);
        e.internal_date = i64::MIN;
        assert!(why(op(e.clone())).contains("internal date"));
        e = entry(1);
        e.flags.insert(Flag::Keyword("two words".into()));
        assert!(why(op(e)).contains("keyword"));
    }
}
