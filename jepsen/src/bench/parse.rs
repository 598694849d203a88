//! Reading servers' replies: small pure functions over one line (or one reply), lenient and
//! total: what cannot be read is None, never a panic. Tested on replies recorded from this
//! project's node and from Dovecot 2.3.

use crate::harness::imap_parse::number_after;
#[cfg(test)]
use crate::harness::imap_parse::{appenduid, code_number};

/// A tagged IMAP reply's status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Status {
    #[default]
    Ok,
    No,
    Bad,
}

/// One IMAP command's reply: untagged lines (literal bytes left out, a space in their place),
/// the tagged status and text, and how many bytes came over the wire.
#[derive(Debug, Default)]
pub struct ImapReply {
    pub untagged: Vec<String>,
    pub status: Status,
    pub text: String,
    pub bytes: u64,
}

/// `... {123}` or `... {123+}` at the end of a line: the literal's length.
pub fn literal_len(line: &[u8]) -> Option<u64> {
    let body = line.strip_suffix(b"}")?;
    let open = body.iter().rposition(|b| *b == b'{')?;
    let digits = body.get(open + 1..)?;
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// `TAG OK text` -> (Ok, "text"); None when the line is not `tag`'s reply.
pub fn tagged<'a>(line: &'a str, tag: &str) -> Option<(Status, &'a str)> {
    let rest = line.strip_prefix(tag)?.strip_prefix(' ')?;
    let (word, text) = rest.split_once(' ').unwrap_or((rest, ""));
    let status = match word.to_ascii_uppercase().as_str() {
        "OK" => Status::Ok,
        "NO" => Status::No,
        "BAD" => Status::Bad,
        _ => return None,
    };
    Some((status, text))
}

/// `* 5 EXISTS` -> (5, "EXISTS"); also EXPUNGE, RECENT, FETCH (the keyword upper-cased).
pub fn numbered(line: &str) -> Option<(u32, String)> {
    let mut w = line.strip_prefix("* ")?.splitn(3, ' ');
    let n = w.next()?.parse().ok()?;
    let kw = w.next()?.trim_end().to_ascii_uppercase();
    Some((n, kw))
}

/// How the message count moves with the untagged lines of one reply: `* N EXISTS` sets it,
/// each `* N EXPUNGE` takes one away.
pub fn track_exists(lines: &[String], mut exists: u32) -> u32 {
    for l in lines {
        match numbered(l) {
            Some((n, kw)) if kw == "EXISTS" => exists = n,
            Some((_, kw)) if kw == "EXPUNGE" => exists = exists.saturating_sub(1),
            _ => {}
        }
    }
    exists
}

/// `* 3 FETCH (UID 17 FLAGS (\Seen) ...)` -> 17.
pub fn fetch_uid(line: &str) -> Option<u32> {
    let (_, kw) = numbered(line)?;
    if !kw.starts_with("FETCH") {
        return None;
    }
    let items = line.get(line.find('(')? + 1..)?;
    u32::try_from(number_after(items, "UID")?).ok()
}

