//! doveadm's search query language (doveadm-search-query(7)), the part this store can answer:
//! `ALL`, `MAILBOX name` (`*` and `%` wildcards), `MAILBOX-GUID`, `GUID`, `UID set`, the flag
//! keys (`SEEN`, `UNSEEN`, `FLAGGED`, ...), `KEYWORD`/`UNKEYWORD`, `LARGER`/`SMALLER`,
//! `BEFORE`/`ON`/`SINCE` (and the `SAVED` forms: the internal date here) with a date
//! (`2024-02-01`, `1-Feb-2024`) or an interval (`30d`, `2w`, `12h`, `90mins`, `60secs`),
//! `SUBJECT`/`FROM`/`TO`/`CC`/`BCC`, `HEADER name value`, `BODY`, `TEXT`, `NOT`, `OR` and
//! parentheses; keys side by side must all match. Keys are case-insensitive.

use storage::{Flag, MailboxInfo, MessageMeta};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Key {
    All,
    Mailbox(String),
    MailboxGuid(String),
    Guid(String),
    Uid(Vec<(u32, u32)>),
    /// A flag that must be set (true) or unset (false).
    Flag(Flag, bool),
    Larger(u64),
    Smaller(u64),
    /// Internal date bounds, seconds since the epoch: [from, to).
    Date {
        from: i64,
        to: i64,
    },
    /// An envelope header (subject, from, to, cc, bcc) containing a string.
    Header(String, String),
    Body(String),
    Text(String),
    Not(Box<Key>),
    Or(Box<Key>, Box<Key>),
    And(Vec<Key>),
}

/// A parsed query; `now` is the clock for intervals (`30d`).
pub fn parse(args: &[String], now: i64) -> Result<Key, String> {
    if args.is_empty() {
        return Err("empty search query (use `all` for every message)".into());
    }
    let mut p = Parser {
        args,
        pos: 0,
        now,
        depth: 0,
    };
    let key = p.sequence(false)?;
    if p.pos < args.len() {
        return Err(format!("unexpected {:?} in the search query", args[p.pos]));
    }
    Ok(key)
}

/// Nesting deeper than this is refused rather than risking the stack.
const MAX_DEPTH: usize = 64;

struct Parser<'a> {
    args: &'a [String],
    pos: usize,
    now: i64,
    depth: usize,
}

