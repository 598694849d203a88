//! RFC 5228 section 8.1: the lexical tokens of a Sieve script, each with its line and column.

use crate::error::CompileError;

/// Lexing stops after this many errors (the compiler reports at most as many).
const MAX_ERRORS: usize = 100;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tok {
    Ident(String),
    Tag(String),
    Number(u64),
    Str(String),
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    LParen,
    RParen,
    Comma,
    Semi,
    /// A run of characters that start no token: the lexer has reported it, the parser reports
    /// the command it breaks and resynchronises (as Pigeonhole does, so both count).
    Invalid,
}

#[derive(Clone, Debug)]
pub struct Token {
    pub tok: Tok,
    pub line: u32,
    pub col: u32,
}

struct Lexer<'a> {
    src: &'a [u8],
    pos: usize,
    line: u32,
    line_start: usize,
    errors: Vec<CompileError>,
}

/// Splits a script into tokens. Lexical errors are collected (the lexer skips the bad bytes and
/// goes on, so one run reports several) and returned with the tokens.
pub fn tokenize(src: &str) -> (Vec<Token>, Vec<CompileError>) {
    let mut lx = Lexer {
        src: src.as_bytes(),
        pos: 0,
        line: 1,
        line_start: 0,
        errors: Vec::new(),
    };
    let mut out = Vec::new();
    while let Some(t) = lx.next_token() {
        out.push(t);
    }
    (out, lx.errors)
}

/// Whether a byte can begin a token, white space or a comment (it ends a run of garbage).
fn starts_token(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || c.is_ascii_whitespace()
        || matches!(
            c,
            b'_' | b'"'
                | b':'
                | b'#'
                | b'/'
                | b'['
                | b']'
                | b'{'
                | b'}'
                | b'('
                | b')'
                | b','
                | b';'
        )
}

