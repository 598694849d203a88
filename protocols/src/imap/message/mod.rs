//! Message facts made into IMAP: ENVELOPE and BODY/BODYSTRUCTURE rendering, BODY[section] and
//! BINARY[section] extraction, and SEARCH evaluation. Pure functions over `storage::mime` facts
//! and the raw message bytes; the session code converts its parsed command into these types.
//!
//! How FETCH items map onto these functions:
//! - ENVELOPE: [`envelope`]`(&facts.envelope)`; BODY / BODYSTRUCTURE: [`body`]
//!   `(&facts.body, false | true)`: response values the encoder writes ([`render_envelope`]
//!   and [`render_body`] write them as bytes directly).
//! - BODY[...]<o.n>, BODY.PEEK: [`extract`] / [`extract_ref`] with a [`SectionSpec`]; RFC822 is
//!   `part: [], text: None`, RFC822.HEADER is `text: Some(Header)`, RFC822.TEXT `Some(Text)`.
//!   RFC822.SIZE is `MessageMeta::size`.
//! - BINARY[...] / BINARY.SIZE: [`decode_binary`] / [`binary_size`] (`Err(UnknownCte)` is
//!   `NO [UNKNOWN-CTE]`).
//! - SEARCH: build a [`SearchKey`] (several keys are `And`), then per message a [`MessageCtx`]
//!   over a [`LazyContent`] whose loaders call the store (they run only if a key needs the
//!   header or body), and [`matches`]. Run it in the blocking pool: it may read the message.

pub mod binary;
pub mod bodystructure;
pub mod envelope;
mod exercise;
mod istring;
pub mod search;
pub mod section;
mod text;

#[cfg(test)]
mod imaptest_vectors;

pub use crate::imap::response::SectionText;
pub use binary::{binary_body, binary_entity, binary_size, decode_binary, BinaryError};
pub use bodystructure::{body, render_body};
pub use envelope::{envelope, render_envelope};
pub use exercise::exercise;
pub use search::{
    matches, LazyContent, MessageContent, MessageCtx, SearchKey, SeqBound, SequenceSet,
};
pub use section::{extract, extract_header, extract_ref, is_top_header, Partial, SectionSpec};
pub use text::{decode_header_value, preview};
