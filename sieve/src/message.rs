//! The message a script runs against: its header fields (editable, RFC 5293) and body, with the
//! MIME structure from `mail-parser` for the body test.

use mail_parser::parsers::MessageStream;
use mail_parser::{HeaderValue, MessageParser, MimeHeaders, PartType};

#[derive(Clone, Debug)]
pub struct Field {
    pub name: String,
    /// The value as written after the colon, folding included, without the final line end.
    pub raw: String,
}

#[derive(Clone, Debug, Default)]
pub struct Message {
    pub fields: Vec<Field>,
    pub body: Vec<u8>,
    /// Set when a script edited the header (the caller stores the edited message).
    pub edited: bool,
    /// Counts edits, so a copy made for one action is shared until the next edit.
    pub version: u64,
    /// A header without the empty line after it: the body test sees no body at all (RFC 5173 5).
    pub no_body: bool,
}

/// Unfolds and decodes (RFC 2047) a raw header value, trimmed.
pub fn decode_value(raw: &str) -> String {
    let mut b = raw.as_bytes().to_vec();
    b.extend_from_slice(b"\r\n");
    match MessageStream::new(&b).parse_unstructured() {
        HeaderValue::Text(t) => t.trim().to_string(),
        _ => unfold(raw).trim().to_string(),
    }
}

pub fn unfold(raw: &str) -> String {
    raw.replace("\r\n", "").replace('\n', "")
}

impl Message {
    pub fn parse(raw: &[u8]) -> Message {
        let mut fields: Vec<Field> = Vec::new();
        let mut pos = 0;
        let mut body_start = raw.len();
        let mut separated = false;
        while pos < raw.len() {
            let end = raw[pos..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(raw.len(), |i| pos + i + 1);
            let line = &raw[pos..end];
            let content = line.strip_suffix(b"\n").unwrap_or(line);
            let content = content.strip_suffix(b"\r").unwrap_or(content);
            if content.is_empty() {
                body_start = end;
                separated = true;
                break;
            }
            let text = String::from_utf8_lossy(content);
            if matches!(content.first(), Some(b' ' | b'\t')) {
                if let Some(f) = fields.last_mut() {
                    f.raw.push_str("\r\n");
                    f.raw.push_str(&text);
                }
            } else if let Some((name, value)) = text.split_once(':') {
                let name = name.trim_end();
                if !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic()) {
                    fields.push(Field {
                        name: name.to_string(),
                        raw: value.to_string(),
                    });
                }
            }
            pos = end;
        }
        Message {
            fields,
            body: raw.get(body_start..).unwrap_or_default().to_vec(),
            edited: false,
            version: 0,
            no_body: !separated,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 64 * self.fields.len() + 2);
        for f in &self.fields {
            out.extend_from_slice(f.name.as_bytes());
            out.push(b':');
            out.extend_from_slice(f.raw.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }

    pub fn size(&self) -> u64 {
        (self
            .fields
            .iter()
            .map(|f| f.name.len() + f.raw.len() + 3)
            .sum::<usize>()
            + 2
            + self.body.len()) as u64
    }

    /// Every raw (unfolded, undecoded) value of the named field, in order.
    pub fn raw_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |f| f.name.eq_ignore_ascii_case(name))
            .map(|f| f.raw.as_str())
    }

    /// Every decoded value of the named field, in order.
    pub fn values(&self, name: &str) -> Vec<String> {
        self.raw_values(name).map(decode_value).collect()
    }

    pub fn exists(&self, name: &str) -> bool {
        self.raw_values(name).next().is_some()
    }

    pub fn add_field(&mut self, name: &str, value: &str, last: bool) {
        let f = Field {
            name: name.to_string(),
            raw: format!(" {}", fold(value)),
        };
        if last {
            self.fields.push(f);
        } else {
            self.fields.insert(0, f);
        }
        self.edited = true;
        self.version += 1;
    }

    /// Body texts for the body test (RFC 5173): the raw body, or decoded parts whose content
    /// type matches one of `types` ("" any, "text" a main type, "text/plain" an exact type).
    pub fn body_values(&self, raw: bool, types: &[String], text: bool) -> Vec<String> {
        if self.no_body {
            return Vec::new();
        }
        if raw {
            return vec![String::from_utf8_lossy(&self.body).into_owned()];
        }
        let bytes = self.to_bytes();
        let Some(m) = MessageParser::default().parse(&bytes) else {
            return Vec::new();
        };
        let types: Vec<String> = types.iter().map(|t| t.to_ascii_lowercase()).collect();
        let mut out = Vec::new();
        body_parts(&m, &types, text, 0, &mut out);
        out
    }
}

/// Deepest message/rfc822 nesting the body test descends into.
const MAX_NESTING: usize = 16;