impl Lexer<'_> {
    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn peek_at(&self, off: usize) -> Option<u8> {
        self.src.get(self.pos + off).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.pos += 1;
        if c == b'\n' {
            self.line += 1;
            self.line_start = self.pos;
        }
        Some(c)
    }

    fn col(&self) -> u32 {
        (self.pos - self.line_start + 1) as u32
    }

    fn error(&mut self, line: u32, col: u32, msg: impl Into<String>) {
        self.errors.push(CompileError::new(line, col, msg));
    }

    /// Skips white space and comments; false at end of input.
    fn skip_ws(&mut self) {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\r' | b'\n') => {
                    self.bump();
                }
                Some(b'#') => {
                    while let Some(c) = self.peek() {
                        if c == b'\n' {
                            break;
                        }
                        self.bump();
                    }
                }
                Some(b'/') if self.peek_at(1) == Some(b'*') => {
                    let (line, col) = (self.line, self.col());
                    self.bump();
                    self.bump();
                    let mut closed = false;
                    while let Some(c) = self.bump() {
                        if c == b'*' && self.peek() == Some(b'/') {
                            self.bump();
                            closed = true;
                            break;
                        }
                    }
                    if !closed {
                        self.error(line, col, "end of file before end of bracket comment");
                    }
                }
                _ => return,
            }
        }
    }

    fn next_token(&mut self) -> Option<Token> {
        loop {
            self.skip_ws();
            let (line, col) = (self.line, self.col());
            let c = self.peek()?;
            let tok = match c {
                b'[' => Some(Tok::LBracket),
                b']' => Some(Tok::RBracket),
                b'{' => Some(Tok::LBrace),
                b'}' => Some(Tok::RBrace),
                b'(' => Some(Tok::LParen),
                b')' => Some(Tok::RParen),
                b',' => Some(Tok::Comma),
                b';' => Some(Tok::Semi),
                _ => None,
            };
            if let Some(tok) = tok {
                self.bump();
                return Some(Token { tok, line, col });
            }
            let tok = match c {
                b'"' => self.quoted(line, col),
                b':' => {
                    self.bump();
                    match self.peek() {
                        Some(c) if c.is_ascii_alphabetic() || c == b'_' => {
                            Some(Tok::Tag(self.ident().to_ascii_lowercase()))
                        }
                        _ => {
                            self.error(line, col, "unexpected character after ':'");
                            None
                        }
                    }
                }
                b'0'..=b'9' => self.number(line, col),
                c if c.is_ascii_alphabetic() || c == b'_' => {
                    let id = self.ident();
                    if id.eq_ignore_ascii_case("text") && self.peek() == Some(b':') {
                        self.bump();
                        self.multiline(line, col)
                    } else {
                        Some(Tok::Ident(id.to_ascii_lowercase()))
                    }
                }
                _ => {
                    // Only the first character is decoded for the message; the rest of the run
                    // is skipped without rescanning, so a long garbage script stays linear.
                    let len = match c {
                        0xF0.. => 4,
                        0xE0.. => 3,
                        0xC0.. => 2,
                        _ => 1,
                    };
                    let end = (self.pos + len).min(self.src.len());
                    let ch = std::str::from_utf8(&self.src[self.pos..end])
                        .ok()
                        .and_then(|s| s.chars().next())
                        .unwrap_or('?');
                    self.error(
                        line,
                        col,
                        format!("unexpected character(s) starting with '{ch}'"),
                    );
                    while matches!(self.peek(), Some(c) if !starts_token(c)) {
                        self.bump();
                    }
                    if self.errors.len() >= MAX_ERRORS {
                        self.pos = self.src.len();
                    }
                    Some(Tok::Invalid)
                }
            };
            if let Some(tok) = tok {
                return Some(Token { tok, line, col });
            }
        }
    }

    fn ident(&mut self) -> String {
        let start = self.pos;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_') {
            self.bump();
        }
        String::from_utf8_lossy(&self.src[start..self.pos]).into_owned()
    }

    fn number(&mut self, line: u32, col: u32) -> Option<Tok> {
        let mut n: u64 = 0;
        let mut overflow = false;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            self.bump();
            match n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(c - b'0')))
            {
                Some(v) => n = v,
                None => overflow = true,
            }
        }
        let mult: u64 = match self.peek() {
            Some(b'k' | b'K') => 1 << 10,
            Some(b'm' | b'M') => 1 << 20,
            Some(b'g' | b'G') => 1 << 30,
            _ => 1,
        };
        if mult != 1 {
            self.bump();
        }
        match n.checked_mul(mult) {
            Some(v) if !overflow && v <= u64::from(u32::MAX) * 1024 => Some(Tok::Number(v)),
            _ => {
                self.error(line, col, "number is out of range");
                Some(Tok::Number(u64::MAX))
            }
        }
    }

    fn quoted(&mut self, line: u32, col: u32) -> Option<Tok> {
        self.bump();
        let mut buf = Vec::new();
        loop {
            match self.bump() {
                None => {
                    self.error(line, col, "end of file before end of quoted string");
                    return None;
                }
                Some(b'"') => break,
                // Any escaped character stands for itself (RFC 5228 2.4.2).
                Some(b'\\') => match self.bump() {
                    Some(c) => buf.push(c),
                    None => {
                        self.error(line, col, "end of file before end of quoted string");
                        return None;
                    }
                },
                Some(b'\r') if self.peek() == Some(b'\n') => {}
                Some(b'\n') => buf.extend_from_slice(b"\r\n"),
                Some(c) => buf.push(c),
            }
        }
        self.string(buf, line, col)
    }

    fn string(&mut self, buf: Vec<u8>, line: u32, col: u32) -> Option<Tok> {
        match String::from_utf8(buf) {
            Ok(s) => Some(Tok::Str(s)),
            Err(_) => {
                self.error(line, col, "string is not valid UTF-8");
                Some(Tok::Str(String::new()))
            }
        }
    }

    fn multiline(&mut self, line: u32, col: u32) -> Option<Tok> {
        // "text:" then white space or a hash comment up to the line end.
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.bump();
        }
        if self.peek() == Some(b'#') {
            while !matches!(self.peek(), Some(b'\n') | None) {
                self.bump();
            }
        }
        if self.peek() == Some(b'\r') {
            self.bump();
        }
        if self.bump() != Some(b'\n') {
            self.error(line, col, "expected end of line after 'text:'");
            return None;
        }
        let mut buf = Vec::new();
        loop {
            if self.pos >= self.src.len() {
                self.error(line, col, "end of file before end of multi-line string");
                return None;
            }
            let start = self.pos;
            while !matches!(self.peek(), Some(b'\n') | None) {
                self.bump();
            }
            let mut l = &self.src[start..self.pos];
            self.bump();
            if let Some(s) = l.strip_suffix(b"\r") {
                l = s;
            }
            if l == b"." {
                break;
            }
            // Dot-stuffing: a leading ".." stands for ".".
            let l = if l.starts_with(b"..") { &l[1..] } else { l };
            buf.extend_from_slice(l);
            buf.extend_from_slice(b"\r\n");
        }
        self.string(buf, line, col)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        let (t, e) = tokenize(s);
        assert!(e.is_empty(), "{e:?}");
        t.into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn basic_tokens() {
        assert_eq!(
            toks("if header :IS \"a\\\"b\" [\"c\", \"d\"] { keep; } # x\n/* y */ 10K"),
            vec![
                Tok::Ident("if".into()),
                Tok::Ident("header".into()),
                Tok::Tag("is".into()),
                Tok::Str("a\"b".into()),
                Tok::LBracket,
                Tok::Str("c".into()),
                Tok::Comma,
                Tok::Str("d".into()),
                Tok::RBracket,
                Tok::LBrace,
                Tok::Ident("keep".into()),
                Tok::Semi,
                Tok::RBrace,
                Tok::Number(10240),
            ]
        );
    }

    #[test]
    fn multiline_dot_stuffing() {
        assert_eq!(
            toks("text: # c\r\na\r\n..b\r\n.\r\n;"),
            vec![Tok::Str("a\r\n.b\r\n".into()), Tok::Semi]
        );
    }

    #[test]
    fn errors_have_positions() {
        let (_, e) = tokenize("keep;\n  \"open");
        assert_eq!((e[0].line, e[0].col), (2, 3));
        let (_, e) = tokenize("keep; @ $");
        assert_eq!(e.len(), 2);
    }

    #[test]
    fn garbage_is_cut_short() {
        // One run of garbage is one error; separate runs stop at the limit.
        let (toks, e) = tokenize(&"\u{e9}$".repeat(200_000));
        assert_eq!((toks.len(), e.len()), (1, 1));
        let junk = "\u{e9} ".repeat(200_000);
        let start = std::time::Instant::now();
        let (_, e) = tokenize(&junk);
        assert_eq!(e.len(), MAX_ERRORS);
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
    }
}
