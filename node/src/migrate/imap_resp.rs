//! An IMAP server's responses, as `node import imap://` reads them: a state machine over bytes
//! (no socket) that frames whole responses (a line, with its literals `{N}` taken whole),
//! then parsers for the ones the importer needs: tagged status, untagged OK/NO/BAD/BYE with
//! a response code, CAPABILITY, LIST/LSUB, FETCH (UID, FLAGS, INTERNALDATE, RFC822.SIZE,
//! BODY[]), EXISTS. A hostile server gets an error, never a panic: every length is bounded.
//! Self-contained (std only) so that the fuzz target can include it by path.

use std::fmt;

/// A line outside literals is never longer than this (a LIST or FETCH line with flags).
pub const MAX_LINE: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RespError {
    LineTooLong,
    LiteralTooLarge(u64),
    TooManyLiterals,
    Syntax(String),
}

impl fmt::Display for RespError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RespError::LineTooLong => write!(f, "a response line longer than {MAX_LINE} bytes"),
            RespError::LiteralTooLarge(n) => write!(f, "a literal of {n} bytes (over the limit)"),
            RespError::TooManyLiterals => write!(f, "too many literals in one response"),
            RespError::Syntax(s) => write!(f, "malformed response: {s}"),
        }
    }
}

impl std::error::Error for RespError {}

/// One whole response: its line text with the `{N}` markers left in place, and the literals
/// in order (the tokenizer takes the next one where it meets a marker at a line's end).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frame {
    pub line: Vec<u8>,
    pub literals: Vec<Vec<u8>>,
}

/// Frames responses out of the bytes fed to it.
#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    /// Where scanning for the line's end resumes.
    pos: usize,
    cur: Frame,
    /// Bytes of the literal being read, when in one.
    want: Option<usize>,
    max_literal: u64,
}

/// Literals per response: a FETCH has one or two, a LIST one for an odd name.
const MAX_LITERALS: usize = 64;

impl Framer {
    pub fn new(max_literal: u64) -> Framer {
        Framer {
            buf: Vec::new(),
            pos: 0,
            cur: Frame::default(),
            want: None,
            max_literal,
        }
    }

    /// Bytes read but not yet part of a returned response.
    pub fn buffered(&self) -> usize {
        self.buf.len() + self.cur.line.len()
    }

    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next whole response, or None until more bytes come.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, RespError> {
        loop {
            if let Some(n) = self.want {
                if self.buf.len() < n {
                    return Ok(None);
                }
                let rest = self.buf.split_off(n);
                let lit = std::mem::replace(&mut self.buf, rest);
                self.cur.literals.push(lit);
                self.want = None;
                self.pos = 0;
                continue;
            }
            let Some(nl) = self.buf.get(self.pos..).and_then(find_lf) else {
                self.pos = self.buf.len();
                if self.buf.len() + self.cur.line.len() > MAX_LINE {
                    return Err(RespError::LineTooLong);
                }
                return Ok(None);
            };
            let end = self.pos + nl;
            let rest = self.buf.split_off(end + 1);
            let mut line = std::mem::replace(&mut self.buf, rest);
            self.pos = 0;
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if self.cur.line.len() + line.len() > MAX_LINE {
                return Err(RespError::LineTooLong);
            }
            let lit = literal_marker(&line);
            self.cur.line.extend_from_slice(&line);
            match lit {
                Some(n) => {
                    if n > self.max_literal {
                        return Err(RespError::LiteralTooLarge(n));
                    }
                    if self.cur.literals.len() >= MAX_LITERALS {
                        return Err(RespError::TooManyLiterals);
                    }
                    self.want =
                        Some(usize::try_from(n).map_err(|_| RespError::LiteralTooLarge(n))?);
                }
                None => return Ok(Some(std::mem::take(&mut self.cur))),
            }
        }
    }
}

fn find_lf(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

/// `{123}` or `{123+}` at the end of a line: the literal's length.
fn literal_marker(line: &[u8]) -> Option<u64> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&c| c == b'{')?;
    let digits = inner.get(open + 1..)?;
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || digits.len() > 12 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// A token of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// An atom or number (`BODY[]` and `\Seen` are atoms here).
    Atom(Vec<u8>),
    /// A quoted string or a literal.
    Str(Vec<u8>),
    Nil,
    List(Vec<Value>),
}

