use super::*;
use std::collections::BTreeSet;
use storage::{Guid, ObjectId};

fn meta(uid: u32, flags: &[Flag], size: u64, date: i64, tz_min: i32) -> MessageMeta {
    MessageMeta {
        uid,
        guid: Guid::default(),
        object: ObjectId([0; 32]),
        flags: flags.iter().cloned().collect::<BTreeSet<_>>(),
        modseq: uid as u64 * 10,
        internal_date: date,
        internal_date_tz_min: tz_min,
        size,
        saved_ms: 0,
    }
}

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

fn eval(key: &SearchKey, raw: &str, meta: &MessageMeta) -> bool {
    let raw = raw.replace('\n', "\r\n").into_bytes();
    let content = LazyContent::new(move || Some(raw.clone()), || None);
    let ctx = MessageCtx::new(1, meta, false, 1, meta.uid, &content);
    matches(key, &ctx)
}

fn s(v: &str) -> String {
    v.to_string()
}

#[test]
fn sequence_sets_with_star_and_reversed_ranges() {
    use SeqBound::*;
    let set = SequenceSet(vec![(Num(4), Num(2)), (Star, Star)]);
    assert!(set.contains(3, 10) && set.contains(10, 10) && !set.contains(5, 10));
    assert!(!SequenceSet(vec![(Star, Star)]).contains(0, 0));
    assert!(SequenceSet(vec![(Num(7), Star)]).contains(5, 5));
}

#[test]
fn flag_only_search_never_loads_content() {
    let m = meta(1, &[Flag::Seen], 10, 0, 0);
    let content = LazyContent::new(|| -> Option<Vec<u8>> { panic!("raw loaded") }, || None);
    let ctx = MessageCtx::new(1, &m, true, 1, 1, &content);
    let key = SearchKey::And(vec![
        SearchKey::Seen,
        SearchKey::Not(Box::new(SearchKey::Deleted)),
        SearchKey::Recent,
    ]);
    assert!(matches(&key, &ctx));
    assert!(!content.loaded());
    // A failing flag key in an AND spares the body too.
    let key = SearchKey::And(vec![SearchKey::Body(s("x")), SearchKey::Deleted]);
    assert!(!matches(&key, &ctx));
    assert!(!content.loaded());
}

#[test]
fn flags_keywords_recent_new_old() {
    let m = meta(1, &[Flag::Answered, Flag::Keyword(s("$Hello"))], 10, 0, 0);
    let content = LazyContent::new(|| None, || None);
    let ctx = MessageCtx::new(1, &m, true, 1, 1, &content);
    assert!(matches(&SearchKey::Answered, &ctx));
    assert!(matches(&SearchKey::Keyword(s("$hello")), &ctx));
    assert!(!matches(&SearchKey::Unkeyword(s("$HELLO")), &ctx));
    assert!(matches(&SearchKey::Keyword(s("\\Answered")), &ctx));
    assert!(matches(&SearchKey::New, &ctx));
    assert!(!matches(&SearchKey::Old, &ctx));
    assert!(matches(&SearchKey::Unseen, &ctx));
    assert!(matches(&SearchKey::ModSeq(10), &ctx) && !matches(&SearchKey::ModSeq(11), &ctx));
    // Unreadable content matches no content key and does not panic.
    assert!(!matches(&SearchKey::Body(s("x")), &ctx));
    assert!(matches(
        &SearchKey::Not(Box::new(SearchKey::Subject(s("x")))),
        &ctx
    ));
}

#[test]
fn internal_date_compares_by_day_in_its_zone() {
    // 2007-03-24 23:30 +0200 is 21:30 UTC: the day is the 24th in the sender's zone.
    let t = 1174771800;
    let m = meta(1, &[], 10, t, 120);
    let raw = "Subject: x\n\nb\n";
    assert!(eval(&SearchKey::On(d(2007, 3, 24)), raw, &m));
    assert!(eval(&SearchKey::Before(d(2007, 3, 25)), raw, &m));
    assert!(!eval(&SearchKey::Before(d(2007, 3, 24)), raw, &m));
    assert!(eval(&SearchKey::Since(d(2007, 3, 24)), raw, &m));
    // At +0300 the same instant is already the 25th.
    let m = meta(1, &[], 10, t + 3600, 180);
    assert!(eval(&SearchKey::On(d(2007, 3, 25)), raw, &m));
    // Without a Date header SENTON falls back to the internal date.
    assert!(eval(&SearchKey::SentOn(d(2007, 3, 25)), raw, &m));
}

