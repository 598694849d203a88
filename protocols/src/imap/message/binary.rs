//! BINARY[part]<partial> and BINARY.SIZE[part] (RFC 3516): the part's content with its
//! Content-Transfer-Encoding removed.

use super::section::{apply_partial, resolve, Partial};
use super::text::decode_transfer;
use storage::mime::{BodyPart, MessageFacts, Range};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BinaryError {
    /// The part's encoding is not one this server decodes: `NO [UNKNOWN-CTE]`.
    #[error("Unknown Content-Transfer-Encoding")]
    UnknownCte,
}

/// The decoded content of a part (then cut by `partial`). The whole message (empty path),
/// multiparts and message/rfc822 parts are sent as they are; a part that does not exist is empty.
pub fn decode_binary(
    raw: &[u8],
    facts: &MessageFacts,
    part: &[u32],
    partial: Option<Partial>,
) -> Result<Vec<u8>, BinaryError> {
    let whole = decoded(raw, facts, part)?;
    Ok(match partial {
        None => whole,
        Some(p) => apply_partial(&whole, p).to_vec(),
    })
}

/// BINARY.SIZE: the length of the decoded part.
pub fn binary_size(raw: &[u8], facts: &MessageFacts, part: &[u32]) -> Result<u64, BinaryError> {
    Ok(decoded(raw, facts, part)?.len() as u64)
}

fn decoded(raw: &[u8], facts: &MessageFacts, part: &[u32]) -> Result<Vec<u8>, BinaryError> {
    if part.is_empty() {
        return Ok(raw.to_vec());
    }
    let Some(p) = resolve(&facts.body, part) else {
        return Ok(Vec::new());
    };
    let body = p.body.slice(raw);
    if p.is_multipart() || p.is_message() {
        return Ok(body.to_vec());
    }
    decode_transfer(&p.encoding, body).ok_or(BinaryError::UnknownCte)
}

/// A part's body with every encoded part in it decoded, as Dovecot's URLAUTH=BINARY sends
/// it (RFC 5524): a leaf's content decoded; a multipart or message/rfc822 part as it is
/// but with each base64 or quoted-printable part inside decoded and its
/// Content-Transfer-Encoding field saying `binary`. Also the part's structure with the
/// sizes and line counts of those bytes: Dovecot's BODYPARTSTRUCTURE sent beside BINARY
/// describes what is sent (the declared encodings are kept).
pub fn binary_body(raw: &[u8], part: &BodyPart) -> Result<(Vec<u8>, BodyPart), BinaryError> {
    let mut sized = part.clone();
    let out = if let Some(m) = &part.message {
        let (env, inner) = &**m;
        let (bytes, inner_sized) = binary_entity(raw, inner)?;
        sized.message = Some(Box::new((env.clone(), inner_sized)));
        bytes
    } else if part.is_multipart() {
        let mut out = Vec::with_capacity(part.body.slice(raw).len());
        let mut pos = part.body.start;
        let mut children = Vec::with_capacity(part.children.len());
        for c in &part.children {
            // the preamble or the boundary line before the part, as it is
            out.extend_from_slice(
                Range {
                    start: pos,
                    end: c.header.start,
                }
                .slice(raw),
            );
            let (bytes, s) = binary_entity(raw, c)?;
            out.extend_from_slice(&bytes);
            children.push(s);
            pos = c.body.end;
        }
        out.extend_from_slice(
            Range {
                start: pos,
                end: part.body.end,
            }
            .slice(raw),
        );
        sized.children = children;
        out
    } else {
        decode_transfer(&part.encoding, part.body.slice(raw)).ok_or(BinaryError::UnknownCte)?
    };
    sized.body = Range {
        start: 0,
        end: out.len() as u64,
    };
    sized.lines = out.iter().filter(|&&b| b == b'\n').count() as u64;
    Ok((out, sized))
}

/// A part's header and [`binary_body`]; the header says `binary` when the body was decoded.
/// With the message's top part: the whole message as URLAUTH=BINARY sends it.
pub fn binary_entity(raw: &[u8], part: &BodyPart) -> Result<(Vec<u8>, BodyPart), BinaryError> {
    let (body, sized) = binary_body(raw, part)?;
    let header = part.header.slice(raw);
    let enc = String::from_utf8_lossy(&part.encoding)
        .trim()
        .to_ascii_lowercase();
    let decoded = !part.is_multipart()
        && !part.is_message()
        && matches!(enc.as_str(), "base64" | "quoted-printable");
    let mut out = if decoded {
        cte_binary(header)
    } else {
        header.to_vec()
    };
    out.extend_from_slice(&body);
    Ok((out, sized))
}

