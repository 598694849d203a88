//! Whole-server test harness: starts the real `node` binary on loopback with its own
//! ports, data dir, TLS certificate and passwd-file, and drives it with real clients
//! (Python's stdlib clients, mbsync, fetchmail, swaks, openssl) and raw sockets.
//!
//! Every server gets fresh ports and a fresh tempdir, so tests run in parallel.
//! The child is stopped when its [`Server`] drops; if the test is failing, the tail of
//! the node's log is printed so the failure explains itself.

mod binary;
pub mod cluster;
pub mod directories;
pub mod dovecot;
mod fixtures;
pub mod imaptest;
pub mod lab;
pub mod lab_client;
mod line;
mod mail;
mod process;
mod server;
pub mod smtp_receiver;

pub use binary::{jepsen_bin, node_bin, workspace_root};
pub use fixtures::{free_port, hash_password, make_cert, Scheme, User};
pub use line::{pop3_login, tagged, LineConn};
pub use mail::{
    dot_stuff, dot_unstuff, lmtp_deliver, lmtp_deliver_with, sample_message, smtp_reply,
};
pub use process::{missing_tool, run, Output};
pub use server::{
    serve_with_config_text, tail, write_config, Paths, Ports, Proto, Server, ServerSpec,
    EMBEDDED_PORTS,
};