#[test]
fn headers_decoded_and_addresses_normalised() {
    let m = meta(1, &[], 10, 0, 0);
    let raw = "From: =?UTF-8?Q?J=C3=B6rg_M=C3=BCller?= <joerg@example.de>\nTo: list: a@x.org, b@y.org;\nSubject: =?iso-8859-1?q?K=F6ln?= trip\n  continued\nX-Tag: alpha\nX-Tag: beta\n\nbody\n";
    assert!(eval(&SearchKey::From(s("jörg müller")), raw, &m));
    assert!(eval(&SearchKey::From(s("JOERG@EXAMPLE.DE")), raw, &m));
    assert!(eval(&SearchKey::To(s("list")), raw, &m));
    assert!(eval(&SearchKey::To(s("b@y.org")), raw, &m));
    assert!(eval(&SearchKey::Subject(s("köln trip continued")), raw, &m));
    assert!(eval(&SearchKey::Header(s("x-tag"), s("BETA")), raw, &m));
    assert!(eval(&SearchKey::Header(s("X-TAG"), s("")), raw, &m));
    assert!(!eval(&SearchKey::Header(s("x-none"), s("")), raw, &m));
    assert!(!eval(&SearchKey::Cc(s("")), raw, &m));
    assert!(eval(&SearchKey::Text(s("ALPHA")), raw, &m));
    assert!(!eval(&SearchKey::Body(s("alpha")), raw, &m));
}

#[test]
fn body_search_decodes_parts_and_skips_binaries() {
    let m = meta(1, &[], 10, 0, 0);
    let raw = "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\nGr=FC=DFe aus K=F6ln\n--b\nContent-Type: text/html\nContent-Transfer-Encoding: base64\n\nPHA+SGVsbG8gPGI+d29ybGQ8L2I+PC9wPg==\n--b\nContent-Type: application/octet-stream\n\nsecretword\n--b\nContent-Type: message/rfc822\n\nSubject: inner subject\n\ninner text\n--b--\n";
    assert!(eval(&SearchKey::Body(s("grüße aus köln")), raw, &m));
    assert!(eval(&SearchKey::Body(s("hello")), raw, &m));
    assert!(eval(&SearchKey::Body(s("world")), raw, &m));
    assert!(!eval(&SearchKey::Body(s("<b>")), raw, &m));
    assert!(!eval(&SearchKey::Body(s("secretword")), raw, &m));
    assert!(eval(&SearchKey::Body(s("inner subject")), raw, &m));
    assert!(eval(&SearchKey::Body(s("INNER TEXT")), raw, &m));
}

#[test]
fn or_not_and_sizes_uids() {
    let m = meta(7, &[Flag::Seen], 100, 0, 0);
    let raw = "Subject: x\n\nb\n";
    use SearchKey as K;
    assert!(eval(
        &K::Or(Box::new(K::Smaller(50)), Box::new(K::Larger(99))),
        raw,
        &m
    ));
    assert!(!eval(
        &K::Or(Box::new(K::Smaller(100)), Box::new(K::Larger(100))),
        raw,
        &m
    ));
    assert!(eval(
        &K::Uid(SequenceSet(vec![(SeqBound::Star, SeqBound::Star)])),
        raw,
        &m
    ));
    assert!(!eval(
        &K::Not(Box::new(K::Uid(SequenceSet(vec![(
            SeqBound::Num(1),
            SeqBound::Num(9)
        )])))),
        raw,
        &m
    ));
    assert!(eval(
        &K::SequenceSet(SequenceSet(vec![(SeqBound::Num(1), SeqBound::Num(1))])),
        raw,
        &m
    ));
    assert!(eval(&K::And(vec![]), raw, &m));
}

#[test]
fn header_keys_read_the_header_cache_not_the_message() {
    let m = meta(1, &[], 10, 0, 0);
    let header = b"Subject: Cached Subject\r\nFrom: Ann <ann@example.org>\r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\n\r\n".to_vec();
    let content = LazyContent::new(|| -> Option<Vec<u8>> { panic!("raw loaded") }, || None)
        .with_header(Box::new(move || Some(header.clone())));
    let ctx = MessageCtx::new(1, &m, false, 1, 1, &content);
    assert!(matches(&SearchKey::Subject(s("cached subj")), &ctx));
    assert!(matches(&SearchKey::From(s("ann@example")), &ctx));
    assert!(matches(&SearchKey::Header(s("date"), s("dec 2026")), &ctx));
    assert!(matches(&SearchKey::SentOn(d(2026, 12, 7)), &ctx));
    assert!(!matches(&SearchKey::Subject(s("other")), &ctx));
    assert_eq!(
        content.envelope().and_then(|e| e.subject.as_deref()),
        Some(&b"Cached Subject"[..])
    );
    assert!(!content.raw_loaded());
}

#[test]
fn without_the_cache_the_header_is_cut_from_the_message() {
    let m = meta(1, &[], 10, 0, 0);
    let raw = b"Subject: From Raw\r\n\r\nbody subject words\r\n".to_vec();
    let r2 = raw.clone();
    let content =
        LazyContent::new(move || Some(r2.clone()), || None).with_header(Box::new(|| None));
    let ctx = MessageCtx::new(1, &m, false, 1, 1, &content);
    assert!(matches(&SearchKey::Subject(s("from raw")), &ctx));
    assert!(!matches(&SearchKey::Subject(s("words")), &ctx));
    assert_eq!(content.header(), Some(&b"Subject: From Raw\r\n\r\n"[..]));
}