/// `* SEARCH 1 2 3` or `* SORT 4 5` (with `keyword`) -> the numbers; `* SEARCH` -> [].
pub fn numbers_after(line: &str, keyword: &str) -> Option<Vec<u32>> {
    let rest = line.strip_prefix("* ")?;
    let (kw, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    if !kw.eq_ignore_ascii_case(keyword) {
        return None;
    }
    // A trailing "(MODSEQ n)" (CONDSTORE) ends the list.
    let list = rest.split('(').next().unwrap_or("");
    list.split_ascii_whitespace()
        .map(|n| n.parse().ok())
        .collect()
}

/// A POP3 status line: `+OK ...` -> true, `-ERR ...` -> false.
pub fn pop3_ok(line: &str) -> Option<bool> {
    if line.starts_with("+OK") {
        Some(true)
    } else if line.starts_with("-ERR") {
        Some(false)
    } else {
        None
    }
}

/// `+OK 12 34567` (STAT) -> (12, 34567).
pub fn pop3_stat(line: &str) -> Option<(u32, u64)> {
    let mut w = line.strip_prefix("+OK ")?.split_ascii_whitespace();
    Some((w.next()?.parse().ok()?, w.next()?.parse().ok()?))
}

/// A line of a POP3 multi-line reply: None at its end (`.`), else the line's bytes with the
/// stuffed dot removed.
pub fn pop3_data(line: &[u8]) -> Option<&[u8]> {
    if line == b"." {
        return None;
    }
    Some(line.strip_prefix(b".").unwrap_or(line))
}

/// An SMTP/LMTP reply line: `250-...` -> (250, more lines follow), `250 ...` -> (250, false).
pub fn smtp_line(line: &str) -> Option<(u16, bool)> {
    let code = line.get(..3)?;
    if !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let more = match line.as_bytes().get(3) {
        Some(b'-') => true,
        Some(b' ') | None => false,
        _ => return None,
    };
    Some((code.parse().ok()?, more))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals() {
        assert_eq!(literal_len(b"* 1 FETCH (BODY[] {12}"), Some(12));
        assert_eq!(literal_len(b"a APPEND x {3+}"), Some(3));
        assert_eq!(literal_len(b"* OK {x}"), None);
        assert_eq!(literal_len(b"* OK {}"), None);
        assert_eq!(literal_len(b"{99999999999999999999}"), None);
        assert_eq!(literal_len(b"plain"), None);
    }

    #[test]
    fn tagged_replies() {
        assert_eq!(
            tagged(
                "a1 OK [READ-WRITE] Select completed (0.001 + 0.000 secs).",
                "a1"
            ),
            Some((
                Status::Ok,
                "[READ-WRITE] Select completed (0.001 + 0.000 secs)."
            ))
        );
        assert_eq!(
            tagged("a1 NO Mailbox doesn't exist", "a1").map(|t| t.0),
            Some(Status::No)
        );
        assert_eq!(
            tagged("a1 BAD Error in IMAP command", "a1").map(|t| t.0),
            Some(Status::Bad)
        );
        assert_eq!(tagged("a10 OK x", "a1"), None);
        assert_eq!(tagged("* OK x", "a1"), None);
        assert_eq!(tagged("a1 OK", "a1"), Some((Status::Ok, "")));
    }

    #[test]
    fn counts_follow_exists_and_expunge() {
        let lines: Vec<String> = ["* 3 EXPUNGE", "* 10 EXISTS", "* 2 EXPUNGE", "* 0 RECENT"]
            .map(String::from)
            .to_vec();
        assert_eq!(track_exists(&lines, 7), 9);
        assert_eq!(track_exists(&["* 1 EXPUNGE".to_string()], 0), 0);
        assert_eq!(numbered("* 5 FETCH (UID 1)"), Some((5, "FETCH".into())));
        assert_eq!(numbered("* OK [UIDNEXT 4]"), None);
    }

    #[test]
    fn fetch_items() {
        // Dovecot 2.3.19 (literal bytes replaced by a space, as Conn::imap_reply does).
        let d = "* 1 FETCH (UID 1 RFC822.SIZE 3305 FLAGS (\\Recent) BODY[HEADER.FIELDS (FROM TO SUBJECT DATE MESSAGE-ID)]  )";
        assert_eq!(fetch_uid(d), Some(1));
        // This project's node.
        let n = "* 4 FETCH (FLAGS (\\Seen $Work) UID 22 RFC822.SIZE 1234)";
        assert_eq!(fetch_uid(n), Some(22));
        // A UID inside a header value is not the UID item.
        assert_eq!(fetch_uid("* 1 FETCH (FLAGS (XUID 5))"), None);
        assert_eq!(fetch_uid("* 1 EXISTS"), None);
        assert_eq!(fetch_uid("* 1 FETCH (UID x)"), None);
    }

    #[test]
    fn search_and_sort() {
        assert_eq!(
            numbers_after("* SEARCH 1 2 30", "SEARCH"),
            Some(vec![1, 2, 30])
        );
        assert_eq!(numbers_after("* SEARCH", "SEARCH"), Some(vec![]));
        assert_eq!(numbers_after("* SORT 9 3", "SORT"), Some(vec![9, 3]));
        assert_eq!(
            numbers_after("* SEARCH 4 5 (MODSEQ 17)", "SEARCH"),
            Some(vec![4, 5])
        );
        assert_eq!(numbers_after("* SORT 9 3", "SEARCH"), None);
        assert_eq!(numbers_after("* SEARCH 1 x", "SEARCH"), None);
    }

    #[test]
    fn pop3_replies() {
        assert_eq!(pop3_ok("+OK Logged in."), Some(true));
        assert_eq!(pop3_ok("-ERR [AUTH] Authentication failed."), Some(false));
        assert_eq!(pop3_ok("* OK"), None);
        assert_eq!(pop3_stat("+OK 12 34567"), Some((12, 34567)));
        assert_eq!(pop3_stat("+OK"), None);
        assert_eq!(pop3_data(b"."), None);
        assert_eq!(pop3_data(b"..x"), Some(&b".x"[..]));
        assert_eq!(pop3_data(b"text"), Some(&b"text"[..]));
    }

    #[test]
    fn smtp_lines() {
        assert_eq!(smtp_line("250-PIPELINING"), Some((250, true)));
        assert_eq!(
            smtp_line("250 2.0.0 <u1@example.org> Saved"),
            Some((250, false))
        );
        assert_eq!(smtp_line("354"), Some((354, false)));
        assert_eq!(smtp_line("25"), None);
        assert_eq!(smtp_line("abc def"), None);
        assert_eq!(smtp_line("250x"), None);
    }

    /// Replies recorded from both servers (2026-12-07, Dovecot 2.3.19.1 from Debian and this
    /// project's node, `jepsen bench` messages), as `Conn::imap_reply` hands them over
    /// (literal bytes replaced by a space).
    #[test]
    fn recorded_imap_replies() {
        let dovecot_select = [
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work)",
            "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work \\*)] Flags permitted.",
            "* 2001 EXISTS",
            "* 0 RECENT",
            "* OK [UNSEEN 2] First unseen.",
            "* OK [UIDVALIDITY 1796658808] UIDs valid",
            "* OK [UIDNEXT 2108] Predicted next UID",
        ]
        .map(String::from);
        assert_eq!(track_exists(&dovecot_select, 0), 2001);
        assert_eq!(code_number(&dovecot_select, "UIDNEXT"), Some(2108));
        let node_select = [
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)",
            "* 20 EXISTS",
            "* 20 RECENT",
            "* OK [UIDVALIDITY 1796658899] UIDs valid",
            "* OK [MAILBOXID (F6000f57704e38b2e59ef392953adc4c6)] Ok",
        ]
        .map(String::from);
        assert_eq!(track_exists(&node_select, 0), 20);
        assert_eq!(
            tagged(
                "a2 OK [READ-WRITE] Select completed (0.001 + 0.000 secs).",
                "a2"
            )
            .map(|t| t.0),
            Some(Status::Ok)
        );
        assert_eq!(
            tagged("a2 OK [READ-WRITE] Select completed.", "a2").map(|t| t.0),
            Some(Status::Ok)
        );
        // FETCH of list headers; Dovecot puts UID first, the node FLAGS or UID first.
        assert_eq!(
            fetch_uid("* 1 FETCH (UID 105 FLAGS (\\Seen) RFC822.SIZE 37366 BODY[HEADER.FIELDS (SUBJECT MESSAGE-ID)]  )"),
            Some(105)
        );
        assert_eq!(
            fetch_uid("* 1 FETCH (UID 1 FLAGS (\\Recent) RFC822.SIZE 24540 BODY[HEADER.FIELDS (SUBJECT MESSAGE-ID)]  )"),
            Some(1)
        );
        assert_eq!(
            fetch_uid("* 1 FETCH (UID 1 FLAGS (\\Seen $Work \\Recent))"),
            Some(1)
        );
        assert_eq!(
            numbers_after("* SEARCH 11 20", "SEARCH"),
            Some(vec![11, 20])
        );
        assert_eq!(
            numbers_after("* SORT 5 15 8 20 11 10", "SORT"),
            Some(vec![5, 15, 8, 20, 11, 10])
        );
        assert_eq!(
            appenduid("[APPENDUID 1796658808 2108] Append completed (0.206 + 0.501 + 0.205 secs)."),
            Some((1796658808, 2108))
        );
        assert_eq!(appenduid("Append completed."), None);
        assert_eq!(
            tagged(
                "a9 BAD Error in IMAP command BOGUS: Unknown command (0.001 + 0.000 secs).",
                "a9"
            )
            .map(|t| t.0),
            Some(Status::Bad)
        );
        assert_eq!(
            tagged("a9 BAD Error in IMAP command received by server.", "a9").map(|t| t.0),
            Some(Status::Bad)
        );
    }

    #[test]
    fn recorded_pop3_and_lmtp_replies() {
        // Dovecot, then the node.
        assert_eq!(pop3_ok("+OK Dovecot (Debian) ready."), Some(true));
        assert_eq!(pop3_ok("+OK POP3 ready."), Some(true));
        assert_eq!(pop3_stat("+OK 1 4015"), Some((1, 4015)));
        assert_eq!(pop3_stat("+OK 24 416011"), Some((24, 416011)));
        assert_eq!(pop3_stat("+OK 4015 octets"), None);
        assert_eq!(pop3_ok("-ERR There's no message 999."), Some(false));
        for l in [
            "220 vm Dovecot (Debian) ready.",
            "220 vm LMTP ready.",
            "250 PIPELINING",
            "250 SIZE 52428800",
            "354 OK",
            "250 2.0.0 <u3@example.org> 6H83JMfWFmvJaAAAg+zDdQ:R2 Saved",
            "250 2.0.0 <u3@example.org> kFUYrP3YmwFoL8Rs Saved",
        ] {
            assert_eq!(smtp_line(l).map(|x| x.1), Some(false), "{l}");
        }
        assert_eq!(smtp_line("250-ENHANCEDSTATUSCODES"), Some((250, true)));
        assert_eq!(
            smtp_line("550 5.1.1 <nobody@example.org> User doesn't exist: nobody@example.org"),
            Some((550, false))
        );
    }

    proptest::proptest! {
        #[test]
        fn no_parser_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let s = String::from_utf8_lossy(&bytes);
            let _ = literal_len(&bytes);
            let _ = tagged(&s, "a1");
            let _ = numbered(&s);
            let _ = fetch_uid(&s);
            let _ = numbers_after(&s, "SEARCH");
            let _ = pop3_stat(&s);
            let _ = pop3_data(&bytes);
            let _ = smtp_line(&s);
        }
    }
}