impl Parser<'_> {
    fn next(&mut self, what: &str) -> Result<String, String> {
        let v = self
            .args
            .get(self.pos)
            .cloned()
            .ok_or_else(|| format!("{what} is missing at the end of the search query"))?;
        self.pos += 1;
        Ok(v)
    }

    /// Keys until the end or a closing parenthesis.
    fn sequence(&mut self, inner: bool) -> Result<Key, String> {
        let mut keys = Vec::new();
        while let Some(a) = self.args.get(self.pos) {
            if a == ")" {
                if !inner {
                    return Err("unbalanced ')' in the search query".into());
                }
                break;
            }
            keys.push(self.key()?);
        }
        Ok(match keys.len() {
            1 => keys.pop().unwrap_or(Key::All),
            _ => Key::And(keys),
        })
    }

    fn key(&mut self) -> Result<Key, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err("search query nested too deeply".into());
        }
        let k = self.key_inner();
        self.depth -= 1;
        k
    }

    fn key_inner(&mut self) -> Result<Key, String> {
        let word = self.next("a search key")?;
        // A parenthesised group may come as one argument: "(seen flagged)".
        if word == "(" {
            let k = self.sequence(true)?;
            match self.next("')'")?.as_str() {
                ")" => return Ok(k),
                other => return Err(format!("expected ')' in the search query, not {other:?}")),
            }
        }
        let flag = |f: Flag, on: bool| Ok(Key::Flag(f, on));
        match word.to_ascii_lowercase().as_str() {
            "all" => Ok(Key::All),
            "mailbox" => Ok(Key::Mailbox(self.next("MAILBOX's name")?)),
            "mailbox-guid" => Ok(Key::MailboxGuid(
                self.next("MAILBOX-GUID's guid")?.to_lowercase(),
            )),
            "guid" => Ok(Key::Guid(self.next("GUID's guid")?.to_lowercase())),
            "uid" => Ok(Key::Uid(uid_set(&self.next("UID's set")?)?)),
            "seen" => flag(Flag::Seen, true),
            "unseen" => flag(Flag::Seen, false),
            "answered" => flag(Flag::Answered, true),
            "unanswered" => flag(Flag::Answered, false),
            "flagged" => flag(Flag::Flagged, true),
            "unflagged" => flag(Flag::Flagged, false),
            "deleted" => flag(Flag::Deleted, true),
            "undeleted" => flag(Flag::Deleted, false),
            "draft" => flag(Flag::Draft, true),
            "undraft" => flag(Flag::Draft, false),
            "keyword" => Ok(Key::Flag(
                Flag::Keyword(self.next("KEYWORD's keyword")?),
                true,
            )),
            "unkeyword" => Ok(Key::Flag(
                Flag::Keyword(self.next("UNKEYWORD's keyword")?),
                false,
            )),
            "larger" => Ok(Key::Larger(size(&self.next("LARGER's size")?)?)),
            "smaller" => Ok(Key::Smaller(size(&self.next("SMALLER's size")?)?)),
            w @ ("before" | "on" | "since" | "savedbefore" | "savedon" | "savedsince") => {
                let (day, exact) = date(&self.next("the date")?, self.now)?;
                let end = if exact {
                    day
                } else {
                    day.saturating_add(86_400)
                };
                Ok(match w.trim_start_matches("saved") {
                    "before" => Key::Date {
                        from: i64::MIN,
                        to: day,
                    },
                    "on" => Key::Date { from: day, to: end },
                    _ => Key::Date {
                        from: day,
                        to: i64::MAX,
                    },
                })
            }
            h @ ("subject" | "from" | "to" | "cc" | "bcc") => {
                Ok(Key::Header(h.to_string(), self.next("the string")?))
            }
            "header" => {
                let name = self.next("HEADER's field name")?.to_ascii_lowercase();
                Ok(Key::Header(name, self.next("HEADER's string")?))
            }
            "body" => Ok(Key::Body(self.next("BODY's string")?)),
            "text" => Ok(Key::Text(self.next("TEXT's string")?)),
            "not" => Ok(Key::Not(Box::new(self.key()?))),
            "or" => {
                let a = self.key()?;
                let b = self.key()?;
                Ok(Key::Or(Box::new(a), Box::new(b)))
            }
            other => {
                if let Some(group) = word.strip_prefix('(').and_then(|w| w.strip_suffix(')')) {
                    // "(seen flagged)" as one shell argument.
                    let inner: Vec<String> = group.split_whitespace().map(str::to_string).collect();
                    let mut p = Parser {
                        args: &inner,
                        pos: 0,
                        now: self.now,
                        depth: self.depth,
                    };
                    return p.sequence(false);
                }
                Err(format!(
                    "unknown search key {other:?} (see `man doveadm-search-query`; supported: all \
                     mailbox mailbox-guid guid uid seen unseen answered flagged deleted draft \
                     keyword larger smaller before on since subject from to cc bcc header body \
                     text not or)"
                ))
            }
        }
    }
}

fn uid_set(s: &str) -> Result<Vec<(u32, u32)>, String> {
    let bad = || format!("{s:?} is not a UID set (1,3:5,10:*)");
    let num = |t: &str| -> Result<u32, String> {
        if t == "*" {
            Ok(u32::MAX)
        } else {
            t.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(bad)
        }
    };
    s.split(',')
        .map(|part| match part.split_once(':') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                Ok((a.min(b), a.max(b)))
            }
            None => num(part).map(|n| (n, n)),
        })
        .collect()
}

fn size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => {
            let m = match t[i..].to_ascii_lowercase().as_str() {
                "b" => 1,
                "k" | "kb" => 1 << 10,
                "m" | "mb" => 1 << 20,
                "g" | "gb" => 1 << 30,
                _ => return Err(format!("{s:?} is not a size (1000, 10k, 5M)")),
            };
            (&t[..i], m)
        }
        None => (t, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("{s:?} is not a size (1000, 10k, 5M)"))
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A day's start (UTC) and false, or an exact moment and true (an interval back from now).
fn date(s: &str, now: i64) -> Result<(i64, bool), String> {
    let bad =
        || format!("{s:?} is not a date (2024-02-01, 1-Feb-2024) or an interval (30d, 2w, 12h)");
    let t = s.trim();
    // An interval: digits then a unit.
    if let Some(i) = t.find(|c: char| !c.is_ascii_digit()).filter(|i| *i > 0) {
        let unit = match t[i..].to_ascii_lowercase().as_str() {
            "s" | "sec" | "secs" => Some(1),
            "m" | "min" | "mins" => Some(60),
            "h" | "hour" | "hours" => Some(3600),
            "d" | "day" | "days" => Some(86_400),
            "w" | "week" | "weeks" => Some(7 * 86_400),
            _ => None,
        };
        if let Some(unit) = unit {
            let n: i64 = t[..i].parse().map_err(|_| bad())?;
            return Ok((now.saturating_sub(n.saturating_mul(unit)), true));
        }
    }
    let parts: Vec<&str> = t.split('-').collect();
    let (y, m, d) = match parts.as_slice() {
        [y, m, d] if y.len() == 4 => (
            y.parse::<i64>().map_err(|_| bad())?,
            m.parse::<i64>().map_err(|_| bad())?,
            d.parse::<i64>().map_err(|_| bad())?,
        ),
        [d, mon, y] => {
            const MONTHS: [&str; 12] = [
                "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
            ];
            let m = MONTHS
                .iter()
                .position(|x| x.eq_ignore_ascii_case(mon))
                .ok_or_else(bad)? as i64
                + 1;
            (
                y.parse::<i64>().map_err(|_| bad())?,
                m,
                d.parse::<i64>().map_err(|_| bad())?,
            )
        }
        _ => return Err(bad()),
    };
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || !(1..=9999).contains(&y) {
        return Err(bad());
    }
    Ok((days_from_civil(y, m, d) * 86_400, false))
}

