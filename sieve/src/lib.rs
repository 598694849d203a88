//! Sieve mail filtering: RFC 5228 and the extensions users rely on, written from the RFCs.
//!
//! [`Compiler::compile`] turns a script into a checked tree (errors carry line and column);
//! [`Runtime::run`] runs it against a message and envelope and leaves the list of
//! [`Action`]s for the caller to carry out. Running is bounded in steps, actions, redirects,
//! include depth and variable sizes, so a hostile script cannot hurt the server.

pub mod action;
pub mod address;
pub mod ast;
pub mod compile;
pub mod date;
pub mod error;
pub mod fuzzing;
pub mod interp;
pub mod lexer;
pub mod matching;
pub mod message;
pub mod parser;
pub mod redirect;
pub mod spamtest;
pub mod spec;
pub mod vacation;
pub mod variables;

pub use action::{Action, Snapshot, Vacation};
pub use compile::{Compiler, Script};
pub use error::{CompileError, CompileErrors, RuntimeError, Warning};
pub use interp::{Config, Envelope, Flow, Host, Limits, NoHost, Runtime};
pub use message::Message;

#[cfg(test)]
mod tests;
