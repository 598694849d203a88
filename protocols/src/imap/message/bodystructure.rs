//! BODY and BODYSTRUCTURE rendering (RFC 3501 7.4.2 / RFC 9051 7.5.2), Dovecot's shapes.

use super::envelope::envelope;
use super::istring::{nstring, string};
use crate::imap::response::{Encoder, Value};
use storage::mime::{BodyPart, Disposition};

/// Writes the body structure of `part`: BODY when `extended` is false, BODYSTRUCTURE (with
/// extension data: md5, disposition, language, location) when true.
pub fn render_body(part: &BodyPart, extended: bool, out: &mut Vec<u8>) {
    Encoder::default().value(out, &body(part, extended));
}

/// The BODY (`extended` false) or BODYSTRUCTURE of `part`, as the FETCH item's value.
pub fn body(part: &BodyPart, extended: bool) -> Value<'_> {
    if part.is_multipart() {
        multipart(part, extended)
    } else {
        single(part, extended)
    }
}

/// What Dovecot sends for a multipart that has no parts (IMAP requires at least one).
fn empty_part(extended: bool) -> Value<'static> {
    let mut v = vec![
        Value::string(&b"text"[..]),
        Value::string(&b"plain"[..]),
        Value::List(vec![
            Value::string(&b"charset"[..]),
            Value::string(&b"us-ascii"[..]),
        ]),
        Value::Nil,
        Value::Nil,
        Value::string(&b"7bit"[..]),
        Value::Number(0),
        Value::Number(0),
    ];
    if extended {
        v.extend([Value::Nil, Value::Nil, Value::Nil, Value::Nil]);
    }
    Value::List(v)
}

/// `((part)(part) "subtype" ...)`: the parts follow each other with no space between.
fn multipart(part: &BodyPart, extended: bool) -> Value<'_> {
    let children = if part.children.is_empty() {
        vec![empty_part(extended)]
    } else {
        part.children.iter().map(|c| body(c, extended)).collect()
    };
    let mut v = vec![
        Value::Adjacent(children),
        string(part.media_subtype.as_bytes()),
    ];
    if extended {
        v.push(params(&part.params));
        v.extend(extension_tail(part));
    }
    Value::List(v)
}

fn single(part: &BodyPart, extended: bool) -> Value<'_> {
    let mut v = vec![
        string(part.media_type.as_bytes()),
        string(part.media_subtype.as_bytes()),
        params(&part.params),
        nstring(part.id.as_deref()),
        nstring(part.description.as_deref()),
        string(&part.encoding),
        Value::Number(part.body.len()),
    ];
    if let Some(m) = &part.message {
        let (env, inner) = &**m;
        v.push(envelope(env));
        v.push(body(inner, extended));
        v.push(Value::Number(part.lines));
    } else if part.media_type == "text" {
        v.push(Value::Number(part.lines));
    }
    if extended {
        v.push(nstring(part.md5.as_deref()));
        v.extend(extension_tail(part));
    }
    Value::List(v)
}

/// Disposition, language, location: shared by both kinds of part.
fn extension_tail(part: &BodyPart) -> [Value<'_>; 3] {
    let language = match &part.language {
        None => Value::Nil,
        Some(langs) => Value::List(langs.iter().map(|l| string(l)).collect()),
    };
    [
        disposition(part.disposition.as_ref()),
        language,
        nstring(part.location.as_deref()),
    ]
}

fn disposition(d: Option<&Disposition>) -> Value<'_> {
    match d {
        None => Value::Nil,
        Some(d) => Value::List(vec![string(&d.value), params(&d.params)]),
    }
}

fn params(params: &[(Vec<u8>, Vec<u8>)]) -> Value<'_> {
    if params.is_empty() {
        return Value::Nil;
    }
    Value::List(
        params
            .iter()
            .flat_map(|(k, v)| [string(k), string(v)])
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::mime::parse_facts;

    fn crlf(s: &str) -> Vec<u8> {
        s.replace('\n', "\r\n").into_bytes()
    }

    fn bs(raw: &[u8], extended: bool) -> String {
        let mut out = Vec::new();
        render_body(&parse_facts(raw).body, extended, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn plain_message() {
        let raw = crlf("Subject: x\n\nhello\nworld\n");
        assert_eq!(
            bs(&raw, false),
            "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 14 2)"
        );
        assert_eq!(
            bs(&raw, true),
            "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 14 2 NIL NIL NIL NIL)"
        );
    }

    #[test]
    fn alternative_and_attachment() {
        let raw = crlf(
            "Content-Type: multipart/mixed; boundary=\"o\"\n\n--o\nContent-Type: multipart/alternative; boundary=i\n\n--i\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\nCaf=C3=A9\n--i\nContent-Type: text/html; charset=utf-8\n\n<b>x</b>\n--i--\n--o\nContent-Type: application/pdf; name=\"a.pdf\"\nContent-Disposition: attachment; filename=\"a.pdf\"\nContent-Transfer-Encoding: base64\nContent-Language: en\nContent-Location: http://x/a.pdf\nContent-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n\nJVBERg==\n--o--\n",
        );
        assert_eq!(
            bs(&raw, false),
            "(((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\" 9 0)(\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 8 0) \"alternative\")(\"application\" \"pdf\" (\"name\" \"a.pdf\") NIL NIL \"base64\" 8) \"mixed\")"
        );
        assert_eq!(
            bs(&raw, true),
            "(((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\" 9 0 NIL NIL NIL NIL)(\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 8 0 NIL NIL NIL NIL) \"alternative\" (\"boundary\" \"i\") NIL NIL NIL)(\"application\" \"pdf\" (\"name\" \"a.pdf\") NIL NIL \"base64\" 8 \"Q2hlY2sgSW50ZWdyaXR5IQ==\" (\"attachment\" (\"filename\" \"a.pdf\")) (\"en\") \"http://x/a.pdf\") \"mixed\" (\"boundary\" \"o\") NIL NIL NIL)"
        );
    }

    #[test]
    fn message_rfc822_part() {
        let raw = crlf("Content-Type: message/rfc822\n\nSubject: in\nFrom: a@b\n\nbody\n");
        assert_eq!(
            bs(&raw, false),
            "(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 32 (NIL \"in\" ((NIL NIL \"a\" \"b\")) ((NIL NIL \"a\" \"b\")) ((NIL NIL \"a\" \"b\")) NIL NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1) 4)"
        );
    }

    #[test]
    fn multipart_without_parts_gets_dovecots_empty_part() {
        let raw = crlf("Content-Type: multipart/mixed; boundary=q\n\nnothing\n");
        assert_eq!(
            bs(&raw, false),
            "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) \"mixed\")"
        );
        assert_eq!(
            bs(&raw, true),
            "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"q\") NIL NIL NIL)"
        );
    }
}
