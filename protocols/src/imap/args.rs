//! Command arguments in the store's terms: mailbox names as sent, flags, sequence and UID sets
//! resolved against the session's snapshot. (Responses are built in [`super::response`].)

use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};
use storage::{Flag, Flags};

/// The mailbox name's bytes as the client sent them ("INBOX" for the INBOX form).
pub(crate) fn raw_name(m: &Mailbox<'_>) -> Vec<u8> {
    match m {
        Mailbox::Inbox => b"INBOX".to_vec(),
        Mailbox::Other(o) => o.as_ref().to_vec(),
    }
}

/// Converts imap-types flags to the store's; `\Recent` and `\*` style extensions are refused.
pub fn store_flags<'a>(
    flags: impl IntoIterator<Item = &'a imap_codec::imap_types::flag::Flag<'a>>,
) -> Result<Flags, String> {
    use imap_codec::imap_types::flag::Flag as F;
    let mut out = Flags::new();
    for f in flags {
        out.insert(match f {
            F::Answered => Flag::Answered,
            F::Deleted => Flag::Deleted,
            F::Draft => Flag::Draft,
            F::Flagged => Flag::Flagged,
            F::Seen => Flag::Seen,
            F::Keyword(k) => Flag::Keyword(k.inner().to_string()),
            F::Extension(e) => {
                return Err(format!("Invalid system flag {}", F::Extension(e.clone())));
            }
        });
    }
    Ok(out)
}

/// Why a sequence set cannot be resolved.
#[derive(Debug, PartialEq, Eq)]
pub struct BadSet;

/// Resolves a message sequence number set against `n` messages: 0-based indices, ascending,
/// without duplicates. A number beyond `n` is an error (Dovecot: "Invalid messageset").
pub fn resolve_seq(set: &SequenceSet, n: usize) -> Result<Vec<usize>, BadSet> {
    let val = |s: &SeqOrUid| -> Result<u64, BadSet> {
        match s {
            SeqOrUid::Value(v) => Ok(u64::from(v.get())),
            SeqOrUid::Asterisk if n == 0 => Err(BadSet),
            SeqOrUid::Asterisk => Ok(n as u64),
        }
    };
    let mut out = Vec::new();
    for seq in set.0.as_ref() {
        let (a, b) = match seq {
            Sequence::Single(s) => (val(s)?, val(s)?),
            Sequence::Range(x, y) => {
                let (x, y) = (val(x)?, val(y)?);
                (x.min(y), x.max(y))
            }
        };
        if b > n as u64 {
            return Err(BadSet);
        }
        for i in a..=b {
            out.push((i - 1) as usize);
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Resolves a UID set against the ascending UIDs of a snapshot: 0-based indices of the UIDs
/// that exist. `*` is the highest UID present (RFC 9051 6.4.9).
pub fn resolve_uid(set: &SequenceSet, uids: &[u32]) -> Vec<usize> {
    let max = uids.last().copied().unwrap_or(0);
    let val = |s: &SeqOrUid| match s {
        SeqOrUid::Value(v) => v.get(),
        SeqOrUid::Asterisk => max,
    };
    let mut out = Vec::new();
    for seq in set.0.as_ref() {
        let (a, b) = match seq {
            Sequence::Single(s) => (val(s), val(s)),
            Sequence::Range(x, y) => (val(x).min(val(y)), val(x).max(val(y))),
        };
        let lo = uids.partition_point(|&u| u < a);
        let hi = uids.partition_point(|&u| u <= b);
        out.extend(lo..hi);
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The messages `set` names in a snapshot whose ascending UIDs are `uids`: by UID, or by
/// sequence number. A sequence number beyond the snapshot is an error, the text Dovecot
/// answers `command` with.
pub fn resolve(
    set: &SequenceSet,
    uid: bool,
    uids: &[u32],
    command: &str,
) -> Result<Vec<usize>, String> {
    if uid {
        Ok(resolve_uid(set, uids))
    } else {
        resolve_seq(set, uids.len())
            .map_err(|_| format!("Error in IMAP command {command}: Invalid messageset"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(s: &str) -> SequenceSet {
        s.parse().unwrap()
    }

    #[test]
    fn sequence_sets() {
        assert_eq!(resolve_seq(&set("1:*"), 3), Ok(vec![0, 1, 2]));
        assert_eq!(resolve_seq(&set("3,1"), 3), Ok(vec![0, 2]));
        assert_eq!(resolve_seq(&set("4"), 3), Err(BadSet));
        assert_eq!(resolve_seq(&set("*"), 0), Err(BadSet));
        assert_eq!(resolve_uid(&set("2:5"), &[1, 3, 9]), vec![1]);
        assert_eq!(resolve_uid(&set("10:*"), &[1, 3, 9]), vec![2]);
        assert_eq!(resolve_uid(&set("*"), &[]), Vec::<usize>::new());
    }
}
