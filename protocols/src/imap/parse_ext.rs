//! The hand-written grammars of the extensions imap-codec lacks, used by [`super::parse`]:
//! NOTIFY (RFC 5465), APPEND with CATENATE (RFC 4469), FETCH's EMAILID/THREADID (RFC 8474)
//! and PREVIEW (RFC 8970), STATUS MAILBOXID, and PARTIAL's range (RFC 9394). Where the rest
//! of a command is standard, the extension's part is cut out and imap-codec parses the rest.

use super::lexer::{Tok, Token};
use super::parse::{bad, codec_parse, Kind, ParseError};
use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::datetime::DateTime;
use imap_codec::imap_types::flag::Flag;

/// NOTIFY SET: whether initial STATUS responses are wanted, and the groups in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifySpec {
    pub status: bool,
    pub groups: Vec<NotifyGroup>,
}

/// One `(filter events)` of NOTIFY SET; `events` upper-cased, empty for NONE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifyGroup {
    pub filter: NotifyFilter,
    pub events: Vec<String>,
}

/// Which mailboxes a NOTIFY group is about; names as the client sent them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotifyFilter {
    Selected,
    SelectedDelayed,
    Personal,
    Inboxes,
    Subscribed,
    Subtree(Vec<Vec<u8>>),
    Mailboxes(Vec<Vec<u8>>),
}

/// The events NOTIFY knows (RFC 5465 5, and METADATA's two).
const NOTIFY_EVENTS: &[&str] = &[
    "MESSAGENEW",
    "MESSAGEEXPUNGE",
    "FLAGCHANGE",
    "ANNOTATIONCHANGE",
    "MAILBOXNAME",
    "SUBSCRIPTIONCHANGE",
    "MAILBOXMETADATACHANGE",
    "SERVERMETADATACHANGE",
];

/// `NOTIFY NONE` / `NOTIFY SET [STATUS] (filter events) ...`; None when not well-formed.
pub(super) fn parse_notify(toks: &[Token]) -> Option<Option<NotifySpec>> {
    let mut i = 2;
    if toks.get(i)?.atom_eq("NONE") {
        return (toks.len() == 3).then_some(None);
    }
    if !toks.get(i)?.atom_eq("SET") {
        return None;
    }
    i += 1;
    let status = toks.get(i).is_some_and(|t| t.atom_eq("STATUS"));
    if status {
        i += 1;
    }
    let mut groups = Vec::new();
    while i < toks.len() {
        if toks.get(i)?.tok != Tok::Open {
            return None;
        }
        i += 1;
        let word = match &toks.get(i)?.tok {
            Tok::Atom(a) => a.to_ascii_uppercase(),
            _ => return None,
        };
        i += 1;
        let mut names = || -> Option<Vec<Vec<u8>>> {
            let one = |t: &Token| match &t.tok {
                Tok::Atom(a) => Some(a.as_bytes().to_vec()),
                Tok::Str(s) => Some(s.clone()),
                _ => None,
            };
            if toks.get(i)?.tok == Tok::Open {
                i += 1;
                let mut v = Vec::new();
                while toks.get(i)?.tok != Tok::Close {
                    v.push(one(toks.get(i)?)?);
                    i += 1;
                }
                i += 1;
                (!v.is_empty()).then_some(v)
            } else {
                let v = one(toks.get(i)?)?;
                i += 1;
                Some(vec![v])
            }
        };
        let filter = match word.as_str() {
            "SELECTED" => NotifyFilter::Selected,
            "SELECTED-DELAYED" => NotifyFilter::SelectedDelayed,
            "PERSONAL" => NotifyFilter::Personal,
            "INBOXES" => NotifyFilter::Inboxes,
            "SUBSCRIBED" => NotifyFilter::Subscribed,
            "SUBTREE" => NotifyFilter::Subtree(names()?),
            "MAILBOXES" => NotifyFilter::Mailboxes(names()?),
            _ => return None,
        };
        let mut events = Vec::new();
        if toks.get(i)?.atom_eq("NONE") {
            i += 1;
        } else {
            if toks.get(i)?.tok != Tok::Open {
                return None;
            }
            i += 1;
            while toks.get(i)?.tok != Tok::Close {
                let e = match &toks.get(i)?.tok {
                    Tok::Atom(a) => a.to_ascii_uppercase(),
                    _ => return None,
                };
                if !NOTIFY_EVENTS.contains(&e.as_str()) {
                    return None;
                }
                i += 1;
                // MessageNew's fetch attributes: accepted; new messages are told as EXISTS.
                if e == "MESSAGENEW" && toks.get(i)?.tok == Tok::Open {
                    let mut depth = 0;
                    loop {
                        match toks.get(i)?.tok {
                            Tok::Open => depth += 1,
                            Tok::Close => depth -= 1,
                            _ => {}
                        }
                        i += 1;
                        if depth == 0 {
                            break;
                        }
                    }
                }
                events.push(e);
            }
            i += 1;
            if events.is_empty() {
                return None;
            }
        }
        if toks.get(i)?.tok != Tok::Close {
            return None;
        }
        i += 1;
        groups.push(NotifyGroup { filter, events });
    }
    (!groups.is_empty()).then_some(Some(NotifySpec { status, groups }))
}