/// The header with its Content-Transfer-Encoding field (folded lines included) replaced
/// by `Content-Transfer-Encoding: binary`, where it was.
fn cte_binary(header: &[u8]) -> Vec<u8> {
    const NAME: &[u8] = b"content-transfer-encoding";
    let mut out = Vec::with_capacity(header.len());
    let mut in_cte = false;
    for line in header.split_inclusive(|&b| b == b'\n') {
        let folded = matches!(line.first(), Some(b' ' | b'\t'));
        if !folded {
            in_cte = line.len() > NAME.len()
                && line[..NAME.len()].eq_ignore_ascii_case(NAME)
                && line[NAME.len()..].trim_ascii_start().starts_with(b":");
            if in_cte {
                let eol: &[u8] = if line.ends_with(b"\r\n") {
                    b"\r\n"
                } else {
                    b"\n"
                };
                out.extend_from_slice(b"Content-Transfer-Encoding: binary");
                out.extend_from_slice(eol);
                continue;
            }
        }
        if !in_cte {
            out.extend_from_slice(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::mime::parse_facts;

    #[test]
    fn binary_body_decodes_every_part_inside_a_message() {
        let raw = b"Content-Type: multipart/mixed; boundary=o\r\n\r\npre\r\n--o\r\n\
            Content-Type: message/rfc822\r\n\r\nSubject: in\r\n\
            Content-Type: multipart/alternative; boundary=i\r\n\r\n--i\r\n\
            Content-Type: text/plain\r\nContent-Transfer-Encoding:\r\n base64\r\nX-A: b\r\n\r\n\
            aGVs\r\nbG8=\r\n\r\n--i\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
            a=3Db\r\n--i\r\n\r\nplain\r\n--i--\r\nepi\r\n\r\n--o--\r\n";
        let f = parse_facts(raw);
        let part = resolve(&f.body, &[1]).unwrap();
        let (bytes, sized) = binary_body(raw, part).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            "Subject: in\r\nContent-Type: multipart/alternative; boundary=i\r\n\r\n--i\r\n\
             Content-Type: text/plain\r\nContent-Transfer-Encoding: binary\r\nX-A: b\r\n\r\n\
             hello\r\n--i\r\nContent-Transfer-Encoding: binary\r\n\r\na=b\r\n--i\r\n\r\n\
             plain\r\n--i--\r\nepi\r\n"
        );
        assert_eq!(sized.body.len(), bytes.len() as u64);
        assert_eq!(sized.lines, 18);
        let inner = &sized.message.as_ref().unwrap().1;
        assert_eq!(
            (inner.children[0].body.len(), inner.children[0].lines),
            (5, 0),
            "hello"
        );
        assert_eq!(
            inner.children[0].encoding, b"base64",
            "the declared encoding stays"
        );
        // a leaf: its content
        let leaf = resolve(&f.body, &[1, 2]).unwrap();
        assert_eq!(binary_body(raw, leaf).unwrap().0, b"a=b");
    }

    #[test]
    fn binary_body_refuses_an_unknown_encoding_inside() {
        let raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
            Content-Transfer-Encoding: x-uuencode\r\n\r\nzzz\r\n--b--\r\n";
        let f = parse_facts(raw);
        assert_eq!(
            binary_body(raw, &f.body).map(|_| ()),
            Err(BinaryError::UnknownCte)
        );
    }

    #[test]
    fn base64_part_and_unknown_cte() {
        let raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n--b\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nzzz\r\n--b--\r\n";
        let f = parse_facts(raw);
        assert_eq!(decode_binary(raw, &f, &[1], None).unwrap(), b"hello");
        assert_eq!(binary_size(raw, &f, &[1]).unwrap(), 5);
        assert_eq!(
            decode_binary(
                raw,
                &f,
                &[1],
                Some(Partial {
                    origin: 1,
                    count: 2
                })
            )
            .unwrap(),
            b"el"
        );
        assert_eq!(
            decode_binary(raw, &f, &[2], None),
            Err(BinaryError::UnknownCte)
        );
        assert_eq!(decode_binary(raw, &f, &[9], None).unwrap(), b"");
        assert_eq!(binary_size(raw, &f, &[]).unwrap(), raw.len() as u64);
    }
}
