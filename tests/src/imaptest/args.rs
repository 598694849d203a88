//! IMAP arguments as imaptest sees them: one tokenizer for both the script's expected
//! lines and the server's responses, so both sides are split the same way.
//!
//! Text is kept as Latin-1 `String`s (one char per byte): lossless for 8-bit message
//! bodies, and comparisons stay ASCII-case-insensitive like imaptest's C locale.

use std::fmt;

/// Largest literal accepted from a script or a server (a bound, not a protocol limit).
pub const MAX_LITERAL: usize = 64 << 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arg {
    Nil,
    Atom(String),
    Str(String),
    Literal { text: String, binary: bool },
    List(Vec<Arg>),
}

impl Arg {
    /// The value of an atom, quoted string or literal (IMAP astring); `None` for NIL/lists.
    pub fn astring(&self) -> Option<&str> {
        match self {
            Arg::Atom(s) | Arg::Str(s) | Arg::Literal { text: s, .. } => Some(s),
            _ => None,
        }
    }
    pub fn atom(&self) -> Option<&str> {
        match self {
            Arg::Atom(s) => Some(s),
            _ => None,
        }
    }
    pub fn list(&self) -> Option<&[Arg]> {
        match self {
            Arg::List(l) => Some(l),
            _ => None,
        }
    }
}

/// Bytes to a Latin-1 string (lossless).
pub fn latin1(b: &[u8]) -> String {
    b.iter().map(|&c| c as char).collect()
}

/// A Latin-1 string back to its bytes (chars above U+00FF cannot come from [`latin1`];
/// if a caller built one anyway it is sent as UTF-8 so nothing is silently dropped).
pub fn bytes(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        if (c as u32) < 256 {
            out.push(c as u32 as u8);
        } else {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses one whole line (literals inline as `{N}\r\n` + N bytes) into arguments.
pub fn parse(line: &[u8]) -> Result<Vec<Arg>, ParseError> {
    let mut p = Parser { b: line, i: 0 };
    let args = p.list_items(false)?;
    Ok(args)
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn list_items(&mut self, nested: bool) -> Result<Vec<Arg>, ParseError> {
        let mut out = Vec::new();
        loop {
            while matches!(self.peek(), Some(b' ' | b'\r' | b'\n')) {
                self.i += 1;
            }
            match self.peek() {
                None if nested => return Err(ParseError("missing ')'".into())),
                None => return Ok(out),
                Some(b')') if nested => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b')') => return Err(ParseError("unexpected ')'".into())),
                Some(b'(') => {
                    self.i += 1;
                    out.push(Arg::List(self.list_items(true)?));
                }
                Some(b'"') => out.push(self.quoted()?),
                Some(_) => {
                    if let Some(lit) = self.literal()? {
                        out.push(lit);
                    } else {
                        out.push(self.atom());
                    }
                }
            }
        }
    }

    fn quoted(&mut self) -> Result<Arg, ParseError> {
        self.i += 1;
        let mut s = Vec::new();
        loop {
            match self.peek() {
                None => return Err(ParseError("unterminated quoted string".into())),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(Arg::Str(latin1(&s)));
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(c) => {
                            s.push(c);
                            self.i += 1;
                        }
                        None => return Err(ParseError("unterminated quoted string".into())),
                    }
                }
                Some(c) => {
                    s.push(c);
                    self.i += 1;
                }
            }
        }
    }

    /// `{N}` / `{N+}` / `~{N}` followed by CRLF and N bytes; `None` if this is no literal.
    fn literal(&mut self) -> Result<Option<Arg>, ParseError> {
        let rest = &self.b[self.i..];
        let (binary, rest) = match rest.strip_prefix(b"~") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let Some(rest) = rest.strip_prefix(b"{") else {
            return Ok(None);
        };
        let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Ok(None);
        }
        let mut after = &rest[digits..];
        if let Some(r) = after.strip_prefix(b"+") {
            after = r;
        }
        let Some(after) = after.strip_prefix(b"}\r\n") else {
            return Ok(None);
        };
        let n: usize = std::str::from_utf8(&rest[..digits])
            .ok()
            .and_then(|d| d.parse().ok())
            .filter(|&n| n <= MAX_LITERAL)
            .ok_or_else(|| ParseError("literal size too large".into()))?;
        if after.len() < n {
            return Err(ParseError(format!(
                "literal of {n} bytes has only {} bytes",
                after.len()
            )));
        }
        let start = self.b.len() - after.len();
        self.i = start + n;
        Ok(Some(Arg::Literal {
            text: latin1(&after[..n]),
            binary,
        }))
    }

    fn atom(&mut self) -> Arg {
        let start = self.i;
        while let Some(c) = self.peek() {
            if matches!(c, b' ' | b'(' | b')' | b'\r' | b'\n') {
                break;
            }
            self.i += 1;
        }
        // A lone '(' never gets here: the caller handles it, so the atom is non-empty.
        let s = latin1(&self.b[start..self.i]);
        if s.eq_ignore_ascii_case("NIL") {
            Arg::Nil
        } else {
            Arg::Atom(s)
        }
    }
}

