//! RFC 5322 address lists parsed the way IMAP's ENVELOPE wants them (and Dovecot gives them): raw
//! words, not decoded; quoted display names unquoted; a comment stands in for a missing display
//! name; groups as start/end markers; source routes kept in `adl`.

use super::Address;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// An atom or dot-atom (dots are kept inside words so "John Q. Public" stays three words).
    Atom(Vec<u8>),
    /// A quoted string, escapes removed.
    Quoted(Vec<u8>),
    Comment(Vec<u8>),
    DomainLiteral(Vec<u8>),
    Special(u8),
}

fn is_special(b: u8) -> bool {
    matches!(
        b,
        b'(' | b')' | b'<' | b'>' | b'@' | b',' | b';' | b':' | b'\\' | b'"' | b'[' | b']'
    )
}

/// Splits a header value into RFC 5322 tokens; blanks and line breaks separate, never appear.
fn tokenize(v: &[u8]) -> Vec<Tok> {
    let mut toks = Vec::new();
    let mut i = 0;
    while let Some(&b) = v.get(i) {
        match b {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'"' => {
                i += 1;
                toks.push(Tok::Quoted(quoted(v, &mut i)));
            }
            b'(' => {
                i += 1;
                toks.push(Tok::Comment(comment(v, &mut i)));
            }
            b'[' => {
                i += 1;
                toks.push(Tok::DomainLiteral(domain_literal(v, &mut i)));
            }
            _ if is_special(b) => {
                toks.push(Tok::Special(b));
                i += 1;
            }
            _ => {
                if let Some(a) = atom(v, &mut i) {
                    toks.push(Tok::Atom(a));
                }
            }
        }
    }
    toks
}

/// A quoted string's content, escapes removed, from just after its opening quote; `i` ends
/// after the closing quote (or at the end of an unterminated one). Line breaks are dropped.
fn quoted(v: &[u8], i: &mut usize) -> Vec<u8> {
    let mut s = Vec::new();
    while let Some(&c) = v.get(*i) {
        *i += 1;
        match c {
            b'"' => break,
            b'\\' => {
                if let Some(&n) = v.get(*i) {
                    s.push(n);
                    *i += 1;
                }
            }
            b'\r' | b'\n' => {}
            _ => s.push(c),
        }
    }
    s
}

/// A comment's content (nested comments kept with their parentheses), from just after its
/// opening parenthesis; `i` ends after the matching closing one.
fn comment(v: &[u8], i: &mut usize) -> Vec<u8> {
    let mut depth = 1usize;
    let mut s = Vec::new();
    while let Some(&c) = v.get(*i) {
        *i += 1;
        match c {
            b'(' => {
                depth += 1;
                s.push(c);
            }
            b')' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
                s.push(c);
            }
            b'\\' => {
                if let Some(&n) = v.get(*i) {
                    s.push(n);
                    *i += 1;
                }
            }
            _ => s.push(c),
        }
    }
    s
}

/// A domain literal with its brackets, escapes removed, from just after its `[`.
fn domain_literal(v: &[u8], i: &mut usize) -> Vec<u8> {
    let mut s = vec![b'['];
    while let Some(&c) = v.get(*i) {
        *i += 1;
        if c == b'\\' {
            if let Some(&n) = v.get(*i) {
                s.push(n);
                *i += 1;
            }
            continue;
        }
        s.push(c);
        if c == b']' {
            break;
        }
    }
    s
}

