//! Decoding for SEARCH and BINARY: RFC 2047 header words, transfer encodings, charsets, and the
//! searchable text of a message.

use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::parsers::MessageStream;
use mail_parser::HeaderValue;
use storage::mime::{fields, BodyPart, MessageFacts};

/// A header value as a reader sees it: unfolded, RFC 2047 words decoded, as UTF-8.
pub fn decode_header_value(v: &[u8]) -> String {
    let mut buf = Vec::with_capacity(v.len() + 1);
    buf.extend_from_slice(v);
    buf.push(b'\n');
    match MessageStream::new(&buf).parse_unstructured() {
        HeaderValue::Text(t) => t.into_owned(),
        _ => String::new(),
    }
}

/// Decodes a transfer encoding; None for one this server does not know (BINARY's UNKNOWN-CTE).
/// Decoding is lenient: bad base64 characters and malformed `=` escapes are skipped or kept
/// rather than failing the whole part, as Dovecot does.
pub fn decode_transfer(encoding: &[u8], body: &[u8]) -> Option<Vec<u8>> {
    let enc = String::from_utf8_lossy(encoding)
        .trim()
        .to_ascii_lowercase();
    match enc.as_str() {
        "" | "7bit" | "8bit" | "binary" => Some(body.to_vec()),
        "base64" => Some(decode_base64(body)),
        "quoted-printable" => Some(decode_qp(body)),
        _ => None,
    }
}

fn b64_value(c: u8) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    } as u32)
}

