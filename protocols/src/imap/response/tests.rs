//! What a client reads for each kind of value and response (RFC 9051 4 and 7).

use super::value::{form, Form, QUOTED_MAX};
use super::*;
use std::borrow::Cow;
use storage::{Flag, Flags};

const RFC: Encoder = Encoder { utf8: false };
const UTF8: Encoder = Encoder { utf8: true };

fn v(enc: Encoder, value: Value<'_>) -> String {
    let mut out = Vec::new();
    enc.value(&mut out, &value);
    String::from_utf8_lossy(&out).into_owned()
}

fn u(r: Untagged<'_>) -> String {
    let mut out = Vec::new();
    RFC.untagged(&mut out, &r);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn astrings_are_atoms_only_when_safe() {
    assert_eq!(v(RFC, Value::astring(&b"INBOX"[..])), "INBOX");
    assert_eq!(v(RFC, Value::astring(&b"a b"[..])), "\"a b\"");
    // NIL as an atom would read as no value at all.
    assert_eq!(v(RFC, Value::astring(&b"nil"[..])), "\"nil\"");
    assert_eq!(v(RFC, Value::astring(&b""[..])), "\"\"");
    for special in ["a(b", "a)b", "a{b", "a%", "a*", "a\"b", "a\\b", "a]b"] {
        assert_eq!(
            form(special.as_bytes(), true, false),
            Form::Quoted,
            "{special}"
        );
    }
}

#[test]
fn strings_escape_quotes_and_backslashes() {
    assert_eq!(v(RFC, Value::string(&b""[..])), "\"\"");
    assert_eq!(v(RFC, Value::string(&b"INBOX"[..])), "\"INBOX\"");
    assert_eq!(
        v(RFC, Value::string(&b"a \"b\" \\c"[..])),
        "\"a \\\"b\\\" \\\\c\""
    );
    assert_eq!(v(RFC, Value::string(&b"tab\there"[..])), "\"tab\there\"");
}

#[test]
fn what_cannot_be_quoted_is_a_literal() {
    assert_eq!(v(RFC, Value::string(&b"x\r\ny"[..])), "{4}\r\nx\r\ny");
    assert_eq!(v(RFC, Value::string(&b"a\rb"[..])), "{3}\r\na\rb");
    assert_eq!(v(RFC, Value::string(&b"bell\x07"[..])), "{5}\r\nbell\x07");
    // 8-bit goes in a literal, even valid UTF-8: only mailbox names are quoted in UTF-8.
    assert_eq!(v(UTF8, Value::string("Jörg".as_bytes())), "{5}\r\nJörg");
    // NUL may not be in a literal either: it is sent as 0x80.
    let mut out = Vec::new();
    RFC.value(&mut out, &Value::string(&b"a\0"[..]));
    assert_eq!(out, b"{2}\r\na\x80");
    // One length limit for every string.
    let long = vec![b'x'; QUOTED_MAX];
    assert_eq!(form(&long, false, false), Form::Quoted);
    let longer = vec![b'x'; QUOTED_MAX + 1];
    assert_eq!(form(&longer, false, false), Form::Literal);
    assert_eq!(form(&longer, true, true), Form::Atom);
}

#[test]
fn nil_numbers_lists_sets() {
    assert_eq!(v(RFC, Value::nstring(None::<&[u8]>)), "NIL");
    assert_eq!(v(RFC, Value::nstring(Some(&b"x"[..]))), "\"x\"");
    assert_eq!(v(RFC, Value::Number(4294967296)), "4294967296");
    assert_eq!(
        v(
            RFC,
            Value::List(vec![Value::Nil, Value::atom("\\Seen"), Value::List(vec![])])
        ),
        "(NIL \\Seen ())"
    );
    assert_eq!(
        v(
            RFC,
            Value::Adjacent(vec![Value::List(vec![]), Value::List(vec![])])
        ),
        "()()"
    );
    assert_eq!(
        v(RFC, Value::Set((&[1, 2, 3, 5, 7, 8][..]).into())),
        "1:3,5,7:8"
    );
    assert_eq!(v(RFC, Value::Set((&[5, 2, 3, 4, 1][..]).into())), "5,2:4,1");
    assert_eq!(v(RFC, Value::Set((&[][..]).into())), "");
    assert_eq!(v(RFC, Value::Set((&[u32::MAX][..]).into())), "4294967295");
}

#[test]
fn literals_and_literal8() {
    assert_eq!(v(RFC, Value::Literal((&b"ab"[..]).into())), "{2}\r\nab");
    assert_eq!(v(RFC, Value::Literal((&b""[..]).into())), "{0}\r\n");
    let mut out = Vec::new();
    RFC.value(&mut out, &Value::Literal8((&b"a\0"[..]).into()));
    assert_eq!(out, b"~{2}\r\na\0");
}

#[test]
fn mailbox_names_follow_the_clients_encoding() {
    let name = || Value::Mailbox(Cow::Borrowed("Entwürfe"));
    assert_eq!(v(RFC, name()), "Entw&APw-rfe");
    assert_eq!(v(UTF8, name()), "\"Entwürfe\"");
    assert_eq!(v(RFC, Value::Mailbox("a b".into())), "\"a b\"");
    assert_eq!(v(UTF8, Value::Mailbox("INBOX".into())), "INBOX");
    assert_eq!(v(RFC, Value::Mailbox("".into())), "\"\"");
}

#[test]
fn tagged_with_and_without_codes() {
    let t = |status, text: RespText| {
        let mut out = Vec::new();
        RFC.tagged(
            &mut out,
            &Tagged {
                tag: "a1",
                status,
                text: &text,
            },
        );
        String::from_utf8(out).unwrap()
    };
    assert_eq!(t(Status::Ok, "Done.".into()), "a1 OK Done.\r\n");
    assert_eq!(
        t(
            Status::No,
            RespText::coded(Code::TryCreate, "Mailbox doesn't exist: x")
        ),
        "a1 NO [TRYCREATE] Mailbox doesn't exist: x\r\n"
    );
    assert_eq!(
        t(Status::Bad, RespText::new("line\r\nbreak")),
        "a1 BAD line  break\r\n",
        "text cannot end the line early"
    );
}

fn code(c: Code) -> String {
    u(Untagged::Ok(RespText::coded(c, "x")))
}

#[test]
fn response_codes() {
    assert_eq!(code(Code::UidNext(5)), "* OK [UIDNEXT 5] x\r\n");
    assert_eq!(code(Code::UidValidity(7)), "* OK [UIDVALIDITY 7] x\r\n");
    assert_eq!(code(Code::Unseen(2)), "* OK [UNSEEN 2] x\r\n");
    assert_eq!(code(Code::HighestModSeq(9)), "* OK [HIGHESTMODSEQ 9] x\r\n");
    assert_eq!(
        code(Code::AppendUid {
            uidvalidity: 3,
            uids: vec![4, 5, 6, 9]
        }),
        "* OK [APPENDUID 3 4:6,9] x\r\n"
    );
    assert_eq!(
        code(Code::CopyUid {
            uidvalidity: 3,
            src: vec![1, 2],
            dst: vec![7, 8]
        }),
        "* OK [COPYUID 3 1,2 7,8] x\r\n"
    );
    assert_eq!(
        code(Code::Modified(vec![1, 3, 4])),
        "* OK [MODIFIED 1,3:4] x\r\n"
    );
    assert_eq!(
        code(Code::PermanentFlags(vec!["\\Seen".into(), "\\*".into()])),
        "* OK [PERMANENTFLAGS (\\Seen \\*)] x\r\n"
    );
    assert_eq!(
        code(Code::BadCharset(vec!["US-ASCII", "UTF-8"])),
        "* OK [BADCHARSET (US-ASCII UTF-8)] x\r\n"
    );
    assert_eq!(
        code(Code::Capability(vec!["IMAP4rev1".into(), "IDLE".into()])),
        "* OK [CAPABILITY IMAP4rev1 IDLE] x\r\n"
    );
    for (c, word) in [
        (Code::AlreadyExists, "ALREADYEXISTS"),
        (Code::AuthenticationFailed, "AUTHENTICATIONFAILED"),
        (Code::Cannot, "CANNOT"),
        (Code::Closed, "CLOSED"),
        (Code::InUse, "INUSE"),
        (Code::NonExistent, "NONEXISTENT"),
        (Code::OverQuota, "OVERQUOTA"),
        (Code::PrivacyRequired, "PRIVACYREQUIRED"),
        (Code::ReadOnly, "READ-ONLY"),
        (Code::ReadWrite, "READ-WRITE"),
        (Code::ServerBug, "SERVERBUG"),
        (Code::TooBig, "TOOBIG"),
        (Code::TryCreate, "TRYCREATE"),
        (Code::Unavailable, "UNAVAILABLE"),
        (Code::UnknownCte, "UNKNOWN-CTE"),
        (Code::UseAttr, "USEATTR"),
    ] {
        assert_eq!(code(c), format!("* OK [{word}] x\r\n"));
    }
}

#[test]
fn conditions_and_session_data() {
    assert_eq!(
        u(Untagged::Bye("Logging out".into())),
        "* BYE Logging out\r\n"
    );
    assert_eq!(u(Untagged::No("x".into())), "* NO x\r\n");
    assert_eq!(u(Untagged::Bad("x".into())), "* BAD x\r\n");
    let caps = ["IMAP4rev1".to_string(), "IDLE".to_string()];
    assert_eq!(
        u(Untagged::Capability(&caps)),
        "* CAPABILITY IMAP4rev1 IDLE\r\n"
    );
    assert_eq!(u(Untagged::Enabled(vec![])), "* ENABLED\r\n");
    assert_eq!(
        u(Untagged::Enabled(vec!["CONDSTORE", "IMAP4rev2"])),
        "* ENABLED CONDSTORE IMAP4rev2\r\n"
    );
    assert_eq!(
        u(Untagged::Id(Some(vec![
            ("name", Some("x y")),
            ("vendor", None)
        ]))),
        "* ID (\"name\" \"x y\" \"vendor\" NIL)\r\n"
    );
    assert_eq!(u(Untagged::Id(None)), "* ID NIL\r\n");
    assert_eq!(
        u(Untagged::Namespace {
            personal: vec![("", '/')],
            other: vec![],
            shared: vec![]
        }),
        "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n"
    );
}

#[test]
fn mailbox_data() {
    assert_eq!(
        u(Untagged::Flags(vec!["\\Seen".into(), "$Junk".into()])),
        "* FLAGS (\\Seen $Junk)\r\n"
    );
    assert_eq!(u(Untagged::Exists(3)), "* 3 EXISTS\r\n");
    assert_eq!(u(Untagged::Recent(0)), "* 0 RECENT\r\n");
    assert_eq!(u(Untagged::Expunge(2)), "* 2 EXPUNGE\r\n");
    assert_eq!(
        u(Untagged::Vanished {
            earlier: false,
            uids: vec![1, 2, 4].into()
        }),
        "* VANISHED 1:2,4\r\n"
    );
    assert_eq!(
        u(Untagged::Vanished {
            earlier: true,
            uids: vec![9].into()
        }),
        "* VANISHED (EARLIER) 9\r\n"
    );
    assert_eq!(
        u(Untagged::List {
            lsub: false,
            attributes: vec!["\\HasNoChildren", "\\Sent"],
            delimiter: Some('/'),
            mailbox: "Sent Items",
            childinfo: vec![],
        }),
        "* LIST (\\HasNoChildren \\Sent) \"/\" \"Sent Items\"\r\n"
    );
    assert_eq!(
        u(Untagged::List {
            lsub: true,
            attributes: vec![],
            delimiter: None,
            mailbox: "a",
            childinfo: vec!["SUBSCRIBED"],
        }),
        "* LSUB () NIL a (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n"
    );
    assert_eq!(
        u(Untagged::Status {
            mailbox: "INBOX",
            mailbox_id: None,
            items: vec![("MESSAGES", 2), ("UIDNEXT", 9)]
        }),
        "* STATUS INBOX (MESSAGES 2 UIDNEXT 9)\r\n"
    );
}

#[test]
fn search_sort_esearch() {
    assert_eq!(
        u(Untagged::Search {
            nums: vec![].into(),
            modseq: None
        }),
        "* SEARCH\r\n"
    );
    assert_eq!(
        u(Untagged::Search {
            nums: vec![2, 3, 4].into(),
            modseq: Some(7)
        }),
        "* SEARCH 2 3 4 (MODSEQ 7)\r\n"
    );
    assert_eq!(
        u(Untagged::Sort {
            nums: vec![3, 1].into(),
            modseq: None
        }),
        "* SORT 3 1\r\n"
    );
    assert_eq!(
        u(Untagged::ESearch(ESearch {
            tag: "A282",
            uid: true,
            min: Some(2),
            max: Some(9),
            all: Some(vec![2, 3, 4, 9].into()),
            count: Some(4),
            modseq: Some(12),
            ..ESearch::default()
        })),
        "* ESEARCH (TAG \"A282\") UID MIN 2 MAX 9 ALL 2:4,9 COUNT 4 MODSEQ 12\r\n"
    );
    assert_eq!(
        u(Untagged::ESearch(ESearch {
            tag: "t",
            count: Some(0),
            ..ESearch::default()
        })),
        "* ESEARCH (TAG \"t\") COUNT 0\r\n"
    );
    // PARTIAL (RFC 9394) and context updates (RFC 5267).
    assert_eq!(
        u(Untagged::ESearch(ESearch {
            tag: "p",
            partial: Some(((2, 4), Some(vec![3, 4, 2].into()))),
            ..ESearch::default()
        })),
        "* ESEARCH (TAG \"p\") PARTIAL (2:4 3:4,2)\r\n"
    );
    assert_eq!(
        u(Untagged::ESearch(ESearch {
            tag: "p",
            uid: true,
            partial: Some(((-1, -5), None)),
            ..ESearch::default()
        })),
        "* ESEARCH (TAG \"p\") UID PARTIAL (-1:-5 NIL)\r\n"
    );
    assert_eq!(
        u(Untagged::ESearch(ESearch {
            tag: "c",
            addto: vec![(0, vec![1, 2, 4])],
            ..ESearch::default()
        })),
        "* ESEARCH (TAG \"c\") ADDTO (0 1:2,4)\r\n"
    );
    assert_eq!(
        u(Untagged::ESearch(ESearch {
            tag: "c",
            removefrom: vec![(3, vec![7]), (1, vec![5])],
            ..ESearch::default()
        })),
        "* ESEARCH (TAG \"c\") REMOVEFROM (3 7 1 5)\r\n"
    );
}

#[test]
fn fetch_items() {
    let mut flags = Flags::new();
    flags.insert(Flag::Seen);
    flags.insert(Flag::Keyword("$Junk".into()));
    let section = SectionName::Body {
        part: vec![1, 2],
        text: Some(SectionText::HeaderFields(vec![
            b"From".to_vec(),
            b"x y".to_vec(),
        ])),
        origin: Some(5),
    };
    let got = u(Untagged::Fetch {
        seq: 4,
        items: vec![
            FetchItem::Uid(10),
            FetchItem::Flags {
                flags: &flags,
                recent: true,
            },
            FetchItem::ModSeq(33),
            FetchItem::InternalDate {
                secs: 3600,
                tz_min: -420,
            },
            FetchItem::Rfc822Size(120),
            FetchItem::Envelope(Value::List(vec![Value::Nil])),
            FetchItem::Section {
                name: &section,
                data: (&b"ab"[..]).into(),
            },
            FetchItem::Binary {
                part: &[2],
                origin: None,
                data: (&b"a\0"[..]).into(),
            },
            FetchItem::Binary {
                part: &[],
                origin: Some(1),
                data: (&b"x"[..]).into(),
            },
            FetchItem::BinarySize {
                part: &[1, 1],
                size: 7,
            },
        ],
    });
    assert_eq!(
        got,
        "* 4 FETCH (UID 10 FLAGS (\\Seen $Junk \\Recent) MODSEQ (33) \
         INTERNALDATE \"31-Dec-1969 18:00:00 -0700\" RFC822.SIZE 120 ENVELOPE (NIL) \
         BODY[1.2.HEADER.FIELDS (FROM \"X Y\")]<5> {2}\r\nab BINARY[2] ~{2}\r\na\0 \
         BINARY[]<1> {1}\r\nx BINARY.SIZE[1.1] 7)\r\n"
    );
    let name = |n: &SectionName| {
        let r = Untagged::Fetch {
            seq: 1,
            items: vec![FetchItem::Section {
                name: n,
                data: (&b""[..]).into(),
            }],
        };
        u(r)
    };
    assert_eq!(name(&SectionName::Rfc822), "* 1 FETCH (RFC822 {0}\r\n)\r\n");
    assert_eq!(
        name(&SectionName::Rfc822Header),
        "* 1 FETCH (RFC822.HEADER {0}\r\n)\r\n"
    );
    assert_eq!(
        name(&SectionName::Rfc822Text),
        "* 1 FETCH (RFC822.TEXT {0}\r\n)\r\n"
    );
    let body = |part: Vec<u32>, text| SectionName::Body {
        part,
        text,
        origin: None,
    };
    assert_eq!(name(&body(vec![], None)), "* 1 FETCH (BODY[] {0}\r\n)\r\n");
    assert_eq!(
        name(&body(vec![], Some(SectionText::Header))),
        "* 1 FETCH (BODY[HEADER] {0}\r\n)\r\n"
    );
    assert_eq!(
        name(&body(vec![3], Some(SectionText::Mime))),
        "* 1 FETCH (BODY[3.MIME] {0}\r\n)\r\n"
    );
    assert_eq!(
        name(&body(
            vec![],
            Some(SectionText::HeaderFieldsNot(vec![b"to".to_vec()]))
        )),
        "* 1 FETCH (BODY[HEADER.FIELDS.NOT (TO)] {0}\r\n)\r\n"
    );
    assert_eq!(
        name(&body(vec![2], None)),
        "* 1 FETCH (BODY[2] {0}\r\n)\r\n"
    );
}

#[test]
fn continuation_requests() {
    let mut out = Vec::new();
    RFC.continuation(&mut out, "idling");
    assert_eq!(out, b"+ idling\r\n");
}