/// Arguments back to IMAP-like text, for failure messages (literals shown inline).
pub fn to_text(args: &[Arg]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        write_arg(&mut out, a);
    }
    out
}

fn write_arg(out: &mut String, a: &Arg) {
    match a {
        Arg::Nil => out.push_str("NIL"),
        Arg::Atom(s) => out.push_str(s),
        Arg::Str(s) => {
            out.push('"');
            for c in s.chars() {
                if c == '"' || c == '\\' {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
        }
        Arg::Literal { text, binary } => {
            if *binary {
                out.push('~');
            }
            out.push_str(&format!("{{{}}}\r\n{}", text.len(), text));
        }
        Arg::List(l) => {
            out.push('(');
            out.push_str(&to_text(l));
            out.push(')');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn atom(s: &str) -> Arg {
        Arg::Atom(s.into())
    }

    #[test]
    fn atoms_lists_strings_nil() {
        let a = parse(br#"1 FETCH (UID 5 FLAGS (\Seen) X "a \"q\"" NIL)"#).unwrap();
        assert_eq!(
            a,
            vec![
                atom("1"),
                atom("FETCH"),
                Arg::List(vec![
                    atom("UID"),
                    atom("5"),
                    atom("FLAGS"),
                    Arg::List(vec![atom("\\Seen")]),
                    atom("X"),
                    Arg::Str("a \"q\"".into()),
                    Arg::Nil,
                ])
            ]
        );
    }

    #[test]
    fn resp_code_brackets_split_like_imaptest() {
        let a = parse(b"OK [PERMANENTFLAGS (\\Seen \\*)] Flags permitted.").unwrap();
        assert_eq!(a.len(), 6);
        assert_eq!(a[1], atom("[PERMANENTFLAGS"));
        assert_eq!(a[3], atom("]"));
        let a = parse(b"BODY[HEADER.FIELDS (FROM)] {3}\r\nabc").unwrap();
        assert_eq!(a.len(), 4);
        assert_eq!(
            a[3],
            Arg::Literal {
                text: "abc".into(),
                binary: false
            }
        );
    }

    #[test]
    fn literals_binary_and_8bit() {
        let a = parse(b"x ~{3}\r\n\x00\xe4\r y").unwrap();
        assert_eq!(
            a[1],
            Arg::Literal {
                text: latin1(b"\x00\xe4\r"),
                binary: true
            }
        );
        assert_eq!(a[2], atom("y"));
        assert_eq!(bytes(&latin1(b"\x00\xe4\xff")), b"\x00\xe4\xff");
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        assert!(parse(b"(a (b)").is_err());
        assert!(parse(b"a)").is_err());
        assert!(parse(b"\"abc").is_err());
        assert!(parse(b"{10}\r\nabc").is_err());
        assert!(parse(b"{99999999999999999999}\r\n").is_err());
        // not a literal: stays an atom
        assert_eq!(parse(b"{abc}").unwrap(), vec![atom("{abc}")]);
    }
}