/// Base64 ignoring whitespace and stray characters, stopping at the first '='.
pub fn decode_base64(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() / 4 * 3);
    let (mut acc, mut n) = (0u32, 0u8);
    for &c in body {
        if c == b'=' {
            break;
        }
        let Some(v) = b64_value(c) else { continue };
        acc = (acc << 6) | v;
        n += 1;
        if n == 4 {
            out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]);
            acc = 0;
            n = 0;
        }
    }
    match n {
        2 => out.push((acc >> 4) as u8),
        3 => out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]),
        _ => {}
    }
    out
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Quoted-printable (RFC 2045 6.7): trailing blanks of a line dropped, `=` at a line end (blanks
/// after it allowed) joins lines, `=XX` decoded, anything malformed kept as it is.
pub fn decode_qp(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut rest = body;
    while !rest.is_empty() {
        let (line, eol, tail) = match rest.iter().position(|b| *b == b'\n') {
            Some(i) => {
                let line = rest.get(..i).unwrap_or(&[]);
                let (line, eol): (&[u8], &[u8]) = match line.strip_suffix(b"\r") {
                    Some(l) => (l, b"\r\n"),
                    None => (line, b"\n"),
                };
                (line, eol, rest.get(i + 1..).unwrap_or(&[]))
            }
            None => (rest, &b""[..], &b""[..]),
        };
        rest = tail;
        let trimmed_len = line.len()
            - line
                .iter()
                .rev()
                .take_while(|b| matches!(b, b' ' | b'\t'))
                .count();
        let trimmed = line.get(..trimmed_len).unwrap_or(&[]);
        let (content, soft) = match trimmed.strip_suffix(b"=") {
            Some(c) => (c, true),
            None => (trimmed, false),
        };
        let mut i = 0;
        while let Some(&c) = content.get(i) {
            if c == b'=' {
                if let (Some(h), Some(l)) = (
                    content.get(i + 1).copied().and_then(hex),
                    content.get(i + 2).copied().and_then(hex),
                ) {
                    out.push((h << 4) | l);
                    i += 3;
                    continue;
                }
            }
            out.push(c);
            i += 1;
        }
        if !soft {
            out.extend_from_slice(eol);
        }
    }
    out
}

/// Converts text in `charset` to UTF-8 (unknown charsets: lossy UTF-8).
pub fn to_utf8(charset: Option<&[u8]>, bytes: &[u8]) -> String {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return s.to_string();
    }
    match charset.and_then(charset_decoder) {
        Some(decode) => decode(bytes),
        None => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Text of an HTML body with tags removed and the common entities decoded.
fn html_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for ch in html.chars() {
        match ch {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(ch),
            _ => {}
        }
    }
    out.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

/// All header fields of a header block as "Name: decoded value" lines.
pub fn header_text(header: &[u8], out: &mut String) {
    for f in fields(header) {
        out.push_str(&String::from_utf8_lossy(f.name));
        out.push_str(": ");
        out.push_str(&decode_header_value(f.value));
        out.push('\n');
    }
}

/// The searchable body text of a message (BODY): decoded text parts, and the headers and text
/// of attached messages. Non-text leaves (images, archives) are not searched.
/// PREVIEW (RFC 8970): the start of the message's text (HTML made text), whitespace runs
/// made one space, at most 200 characters.
pub fn preview(raw: &[u8], facts: &MessageFacts) -> String {
    let mut out = String::new();
    for w in body_text(raw, facts).split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(w);
        if out.chars().count() >= 200 {
            break;
        }
    }
    out.chars().take(200).collect()
}

pub fn body_text(raw: &[u8], facts: &MessageFacts) -> String {
    let mut out = String::new();
    part_text(raw, &facts.body, &mut out, 0);
    out
}

fn part_text(raw: &[u8], part: &BodyPart, out: &mut String, depth: usize) {
    if depth > storage::mime::MAX_DEPTH + 1 {
        return;
    }
    if part.is_multipart() {
        for c in &part.children {
            part_text(raw, c, out, depth + 1);
        }
    } else if let Some(m) = &part.message {
        header_text(m.1.header.slice(raw), out);
        part_text(raw, &m.1, out, depth + 1);
    } else if part.media_type == "text" {
        let body = part.body.slice(raw);
        let decoded = decode_transfer(&part.encoding, body).unwrap_or_else(|| body.to_vec());
        let text = to_utf8(part.param("charset"), &decoded);
        if part.media_subtype == "html" {
            out.push_str(&html_text(&text));
        } else {
            out.push_str(&text);
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2047_words() {
        assert_eq!(
            decode_header_value(b" =?UTF-8?Q?R=C3=A9sum=C3=A9?= done"),
            "Résumé done"
        );
        assert_eq!(decode_header_value(b" =?iso-8859-1?b?SvZyZw==?="), "Jörg");
        assert_eq!(decode_header_value(b" plain\r\n folded"), "plain folded");
        assert_eq!(decode_header_value(b""), "");
    }

    #[test]
    fn qp_rules() {
        let input = b"hello  \r\nbar=\r\n\r\nfoo\t=\r\nbar\r\nfoo\t \t= \r\n=62\r\nfoo = \t\r\nbar\r\nfoo =\r\n=62\r\nfoo  \r\nbar=\r\n\r\nfoo_bar\r\n";
        let got = decode_qp(input);
        assert_eq!(
            got,
            b"hello\r\nbar\r\nfoo\tbar\r\nfoo\t \tb\r\nfoo bar\r\nfoo b\r\nfoo\r\nbar\r\nfoo_bar\r\n"
        );
        assert_eq!(got.len(), 65);
        assert_eq!(decode_qp(b"a=zz=4"), b"a=zz=4");
        assert_eq!(decode_qp(b"Caf=C3=A9"), "Café".as_bytes());
    }

    #[test]
    fn base64_lenient() {
        assert_eq!(
            decode_base64(b"  aGVs    \r\n bG8g  \r\n   d29y  \t \r\n    bGQ= \r\n"),
            b"hello world"
        );
        assert_eq!(
            decode_base64(b"YWJjZGVmZw1oaWprbA0KbW5vCnBxcnN0dXZxeHl6").len(),
            30
        );
        assert_eq!(decode_base64(b"!!!"), b"");
    }

    #[test]
    fn charsets_and_html() {
        assert_eq!(to_utf8(Some(b"iso-8859-1"), b"K\xf6ln"), "Köln");
        assert_eq!(to_utf8(Some(b"x-unknown"), b"K\xf6ln"), "K\u{fffd}ln");
        assert_eq!(
            html_text("<p>Caf&eacute; &amp; <b>tea</b></p>"),
            " Caf&eacute; &  tea  "
        );
    }
}
