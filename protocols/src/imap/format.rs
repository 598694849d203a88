//! Response syntax: strings (atom, quoted or literal), flag lists, dates, sequence sets.

use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};
use storage::{Flag, Flags};

/// Whether `b` may appear in an atom that we send (ATOM-CHAR, conservatively).
fn is_atom_char(b: u8) -> bool {
    b > 0x20 && b < 0x7f && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
}

/// Writes an astring: an atom when safe, else a quoted string, else a literal.
pub fn astring(out: &mut Vec<u8>, s: &[u8], utf8: bool) {
    if !s.is_empty() && s.iter().all(|&b| is_atom_char(b)) && !s.eq_ignore_ascii_case(b"NIL") {
        out.extend_from_slice(s);
    } else {
        string(out, s, utf8);
    }
}

/// Writes a string: quoted when it can be, else a literal. 8-bit bytes go in a quoted string
/// only for UTF8=ACCEPT clients (and only when valid UTF-8).
pub fn string(out: &mut Vec<u8>, s: &[u8], utf8: bool) {
    let eight_bit_ok = utf8 && std::str::from_utf8(s).is_ok();
    let quotable = s.len() < 1024
        && s.iter()
            .all(|&b| b != 0 && b != b'\r' && b != b'\n' && (b < 0x80 || eight_bit_ok));
    if quotable {
        out.push(b'"');
        for &b in s {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        literal(out, s);
    }
}

pub fn literal(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(format!("{{{}}}\r\n", s.len()).as_bytes());
    out.extend_from_slice(s);
}

/// `(\Seen \Flagged kw)`, with `\Recent` when asked.
pub fn flag_list(flags: &Flags, recent: bool) -> String {
    let mut s = String::from("(");
    let mut first = true;
    for f in flags {
        if !first {
            s.push(' ');
        }
        first = false;
        s.push_str(f.to_imap());
    }
    if recent {
        if !first {
            s.push(' ');
        }
        s.push_str("\\Recent");
    }
    s.push(')');
    s
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

/// RFC 3501 date-time: `"17-Jul-1996 02:44:25 -0700"`.
pub fn internal_date(secs: i64, tz_min: i32) -> String {
    let offset = chrono::FixedOffset::east_opt(tz_min.clamp(-1439, 1439) * 60)
        .unwrap_or_else(|| chrono::FixedOffset::east_opt(0).expect("zero offset is valid"));
    let dt = chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .with_timezone(&offset);
    format!("\"{}\"", dt.format("%d-%b-%Y %H:%M:%S %z"))
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

/// Compact `1:3,7` form of ascending numbers.
pub fn compact_set(nums: &[u32]) -> String {
    let mut s = String::new();
    let mut i = 0;
    while i < nums.len() {
        let start = nums[i];
        let mut end = start;
        while i + 1 < nums.len() && nums[i + 1] == end + 1 {
            i += 1;
            end = nums[i];
        }
        if !s.is_empty() {
            s.push(',');
        }
        if start == end {
            s.push_str(&start.to_string());
        } else {
            s.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(s: &str) -> SequenceSet {
        s.parse().unwrap()
    }

    #[test]
    fn strings() {
        let mut o = Vec::new();
        astring(&mut o, b"INBOX", false);
        o.push(b' ');
        astring(&mut o, b"a b\"c", false);
        o.push(b' ');
        astring(&mut o, b"nil", false);
        o.push(b' ');
        string(&mut o, b"x\r\ny", false);
        o.push(b' ');
        string(&mut o, "ü".as_bytes(), true);
        assert_eq!(
            String::from_utf8(o).unwrap(),
            "INBOX \"a b\\\"c\" \"nil\" {4}\r\nx\r\ny \"ü\""
        );
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
        assert_eq!(compact_set(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
    }

    #[test]
    fn dates_and_flags() {
        assert_eq!(internal_date(0, 0), "\"01-Jan-1970 00:00:00 +0000\"");
        assert_eq!(internal_date(3600, -420), "\"31-Dec-1969 18:00:00 -0700\"");
        let mut f = Flags::new();
        f.insert(Flag::Seen);
        f.insert(Flag::Keyword("$Junk".into()));
        assert_eq!(flag_list(&f, true), "(\\Seen $Junk \\Recent)");
    }
}