/// RFC 5173 5.2, over one (possibly nested) message: matching leaf parts decoded, matching
/// multiparts' prologue and epilogue, matching message/rfc822 parts' header, descending into
/// multiparts and enclosed messages.
fn body_parts(
    m: &mail_parser::Message<'_>,
    types: &[String],
    text: bool,
    depth: usize,
    out: &mut Vec<String>,
) {
    let raw = m.raw_message();
    let slice = |a: u32, b: u32| raw.get(a as usize..b as usize).unwrap_or_default();
    for part in m.parts.iter() {
        let (ty, sub) = part_type(part);
        let header = slice(part.offset_header, part.offset_body);
        let wanted = types.iter().any(|t| {
            t.is_empty()
                || match t.split_once('/') {
                    Some((a, b)) => !b.contains('/') && a == ty && b == sub,
                    None => *t == ty,
                }
        });
        // :text reads XHTML as it reads HTML.
        let xhtml = text && ty == "application" && sub == "xhtml+xml";
        match &part.body {
            PartType::Multipart(_) if wanted && !text => {
                let boundary = part
                    .content_type()
                    .and_then(|c| c.attribute("boundary"))
                    .unwrap_or_default();
                let body = slice(part.offset_body, part.offset_end);
                out.extend(prologue_epilogue(body, boundary));
            }
            PartType::Multipart(_) => {}
            PartType::Message(inner) => {
                if wanted && !text {
                    // The enclosed message's header, as one string (up to its blank line).
                    let body = slice(part.offset_body, part.offset_end);
                    let end = body
                        .windows(4)
                        .position(|w| w == b"\r\n\r\n")
                        .map(|i| i + 2)
                        .or_else(|| body.windows(2).position(|w| w == b"\n\n").map(|i| i + 1))
                        .unwrap_or(body.len());
                    let h = body.get(..end).unwrap_or_default();
                    out.push(String::from_utf8_lossy(h).into_owned());
                }
                if depth < MAX_NESTING {
                    body_parts(inner, types, text, depth + 1, out);
                }
            }
            // A part that cannot be decoded is not searched.
            _ if !valid_encoding(header) => {}
            PartType::Html(t) if wanted && text => {
                out.push(mail_parser::decoders::html::html_to_text(t))
            }
            PartType::Text(t) | PartType::Html(t) if wanted => out.push(t.to_string()),
            PartType::Binary(b) | PartType::InlineBinary(b) if xhtml => {
                let t = String::from_utf8_lossy(b);
                out.push(mail_parser::decoders::html::html_to_text(&t))
            }
            PartType::Binary(b) | PartType::InlineBinary(b) if wanted => {
                out.push(String::from_utf8_lossy(b).into_owned())
            }
            _ => {}
        }
    }
}

/// A part's type and subtype, lower case; a malformed one (no subtype, or one with a '/')
/// is application/octet-stream, and none is text/plain (RFC 2045 5.2).
fn part_type(part: &mail_parser::MessagePart<'_>) -> (String, String) {
    match part.content_type() {
        Some(ct) => {
            let ty = ct.ctype().to_ascii_lowercase();
            let sub = ct
                .subtype()
                .map(str::to_ascii_lowercase)
                .unwrap_or_default();
            if sub.is_empty() || sub.contains('/') || ty.is_empty() {
                ("application".into(), "octet-stream".into())
            } else {
                (ty, sub)
            }
        }
        None => ("text".to_string(), "plain".to_string()),
    }
}

/// Whether a part's Content-Transfer-Encoding (if any) is one that can be decoded.
fn valid_encoding(header: &[u8]) -> bool {
    let h = String::from_utf8_lossy(header).to_ascii_lowercase();
    let unfolded = h.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded
        .lines()
        .filter_map(|l| l.strip_prefix("content-transfer-encoding:"))
        .all(|v| {
            matches!(
                v.trim(),
                "7bit" | "8bit" | "binary" | "base64" | "quoted-printable"
            )
        })
}

/// The prologue and epilogue of a multipart body (the text before its first boundary and
/// after its closing one), each when not empty.
fn prologue_epilogue(body: &[u8], boundary: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(body);
    if boundary.is_empty() {
        return Vec::new();
    }
    let open = format!("--{boundary}");
    let close = format!("--{boundary}--");
    let mut prologue = String::new();
    let mut epilogue = String::new();
    let mut state = 0; // 0 prologue, 1 parts, 2 epilogue
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\r', '\n']);
        match state {
            0 if bare.starts_with(&open) => state = if bare.starts_with(&close) { 2 } else { 1 },
            0 => prologue.push_str(line),
            1 if bare.starts_with(&close) => state = 2,
            1 => {}
            _ => epilogue.push_str(line),
        }
    }
    [prologue, epilogue]
        .into_iter()
        .filter(|s| !s.trim().is_empty())
        .collect()
}

/// Folds a long header value at white space (RFC 5322 2.2.3); line breaks in it become folds.
pub fn fold(value: &str) -> String {
    // A line break before white space is a fold (taken out); any other becomes a space.
    let value = value.replace("\r\n", "\n").replace('\r', "\n");
    let value = value.trim_end_matches('\n');
    let mut flat = String::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' if matches!(chars.peek(), Some(' ' | '\t')) => {}
            '\n' => flat.push(' '),
            c => flat.push(c),
        }
    }
    let value = flat;
    let mut out = String::with_capacity(value.len() + 8);
    let mut line = 0;
    for (i, word) in value.split(' ').enumerate() {
        if i > 0 {
            if line + word.len() + 1 > 76 && line > 0 {
                out.push_str("\r\n ");
                line = 1;
            } else {
                out.push(' ');
                line += 1;
            }
        }
        out.push_str(word);
        line += word.len();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_body() {
        let m = Message::parse(
            b"Subject: =?utf-8?q?caf=C3=A9?=\r\nTo: a@b,\r\n c@d\r\nX: 1\r\nx: 2\r\n\r\nbody\r\n",
        );
        assert_eq!(m.values("subject"), vec!["caf\u{e9}"]);
        assert_eq!(m.values("to"), vec!["a@b, c@d"]);
        assert_eq!(m.values("X"), vec!["1", "2"]);
        assert_eq!(m.body, b"body\r\n");
        assert_eq!(m.size(), m.to_bytes().len() as u64);
    }

    #[test]
    fn body_parts() {
        let raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n--b--\r\n";
        let m = Message::parse(raw);
        let v = m.body_values(false, &["text/plain".into()], false);
        assert_eq!(v.len(), 1);
        assert!(v[0].contains("hello"));
        assert_eq!(m.body_values(false, &["text".into()], false).len(), 2);
        assert!(m.body_values(true, &[], false)[0].contains("--b"));
    }
}