/// An atom from `i`; None for a control byte, which is skipped so the caller always advances.
fn atom(v: &[u8], i: &mut usize) -> Option<Vec<u8>> {
    let start = *i;
    while let Some(&c) = v.get(*i) {
        if c <= b' ' || is_special(c) {
            break;
        }
        *i += 1;
    }
    if *i == start {
        *i += 1;
        None
    } else {
        Some(v.get(start..*i).unwrap_or(&[]).to_vec())
    }
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    /// The last comment seen in the current address: the display name when there is none.
    comment: Option<Vec<u8>>,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn is_special(&self, c: u8) -> bool {
        self.peek() == Some(&Tok::Special(c))
    }

    /// Words up to the next special (comments are remembered, not returned).
    fn phrase(&mut self) -> Vec<Tok> {
        let mut words = Vec::new();
        while let Some(t) = self.peek() {
            match t {
                Tok::Atom(_) | Tok::Quoted(_) | Tok::DomainLiteral(_) => words.push(t.clone()),
                Tok::Comment(c) => self.comment = Some(c.clone()),
                Tok::Special(_) => break,
            }
            self.pos += 1;
        }
        words
    }

    /// Text of an addr-spec piece (local part or domain) up to one of `stop`; words are
    /// concatenated without blanks (blanks and comments are not part of an addr-spec).
    fn addr_piece(&mut self, stop: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(t) = self.peek() {
            match t {
                Tok::Atom(a) | Tok::DomainLiteral(a) => out.extend_from_slice(a),
                // Quoted local parts are given unquoted, as Dovecot does.
                Tok::Quoted(q) => out.extend_from_slice(q),
                Tok::Comment(c) => self.comment = Some(c.clone()),
                Tok::Special(s) if stop.contains(s) => break,
                // A stray special inside an address: kept, so the address is visibly odd
                // rather than silently changed.
                Tok::Special(s) => out.push(*s),
            }
            self.pos += 1;
        }
        out
    }

    fn skip_comments(&mut self) {
        while let Some(Tok::Comment(c)) = self.peek() {
            self.comment = Some(c.clone());
            self.pos += 1;
        }
    }
}

fn join_phrase(words: &[Tok]) -> Vec<u8> {
    let mut out = Vec::new();
    for w in words {
        if !out.is_empty() {
            out.push(b' ');
        }
        match w {
            Tok::Atom(a) | Tok::Quoted(a) | Tok::DomainLiteral(a) | Tok::Comment(a) => {
                out.extend_from_slice(a)
            }
            Tok::Special(s) => out.push(*s),
        }
    }
    out
}

fn concat_words(words: &[Tok]) -> Vec<u8> {
    let mut out = Vec::new();
    for w in words {
        match w {
            Tok::Atom(a) | Tok::DomainLiteral(a) | Tok::Quoted(a) => out.extend_from_slice(a),
            _ => {}
        }
    }
    out
}

/// A source route as Dovecot writes it: "@a,@b" whatever separators were used.
fn normalize_route(route: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for d in route
        .split(|b| *b == b'@' || *b == b',')
        .filter(|d| !d.is_empty())
    {
        if !out.is_empty() {
            out.push(b',');
        }
        out.push(b'@');
        out.extend_from_slice(d);
    }
    out
}

/// Placeholders Dovecot's ENVELOPE uses for a missing part of an address.
fn or_missing(v: Vec<u8>, placeholder: &[u8]) -> Vec<u8> {
    if v.is_empty() {
        placeholder.to_vec()
    } else {
        v
    }
}

/// The host Dovecot's ENVELOPE gives an address that has none.
pub const MISSING_DOMAIN: &[u8] = b"MISSING_DOMAIN";
pub const MISSING_MAILBOX: &[u8] = b"MISSING_MAILBOX";

fn missing_domain() -> Vec<u8> {
    MISSING_DOMAIN.to_vec()
}

fn nonempty(v: Vec<u8>) -> Option<Vec<u8>> {
    if v.is_empty() {
        None
    } else {
        Some(v)
    }
}