/// A FETCH item imap-codec does not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtraItem {
    EmailId,
    ThreadId,
    Preview,
    /// SAVEDATE (RFC 8514).
    SaveDate,
}

/// One message of a CATENATE APPEND: its flags, date and parts in order.
#[derive(Debug)]
pub struct CatMessage {
    pub flags: Vec<Flag<'static>>,
    pub date: Option<DateTime>,
    pub parts: Vec<CatPart>,
}

/// A CATENATE part: text given, or an IMAP URL naming (part of) a stored message.
#[derive(Debug, PartialEq, Eq)]
pub enum CatPart {
    Text(Vec<u8>),
    Url(String),
}

/// `msg` without the byte ranges `cut` (sorted, disjoint), each with one space beside it.
fn without(msg: &[u8], cut: &[(usize, usize)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len());
    let mut last = 0;
    for &(a, b) in cut {
        let (mut a, mut b) = (a.max(last), b);
        if msg.get(b) == Some(&b' ') {
            b += 1;
        } else if a > last && msg.get(a - 1) == Some(&b' ') {
            a -= 1;
        }
        out.extend_from_slice(msg.get(last..a).unwrap_or_default());
        last = b;
    }
    out.extend_from_slice(msg.get(last..).unwrap_or_default());
    out
}

/// `FETCH set items` whose items name EMAILID, THREADID, SAVEDATE or PREVIEW (with PREVIEW's
/// `(LAZY)`); Ok(None) when they name none.
pub(super) fn fetch_ext(msg: &[u8], toks: &[Token], at: usize) -> Result<Option<Kind>, ParseError> {
    let extra_of = |t: &Token| match &t.tok {
        Tok::Atom(a) if a.eq_ignore_ascii_case("EMAILID") => Some(ExtraItem::EmailId),
        Tok::Atom(a) if a.eq_ignore_ascii_case("THREADID") => Some(ExtraItem::ThreadId),
        Tok::Atom(a) if a.eq_ignore_ascii_case("PREVIEW") => Some(ExtraItem::Preview),
        Tok::Atom(a) if a.eq_ignore_ascii_case("SAVEDATE") => Some(ExtraItem::SaveDate),
        _ => None,
    };
    let first = at + 2;
    let mut extra = Vec::new();
    let mut cut = Vec::new();
    let (mut i, list) = match toks.get(first).map(|t| &t.tok) {
        Some(Tok::Open) => (first + 1, true),
        Some(Tok::Atom(_)) => (first, false),
        _ => return Ok(None),
    };
    let mut depth = 0usize;
    let mut items_left = 0usize;
    while let Some(t) = toks.get(i) {
        match &t.tok {
            Tok::Open => depth += 1,
            Tok::Close if depth == 0 => break,
            Tok::Close => depth -= 1,
            _ if depth == 0 => {
                if let Some(x) = extra_of(t) {
                    let mut end = t.end;
                    // PREVIEW (LAZY): the modifier goes with it.
                    if x == ExtraItem::Preview
                        && toks.get(i + 1).map(|t| &t.tok) == Some(&Tok::Open)
                        && toks.get(i + 2).is_some_and(|t| t.atom_eq("LAZY"))
                        && toks.get(i + 3).map(|t| &t.tok) == Some(&Tok::Close)
                    {
                        end = toks.get(i + 3).map_or(end, |c| c.end);
                        i += 3;
                    }
                    extra.push(x);
                    cut.push((t.start, end));
                } else {
                    items_left += 1;
                }
            }
            _ => {}
        }
        i += 1;
        if !list && depth == 0 {
            break;
        }
    }
    if extra.is_empty() {
        return Ok(None);
    }
    let hide_uid = items_left == 0;
    let rewritten = if hide_uid {
        // Nothing else asked: UID stands in for the whole item list.
        let (Some(a), end) = (
            toks.get(first),
            if list { toks.get(i) } else { toks.get(first) },
        ) else {
            return Ok(None);
        };
        let end = end.map_or(a.end, |t| t.end);
        let mut m = msg.get(..a.start).unwrap_or_default().to_vec();
        m.extend_from_slice(b"UID");
        m.extend_from_slice(msg.get(end..).unwrap_or_default());
        m
    } else {
        without(msg, &cut)
    };
    let body = codec_parse(&rewritten)?;
    Ok(Some(Kind::FetchExt {
        body,
        extra,
        hide_uid,
    }))
}

