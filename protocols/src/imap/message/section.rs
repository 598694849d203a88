//! BODY[section]<partial> extraction (RFC 3501 6.4.5 / RFC 9051 6.4.5) from cached facts and the
//! raw bytes, without re-parsing the message.

use std::borrow::Cow;
use storage::mime::{fields, BodyPart, MessageFacts};

pub use crate::imap::response::SectionText;

/// `<origin.count>`: at most `count` bytes from `origin`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partial {
    pub origin: u64,
    pub count: u64,
}

/// A BODY[...] section: part numbers (empty = the whole message), an optional text specifier,
/// and an optional partial range.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SectionSpec {
    pub part: Vec<u32>,
    pub text: Option<SectionText>,
    pub partial: Option<Partial>,
}

/// Finds the part a part-number path names. The top level of a message counts as part 1 when it
/// is not multipart; below a message/rfc822 part the numbers address the encapsulated message's
/// parts by the same rule. None when no such part exists.
pub fn resolve<'a>(top: &'a BodyPart, path: &[u32]) -> Option<&'a BodyPart> {
    let mut cur = top;
    for (i, &n) in path.iter().enumerate() {
        let idx = usize::try_from(n.checked_sub(1)?).ok()?;
        let container = if i == 0 {
            cur
        } else if let Some(m) = &cur.message {
            &m.1
        } else if cur.is_multipart() {
            cur
        } else {
            return None;
        };
        cur = if container.is_multipart() {
            container.children.get(idx)?
        } else if idx == 0 {
            container
        } else {
            return None;
        };
    }
    Some(cur)
}

/// The bytes of a section (then cut by its partial). A section that does not exist gives an
/// empty string, as RFC 3501 allows and Dovecot does.
pub fn extract(raw: &[u8], facts: &MessageFacts, section: &SectionSpec) -> Vec<u8> {
    extract_ref(raw, facts, section).into_owned()
}

/// [`extract`] without copying when the section is a plain range of `raw` (BODY[], parts,
/// TEXT, HEADER, MIME): a large message is sent straight from the buffer it was read into.
pub fn extract_ref<'a>(
    raw: &'a [u8],
    facts: &MessageFacts,
    section: &SectionSpec,
) -> Cow<'a, [u8]> {
    let whole = section_bytes(raw, facts, section);
    match (section.partial, whole) {
        (None, whole) => whole,
        (Some(p), Cow::Borrowed(b)) => Cow::Borrowed(apply_partial(b, p)),
        (Some(p), Cow::Owned(o)) => Cow::Owned(apply_partial(&o, p).to_vec()),
    }
}

/// Whether the section is the message's own header or some of its fields (HEADER,
/// HEADER.FIELDS, HEADER.FIELDS.NOT, RFC822.HEADER): answered from the header block alone.
pub fn is_top_header(section: &SectionSpec) -> bool {
    section.part.is_empty()
        && matches!(
            section.text,
            Some(
                SectionText::Header
                    | SectionText::HeaderFields(_)
                    | SectionText::HeaderFieldsNot(_)
            )
        )
}

/// [`extract_ref`] of a section for which [`is_top_header`] holds, from the message's
/// top-level header block alone (what the store's header cache keeps): the same bytes.
pub fn extract_header<'a>(header: &'a [u8], section: &SectionSpec) -> Cow<'a, [u8]> {
    let whole = match &section.text {
        Some(SectionText::Header) => Cow::Borrowed(header),
        Some(SectionText::HeaderFields(names)) => Cow::Owned(filter_fields(header, names, true)),
        Some(SectionText::HeaderFieldsNot(names)) => {
            Cow::Owned(filter_fields(header, names, false))
        }
        _ => Cow::Borrowed(&[][..]),
    };
    match (section.partial, whole) {
        (None, whole) => whole,
        (Some(p), Cow::Borrowed(b)) => Cow::Borrowed(apply_partial(b, p)),
        (Some(p), Cow::Owned(o)) => Cow::Owned(apply_partial(&o, p).to_vec()),
    }
}