impl Value {
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Atom(b) | Value::Str(b) => Some(b),
            _ => None,
        }
    }

    fn number(&self) -> Option<u64> {
        match self {
            Value::Atom(b) if !b.is_empty() && b.len() <= 20 => {
                std::str::from_utf8(b).ok()?.parse().ok()
            }
            _ => None,
        }
    }
}

/// Lists nest at most this deep (a FETCH needs two levels).
const MAX_DEPTH: usize = 16;

struct Lexer<'a> {
    line: &'a [u8],
    pos: usize,
    literals: std::slice::Iter<'a, Vec<u8>>,
}

impl<'a> Lexer<'a> {
    fn new(f: &'a Frame, pos: usize) -> Lexer<'a> {
        Lexer {
            line: &f.line,
            pos,
            literals: f.literals.iter(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.line.get(self.pos).copied()
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }

    fn err<T>(&self, what: &str) -> Result<T, RespError> {
        Err(RespError::Syntax(format!("{what} at byte {}", self.pos)))
    }

    /// All values up to the end of the line.
    fn values(&mut self) -> Result<Vec<Value>, RespError> {
        let mut out = Vec::new();
        loop {
            self.skip_spaces();
            if self.peek().is_none() {
                return Ok(out);
            }
            out.push(self.value(0)?);
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, RespError> {
        if depth > MAX_DEPTH {
            return self.err("lists nested too deep");
        }
        match self.peek() {
            None => self.err("a value missing"),
            Some(b'(') => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_spaces();
                    match self.peek() {
                        Some(b')') => {
                            self.pos += 1;
                            return Ok(Value::List(items));
                        }
                        None => return self.err("an unclosed list"),
                        Some(_) => items.push(self.value(depth + 1)?),
                    }
                }
            }
            Some(b'"') => {
                self.pos += 1;
                let mut s = Vec::new();
                loop {
                    match self.peek() {
                        None => return self.err("an unclosed quoted string"),
                        Some(b'"') => {
                            self.pos += 1;
                            return Ok(Value::Str(s));
                        }
                        Some(b'\\') => {
                            self.pos += 1;
                            match self.peek() {
                                Some(c) => s.push(c),
                                None => return self.err("an unclosed quoted string"),
                            }
                            self.pos += 1;
                        }
                        Some(c) => {
                            s.push(c);
                            self.pos += 1;
                        }
                    }
                }
            }
            Some(b'{') => {
                let rest = self.line.get(self.pos..).unwrap_or_default();
                let Some(close) = rest.iter().position(|&c| c == b'}') else {
                    return self.err("an unclosed literal marker");
                };
                // A literal's bytes follow the marker, which ends its line segment: the next
                // segment starts right after it in `line`.
                self.pos += close + 1;
                match self.literals.next() {
                    Some(l) => Ok(Value::Str(l.clone())),
                    None => self.err("a literal marker inside a line"),
                }
            }
            Some(_) => {
                let start = self.pos;
                let mut depth_br = 0usize;
                while let Some(c) = self.peek() {
                    match c {
                        b'[' => depth_br += 1,
                        b']' if depth_br > 0 => depth_br -= 1,
                        b' ' | b'(' | b')' if depth_br == 0 => break,
                        b'{' | b'"' if depth_br == 0 => break,
                        _ => {}
                    }
                    self.pos += 1;
                }
                let atom = self.line.get(start..self.pos).unwrap_or_default().to_vec();
                if atom.is_empty() {
                    return self.err("an unexpected character");
                }
                if atom.eq_ignore_ascii_case(b"NIL") {
                    return Ok(Value::Nil);
                }
                Ok(Value::Atom(atom))
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    No,
    Bad,
    Bye,
    Preauth,
}

impl Status {
    fn parse(word: &[u8]) -> Option<Status> {
        Some(match word.to_ascii_uppercase().as_slice() {
            b"OK" => Status::Ok,
            b"NO" => Status::No,
            b"BAD" => Status::Bad,
            b"BYE" => Status::Bye,
            b"PREAUTH" => Status::Preauth,
            _ => return None,
        })
    }
}

/// A status response's text: the response code (`[UIDVALIDITY 7]`, upper-cased word and the
/// rest) and the human text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusText {
    pub code: Option<(String, String)>,
    pub text: String,
}

fn status_text(rest: &[u8]) -> StatusText {
    let s = String::from_utf8_lossy(rest);
    let s = s.trim_start();
    if let Some(inner) = s.strip_prefix('[') {
        if let Some(close) = inner.find(']') {
            let code = inner.get(..close).unwrap_or_default();
            let (word, arg) = code.split_once(' ').unwrap_or((code, ""));
            return StatusText {
                code: Some((word.to_ascii_uppercase(), arg.to_string())),
                text: inner
                    .get(close + 1..)
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
            };
        }
    }
    StatusText {
        code: None,
        text: s.to_string(),
    }
}

/// A response, as far as the importer reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Tagged {
        tag: String,
        status: Status,
        text: StatusText,
    },
    /// `* OK|NO|BAD|BYE|PREAUTH ...`
    State {
        status: Status,
        text: StatusText,
    },
    Capability(Vec<String>),
    /// LIST or LSUB (`lsub` says which).
    List(ListItem),
    Fetch(FetchItem),
    Exists(u32),
    /// `+ ...`
    Continue(String),
    /// Any other untagged response (EXPUNGE, FLAGS, RECENT, STATUS, ...): not needed.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListItem {
    pub lsub: bool,
    pub attributes: Vec<String>,
    pub separator: Option<u8>,
    /// The name as sent (modified UTF-7 on a server without UTF8=ACCEPT).
    pub name: Vec<u8>,
}

impl ListItem {
    pub fn has(&self, attr: &str) -> bool {
        self.attributes.iter().any(|a| a.eq_ignore_ascii_case(attr))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FetchItem {
    pub seq: u32,
    pub uid: Option<u32>,
    pub flags: Option<Vec<String>>,
    /// Seconds since the epoch and the UTC offset in minutes.
    pub internal_date: Option<(i64, i32)>,
    pub size: Option<u64>,
    pub body: Option<Vec<u8>>,
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Parses a framed response.
pub fn parse(f: &Frame) -> Result<Response, RespError> {
    let line = f.line.as_slice();
    if let Some(rest) = line.strip_prefix(b"+") {
        return Ok(Response::Continue(text(rest).trim().to_string()));
    }
    let (tag, rest) = split_word(line);
    let (word, rest2) = split_word(rest);
    if tag != b"*" {
        if tag.is_empty() {
            return Err(RespError::Syntax("an empty line".into()));
        }
        let Some(status) = Status::parse(word) else {
            return Err(RespError::Syntax(format!(
                "a tagged response that is not OK/NO/BAD: {}",
                text(line.get(..line.len().min(200)).unwrap_or_default())
            )));
        };
        return Ok(Response::Tagged {
            tag: text(tag),
            status,
            text: status_text(rest2),
        });
    }
    if let Some(status) = Status::parse(word) {
        return Ok(Response::State {
            status,
            text: status_text(rest2),
        });
    }
    let upper = word.to_ascii_uppercase();
    match upper.as_slice() {
        b"CAPABILITY" => Ok(Response::Capability(
            String::from_utf8_lossy(rest2)
                .split_whitespace()
                .map(|s| s.to_ascii_uppercase())
                .collect(),
        )),
        b"LIST" | b"LSUB" => {
            let start = line.len() - rest2.len();
            let vals = Lexer::new(f, start).values()?;
            list_item(&vals, upper.as_slice() == b"LSUB")
        }
        _ if !word.is_empty() && word.iter().all(u8::is_ascii_digit) => {
            let n: u32 = text(word)
                .parse()
                .map_err(|_| RespError::Syntax("a message number out of range".into()))?;
            let (what, rest3) = split_word(rest2);
            match what.to_ascii_uppercase().as_slice() {
                b"EXISTS" => Ok(Response::Exists(n)),
                b"FETCH" => {
                    let start = line.len() - rest3.len();
                    let vals = Lexer::new(f, start).values()?;
                    fetch_item(n, &vals)
                }
                _ => Ok(Response::Other),
            }
        }
        _ => Ok(Response::Other),
    }
}

fn split_word(b: &[u8]) -> (&[u8], &[u8]) {
    let b = b.strip_prefix(b" ").unwrap_or(b);
    match b.iter().position(|&c| c == b' ') {
        Some(i) => (
            b.get(..i).unwrap_or_default(),
            b.get(i + 1..).unwrap_or_default(),
        ),
        None => (b, &[]),
    }
}

fn list_item(vals: &[Value], lsub: bool) -> Result<Response, RespError> {
    let bad = || RespError::Syntax("a LIST response that is not (ATTRIBUTES) SEP NAME".into());
    let [Value::List(attrs), sep, name, ..] = vals else {
        return Err(bad());
    };
    let attributes = attrs
        .iter()
        .map(|a| a.bytes().map(text).ok_or_else(bad))
        .collect::<Result<Vec<_>, _>>()?;
    let separator = match sep {
        Value::Nil => None,
        Value::Str(s) if s.len() == 1 => s.first().copied(),
        _ => return Err(bad()),
    };
    let name = name.bytes().ok_or_else(bad)?.to_vec();
    Ok(Response::List(ListItem {
        lsub,
        attributes,
        separator,
        name,
    }))
}

fn fetch_item(seq: u32, vals: &[Value]) -> Result<Response, RespError> {
    let bad = |what: &str| RespError::Syntax(format!("FETCH: {what}"));
    let [Value::List(items)] = vals else {
        return Err(bad("not one parenthesized list"));
    };
    let mut out = FetchItem {
        seq,
        ..FetchItem::default()
    };
    let mut it = items.iter();
    while let Some(key) = it.next() {
        let Some(key) = key.bytes() else {
            return Err(bad("an item name that is not an atom"));
        };
        let Some(val) = it.next() else {
            return Err(bad("an item without a value"));
        };
        match key.to_ascii_uppercase().as_slice() {
            b"UID" => {
                let n = val.number().ok_or_else(|| bad("UID not a number"))?;
                let n = u32::try_from(n).map_err(|_| bad("UID out of range"))?;
                if n == 0 {
                    return Err(bad("UID 0"));
                }
                out.uid = Some(n);
            }
            b"FLAGS" => {
                let Value::List(fl) = val else {
                    return Err(bad("FLAGS not a list"));
                };
                out.flags = Some(
                    fl.iter()
                        .map(|f| f.bytes().map(text).ok_or_else(|| bad("a flag not an atom")))
                        .collect::<Result<_, _>>()?,
                );
            }
            b"INTERNALDATE" => {
                let s = val
                    .bytes()
                    .ok_or_else(|| bad("INTERNALDATE not a string"))?;
                out.internal_date =
                    Some(parse_date_time(&text(s)).ok_or_else(|| bad("INTERNALDATE not a date"))?);
            }
            b"RFC822.SIZE" => out.size = Some(val.number().ok_or_else(|| bad("size"))?),
            b"BODY[]" | b"RFC822" | b"BINARY[]" => match val {
                Value::Str(b) => out.body = Some(b.clone()),
                Value::Nil => out.body = None,
                _ => return Err(bad("BODY[] not a string")),
            },
            _ => {}
        }
    }
    Ok(Response::Fetch(out))
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// RFC 3501 date-time: `"17-Jul-1996 02:44:25 -0700"` (the day may be space-padded), to
/// seconds since the epoch and the offset in minutes.
pub fn parse_date_time(s: &str) -> Option<(i64, i32)> {
    let mut parts = s.split_whitespace();
    let date = parts.next()?;
    let time = parts.next()?;
    let zone = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    let mut dp = date.split('-');
    let day: u32 = dp.next()?.parse().ok()?;
    let mon = dp.next()?.to_ascii_uppercase();
    let month = MONTHS.iter().position(|m| *m == mon)? as u32 + 1;
    let year: i64 = dp.next()?.parse().ok()?;
    if dp.next().is_some() || !(1..=31).contains(&day) || !(1..=9999).contains(&year) {
        return None;
    }
    let mut tp = time.split(':');
    let h: i64 = tp.next()?.parse().ok()?;
    let mi: i64 = tp.next()?.parse().ok()?;
    let se: i64 = tp.next()?.parse().ok()?;
    if tp.next().is_some() || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let (sign, digits) = match zone.as_bytes().first()? {
        b'+' => (1, zone.get(1..)?),
        b'-' => (-1, zone.get(1..)?),
        _ => return None,
    };
    if digits.len() != 4 || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let zh: i32 = digits.get(..2)?.parse().ok()?;
    let zm: i32 = digits.get(2..)?.parse().ok()?;
    if zm > 59 {
        return None;
    }
    let tz = sign * (zh * 60 + zm);
    let local = days_from_civil(year, month, day) * 86_400 + h * 3600 + mi * 60 + se;
    Some((local - i64::from(tz) * 60, tz))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(input: &[u8]) -> Vec<Response> {
        let mut f = Framer::new(1 << 20);
        // Byte by byte: the framer must not care where reads end.
        let mut out = Vec::new();
        for b in input {
            f.feed(std::slice::from_ref(b));
            while let Some(fr) = f.next_frame().unwrap() {
                out.push(parse(&fr).unwrap());
            }
        }
        out
    }

    #[test]
    fn tagged_and_untagged_status_with_codes() {
        let r = frames(
            b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n* OK [UIDVALIDITY 1700000001] ok\r\nA1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n",
        );
        assert_eq!(
            r[1],
            Response::State {
                status: Status::Ok,
                text: StatusText {
                    code: Some(("UIDVALIDITY".into(), "1700000001".into())),
                    text: "ok".into()
                }
            }
        );
        match &r[2] {
            Response::Tagged { tag, status, text } => {
                assert_eq!(tag, "A1");
                assert_eq!(*status, Status::No);
                assert_eq!(text.code.as_ref().unwrap().0, "AUTHENTICATIONFAILED");
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn list_with_quoted_literal_and_nil_separator() {
        let r = frames(
            b"* LIST (\\HasChildren) \".\" INBOX\r\n* LIST (\\Noselect) NIL \"a \\\"b\\\"\"\r\n* LSUB () \"/\" {5}\r\nx/y z\r\n* CAPABILITY IMAP4rev1 STARTTLS\r\n",
        );
        let Response::List(a) = &r[0] else { panic!() };
        assert_eq!(
            (a.separator, a.name.as_slice()),
            (Some(b'.'), &b"INBOX"[..])
        );
        assert!(a.has("\\haschildren"));
        let Response::List(b) = &r[1] else { panic!() };
        assert_eq!((b.separator, b.name.as_slice()), (None, &b"a \"b\""[..]));
        let Response::List(c) = &r[2] else { panic!() };
        assert!(c.lsub);
        assert_eq!(c.name, b"x/y z");
        assert_eq!(
            r[3],
            Response::Capability(vec!["IMAP4REV1".into(), "STARTTLS".into()])
        );
    }

    #[test]
    fn fetch_with_body_literal() {
        let body = b"Subject: x\r\n\r\n) {3}\r\n";
        let mut input = format!(
            "* 2 FETCH (UID 7 FLAGS (\\Seen $Label1 \\Recent) INTERNALDATE \" 7-Jul-2020 10:00:00 +0200\" RFC822.SIZE {n} BODY[] {{{n}}}\r\n",
            n = body.len()
        )
        .into_bytes();
        input.extend_from_slice(body);
        input.extend_from_slice(b")\r\n* 3 EXISTS\r\n");
        let r = frames(&input);
        let Response::Fetch(f) = &r[0] else {
            panic!("{r:?}")
        };
        assert_eq!(f.seq, 2);
        assert_eq!(f.uid, Some(7));
        assert_eq!(
            f.flags.as_deref().unwrap(),
            ["\\Seen", "$Label1", "\\Recent"]
        );
        // 2020-07-07 08:00:00 UTC.
        assert_eq!(f.internal_date, Some((1_594_108_800, 120)));
        assert_eq!(f.size, Some(body.len() as u64));
        assert_eq!(f.body.as_deref(), Some(&body[..]));
        assert_eq!(r[1], Response::Exists(3));
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date_time("01-Jan-1970 00:00:00 +0000"), Some((0, 0)));
        assert_eq!(
            parse_date_time("17-Jul-1996 02:44:25 -0700"),
            Some((837_596_665, -420))
        );
        assert_eq!(parse_date_time("31-Foo-1996 02:44:25 -0700"), None);
        assert_eq!(parse_date_time("17-Jul-1996 02:44:25 0700"), None);
        assert_eq!(parse_date_time("17-Jul-1996 25:44:25 +0700"), None);
    }

    #[test]
    fn hostile_input_is_an_error() {
        let mut f = Framer::new(100);
        f.feed(b"* 1 FETCH (BODY[] {101}\r\n");
        assert_eq!(f.next_frame(), Err(RespError::LiteralTooLarge(101)));
        let mut f = Framer::new(100);
        f.feed(&vec![b'a'; MAX_LINE + 2]);
        assert_eq!(f.next_frame(), Err(RespError::LineTooLong));
        for bad in [
            &b"* 1 FETCH (UID"[..],
            b"* 1 FETCH (UID 0)",
            b"* 1 FETCH (UID x)",
            b"* 1 FETCH (FLAGS \\Seen)",
            b"* 99999999999 FETCH (UID 1)",
            b"* LIST \"/\" INBOX",
            b"* 1 FETCH ((((((((((((((((((((((((((((((((((((((((",
            b"A1 MAYBE",
            b"* 1 FETCH (BODY[] \"abc",
            b"* 1 FETCH (BODY[] {3}x)",
        ] {
            let fr = Frame {
                line: bad.to_vec(),
                literals: vec![],
            };
            assert!(parse(&fr).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
