//! The IMAP4rev1/IMAP4rev2 server session: framing (line + literal assembly), parsing with
//! imap-codec plus the few hand-written grammars it lacks, one file per command, and the session
//! loop that ties a byte stream to the store.

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
pub mod recent;
mod reply;
pub mod response;
mod selected;
pub mod session;

pub use config::{ImapConfig, ImapContext};
pub use connection::serve;

#[cfg(test)]
mod tests;
