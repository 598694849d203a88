//! parse_facts on real-world-shaped and broken messages: exact ranges, defaults, envelope.

use super::*;

fn crlf(s: &str) -> Vec<u8> {
    s.replace("\r\n", "\n").replace('\n', "\r\n").into_bytes()
}

fn text<'a>(raw: &'a [u8], r: &Range) -> &'a str {
    std::str::from_utf8(r.slice(raw)).unwrap()
}

#[test]
fn simple_message_defaults() {
    let raw = crlf("From: a@b.org\nSubject: hi\n\nbody line\n");
    let f = parse_facts(&raw);
    assert_eq!(f.size, raw.len() as u64);
    assert_eq!(f.body.media_type, "text");
    assert_eq!(f.body.media_subtype, "plain");
    assert_eq!(
        f.body.params,
        vec![(b"charset".to_vec(), b"us-ascii".to_vec())]
    );
    assert_eq!(f.body.encoding, b"7bit");
    assert_eq!(
        text(&raw, &f.body.header),
        "From: a@b.org\r\nSubject: hi\r\n\r\n"
    );
    assert_eq!(text(&raw, &f.body.body), "body line\r\n");
    assert_eq!(f.body.lines, 1);
    assert_eq!(f.envelope.subject.as_deref(), Some(&b"hi"[..]));
    assert_eq!(f.envelope.sender, f.envelope.from);
    assert_eq!(f.envelope.reply_to, f.envelope.from);
    assert!(f.envelope.to.is_empty());
    assert_eq!(f.envelope.date, None);
}

const ALTERNATIVE_WITH_ATTACHMENT: &str = "From: \"Doe, Jane\" <jane@example.com>
To: bob@example.net, Team: ann@example.net, cy@example.net;
Subject: =?UTF-8?Q?R=C3=A9sum=C3=A9?= of a very long subject that
 continues on a second line
Date: Mon, 7 Feb 2022 10:00:00 +0100
Message-ID: <abc@example.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=\"outer\"

This is a multi-part message in MIME format.
--outer
Content-Type: multipart/alternative; boundary=\"inner\"

--inner
Content-Type: text/plain; charset=utf-8; format=flowed
Content-Transfer-Encoding: quoted-printable

Caf=C3=A9 au lait
--inner
Content-Type: text/html; charset=utf-8

<p>Caf\u{e9}</p>
--inner--

--outer
Content-Type: application/pdf; name=\"cv.pdf\"
Content-Disposition: attachment;
 filename=\"cv.pdf\"
Content-Transfer-Encoding: base64
Content-ID: <part3@example.com>
Content-Language: en, de

JVBERi0xLjQK
--outer--
";

