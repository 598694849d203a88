//! Values taken from message headers as IMAP strings. Header values are unfolded, so a stray
//! CR or LF is dropped (it must not end the response line), and NUL, which no IMAP string may
//! hold, becomes 0x80 as in Dovecot. How the result is quoted is the response encoder's rule.

use crate::imap::response::Value;
use std::borrow::Cow;

/// A header-derived `nstring`: NIL for None.
pub fn nstring(v: Option<&[u8]>) -> Value<'_> {
    v.map_or(Value::Nil, string)
}

/// A header-derived `string`.
pub fn string(v: &[u8]) -> Value<'_> {
    if !v.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0)) {
        return Value::String(Cow::Borrowed(v));
    }
    let clean: Vec<u8> = v
        .iter()
        .filter(|&&b| b != b'\r' && b != b'\n')
        .map(|&b| if b == 0 { 0x80 } else { b })
        .collect();
    Value::String(Cow::Owned(clean))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::response::Encoder;

    fn s(v: Option<&[u8]>) -> Vec<u8> {
        let mut out = Vec::new();
        Encoder::default().value(&mut out, &nstring(v));
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
