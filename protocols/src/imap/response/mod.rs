//! Everything the IMAP server sends, built from types: a command says WHAT to answer
//! ([`Tagged`], [`Untagged`] with [`FetchItem`]s, [`RespText`] with a [`Code`]) and the
//! [`Encoder`] writes it, deciding HOW each string goes on the wire by one rule (see
//! [`value::form`]): an atom when safe, a quoted string when it can be quoted, a literal
//! otherwise. No other code quotes or escapes.

mod code;
mod untagged;
pub mod value;

#[cfg(test)]
mod tests;

pub use code::{Code, MetadataCode, RespText};
pub use untagged::{
    internal_date, ESearch, FetchItem, SectionName, SectionText, ThreadNode, ThreadTree, Untagged,
};
pub use value::{Encoder, Value};

/// The status of a tagged response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    No,
    Bad,
}

/// `tag OK|NO|BAD [code] text`: how a command ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tagged<'a> {
    pub tag: &'a str,
    pub status: Status,
    pub text: &'a RespText,
}

impl Encoder {
    /// Appends `tag status [code] text\r\n`.
    pub fn tagged(&self, out: &mut Vec<u8>, t: &Tagged<'_>) {
        out.extend_from_slice(t.tag.as_bytes());
        out.push(b' ');
        out.extend_from_slice(match t.status {
            Status::Ok => b"OK ",
            Status::No => b"NO ",
            Status::Bad => b"BAD ",
        });
        t.text.encode(self, out);
        out.extend_from_slice(b"\r\n");
    }

    /// Appends a continuation request, `+ text\r\n` (the text may be a base64 challenge).
    pub fn continuation(&self, out: &mut Vec<u8>, text: &str) {
        out.extend_from_slice(b"+ ");
        code::text(out, text);
        out.extend_from_slice(b"\r\n");
    }
}