/// Parses an address-list header value (raw; folds allowed). Never fails: garbage gives
/// whatever addresses can be made of it.
pub fn parse_address_list(value: &[u8]) -> Vec<Address> {
    let mut p = Parser {
        toks: tokenize(value),
        pos: 0,
        comment: None,
    };
    let mut out = Vec::new();
    let mut in_group = false;
    while p.pos < p.toks.len() {
        let before = p.pos;
        if p.is_special(b',') {
            p.pos += 1;
            continue;
        }
        if p.is_special(b';') {
            p.pos += 1;
            if in_group {
                out.push(Address::default());
                in_group = false;
            }
            continue;
        }
        p.comment = None;
        let words = p.phrase();
        match p.peek() {
            Some(Tok::Special(b':')) if !in_group => {
                p.pos += 1;
                out.push(group_start(&words));
                in_group = true;
            }
            Some(Tok::Special(b'<')) => {
                p.pos += 1;
                out.push(p.angle_addr(&words));
            }
            Some(Tok::Special(b'@')) => {
                p.pos += 1;
                out.push(p.bare_addr_spec(&words));
            }
            _ => out.extend(p.no_address(&words)),
        }
        if p.pos == before {
            p.pos += 1;
        }
    }
    if in_group {
        out.push(Address::default());
    }
    out
}

/// The marker that opens a group (`name:`): its name as the mailbox, no host.
fn group_start(words: &[Tok]) -> Address {
    Address {
        name: None,
        adl: None,
        mailbox: Some(join_phrase(words)),
        host: None,
    }
}

impl Parser {
    /// `name <@route:local@domain>`, after the `<`: the display name is the phrase before it,
    /// else a comment after the `>`.
    fn angle_addr(&mut self, words: &[Tok]) -> Address {
        let mut adl = None;
        self.skip_comments();
        if self.is_special(b'@') {
            let route = self.addr_piece(b":>");
            if self.is_special(b':') {
                self.pos += 1;
                adl = nonempty(normalize_route(&route));
            }
        }
        let local = self.addr_piece(b"@>");
        let mut host = None;
        if self.is_special(b'@') {
            self.pos += 1;
            host = Some(self.addr_piece(b">"));
        }
        if self.is_special(b'>') {
            self.pos += 1;
        }
        // Comments inside the brackets are not a name; one after them is.
        self.comment = None;
        self.skip_comments();
        let name = if words.is_empty() {
            self.comment.take()
        } else {
            Some(join_phrase(words))
        };
        Address {
            name,
            adl,
            mailbox: Some(or_missing(local, MISSING_MAILBOX)),
            host: Some(
                host.filter(|h| !h.is_empty())
                    .unwrap_or_else(missing_domain),
            ),
        }
    }

    /// `local@domain` without brackets, after the `@`: `words` are the local part; a comment
    /// (after the domain, else after the local part) is the display name.
    fn bare_addr_spec(&mut self, words: &[Tok]) -> Address {
        let local = concat_words(words);
        let local_comment = self.comment.take();
        let domain = Some(self.addr_piece(b",;"))
            .filter(|d| !d.is_empty())
            .unwrap_or_else(missing_domain);
        let name = self.comment.take().or(local_comment);
        Address {
            name,
            adl: None,
            mailbox: Some(or_missing(local, MISSING_MAILBOX)),
            host: Some(domain),
        }
    }

