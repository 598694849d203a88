//! Message facts made into IMAP: ENVELOPE and BODY/BODYSTRUCTURE rendering, BODY[section] and
//! BINARY[section] extraction, and SEARCH evaluation. Pure functions over `storage::mime` facts
//! and the raw message bytes; the session code converts its parsed command into these types.

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

pub use binary::{binary_size, decode_binary, BinaryError};
pub use bodystructure::render_body;
pub use envelope::render_envelope;
pub use exercise::exercise;
pub use search::{
    matches, LazyContent, MessageContent, MessageCtx, SearchKey, SeqBound, SequenceSet,
};
pub use section::{extract, Partial, SectionSpec, SectionText};
