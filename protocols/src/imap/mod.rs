//! The IMAP4rev1/IMAP4rev2 server session: framing (line + literal assembly), parsing with
//! imap-codec plus the few hand-written grammars it lacks, one file per command, the session
//! loop that ties a byte stream to the store, and one typed encoder for everything sent back.
//!
//! Where things are:
//! - `connection.rs`: the loop (read, frame, parse, dispatch, sync, complete).
//! - `session.rs`: the session's state and the interface commands use.
//! - `commands/`: one file per command; `status_data.rs` and `matching.rs` hold what two
//!   commands share.
//! - `response/`: the typed responses and the one quoting rule; `reply.rs`: how a command ends.
//! - `selected.rs`: the snapshot of the selected mailbox; `changes.rs`: the answers to "what
//!   changed" shared by the sessions of one mailbox; `recent.rs`: who owns \Recent.
//! - `framing.rs`, `lexer.rs`, `parse.rs`, `args.rs`, `mutf7.rs`: reading what the client sent.
//! - `message/`: message facts made into IMAP (ENVELOPE, BODYSTRUCTURE, sections, SEARCH).

pub mod acl;
pub mod args;
mod changes;
mod commands;
pub mod config;
mod connection;
pub mod framing;
pub mod fuzzing;
pub mod lexer;
pub mod message;
pub mod mutf7;
pub mod parse;
mod parse_ext;
mod parse_meta;
pub mod recent;
mod reply;
pub mod response;
pub mod savedate;
pub mod searchres;
mod selected;
pub mod session;
pub mod url;

pub use config::{ImapConfig, ImapContext};
pub use connection::serve;

#[cfg(test)]
mod acl_tests;
#[cfg(test)]
mod extension_tests;
#[cfg(test)]
mod keyword_tests;
#[cfg(test)]
mod tests;