/// Cuts `<origin.count>` out of `data` (empty when origin is past the end).
pub fn apply_partial(data: &[u8], p: Partial) -> &[u8] {
    let len = data.len() as u64;
    let start = p.origin.min(len);
    let end = start.saturating_add(p.count).min(len);
    data.get(start as usize..end as usize).unwrap_or(&[])
}

fn section_bytes<'a>(raw: &'a [u8], facts: &MessageFacts, section: &SectionSpec) -> Cow<'a, [u8]> {
    let top = &facts.body;
    if section.part.is_empty() {
        return match &section.text {
            None => Cow::Borrowed(raw),
            Some(text) => message_text(raw, top, text),
        };
    }
    let Some(part) = resolve(top, &section.part) else {
        return Cow::Borrowed(&[]);
    };
    match &section.text {
        None => Cow::Borrowed(part.body.slice(raw)),
        Some(SectionText::Mime) => Cow::Borrowed(part.header.slice(raw)),
        Some(text) => match &part.message {
            Some(m) => message_text(raw, &m.1, text),
            // HEADER/TEXT of a part that is not a message: nothing.
            None => Cow::Borrowed(&[]),
        },
    }
}

/// HEADER, HEADER.FIELDS(.NOT) or TEXT of the message whose top-level entity is `msg`.
fn message_text<'a>(raw: &'a [u8], msg: &BodyPart, text: &SectionText) -> Cow<'a, [u8]> {
    let header = msg.header.slice(raw);
    match text {
        SectionText::Header => Cow::Borrowed(header),
        SectionText::Text => Cow::Borrowed(msg.body.slice(raw)),
        SectionText::HeaderFields(names) => Cow::Owned(filter_fields(header, names, true)),
        SectionText::HeaderFieldsNot(names) => Cow::Owned(filter_fields(header, names, false)),
        // MIME applies to a numbered part only; the parser never produces a bare MIME.
        SectionText::Mime => Cow::Borrowed(&[]),
    }
}

