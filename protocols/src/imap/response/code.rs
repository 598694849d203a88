//! Response codes (RFC 9051 7.1, RFC 5530, and the extensions' own) and the text they lead.

use super::value::{number, set, Encoder, Value};
use std::borrow::Cow;

/// A response code: what a client may act on without reading the text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Code {
    AlreadyExists,
    /// UIDPLUS (RFC 4315): the UIDVALIDITY of the mailbox and the UIDs the messages got.
    AppendUid {
        uidvalidity: u32,
        uids: Vec<u32>,
    },
    AuthenticationFailed,
    /// CATENATE (RFC 4469): the IMAP URL that names nothing.
    BadUrl(String),
    /// The charsets SEARCH accepts.
    BadCharset(Vec<&'static str>),
    Cannot,
    Capability(Vec<String>),
    /// RFC 7162 3.2.11: the previous mailbox's responses end here.
    Closed,
    /// RFC 4978: COMPRESS when compression is already on.
    CompressionActive,
    /// UIDPLUS: source and destination UIDs, paired element by element.
    CopyUid {
        uidvalidity: u32,
        src: Vec<u32>,
        dst: Vec<u32>,
    },
    HighestModSeq(u64),
    InUse,
    /// OBJECTID (RFC 8474): the mailbox's id, at SELECT and CREATE.
    MailboxId(String),
    /// RFC 5530: a server limit (here: keywords per mailbox) was reached.
    Limit,
    /// METADATA (RFC 5464 4.2.1, 4.3): `METADATA LONGENTRIES n`, `METADATA MAXSIZE n`,
    /// `METADATA TOOMANY`.
    Metadata(MetadataCode),
    /// CONDSTORE (RFC 7162 3.1.3): the messages a conditional STORE left alone.
    Modified(Vec<u32>),
    NonExistent,
    /// RFC 5530: the user may not do this (SETQUOTA).
    NoPerm,
    OverQuota,
    /// The flags a client may set: atoms, `\*` included.
    PermanentFlags(Vec<String>),
    PrivacyRequired,
    ReadOnly,
    ReadWrite,
    ServerBug,
    TooBig,
    TryCreate,
    UidNext(u32),
    UidValidity(u32),
    Unavailable,
    /// BINARY (RFC 3516 4.3): a part's Content-Transfer-Encoding cannot be decoded.
    UnknownCte,
    Unseen(u32),
    /// RFC 6154: a CREATE ... (USE ...) attribute we do not support.
    UseAttr,
}

