//! BODY and BODYSTRUCTURE rendering (RFC 3501 7.4.2 / RFC 9051 7.5.2), Dovecot's shapes.

use super::envelope::render_envelope;
use super::istring::{nstring, string};
use storage::mime::{BodyPart, Disposition};

/// What Dovecot sends for a multipart that has no parts (IMAP requires at least one).
const EMPTY_PART: &[u8] = b"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)";
const EMPTY_PART_EXTENDED: &[u8] =
    b"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)";

/// Writes the body structure of `part`: BODY when `extended` is false, BODYSTRUCTURE (with
/// extension data: md5, disposition, language, location) when true.
pub fn render_body(part: &BodyPart, extended: bool, out: &mut Vec<u8>) {
    if part.is_multipart() {
        multipart(part, extended, out);
    } else {
        single(part, extended, out);
    }
}

fn multipart(part: &BodyPart, extended: bool, out: &mut Vec<u8>) {
    out.push(b'(');
    if part.children.is_empty() {
        out.extend_from_slice(if extended {
            EMPTY_PART_EXTENDED
        } else {
            EMPTY_PART
        });
    }
    for child in &part.children {
        render_body(child, extended, out);
    }
    out.push(b' ');
    string(out, part.media_subtype.as_bytes());
    if extended {
        out.push(b' ');
        params(out, &part.params);
        extension_tail(part, out);
    }
    out.push(b')');
}

fn single(part: &BodyPart, extended: bool, out: &mut Vec<u8>) {
    out.push(b'(');
    string(out, part.media_type.as_bytes());
    out.push(b' ');
    string(out, part.media_subtype.as_bytes());
    out.push(b' ');
    params(out, &part.params);
    out.push(b' ');
    nstring(out, part.id.as_deref());
    out.push(b' ');
    nstring(out, part.description.as_deref());
    out.push(b' ');
    string(out, &part.encoding);
    out.push(b' ');
    out.extend_from_slice(part.body.len().to_string().as_bytes());
    if let Some(m) = &part.message {
        let (env, inner) = &**m;
        out.push(b' ');
        render_envelope(env, out);
        out.push(b' ');
        render_body(inner, extended, out);
        out.push(b' ');
        out.extend_from_slice(part.lines.to_string().as_bytes());
    } else if part.media_type == "text" {
        out.push(b' ');
        out.extend_from_slice(part.lines.to_string().as_bytes());
    }
    if extended {
        out.push(b' ');
        nstring(out, part.md5.as_deref());
        extension_tail(part, out);
    }
    out.push(b')');
}

/// Disposition, language, location: shared by both kinds of part.
fn extension_tail(part: &BodyPart, out: &mut Vec<u8>) {
    out.push(b' ');
    disposition(out, part.disposition.as_ref());
    out.push(b' ');
    match &part.language {
        None => out.extend_from_slice(b"NIL"),
        Some(langs) => {
            out.push(b'(');
            for (i, l) in langs.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                string(out, l);
            }
            out.push(b')');
        }
    }
    out.push(b' ');
    nstring(out, part.location.as_deref());
}

fn disposition(out: &mut Vec<u8>, d: Option<&Disposition>) {
    match d {
        None => out.extend_from_slice(b"NIL"),
        Some(d) => {
            out.push(b'(');
            string(out, &d.value);
            out.push(b' ');
            params(out, &d.params);
            out.push(b')');
        }
    }
}

fn params(out: &mut Vec<u8>, params: &[(Vec<u8>, Vec<u8>)]) {
    if params.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, (k, v)) in params.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        string(out, k);
        out.push(b' ');
        string(out, v);
    }
    out.push(b')');
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
