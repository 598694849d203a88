//! IMAP string syntax for values taken from messages: NIL, quoted strings, literals.

/// Writes `NIL` for None, else the value as [`string`].
pub fn nstring(out: &mut Vec<u8>, v: Option<&[u8]>) {
    match v {
        None => out.extend_from_slice(b"NIL"),
        Some(v) => string(out, v),
    }
}

/// Writes a header-derived value: a quoted string when it is printable 7-bit, else a literal.
/// Line ends are dropped (header values are unfolded; a stray CR/LF must not end the response
/// line) and NUL, which no IMAP string may hold, becomes 0x80 as in Dovecot.
pub fn string(out: &mut Vec<u8>, v: &[u8]) {
    let quotable = v.len() <= 4096 && v.iter().all(|&b| (0x20..0x7f).contains(&b) || b == b'\t');
    if quotable {
        out.push(b'"');
        for &b in v {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
        return;
    }
    let clean: Vec<u8> = v
        .iter()
        .filter(|&&b| b != b'\r' && b != b'\n')
        .map(|&b| if b == 0 { 0x80 } else { b })
        .collect();
    if clean
        .iter()
        .all(|&b| (0x20..0x7f).contains(&b) || b == b'\t')
        && clean.len() <= 4096
    {
        return string(out, &clean);
    }
    out.extend_from_slice(format!("{{{}}}\r\n", clean.len()).as_bytes());
    out.extend_from_slice(&clean);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: Option<&[u8]>) -> Vec<u8> {
        let mut out = Vec::new();
        nstring(&mut out, v);
        out
    }

    #[test]
    fn forms() {
        assert_eq!(s(None), b"NIL");
        assert_eq!(s(Some(b"")), b"\"\"");
        assert_eq!(s(Some(b"a \"b\" \\c")), b"\"a \\\"b\\\" \\\\c\"");
        assert_eq!(s(Some("Jörg".as_bytes())), b"{5}\r\nJ\xc3\xb6rg");
        assert_eq!(s(Some(b"a\r\nb")), b"\"ab\"");
        assert_eq!(s(Some(b"a\0\xff")), b"{3}\r\na\x80\xff");
    }
}
