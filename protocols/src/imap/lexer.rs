//! A small tokenizer over a whole framed command, for the grammars imap-codec does not parse
//! (LIST-EXTENDED options, SEARCH RETURN, CREATE ... (USE ...)). Tokens carry byte offsets so a
//! part can be cut out and the rest handed to imap-codec.

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tok {
    /// An atom (also `*`/`%` patterns and bracketed section words).
    Atom(String),
    /// A quoted string or a literal's bytes.
    Str(Vec<u8>),
    Open,
    Close,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub tok: Tok,
    pub start: usize,
    pub end: usize,
}

/// Tokenizes a command (tag included); None when it is not well-formed at this level.
pub fn tokenize(msg: &[u8]) -> Option<Vec<Token>> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&b) = msg.get(i) {
        let start = i;
        let tok = match b {
            b' ' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'(' => {
                i += 1;
                Tok::Open
            }
            b')' => {
                i += 1;
                Tok::Close
            }
            b'"' => {
                let (s, end) = quoted(msg, i)?;
                i = end;
                Tok::Str(s)
            }
            // `~` starts a literal8 only before `{`; elsewhere it is an atom character
            // (`LIST "" ~foo`: a pattern).
            b'{' | b'~' if b == b'{' || msg.get(i + 1) == Some(&b'{') => {
                let (data, end) = literal(msg, if b == b'~' { i + 1 } else { i })?;
                i = end;
                Tok::Str(data.to_vec())
            }
            _ => {
                let (a, end) = atom(msg, i)?;
                i = end;
                Tok::Atom(a)
            }
        };
        out.push(Token { tok, start, end: i });
    }
    Some(out)
}

/// The quoted string opening at `i`: its unescaped bytes and the offset after it.
fn quoted(msg: &[u8], mut i: usize) -> Option<(Vec<u8>, usize)> {
    i += 1;
    let mut s = Vec::new();
    loop {
        match msg.get(i)? {
            b'"' => return Some((s, i + 1)),
            b'\\' => {
                s.push(*msg.get(i + 1)?);
                i += 2;
            }
            b'\r' | b'\n' => return None,
            c => {
                s.push(*c);
                i += 1;
            }
        }
    }
}

/// The literal whose `{n}` opens at `i` (`{n+}` and `{n-}` too): its bytes and the offset
/// after them.
fn literal(msg: &[u8], mut i: usize) -> Option<(&[u8], usize)> {
    let close = i + msg.get(i..)?.iter().position(|&c| c == b'}')?;
    let digits = msg.get(i + 1..close)?;
    let digits = digits
        .strip_suffix(b"+")
        .or_else(|| digits.strip_suffix(b"-"))
        .unwrap_or(digits);
    let len: usize = std::str::from_utf8(digits).ok()?.parse().ok()?;
    i = close + 1;
    if msg.get(i) == Some(&b'\r') {
        i += 1;
    }
    if msg.get(i) != Some(&b'\n') {
        return None;
    }
    i += 1;
    let end = i.checked_add(len)?;
    Some((msg.get(i..end)?, end))
}

/// The atom starting at `i` and the offset after it; None for a control character. Atoms
/// may contain brackets here (BODY[HEADER.FIELDS (A B)] is not needed at this level).
fn atom(msg: &[u8], start: usize) -> Option<(String, usize)> {
    let mut i = start;
    while let Some(&c) = msg.get(i) {
        if matches!(c, b' ' | b'(' | b')' | b'"' | b'\r' | b'\n' | b'{') {
            break;
        }
        if c < 0x20 || c == 0x7f {
            return None;
        }
        i += 1;
    }
    let s = String::from_utf8(msg.get(start..i)?.to_vec()).ok()?;
    Some((s, i))
}

impl Token {
    pub fn atom_eq(&self, word: &str) -> bool {
        matches!(&self.tok, Tok::Atom(a) if a.eq_ignore_ascii_case(word))
    }
    /// An astring's bytes (atom or string).
    pub fn astring(&self) -> Option<Vec<u8>> {
        match &self.tok {
            Tok::Atom(a) => Some(a.as_bytes().to_vec()),
            Tok::Str(s) => Some(s.clone()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_with_literals_and_lists() {
        let t = tokenize(b"a LIST (SUBSCRIBED) \"\" {3}\r\nI*% RETURN (STATUS (MESSAGES))\r\n")
            .unwrap();
        let toks: Vec<Tok> = t.into_iter().map(|t| t.tok).collect();
        assert_eq!(
            toks,
            vec![
                Tok::Atom("a".into()),
                Tok::Atom("LIST".into()),
                Tok::Open,
                Tok::Atom("SUBSCRIBED".into()),
                Tok::Close,
                Tok::Str(vec![]),
                Tok::Str(b"I*%".to_vec()),
                Tok::Atom("RETURN".into()),
                Tok::Open,
                Tok::Atom("STATUS".into()),
                Tok::Open,
                Tok::Atom("MESSAGES".into()),
                Tok::Close,
                Tok::Close,
            ]
        );
    }

    #[test]
    fn bad_input_is_none_not_panic() {
        assert!(tokenize(b"a \"unterminated").is_none());
        assert!(tokenize(b"a {5}\r\nab").is_none());
        assert!(tokenize(b"a {99999999999999999999999}\r\n").is_none());
        assert!(tokenize(b"a ~{x}\r\n").is_none());
    }

    #[test]
    fn tilde_without_brace_is_an_atom() {
        let t = tokenize(b"a LIST \"\" ~foo\r\n").unwrap();
        assert_eq!(t[3].tok, Tok::Atom("~foo".into()));
        let t = tokenize(b"a x ~{2}\r\nab\r\n").unwrap();
        assert_eq!(t[2].tok, Tok::Str(b"ab".to_vec()));
    }
}
