//! Reading the few IMAP responses the harness needs out of response lines: SELECT's codes,
//! FETCH items, VANISHED sets, APPENDUID, LIST names. Lenient and total: what cannot be read
//! is None, never a panic.

use super::history::Seen;

/// The number after `key` ("UID 5" -> 5), when `key` is a whole word.
pub(crate) fn number_after(s: &str, key: &str) -> Option<u64> {
    let mut from = 0;
    while let Some(i) = s[from..].find(key) {
        let at = from + i;
        let before_ok = at == 0 || !s.as_bytes()[at - 1].is_ascii_alphanumeric();
        let rest = &s[at + key.len()..];
        if before_ok {
            let digits: String = rest
                .trim_start_matches([' ', '('])
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(n) = digits.parse() {
                return Some(n);
            }
        }
        from = at + key.len();
    }
    None
}

/// "* OK [UIDVALIDITY 3] ..." among SELECT's lines.
pub fn code_number(lines: &[String], code: &str) -> Option<u64> {
    let key = format!("[{code} ");
    lines
        .iter()
        .find_map(|l| l.find(&key).and_then(|i| number_after(&l[i + 1..], code)))
}

/// "[APPENDUID 38505 3955]" -> (38505, 3955).
pub fn appenduid(tagged: &str) -> Option<(u32, u32)> {
    let i = tagged.find("[APPENDUID ")?;
    let mut it = tagged[i + 11..].split([' ', ']']);
    let v = it.next()?.parse().ok()?;
    let u = it.next()?.parse().ok()?;
    Some((v, u))
}

/// The Message-ID's value inside a header block: "Message-ID: <x@y>" -> "x@y".
pub fn message_id(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let i = lower.find("message-id:")?;
    let rest = &text[i + 11..];
    let open = rest.find('<')?;
    let close = rest[open..].find('>')?;
    let id = &rest[open + 1..open + close];
    (!id.is_empty()).then(|| id.to_string())
}

/// "* 3 FETCH (UID 5 MODSEQ (12) FLAGS (\Seen) BODY[...] {n}\r\n...)" -> Seen.
pub fn fetch(line: &str) -> Option<Seen> {
    if !line.starts_with("* ") || !line.contains(" FETCH (") {
        return None;
    }
    let items = &line[line.find(" FETCH (")? + 8..];
    let uid = u32::try_from(number_after(items, "UID")?).ok()?;
    let modseq = number_after(items, "MODSEQ");
    let flags = items
        .find("FLAGS (")
        .and_then(|i| {
            let rest = &items[i + 7..];
            rest.find(')').map(|j| {
                rest[..j]
                    .split_whitespace()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
        })
        .unwrap_or_default();
    Some(Seen {
        uid,
        msgid: message_id(items),
        modseq,
        flags,
    })
}

/// "* VANISHED (EARLIER) 1:3,5" -> [1, 2, 3, 5]; bounded to `max` UIDs.
pub fn vanished(line: &str, max: usize) -> Option<Vec<u32>> {
    let rest = line.strip_prefix("* VANISHED ")?;
    let set = rest.strip_prefix("(EARLIER) ").unwrap_or(rest).trim();
    let mut out = Vec::new();
    for part in set.split(',') {
        let (a, b) = match part.split_once(':') {
            Some((a, b)) => (a.parse::<u32>().ok()?, b.parse::<u32>().ok()?),
            None => {
                let a = part.parse::<u32>().ok()?;
                (a, a)
            }
        };
        let (lo, hi) = (a.min(b), a.max(b));
        for u in lo..=hi {
            if out.len() >= max {
                return Some(out);
            }
            out.push(u);
        }
    }
    Some(out)
}

/// `* LIST (\HasNoChildren) "/" "Archive"` -> "Archive".
pub fn list_name(line: &str) -> Option<String> {
    let rest = line.strip_prefix("* LIST ")?;
    let after_flags = &rest[rest.find(')')? + 1..];
    let mut it = after_flags.trim().splitn(2, ' ');
    let _delim = it.next()?;
    let name = it.next()?.trim();
    Some(name.trim_matches('"').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_responses() {
        let sel: Vec<String> = vec![
            "* OK [UIDVALIDITY 1234] UIDs valid".into(),
            "* OK [HIGHESTMODSEQ 77] Highest".into(),
        ];
        assert_eq!(code_number(&sel, "UIDVALIDITY"), Some(1234));
        assert_eq!(code_number(&sel, "HIGHESTMODSEQ"), Some(77));
        assert_eq!(code_number(&sel, "UIDNEXT"), None);
        assert_eq!(
            appenduid("OK [APPENDUID 38505 3955] done"),
            Some((38505, 3955))
        );
        assert_eq!(appenduid("OK done"), None);
        let f = fetch("* 3 FETCH (UID 5 MODSEQ (12) FLAGS (\\Seen $k1) BODY[HEADER.FIELDS (MESSAGE-ID)] {27}\r\nMessage-ID: <a-1@x>\r\n\r\n)").unwrap();
        assert_eq!(f.uid, 5);
        assert_eq!(f.modseq, Some(12));
        assert_eq!(f.flags, vec!["\\Seen", "$k1"]);
        assert_eq!(f.msgid.as_deref(), Some("a-1@x"));
        let g = fetch("* 1 FETCH (FLAGS () UID 9 MODSEQ (3))").unwrap();
        assert_eq!((g.uid, g.modseq, g.msgid), (9, Some(3), None));
        assert!(fetch("* 1 FETCH (FLAGS ())").is_none());
        assert!(fetch("* 1 EXISTS").is_none());
        assert_eq!(
            vanished("* VANISHED (EARLIER) 1:3,5", 100),
            Some(vec![1, 2, 3, 5])
        );
        assert_eq!(vanished("* VANISHED 7", 100), Some(vec![7]));
        assert_eq!(
            vanished("* VANISHED 1:4294967295", 3).map(|v| v.len()),
            Some(3)
        );
        assert_eq!(vanished("* VANISHED x", 3), None);
        assert_eq!(
            list_name("* LIST (\\HasNoChildren) \"/\" \"Archive\"").as_deref(),
            Some("Archive")
        );
        assert_eq!(list_name("* LIST () \"/\" INBOX").as_deref(), Some("INBOX"));
    }
}