/// The fields of `header` whose name is (or with `keep = false`, is not) in `names`, in their
/// original order and form, followed by the blank line.
pub fn filter_fields(header: &[u8], names: &[Vec<u8>], keep: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields(header) {
        let listed = names.iter().any(|n| n.eq_ignore_ascii_case(f.name));
        if listed == keep {
            out.extend_from_slice(f.raw);
            if !f.raw.ends_with(b"\n") {
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::mime::parse_facts;

    fn crlf(s: &str) -> Vec<u8> {
        s.replace('\n', "\r\n").into_bytes()
    }

    fn get(raw: &[u8], part: &[u32], text: Option<SectionText>) -> String {
        let spec = SectionSpec {
            part: part.to_vec(),
            text,
            partial: None,
        };
        String::from_utf8(extract(raw, &parse_facts(raw), &spec)).unwrap()
    }

    #[test]
    fn single_part_message_is_part_one() {
        let raw = crlf("Subject: s\nFrom: a@b\n\nbody\n");
        assert_eq!(get(&raw, &[1], None), "body\r\n");
        assert_eq!(get(&raw, &[], Some(SectionText::Text)), "body\r\n");
        assert_eq!(
            get(&raw, &[], Some(SectionText::Header)),
            "Subject: s\r\nFrom: a@b\r\n\r\n"
        );
        assert_eq!(get(&raw, &[2], None), "");
        assert_eq!(get(&raw, &[0], None), "");
        assert_eq!(get(&raw, &[1, 1], None), "");
        assert_eq!(get(&raw, &[1], Some(SectionText::Header)), "");
    }

    #[test]
    fn header_fields_keep_folds_order_and_case() {
        let raw = crlf("Subject: a\n b\nfrom: x@y\nTo: z@w\nX-A: 1\n\nbody\n");
        assert_eq!(
            get(
                &raw,
                &[],
                Some(SectionText::HeaderFields(vec![
                    b"FROM".to_vec(),
                    b"subject".to_vec()
                ]))
            ),
            "Subject: a\r\n b\r\nfrom: x@y\r\n\r\n"
        );
        assert_eq!(
            get(
                &raw,
                &[],
                Some(SectionText::HeaderFieldsNot(vec![
                    b"subject".to_vec(),
                    b"x-a".to_vec()
                ]))
            ),
            "from: x@y\r\nTo: z@w\r\n\r\n"
        );
        // A header without a final line end still yields well-formed fields.
        let raw = b"Subject: a";
        assert_eq!(
            get(
                raw,
                &[],
                Some(SectionText::HeaderFields(vec![b"subject".to_vec()]))
            ),
            "Subject: a\r\n\r\n"
        );
    }

    #[test]
    fn nested_parts_mime_and_message_parts() {
        let raw = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\none\n--b\nContent-Type: message/rfc822\n\nSubject: inner\n\n--b\n--b--\n");
        // The line end before "--b" belongs to the delimiter, so the inner message has no blank
        // line: all of it is header and its body is empty.
        assert_eq!(get(&raw, &[1], None), "one");
        assert_eq!(
            get(&raw, &[1], Some(SectionText::Mime)),
            "Content-Type: text/plain\r\n\r\n"
        );
        assert_eq!(
            get(&raw, &[2], Some(SectionText::Header)),
            "Subject: inner\r\n"
        );
        assert_eq!(get(&raw, &[2, 1], None), "");
        assert_eq!(get(&raw, &[3], None), "");
    }

    #[test]
    fn partials() {
        let d = b"0123456789";
        let p = |origin, count| apply_partial(d, Partial { origin, count });
        assert_eq!(p(0, 3), b"012");
        assert_eq!(p(8, 5), b"89");
        assert_eq!(p(10, 1), b"");
        assert_eq!(p(u64::MAX, u64::MAX), b"");
        assert_eq!(p(3, u64::MAX), b"3456789");
    }

    #[test]
    fn facts_for_other_bytes_never_panic() {
        let facts = parse_facts(&crlf(
            "Content-Type: multipart/mixed; boundary=b\n\n--b\n\nxxxxxxxxxxxx\n--b--\n",
        ));
        let spec = SectionSpec {
            part: vec![1],
            text: None,
            partial: None,
        };
        assert_eq!(extract(b"short", &facts, &spec), b"");
    }

    proptest::proptest! {
        /// A header section from the header block alone is what the whole message gives.
        #[test]
        fn header_sections_from_the_header_block_alone(
            pieces in proptest::collection::vec(proptest::sample::select(vec![
                "Subject: s\r\n", "From: a@b\r\n", " folded\r\n", "To: t@h\n", "\r\n",
                "\n", "x", "Content-Type: multipart/mixed; boundary=a\r\n", "--a\r\n",
                "X-Priority: 1\r\n", "subject:lower\r\n", "\r",
            ]), 0..30),
            which in 0usize..3,
            names in proptest::collection::vec(proptest::sample::select(vec![
                "SUBJECT", "from", "To", "x-priority", "Content-Type",
            ]), 0..3),
            partial in proptest::option::of((0u64..40, 1u64..40)),
        ) {
            let raw = pieces.concat().into_bytes();
            let facts = parse_facts(&raw);
            let names: Vec<Vec<u8>> = names.iter().map(|n| n.as_bytes().to_vec()).collect();
            let text = match which {
                0 => SectionText::Header,
                1 => SectionText::HeaderFields(names),
                _ => SectionText::HeaderFieldsNot(names),
            };
            let spec = SectionSpec {
                part: Vec::new(),
                text: Some(text),
                partial: partial.map(|(origin, count)| Partial { origin, count }),
            };
            proptest::prop_assert!(is_top_header(&spec));
            let block = storage::mime::header_block(&raw);
            proptest::prop_assert_eq!(
                extract_header(block, &spec).into_owned(),
                extract(&raw, &facts, &spec)
            );
        }
    }
}