    /// Words followed by neither `<`, `@` nor a group's `:`: a bare word becomes an address with
    /// a placeholder host; a stray special (a '>' or ':' in a group) is skipped.
    fn no_address(&mut self, words: &[Tok]) -> Option<Address> {
        // A bare word without a domain: never a NIL host, which would read as a group marker;
        // Dovecot's placeholder instead.
        let addr = (!words.is_empty()).then(|| Address {
            name: self.comment.take(),
            adl: None,
            mailbox: Some(concat_words(words)),
            host: Some(missing_domain()),
        });
        if let Some(Tok::Special(c)) = self.peek() {
            if *c != b',' && *c != b';' {
                self.pos += 1;
            }
        }
        addr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(name: Option<&str>, adl: Option<&str>, mb: Option<&str>, host: Option<&str>) -> Address {
        let f = |s: Option<&str>| s.map(|s| s.as_bytes().to_vec());
        Address {
            name: f(name),
            adl: f(adl),
            mailbox: f(mb),
            host: f(host),
        }
    }

    #[test]
    fn plain_named_comment_and_route() {
        assert_eq!(
            parse_address_list(b" user@domain"),
            vec![a(None, None, Some("user"), Some("domain"))]
        );
        assert_eq!(
            parse_address_list(b" From Real <fromuser@fromdomain.org>"),
            vec![a(
                Some("From Real"),
                None,
                Some("fromuser"),
                Some("fromdomain.org")
            )]
        );
        assert_eq!(
            parse_address_list(b" user@domain (Real Name)"),
            vec![a(Some("Real Name"), None, Some("user"), Some("domain"))]
        );
        assert_eq!(
            parse_address_list(b" <@route:user@domain>"),
            vec![a(None, Some("@route"), Some("user"), Some("domain"))]
        );
        assert_eq!(
            parse_address_list(b" \"Doe, John\" <j@x.org>, =?utf-8?q?J=C3=B6rg?= <j2@x.org>"),
            vec![
                a(Some("Doe, John"), None, Some("j"), Some("x.org")),
                a(
                    Some("=?utf-8?q?J=C3=B6rg?="),
                    None,
                    Some("j2"),
                    Some("x.org")
                ),
            ]
        );
    }

    #[test]
    fn dovecot_shapes_routes_quotes_and_missing_parts() {
        assert_eq!(
            parse_address_list(b"hello <@route ,@route2:user@domain>"),
            vec![a(
                Some("hello"),
                Some("@route,@route2"),
                Some("user"),
                Some("domain")
            )]
        );
        assert_eq!(
            parse_address_list(b"<@route@route2:user@domain>")[0]
                .adl
                .as_deref(),
            Some(&b"@route,@route2"[..])
        );
        assert_eq!(
            parse_address_list(b"\"john doe\"@x.org"),
            vec![a(None, None, Some("john doe"), Some("x.org"))]
        );
        assert_eq!(
            parse_address_list(b"user (hello)"),
            vec![a(Some("hello"), None, Some("user"), Some("MISSING_DOMAIN"))]
        );
        assert_eq!(
            parse_address_list(b"@domain"),
            vec![a(None, None, Some("MISSING_MAILBOX"), Some("domain"))]
        );
        assert_eq!(
            parse_address_list(b"hello <user>"),
            vec![a(Some("hello"), None, Some("user"), Some("MISSING_DOMAIN"))]
        );
    }

    #[test]
    fn comments_inside_addr_spec() {
        assert_eq!(
            parse_address_list(b" <user-from (comment)@ (comment) domain.org>"),
            vec![a(None, None, Some("user-from"), Some("domain.org"))]
        );
    }

    #[test]
    fn groups() {
        let got = parse_address_list(b" group: g1@d1.org, g2@d2.org;, group2: g3@d3.org;");
        assert_eq!(
            got,
            vec![
                a(None, None, Some("group"), None),
                a(None, None, Some("g1"), Some("d1.org")),
                a(None, None, Some("g2"), Some("d2.org")),
                a(None, None, None, None),
                a(None, None, Some("group2"), None),
                a(None, None, Some("g3"), Some("d3.org")),
                a(None, None, None, None),
            ]
        );
        let got = parse_address_list(b" group:;, group2: (foo) ;");
        assert_eq!(
            got,
            vec![
                a(None, None, Some("group"), None),
                a(None, None, None, None),
                a(None, None, Some("group2"), None),
                a(None, None, None, None),
            ]
        );
        // Unterminated group is closed.
        assert_eq!(parse_address_list(b"g: x@y").len(), 3);
    }

    #[test]
    fn garbage_never_panics_and_empty_is_empty() {
        assert!(parse_address_list(b"").is_empty());
        assert!(parse_address_list(b"   ").is_empty());
        for junk in [
            &b"<<<@@@>>>"[..],
            b"\"unterminated",
            b"(((",
            b"a@",
            b"@b",
            b":;:;<",
            b"\x00\x01",
        ] {
            let _ = parse_address_list(junk);
        }
        assert_eq!(
            parse_address_list(b"undisclosed"),
            vec![a(None, None, Some("undisclosed"), Some("MISSING_DOMAIN"))]
        );
    }
}