/// `STATUS mailbox (items)` with MAILBOXID among the items; Ok(None) without it.
pub(super) fn status_mailboxid(msg: &[u8], toks: &[Token]) -> Result<Option<Kind>, ParseError> {
    if toks.get(3).map(|t| &t.tok) != Some(&Tok::Open) {
        return Ok(None);
    }
    let items: Vec<&Token> = toks
        .get(4..)
        .unwrap_or_default()
        .iter()
        .take_while(|t| t.tok != Tok::Close)
        .collect();
    let Some(m) = items.iter().find(|t| t.atom_eq("MAILBOXID")) else {
        return Ok(None);
    };
    let only = items.len() == 1;
    let rewritten = if only {
        let mut v = msg.get(..m.start).unwrap_or_default().to_vec();
        v.extend_from_slice(b"MESSAGES");
        v.extend_from_slice(msg.get(m.end..).unwrap_or_default());
        v
    } else {
        without(msg, &[(m.start, m.end)])
    };
    let body = codec_parse(&rewritten)?;
    Ok(Some(Kind::StatusMailboxId { body, only }))
}

/// A PARTIAL range (RFC 9394): `a:b` of non-zero 32-bit numbers of one sign, `*` not
/// allowed; returned with the end nearer the result's start (or end, when negative) first.
pub fn partial_range(r: &str) -> Option<(i64, i64)> {
    let (a, b) = r.split_once(':')?;
    let num = |x: &str| -> Option<i64> {
        let digits = x.strip_prefix('-').unwrap_or(x);
        if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        x.parse::<i64>()
            .ok()
            .filter(|n| *n != 0 && n.unsigned_abs() <= u64::from(u32::MAX))
    };
    let (a, b) = (num(a)?, num(b)?);
    if (a < 0) != (b < 0) {
        return None;
    }
    Some(if a.abs() <= b.abs() { (a, b) } else { (b, a) })
}

/// APPEND with CATENATE (RFC 4469): per message `[flags] [date]` then a literal or
/// `CATENATE (TEXT literal / URL astring ...)`. Flags and date are read by imap-codec from a
/// one-message APPEND made of them.
pub(super) fn catenate(msg: &[u8], toks: &[Token]) -> Result<Kind, ParseError> {
    let invalid = || bad(msg, "Error in IMAP command APPEND: Invalid arguments.");
    let mb = toks.get(2).ok_or_else(invalid)?;
    let mailbox_src = msg.get(mb.start..mb.end).ok_or_else(invalid)?;
    let is_literal = |t: &Token| {
        matches!(t.tok, Tok::Str(_)) && msg.get(t.start).is_some_and(|b| b"{~".contains(b))
    };
    let mut messages = Vec::new();
    let mut mailbox = None;
    let mut i = 3;
    while let Some(first) = toks.get(i) {
        if first.tok == Tok::Open {
            i += 1;
            while toks.get(i).is_some_and(|t| matches!(t.tok, Tok::Atom(_))) {
                i += 1;
            }
            if toks.get(i).map(|t| &t.tok) != Some(&Tok::Close) {
                return Err(invalid());
            }
            i += 1;
        }
        if toks
            .get(i)
            .is_some_and(|t| matches!(t.tok, Tok::Str(_)) && !is_literal(t))
        {
            i += 1;
        }
        let body_at = toks.get(i).ok_or_else(invalid)?;
        // Flags and date: imap-codec reads them from `APPEND mailbox <them> {1} x`.
        let mut one = b"x APPEND ".to_vec();
        one.extend_from_slice(mailbox_src);
        one.push(b' ');
        one.extend_from_slice(msg.get(first.start..body_at.start).unwrap_or_default());
        one.extend_from_slice(b"{1}\r\nx\r\n");
        let (flags, date) = match codec_parse(&one)? {
            CommandBody::Append {
                mailbox: m,
                flags,
                date,
                ..
            } => {
                mailbox.get_or_insert(m);
                (flags, date)
            }
            _ => return Err(invalid()),
        };
        let mut parts = Vec::new();
        if is_literal(body_at) {
            if let Tok::Str(b) = &body_at.tok {
                parts.push(CatPart::Text(b.clone()));
            }
            i += 1;
        } else if body_at.atom_eq("CATENATE") {
            i += 1;
            if toks.get(i).map(|t| &t.tok) != Some(&Tok::Open) {
                return Err(invalid());
            }
            i += 1;
            loop {
                if toks.get(i).map(|t| &t.tok) == Some(&Tok::Close) {
                    i += 1;
                    break;
                }
                let (Some(kind), Some(val)) = (toks.get(i), toks.get(i + 1)) else {
                    return Err(invalid());
                };
                match (&val.tok, kind.atom_eq("TEXT"), kind.atom_eq("URL")) {
                    (Tok::Str(b), true, _) if is_literal(val) => {
                        parts.push(CatPart::Text(b.clone()))
                    }
                    (Tok::Str(b), _, true) => parts.push(CatPart::Url(
                        String::from_utf8(b.clone()).map_err(|_| invalid())?,
                    )),
                    (Tok::Atom(a), _, true) => parts.push(CatPart::Url(a.clone())),
                    _ => return Err(invalid()),
                }
                i += 2;
            }
            if parts.is_empty() {
                return Err(invalid());
            }
        } else {
            return Err(invalid());
        }
        messages.push(CatMessage { flags, date, parts });
    }
    match mailbox {
        Some(mailbox) if !messages.is_empty() => Ok(Kind::Catenate { mailbox, messages }),
        _ => Err(invalid()),
    }
}