/// Matches IMAP LIST-style wildcards: `*` anything, `%` anything but the separator `/`.
pub fn wildcard(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some(('%', rest)) => (0..=n.len())
                .take_while(|i| *i == 0 || n[*i - 1] != '/')
                .any(|i| go(rest, &n[i..])),
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // INBOX is case-insensitive, as in IMAP.
    if pattern.eq_ignore_ascii_case("inbox") {
        return name.eq_ignore_ascii_case("inbox");
    }
    go(&p, &n)
}

/// What a key may need beyond the index: the message's header and body, read on demand.
pub trait Content {
    /// The raw header block, or None when it cannot be read.
    fn header(&mut self) -> Option<&[u8]>;
    /// The whole raw message.
    fn raw(&mut self) -> Option<&[u8]>;
}

fn contains_ci(hay: &[u8], needle: &str) -> bool {
    let n = needle.as_bytes();
    if n.is_empty() {
        return true;
    }
    hay.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

/// Header field values (unfolded) of `name` in a raw header block.
pub fn header_values(header: &[u8], name: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(header);
    let mut out: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    for line in text.split('\n') {
        let line = line.trim_end_matches('\r');
        if line.starts_with([' ', '\t']) {
            if let Some(c) = current.as_mut() {
                c.push(' ');
                c.push_str(line.trim());
            }
            continue;
        }
        if let Some(c) = current.take() {
            out.push(c);
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.trim().eq_ignore_ascii_case(name) {
                current = Some(v.trim().to_string());
            }
        }
    }
    if let Some(c) = current {
        out.push(c);
    }
    out
}

/// Whether the body (after the header) contains `s`.
fn body_of(raw: &[u8]) -> &[u8] {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| i + 2));
    split.and_then(|i| raw.get(i..)).unwrap_or_default()
}

pub fn matches(
    key: &Key,
    mailbox: &MailboxInfo,
    m: &MessageMeta,
    content: &mut dyn Content,
) -> bool {
    match key {
        Key::All => true,
        Key::Mailbox(p) => wildcard(p, &mailbox.name),
        Key::MailboxGuid(g) => mailbox.id.to_hex() == *g,
        Key::Guid(g) => m.guid.to_hex() == *g,
        Key::Uid(set) => set.iter().any(|(a, b)| (*a..=*b).contains(&m.uid)),
        Key::Flag(f, on) => m.flags.contains(f) == *on,
        Key::Larger(n) => m.size > *n,
        Key::Smaller(n) => m.size < *n,
        Key::Date { from, to } => (*from..*to).contains(&m.internal_date),
        Key::Header(name, s) => content.header().is_some_and(|h| {
            header_values(h, name)
                .iter()
                .any(|v| contains_ci(v.as_bytes(), s))
        }),
        Key::Body(s) => content.raw().is_some_and(|r| contains_ci(body_of(r), s)),
        Key::Text(s) => content.raw().is_some_and(|r| contains_ci(r, s)),
        Key::Not(k) => !matches(k, mailbox, m, content),
        Key::Or(a, b) => matches(a, mailbox, m, content) || matches(b, mailbox, m, content),
        Key::And(keys) => keys.iter().all(|k| matches(k, mailbox, m, content)),
    }
}

/// Mailboxes the query names literally (no wildcard) and requires (`mailbox INBOX seen`): a
/// name that does not exist is the operator's typo, reported rather than matching nothing.
pub fn required_mailboxes(key: &Key) -> Vec<String> {
    match key {
        Key::Mailbox(p) if !p.contains(['*', '%']) => vec![p.clone()],
        Key::And(keys) => keys.iter().flat_map(required_mailboxes).collect(),
        _ => Vec::new(),
    }
}

