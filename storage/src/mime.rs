//! The facts FETCH needs, parsed once at delivery: ENVELOPE, BODYSTRUCTURE and the byte ranges of
//! every part, so a FETCH of BODY[1.2.MIME] or BODYSTRUCTURE never re-parses the message.
//!
//! The structure is split by hand (header/body boundaries, multipart boundaries) because FETCH
//! slices `raw` with these ranges and they must be exact; header values are kept raw (ENVELOPE and
//! BODYSTRUCTURE send them undecoded, as Dovecot does). Malformed MIME degrades the way Dovecot's
//! does: a missing end boundary ends the part at its parent's end, a multipart without a boundary
//! is text, a header without a blank line is all header.

mod address;
mod content_type;
mod header;
mod parse;

pub use address::{parse_address_list, MISSING_DOMAIN, MISSING_MAILBOX};
pub use content_type::{parse_param_value, ParamValue};
pub use header::{fields, first_value, header_block, header_end, unfold, HeaderField};
pub use parse::{parse_envelope, parse_facts, MAX_DEPTH, MAX_PARTS};

use serde::{Deserialize, Serialize};

/// A byte range `[start, end)` in the raw message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Range {
    pub start: u64,
    pub end: u64,
}

impl Range {
    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes of this range in `raw`; empty when the range does not fit (facts cached for
    /// other bytes must never make a FETCH panic).
    pub fn slice<'a>(&self, raw: &'a [u8]) -> &'a [u8] {
        let (Ok(s), Ok(e)) = (usize::try_from(self.start), usize::try_from(self.end)) else {
            return &[];
        };
        raw.get(s..e).unwrap_or(&[])
    }
}

/// An address as IMAP's ENVELOPE gives it. Group syntax follows RFC 3501: a start-of-group entry
/// has `mailbox = Some(group name)`, `host = None`; the end-of-group entry has both None.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Address {
    pub name: Option<Vec<u8>>,
    pub adl: Option<Vec<u8>>,
    pub mailbox: Option<Vec<u8>>,
    pub host: Option<Vec<u8>>,
}

/// RFC 3501 ENVELOPE. Strings are the raw header bytes, unfolded, not decoded (as Dovecot sends).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Envelope {
    pub date: Option<Vec<u8>>,
    pub subject: Option<Vec<u8>>,
    pub from: Vec<Address>,
    /// When the header is absent, IMAP's sender and reply-to default to from: already applied.
    pub sender: Vec<Address>,
    pub reply_to: Vec<Address>,
    pub to: Vec<Address>,
    pub cc: Vec<Address>,
    pub bcc: Vec<Address>,
    pub in_reply_to: Option<Vec<u8>>,
    pub message_id: Option<Vec<u8>>,
}

/// Content-Disposition: value and parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Disposition {
    pub value: Vec<u8>,
    pub params: Vec<(Vec<u8>, Vec<u8>)>,
}

/// One MIME part with everything BODY and BODYSTRUCTURE need.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct BodyPart {
    /// Lower-cased type and subtype ("text", "plain"); defaults per RFC 2045 applied.
    pub media_type: String,
    pub media_subtype: String,
    pub params: Vec<(Vec<u8>, Vec<u8>)>,
    pub id: Option<Vec<u8>>,
    pub description: Option<Vec<u8>>,
    /// Content-Transfer-Encoding as given ("7bit", as Dovecot writes it, when absent).
    pub encoding: Vec<u8>,
    pub md5: Option<Vec<u8>>,
    pub disposition: Option<Disposition>,
    pub language: Option<Vec<Vec<u8>>>,
    pub location: Option<Vec<u8>>,
    /// The part's header (including the blank line that ends it) and body.
    pub header: Range,
    pub body: Range,
    /// Number of lines of the body (text/* and message/rfc822).
    pub lines: u64,
    /// Sub-parts of a multipart.
    pub children: Vec<BodyPart>,
    /// For message/rfc822: the encapsulated message's envelope and its top-level part.
    pub message: Option<Box<(Envelope, BodyPart)>>,
}

impl BodyPart {
    pub fn is_multipart(&self) -> bool {
        self.media_type == "multipart"
    }

    /// message/rfc822 (and message/global) with its encapsulated message parsed.
    pub fn is_message(&self) -> bool {
        self.message.is_some()
    }

    /// Value of a Content-Type parameter (name compared ASCII case-insensitively).
    pub fn param(&self, name: &str) -> Option<&[u8]> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v.as_slice())
    }
}

/// What is cached per object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct MessageFacts {
    pub envelope: Envelope,
    pub body: BodyPart,
    /// Size of the raw message, and of its header (so RFC822.HEADER/TEXT need no parse).
    pub size: u64,
}

#[cfg(test)]
mod tests;
