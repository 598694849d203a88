//! Splits a raw message into its MIME tree with exact byte ranges.

use super::address::parse_address_list;
use super::content_type::{parse_param_value, ParamValue};
use super::header::{fields, header_end, memchr, trim, unfold};
use super::{BodyPart, Disposition, Envelope, MessageFacts, Range};

/// Deeper nesting (multiparts and message/rfc822) is not split further: the part is kept as a
/// text/plain leaf. Bounds the recursion on hostile input.
pub const MAX_DEPTH: usize = 50;
/// At most this many parts per message (hostile input); later ones are not listed as parts, but
/// their bytes stay reachable through their parent's TEXT and BODY[].
pub const MAX_PARTS: usize = 10_000;

/// Parses a raw message into its facts. Never panics, whatever the input.
pub fn parse_facts(raw: &[u8]) -> MessageFacts {
    let mut budget = MAX_PARTS;
    let (envelope, body) = parse_message(raw, 0, raw.len(), 0, &mut budget);
    MessageFacts {
        envelope,
        body,
        size: raw.len() as u64,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum DefaultType {
    TextPlain,
    /// Inside multipart/digest, parts default to message/rfc822 (RFC 2046 5.1.5).
    MessageRfc822,
}

fn parse_message(
    raw: &[u8],
    start: usize,
    end: usize,
    depth: usize,
    budget: &mut usize,
) -> (Envelope, BodyPart) {
    let part = parse_entity(raw, start, end, DefaultType::TextPlain, depth, budget);
    let envelope = parse_envelope(part.header.slice(raw));
    (envelope, part)
}

/// Builds the ENVELOPE from a message header: first occurrence of each field, raw, unfolded.
/// Given the top-level header block alone, it gives what [`parse_facts`] gives for the whole
/// message (the envelope is made from that block only).
pub fn parse_envelope(header: &[u8]) -> Envelope {
    let mut env = Envelope::default();
    let mut seen = [false; 10];
    let (mut sender, mut reply_to) = (None, None);
    for f in fields(header) {
        const NAMES: [&str; 10] = [
            "date",
            "subject",
            "from",
            "sender",
            "reply-to",
            "to",
            "cc",
            "bcc",
            "in-reply-to",
            "message-id",
        ];
        let Some(idx) = NAMES
            .iter()
            .position(|n| f.name.eq_ignore_ascii_case(n.as_bytes()))
        else {
            continue;
        };
        if std::mem::replace(&mut seen[idx], true) {
            continue;
        }
        let value = unfold(f.value);
        match idx {
            0 => env.date = Some(value),
            1 => env.subject = Some(value),
            2 => env.from = parse_address_list(&value),
            3 => sender = Some(parse_address_list(&value)),
            4 => reply_to = Some(parse_address_list(&value)),
            5 => env.to = parse_address_list(&value),
            6 => env.cc = parse_address_list(&value),
            7 => env.bcc = parse_address_list(&value),
            8 => env.in_reply_to = Some(value),
            _ => env.message_id = Some(value),
        }
    }
    // RFC 3501: sender and reply-to default to from when absent (or empty, as Dovecot does).
    env.sender = sender
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| env.from.clone());
    env.reply_to = reply_to
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| env.from.clone());
    env
}