/// Whether the query can match anything in `mailbox` at all (skips reading other mailboxes).
pub fn may_match_mailbox(key: &Key, mailbox: &MailboxInfo) -> bool {
    match key {
        Key::Mailbox(p) => wildcard(p, &mailbox.name),
        Key::MailboxGuid(g) => mailbox.id.to_hex() == *g,
        Key::And(keys) => keys.iter().all(|k| may_match_mailbox(k, mailbox)),
        Key::Or(a, b) => may_match_mailbox(a, mailbox) || may_match_mailbox(b, mailbox),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Result<Key, String> {
        let args: Vec<String> = s.split_whitespace().map(str::to_string).collect();
        parse(&args, 1_700_000_000)
    }

    #[test]
    fn parses_doveadm_queries() {
        assert_eq!(q("all").unwrap(), Key::All);
        assert_eq!(
            q("mailbox INBOX SEEN").unwrap(),
            Key::And(vec![
                Key::Mailbox("INBOX".into()),
                Key::Flag(Flag::Seen, true)
            ])
        );
        assert_eq!(
            q("uid 1,3:5,9:*").unwrap(),
            Key::Uid(vec![(1, 1), (3, 5), (9, u32::MAX)])
        );
        assert!(matches!(q("or seen flagged").unwrap(), Key::Or(..)));
        assert!(matches!(q("not ( seen flagged )").unwrap(), Key::Not(_)));
        assert_eq!(q("larger 10k").unwrap(), Key::Larger(10 * 1024));
        assert_eq!(
            q("since 2023-11-14").unwrap(),
            Key::Date {
                from: 1_699_920_000,
                to: i64::MAX
            }
        );
        assert_eq!(
            q("on 14-Nov-2023").unwrap(),
            Key::Date {
                from: 1_699_920_000,
                to: 1_699_920_000 + 86_400
            }
        );
        assert_eq!(
            q("savedsince 1d").unwrap(),
            Key::Date {
                from: 1_700_000_000 - 86_400,
                to: i64::MAX
            }
        );
        assert_eq!(
            q("header X-Spam yes").unwrap(),
            Key::Header("x-spam".into(), "yes".into())
        );
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert!(q("").unwrap_err().contains("empty"));
        assert!(q("frobnicate").unwrap_err().contains("unknown search key"));
        assert!(q("uid x").unwrap_err().contains("UID set"));
        assert!(q("uid 0").is_err());
        assert!(q("mailbox").unwrap_err().contains("missing"));
        assert!(q("since 2023-13-01").is_err());
        assert!(q("( seen").is_err());
        assert!(q("seen )").is_err());
        assert!(q("larger 5q").is_err());
    }

    #[test]
    fn hostile_input_never_panics() {
        let deep = "not ".repeat(10_000) + "all";
        assert!(q(&deep).is_err());
        let parens = "( ".repeat(10_000);
        assert!(q(&parens).is_err());
        for s in [
            "()",
            "(",
            ")",
            "uid :",
            "uid *:*",
            "on -",
            "on 1-x-2",
            "since 99999999999999999999d",
            "larger 99999999999999999999g",
            "(seen",
            "é",
        ] {
            let _ = q(s);
        }
        for n in 0..200u32 {
            let s: String = (0..n)
                .map(|i| {
                    ["(", ")", "or", "not", "all", "uid", "1"][(i as usize * 7 + n as usize) % 7]
                })
                .collect::<Vec<_>>()
                .join(" ");
            let _ = q(&s);
        }
    }

    #[test]
    fn literal_mailboxes_are_required() {
        assert_eq!(
            required_mailboxes(&q("mailbox Sent seen").unwrap()),
            vec!["Sent"]
        );
        assert!(required_mailboxes(&q("mailbox Arch* seen").unwrap()).is_empty());
        assert!(required_mailboxes(&q("or mailbox A mailbox B").unwrap()).is_empty());
    }

    #[test]
    fn wildcards() {
        assert!(wildcard("*", "a/b"));
        assert!(wildcard("%", "a"));
        assert!(!wildcard("%", "a/b"));
        assert!(wildcard("Arch*", "Archive/2023"));
        assert!(wildcard("inbox", "INBOX"));
        assert!(!wildcard("Sent", "Sent Items"));
    }

    #[test]
    fn header_values_unfold() {
        let h = b"Subject: hello\r\n  world\r\nFrom: a@b\r\nX-A: 1\r\nx-a: 2\r\n\r\n";
        assert_eq!(header_values(h, "subject"), vec!["hello world"]);
        assert_eq!(header_values(h, "X-A"), vec!["1", "2"]);
        assert!(contains_ci(b"Hello World", "WORLD"));
    }
}