#[test]
fn multipart_mixed_with_alternative_and_attachment() {
    let raw = crlf(ALTERNATIVE_WITH_ATTACHMENT);
    let f = parse_facts(&raw);
    let top = &f.body;
    assert_eq!(
        (top.media_type.as_str(), top.media_subtype.as_str()),
        ("multipart", "mixed")
    );
    assert_eq!(top.children.len(), 2);
    let alt = &top.children[0];
    assert_eq!(alt.media_subtype, "alternative");
    assert_eq!(alt.children.len(), 2);
    let plain = &alt.children[0];
    assert_eq!(
        text(&raw, &plain.header),
        "Content-Type: text/plain; charset=utf-8; format=flowed\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    );
    assert_eq!(text(&raw, &plain.body), "Caf=C3=A9 au lait");
    assert_eq!(plain.lines, 0);
    assert_eq!(plain.encoding, b"quoted-printable");
    assert_eq!(
        plain.params,
        vec![
            (b"charset".to_vec(), b"utf-8".to_vec()),
            (b"format".to_vec(), b"flowed".to_vec())
        ]
    );
    let html = &alt.children[1];
    assert_eq!(text(&raw, &html.body), "<p>Caf\u{e9}</p>");
    // The alternative part ends before the CRLF that precedes "--outer".
    assert!(text(&raw, &alt.body).ends_with("--inner--\r\n"));
    let pdf = &top.children[1];
    assert_eq!(pdf.media_type, "application");
    assert_eq!(text(&raw, &pdf.body), "JVBERi0xLjQK");
    assert_eq!(pdf.lines, 0);
    assert_eq!(pdf.id.as_deref(), Some(&b"<part3@example.com>"[..]));
    assert_eq!(
        pdf.disposition,
        Some(Disposition {
            value: b"attachment".to_vec(),
            params: vec![(b"filename".to_vec(), b"cv.pdf".to_vec())]
        })
    );
    assert_eq!(pdf.language, Some(vec![b"en".to_vec(), b"de".to_vec()]));
    // Envelope: raw, unfolded, not decoded; group kept.
    assert_eq!(
        f.envelope.subject.as_deref(),
        Some(
            &b"=?UTF-8?Q?R=C3=A9sum=C3=A9?= of a very long subject that continues on a second line"
                [..]
        )
    );
    assert_eq!(f.envelope.from[0].name.as_deref(), Some(&b"Doe, Jane"[..]));
    assert_eq!(f.envelope.to.len(), 5);
    assert_eq!(f.envelope.to[1].mailbox.as_deref(), Some(&b"Team"[..]));
    assert_eq!(f.envelope.to[1].host, None);
    assert_eq!(f.envelope.to[4], Address::default());
    assert_eq!(
        f.envelope.message_id.as_deref(),
        Some(&b"<abc@example.com>"[..])
    );
}

#[test]
fn nested_message_rfc822() {
    let raw = crlf(
        "From: a@b\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nhi\n--b\nContent-Type: message/rfc822\n\nFrom: inner@x\nSubject: inner\n\ninner body\nline2\n--b--\n",
    );
    let f = parse_facts(&raw);
    let m = &f.body.children[1];
    assert_eq!(m.media_type, "message");
    let (env, inner) = &**m.message.as_ref().unwrap();
    assert_eq!(env.subject.as_deref(), Some(&b"inner"[..]));
    assert_eq!(
        text(&raw, &inner.header),
        "From: inner@x\r\nSubject: inner\r\n\r\n"
    );
    assert_eq!(text(&raw, &inner.body), "inner body\r\nline2");
    assert_eq!(
        text(&raw, &m.body),
        "From: inner@x\r\nSubject: inner\r\n\r\ninner body\r\nline2"
    );
    assert_eq!(m.lines, 4);
    assert_eq!(inner.lines, 1);
}

#[test]
fn digest_parts_default_to_message() {
    let raw =
        crlf("Content-Type: multipart/digest; boundary=\"d\"\n\n--d\n\nFrom: m1@x\n\nm1\n--d--\n");
    let f = parse_facts(&raw);
    let p = &f.body.children[0];
    assert_eq!(
        (p.media_type.as_str(), p.media_subtype.as_str()),
        ("message", "rfc822")
    );
    assert_eq!(text(&raw, &p.header), "\r\n");
    assert!(p.message.is_some());
}

#[test]
fn missing_end_boundary_takes_what_is_there() {
    let raw = crlf("Content-Type: multipart/mixed; boundary=x\n\npre\n--x\n\none\n--x\n\ntwo\n");
    let f = parse_facts(&raw);
    assert_eq!(f.body.children.len(), 2);
    assert_eq!(text(&raw, &f.body.children[0].body), "one");
    assert_eq!(text(&raw, &f.body.children[1].body), "two\r\n");
}

#[test]
fn multipart_without_boundary_is_text() {
    let raw = crlf("Content-Type: multipart/mixed\n\n--x\n\none\n");
    let f = parse_facts(&raw);
    assert_eq!(f.body.media_type, "text");
    assert_eq!(f.body.media_subtype, "plain");
    assert!(f.body.children.is_empty());
    assert_eq!(f.body.lines, 3);
}

#[test]
fn multipart_with_no_parts_has_no_children() {
    let raw = crlf("Content-Type: multipart/mixed; boundary=zz\n\nno parts at all\n");
    let f = parse_facts(&raw);
    assert_eq!(f.body.media_type, "multipart");
    assert!(f.body.children.is_empty());
}

#[test]
fn header_only_and_bare_lf() {
    let f = parse_facts(b"Subject: x\r\nFrom: y@z");
    assert_eq!(f.body.header.end, 21);
    assert!(f.body.body.is_empty());
    let raw = b"Subject: lf\n\nbody\n";
    let f = parse_facts(raw);
    assert_eq!(text(raw, &f.body.header), "Subject: lf\n\n");
    assert_eq!(text(raw, &f.body.body), "body\n");
    let f = parse_facts(b"");
    assert_eq!(f.size, 0);
    assert_eq!(f.body.media_type, "text");
}

#[test]
fn eight_bit_headers_are_kept_raw() {
    let raw = "Subject: Grüße aus Köln\r\nFrom: Jörg <j@x.de>\r\n\r\nb\r\n".as_bytes();
    let f = parse_facts(raw);
    assert_eq!(
        f.envelope.subject.as_deref(),
        Some("Grüße aus Köln".as_bytes())
    );
    assert_eq!(f.envelope.from[0].name.as_deref(), Some("Jörg".as_bytes()));
}

#[test]
fn deep_nesting_is_bounded() {
    let mut raw = Vec::new();
    for i in 0..200 {
        raw.extend_from_slice(
            format!("Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n").as_bytes(),
        );
    }
    raw.extend_from_slice(b"\r\nleaf\r\n");
    let f = parse_facts(&raw);
    let mut depth = 0;
    let mut p = &f.body;
    while let Some(c) = p.children.first() {
        p = c;
        depth += 1;
    }
    assert!(depth <= MAX_DEPTH, "depth {depth}");
    let mut raw = b"Content-Type: message/rfc822\r\n\r\n".repeat(500);
    raw.extend_from_slice(b"\r\nx");
    let _ = parse_facts(&raw);
}

#[test]
fn many_parts_are_bounded() {
    let mut raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n".to_vec();
    for _ in 0..(MAX_PARTS + 100) {
        raw.extend_from_slice(b"--b\r\n\r\nx\r\n");
    }
    let f = parse_facts(&raw);
    assert!(f.body.children.len() < MAX_PARTS);
}

#[test]
fn facts_roundtrip_bincode() {
    let f = parse_facts(&crlf(ALTERNATIVE_WITH_ATTACHMENT));
    let bytes = bincode::serde::encode_to_vec(&f, bincode::config::standard()).unwrap();
    let (back, _): (MessageFacts, usize) =
        bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
    assert_eq!(back, f);
}

fn check_ranges(p: &BodyPart, len: u64) {
    assert!(p.header.start <= p.header.end && p.header.end == p.body.start);
    assert!(p.body.start <= p.body.end && p.body.end <= len);
    for c in &p.children {
        assert!(c.header.start >= p.body.start && c.body.end <= p.body.end);
        check_ranges(c, len);
    }
    if let Some(m) = &p.message {
        assert_eq!(m.1.header.start, p.body.start);
        check_ranges(&m.1, len);
    }
}

proptest::proptest! {
    #[test]
    fn random_bytes_never_panic(raw in proptest::collection::vec(proptest::num::u8::ANY, 0..2048)) {
        let f = parse_facts(&raw);
        check_ranges(&f.body, raw.len() as u64);
    }

    #[test]
    fn mime_shaped_noise_never_panics(
        pieces in proptest::collection::vec(proptest::sample::select(vec![
            "Content-Type: multipart/mixed; boundary=a\r\n", "Content-Type: message/rfc822\r\n",
            "Content-Type: multipart/digest; boundary=\"b\"\r\n", "--a\r\n", "--a--\r\n", "--b\r\n",
            "\r\n", "\n", "x", "From: <@r:u@h>, g: a@b;\r\n", " folded\r\n", "Subject: s\r\n", "\r",
        ]), 0..60)
    ) {
        let raw = pieces.concat().into_bytes();
        let f = parse_facts(&raw);
        check_ranges(&f.body, raw.len() as u64);
    }

    /// The header cache keeps `header_block` and answers ENVELOPE with `parse_envelope` of it:
    /// the same as the whole-message parse, whatever the input.
    #[test]
    fn header_block_alone_gives_the_same_envelope(
        pieces in proptest::collection::vec(proptest::sample::select(vec![
            "Content-Type: multipart/mixed; boundary=a\r\n", "--a\r\n", "\r\n", "\n", "x",
            "From: \"N\" <u@h>, g: a@b;\r\n", " folded\r\n", "Subject: s\r\n", "\r",
            "Date: Mon, 7 Dec 2026 10:00:00 +0100\r\n", "To: t@h\r\n", "Cc: <@r:u@h>\r\n",
            "Message-ID: <m@h>\r\n", "In-Reply-To: <p@h>\r\n", "Reply-To: r@h\r\n",
        ]), 0..40)
    ) {
        let raw = pieces.concat().into_bytes();
        let f = parse_facts(&raw);
        let block = header_block(&raw);
        proptest::prop_assert_eq!(block, f.body.header.slice(&raw));
        proptest::prop_assert_eq!(parse_envelope(block), f.envelope);
    }
}

#[test]
fn twenty_mib_attachment_ranges_are_exact() {
    let mut raw = crlf("Subject: big\nContent-Type: multipart/mixed; boundary=\"==b==\"\n\n--==b==\nContent-Type: text/plain\n\nsee attached\n--==b==\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n");
    let start = raw.len();
    let line = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0\r\n";
    while raw.len() - start < 20 << 20 {
        raw.extend_from_slice(line);
    }
    let end = raw.len() - 2;
    raw.extend_from_slice(b"--==b==--\r\n");
    let f = parse_facts(&raw);
    let att = &f.body.children[1];
    assert_eq!(
        att.body,
        Range {
            start: start as u64,
            end: end as u64
        }
    );
    assert_eq!(att.lines, 0);
    assert_eq!(f.body.children[0].lines, 0);
}