impl Code {
    fn encode(&self, enc: &Encoder, out: &mut Vec<u8>) {
        let word: &str = match self {
            Code::AlreadyExists => "ALREADYEXISTS",
            Code::AuthenticationFailed => "AUTHENTICATIONFAILED",
            Code::Cannot => "CANNOT",
            Code::Closed => "CLOSED",
            Code::CompressionActive => "COMPRESSIONACTIVE",
            Code::InUse => "INUSE",
            Code::Limit => "LIMIT",
            Code::NonExistent => "NONEXISTENT",
            Code::NoPerm => "NOPERM",
            Code::OverQuota => "OVERQUOTA",
            Code::PrivacyRequired => "PRIVACYREQUIRED",
            Code::ReadOnly => "READ-ONLY",
            Code::ReadWrite => "READ-WRITE",
            Code::ServerBug => "SERVERBUG",
            Code::TooBig => "TOOBIG",
            Code::TryCreate => "TRYCREATE",
            Code::Unavailable => "UNAVAILABLE",
            Code::UnknownCte => "UNKNOWN-CTE",
            Code::UseAttr => "USEATTR",
            Code::AppendUid { uidvalidity, uids } => {
                out.extend_from_slice(b"APPENDUID ");
                number(out, u64::from(*uidvalidity));
                out.push(b' ');
                set(out, uids);
                return;
            }
            Code::BadCharset(charsets) => {
                out.extend_from_slice(b"BADCHARSET ");
                let list = charsets.iter().map(|c| Value::astring(c.as_bytes()));
                enc.value(out, &Value::List(list.collect()));
                return;
            }
            Code::Capability(caps) => {
                out.extend_from_slice(b"CAPABILITY");
                for c in caps {
                    out.push(b' ');
                    out.extend_from_slice(c.as_bytes());
                }
                return;
            }
            Code::CopyUid {
                uidvalidity,
                src,
                dst,
            } => {
                out.extend_from_slice(b"COPYUID ");
                number(out, u64::from(*uidvalidity));
                // Listed one by one, not as ranges: the pairing stays obvious to any client.
                for uids in [src, dst] {
                    out.push(b' ');
                    for (i, u) in uids.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        number(out, u64::from(*u));
                    }
                }
                return;
            }
            Code::HighestModSeq(n) => return numbered(out, "HIGHESTMODSEQ", *n),
            Code::Modified(nums) => {
                out.extend_from_slice(b"MODIFIED ");
                set(out, nums);
                return;
            }
            Code::PermanentFlags(flags) => {
                out.extend_from_slice(b"PERMANENTFLAGS ");
                enc.value(out, &Value::atoms(flags.iter().map(String::as_str)));
                return;
            }
            Code::UidNext(n) => return numbered(out, "UIDNEXT", u64::from(*n)),
            Code::Metadata(m) => {
                out.extend_from_slice(b"METADATA ");
                match m {
                    MetadataCode::LongEntries(n) => numbered(out, "LONGENTRIES", *n),
                    MetadataCode::MaxSize(n) => numbered(out, "MAXSIZE", *n),
                    MetadataCode::TooMany => out.extend_from_slice(b"TOOMANY"),
                }
                return;
            }
            Code::BadUrl(u) => {
                out.extend_from_slice(b"BADURL ");
                enc.value(out, &Value::astring(u.as_bytes()));
                return;
            }
            Code::MailboxId(id) => {
                // Ids are base64url characters only: nothing to quote.
                out.extend_from_slice(b"MAILBOXID (");
                out.extend_from_slice(id.as_bytes());
                out.push(b')');
                return;
            }
            Code::UidValidity(n) => return numbered(out, "UIDVALIDITY", u64::from(*n)),
            Code::Unseen(n) => return numbered(out, "UNSEEN", u64::from(*n)),
        };
        out.extend_from_slice(word.as_bytes());
    }
}

/// What a METADATA response code says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetadataCode {
    /// GETMETADATA left out entries larger than its MAXSIZE; the largest such size.
    LongEntries(u64),
    /// SETMETADATA: a value is larger than the server takes.
    MaxSize(u64),
    /// SETMETADATA: the mailbox (or server) would have too many entries.
    TooMany,
}

fn numbered(out: &mut Vec<u8>, word: &str, n: u64) {
    out.extend_from_slice(word.as_bytes());
    out.push(b' ');
    number(out, n);
}

/// `resp-text`: an optional code, then human-readable text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RespText {
    pub code: Option<Code>,
    pub text: Cow<'static, str>,
}

impl RespText {
    pub fn new(text: impl Into<Cow<'static, str>>) -> Self {
        RespText {
            code: None,
            text: text.into(),
        }
    }
    pub fn coded(code: Code, text: impl Into<Cow<'static, str>>) -> Self {
        RespText {
            code: Some(code),
            text: text.into(),
        }
    }

    pub(super) fn encode(&self, enc: &Encoder, out: &mut Vec<u8>) {
        if let Some(code) = &self.code {
            out.push(b'[');
            code.encode(enc, out);
            out.extend_from_slice(b"] ");
        }
        text(out, &self.text);
    }
}

impl From<&'static str> for RespText {
    fn from(text: &'static str) -> Self {
        RespText::new(text)
    }
}

impl From<String> for RespText {
    fn from(text: String) -> Self {
        RespText::new(text)
    }
}

/// Human-readable text. It may quote what a client sent (a mailbox name, an option), so
/// CR, LF and NUL become spaces: nothing in a text may end the response line early.
pub(super) fn text(out: &mut Vec<u8>, t: &str) {
    out.extend(t.bytes().map(|b| {
        if matches!(b, b'\r' | b'\n' | 0) {
            b' '
        } else {
            b
        }
    }));
}