/// Parses one entity (header + body) occupying `raw[start..end]`: its `Content-*` fields, its
/// media type, then its children (multipart) or inner message (message/rfc822), recursively.
fn parse_entity(
    raw: &[u8],
    start: usize,
    end: usize,
    default: DefaultType,
    depth: usize,
    budget: &mut usize,
) -> BodyPart {
    *budget = budget.saturating_sub(1);
    let end = end.min(raw.len());
    let start = start.min(end);
    let hdr_end = header_end(raw, start, end);
    let header = raw.get(start..hdr_end).unwrap_or(&[]);
    let mut part = BodyPart {
        header: Range {
            start: start as u64,
            end: hdr_end as u64,
        },
        body: Range {
            start: hdr_end as u64,
            end: end as u64,
        },
        ..BodyPart::default()
    };
    let content_type = read_content_fields(header, &mut part);
    set_media_type(&mut part, content_type, default);
    let body_start = hdr_end;
    let too_deep = depth >= MAX_DEPTH || *budget == 0;
    if part.media_type == "multipart" {
        parse_multipart_body(raw, &mut part, body_start, end, too_deep, depth, budget);
    } else if part.media_type == "message"
        && (part.media_subtype == "rfc822" || part.media_subtype == "global")
    {
        if too_deep {
            make_plain_text(&mut part);
        } else {
            let (env, inner) = parse_message(raw, body_start, end, depth + 1, budget);
            part.message = Some(Box::new((env, inner)));
        }
    }
    if part.media_type == "text" || part.message.is_some() {
        part.lines = count_lines(raw.get(body_start..end).unwrap_or(&[]));
    }
    // RFC 2045 5.2: text without a charset is us-ascii; Dovecot appends it to the parameters.
    if part.media_type == "text" && part.param("charset").is_none() {
        part.params
            .push((b"charset".to_vec(), b"us-ascii".to_vec()));
    }
    part
}

/// Fills `part` from the header's `Content-*` fields (encoding defaults to 7bit); returns the
/// Content-Type, if any.
fn read_content_fields(header: &[u8], part: &mut BodyPart) -> Option<ParamValue> {
    let mut content_type = None;
    for f in fields(header) {
        let name = f.name.to_ascii_lowercase();
        let Some(rest) = name.strip_prefix(b"content-") else {
            continue;
        };
        // First occurrence wins, as in Dovecot.
        match rest {
            b"type" if content_type.is_none() => content_type = Some(parse_param_value(f.value)),
            b"transfer-encoding" if part.encoding.is_empty() => {
                part.encoding = trim(&unfold(f.value)).to_vec()
            }
            b"id" if part.id.is_none() => part.id = Some(unfold(f.value)),
            b"description" if part.description.is_none() => {
                part.description = Some(unfold(f.value))
            }
            b"md5" if part.md5.is_none() => part.md5 = Some(unfold(f.value)),
            b"disposition" if part.disposition.is_none() => {
                let pv = parse_param_value(f.value);
                if !pv.value.is_empty() {
                    part.disposition = Some(Disposition {
                        value: pv.value,
                        params: pv.params,
                    });
                }
            }
            b"language" if part.language.is_none() => {
                let langs: Vec<Vec<u8>> = unfold(f.value)
                    .split(|b| *b == b',')
                    .map(|l| trim(l).to_vec())
                    .filter(|l| !l.is_empty())
                    .collect();
                if !langs.is_empty() {
                    part.language = Some(langs);
                }
            }
            b"location" if part.location.is_none() => part.location = Some(unfold(f.value)),
            _ => {}
        }
    }
    if part.encoding.is_empty() {
        part.encoding = b"7bit".to_vec();
    }
    content_type
}

/// Sets the part's media type and parameters from its Content-Type, or the context's default
/// when there is none (or it lacks a type or subtype).
fn set_media_type(part: &mut BodyPart, content_type: Option<ParamValue>, default: DefaultType) {
    let (mtype, msub) = match content_type
        .as_ref()
        .and_then(|ct| split_media_type(&ct.value))
    {
        Some(ts) => ts,
        None => match default {
            DefaultType::TextPlain => ("text".to_string(), "plain".to_string()),
            DefaultType::MessageRfc822 => ("message".to_string(), "rfc822".to_string()),
        },
    };
    part.params = content_type.map(|ct| ct.params).unwrap_or_default();
    part.media_type = mtype;
    part.media_subtype = msub;
}

/// A multipart's children, split at its boundary; without a boundary, or too deep, the part
/// becomes text.
fn parse_multipart_body(
    raw: &[u8],
    part: &mut BodyPart,
    body_start: usize,
    end: usize,
    too_deep: bool,
    depth: usize,
    budget: &mut usize,
) {
    let boundary = part.param("boundary").map(<[u8]>::to_vec);
    match boundary {
        Some(b) if !b.is_empty() && !too_deep => {
            let child_default = if part.media_subtype == "digest" {
                DefaultType::MessageRfc822
            } else {
                DefaultType::TextPlain
            };
            for (s, e) in split_multipart(raw, body_start, end, &b) {
                if *budget == 0 {
                    break;
                }
                let child = parse_entity(raw, s, e, child_default, depth + 1, budget);
                part.children.push(child);
            }
        }
        _ => make_plain_text(part),
    }
}

