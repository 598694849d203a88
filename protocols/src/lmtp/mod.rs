//! LMTP (RFC 2033) with PIPELINING, 8BITMIME, ENHANCEDSTATUSCODES, SIZE and CHUNKING (RFC 3030):
//! how mail arrives (Postfix's `lmtp:` transport, over TCP or a unix socket).
//!
//! [`serve`] runs one session over any byte stream. After DATA (or the last BDAT) there is one
//! reply per accepted recipient, in RCPT order, each sent only once that recipient's copy is
//! durable; a message is never acknowledged without being stored, and a DATA or BDAT cut off by
//! the connection closing is never stored.

mod address;
mod command;
mod data;
mod deliver;
/// The `lmtp_command` fuzz target's body (fuzz/), replayed over its seeds in the tests.
pub mod fuzzing;
mod proxy;
mod session;
mod sieve;
mod smtp_client;

#[cfg(test)]
mod sieve_tests;
/// Session tests; the duplex test client and backend overrides are shared with POP3's tests.
#[cfg(test)]
pub(crate) mod tests;

pub use address::{split_detail, Recipient};
pub use command::{parse as parse_command, BodyType, Command, ParseError};
pub use data::{normalize_crlf, DataDecoder, DataOutcome};
pub use sieve::{expand_path, SieveConfig};
pub use smtp_client::dot_stuff;

use crate::backend::{Backend, ConnInfo};
use crate::stream::BoxStream;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// LMTP settings, with Dovecot's names in the node's configuration where Dovecot has them.
#[derive(Clone, Debug)]
pub struct LmtpConfig {
    /// Our name in the greeting and LHLO reply (Dovecot's `hostname`).
    pub hostname: String,
    /// Largest message accepted (SIZE advertised in LHLO); bigger ones get 552 5.3.4.
    pub max_message_size: u64,
    /// `recipient_delimiter`: each character separates user from detail (`user+detail`).
    pub recipient_delimiter: String,
    /// `lmtp_save_to_detail_mailbox`: deliver `user+box` into mailbox "box" when it exists.
    pub save_to_detail_mailbox: bool,
    /// Exactly-once window. The store recognises a retried delivery key within its own
    /// `delivery_dedupe_window_secs` (node sets both from one setting); zero here turns delivery
    /// keys off altogether.
    pub dedupe_window: Duration,
    /// Recipients per transaction; more get 452 4.5.3.
    pub max_recipients: usize,
    /// How long the client may stay silent while we wait for a command or message data.
    pub timeout: Duration,
    /// Longest command line (RFC 5321 says 512; we allow more for long addresses).
    pub max_line_length: usize,
    /// Unknown or malformed commands tolerated before the connection is closed.
    pub max_bad_commands: u32,
    /// Sieve filtering at delivery (off unless a script is configured).
    pub sieve: SieveConfig,
}

impl Default for LmtpConfig {
    fn default() -> LmtpConfig {
        LmtpConfig {
            hostname: "localhost".to_string(),
            max_message_size: 64 * 1024 * 1024,
            recipient_delimiter: "+".to_string(),
            save_to_detail_mailbox: false,
            dedupe_window: Duration::from_secs(3600),
            max_recipients: 500,
            timeout: Duration::from_secs(300),
            max_line_length: 4096,
            max_bad_commands: 10,
            sieve: SieveConfig::default(),
        }
    }
}

pub struct LmtpContext {
    pub backend: Arc<dyn Backend>,
    pub config: LmtpConfig,
    /// Cancelled at shutdown: sessions answer `421` and close between commands.
    pub shutdown: CancellationToken,
}

/// Runs one LMTP session to its end. Never panics on input; errors end the session.
pub async fn serve(stream: BoxStream, conn: ConnInfo, ctx: Arc<LmtpContext>) {
    session::run(stream, conn, ctx).await
}