/// A multipart that cannot be split (no boundary, or nested too deep) is treated as text, like
/// Dovecot, so BODYSTRUCTURE stays well formed and its content is still reachable as part 1.
fn make_plain_text(part: &mut BodyPart) {
    part.media_type = "text".to_string();
    part.media_subtype = "plain".to_string();
    part.params = vec![(b"charset".to_vec(), b"us-ascii".to_vec())];
    part.children.clear();
    part.message = None;
}

/// "type/subtype" lower-cased; None when either half is missing (then the default applies).
fn split_media_type(v: &[u8]) -> Option<(String, String)> {
    let slash = memchr(b'/', v)?;
    let t = trim(v.get(..slash)?);
    let s = trim(v.get(slash + 1..)?);
    if t.is_empty() || s.is_empty() {
        return None;
    }
    let t = String::from_utf8_lossy(t).to_ascii_lowercase();
    let s = String::from_utf8_lossy(s).to_ascii_lowercase();
    Some((t, s))
}

/// Lines of a body: its line feeds. A last line without one is not counted, as in Dovecot
/// (whose parser counts LFs; the line end before a boundary belongs to the boundary).
fn count_lines(body: &[u8]) -> u64 {
    body.iter().filter(|b| **b == b'\n').count() as u64
}

/// Splits the body `raw[start..end]` of a multipart at its boundary lines and returns each
/// part's range. A part ends before the line end preceding the next boundary line (that line
/// end belongs to the delimiter, RFC 2046 5.1.1). Without a close delimiter the last part runs
/// to `end`.
fn split_multipart(raw: &[u8], start: usize, end: usize, boundary: &[u8]) -> Vec<(usize, usize)> {
    let mut parts = Vec::new();
    let mut current: Option<usize> = None;
    let mut line = start;
    while line < end {
        let line_end = match memchr(b'\n', raw.get(line..end).unwrap_or(&[])) {
            Some(i) => line + i + 1,
            None => end,
        };
        if let Some(close) = boundary_line(raw.get(line..line_end).unwrap_or(&[]), boundary) {
            if let Some(s) = current {
                parts.push((s, strip_line_end_before(raw, s, line)));
            }
            if close {
                return parts;
            }
            current = Some(line_end);
        }
        line = line_end;
    }
    if let Some(s) = current {
        parts.push((s, end));
    }
    parts
}

/// Some(is_close) when `line` is `--boundary` or `--boundary--`, followed only by blanks (the
/// close delimiter may be followed by anything, as Dovecot accepts).
fn boundary_line(line: &[u8], boundary: &[u8]) -> Option<bool> {
    let rest = line.strip_prefix(b"--")?.strip_prefix(boundary)?;
    if rest.starts_with(b"--") {
        return Some(true);
    }
    if rest
        .iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
    {
        return Some(false);
    }
    None
}

/// The end of a part whose following delimiter line starts at `delim`: the CRLF (or LF) just
/// before the delimiter is not part of the body, unless it is before the part's start.
fn strip_line_end_before(raw: &[u8], part_start: usize, delim: usize) -> usize {
    let mut e = delim;
    if e > part_start && raw.get(e - 1) == Some(&b'\n') {
        e -= 1;
        if e > part_start && raw.get(e - 1) == Some(&b'\r') {
            e -= 1;
        }
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_counting() {
        assert_eq!(count_lines(b""), 0);
        assert_eq!(count_lines(b"a\r\n"), 1);
        assert_eq!(count_lines(b"a\r\nb"), 1);
    }

    #[test]
    fn boundary_lines() {
        assert_eq!(boundary_line(b"--foo\r\n", b"foo"), Some(false));
        assert_eq!(boundary_line(b"--foo \r\n", b"foo"), Some(false));
        assert_eq!(boundary_line(b"--foo--\r\n", b"foo"), Some(true));
        assert_eq!(boundary_line(b"--foobar\r\n", b"foo"), None);
        assert_eq!(boundary_line(b"-foo\r\n", b"foo"), None);
    }
}
