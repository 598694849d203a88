//! POP3 (RFC 1939) with CAPA and response codes (RFC 2449), STLS (RFC 2595) and AUTH with
//! SASL-IR (RFC 5034), behaving as Dovecot does: its reply texts, `[AUTH]`, `[SYS/TEMP]` and
//! `[IN-USE]`, deletions applied only at QUIT, UIDLs from message GUIDs.

mod auth;
mod command;
/// The `pop3_command` fuzz target's body (fuzz/), replayed over its seeds in the tests.
pub mod fuzzing;
mod lock;
mod maildrop;
mod proxy;
mod session;
mod transaction;

#[cfg(test)]
mod tests;

pub use command::{parse as parse_command, Command, ParseError};
pub use maildrop::{render, uidl, Maildrop, MsgError};

use crate::backend::{Backend, ConnInfo};
use crate::sasl::Mechanism;
use crate::stream::{BoxStream, TlsUpgrade};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// POP3 settings, with Dovecot's names in the node's configuration where Dovecot has them.
#[derive(Clone, Debug)]
pub struct Pop3Config {
    /// Time to log in before the connection is dropped (Dovecot's login timeout).
    pub login_timeout: Duration,
    /// Autologout once logged in (RFC 1939: at least 10 minutes).
    pub idle_timeout: Duration,
    /// `pop3_client_workarounds = outlook-no-nuls`: strip NUL bytes from RETR/TOP output.
    pub no_nuls: bool,
    /// `pop3_lock_session`: only one POP3 session per user at a time (`[IN-USE]` for others).
    pub lock_session: bool,
    /// `pop3_no_flag_updates`: when false, messages fetched with RETR get \Seen at QUIT.
    pub no_flag_updates: bool,
    /// Longest command or SASL response line.
    pub max_line_length: usize,
    /// Unknown or malformed commands tolerated before disconnecting.
    pub max_bad_commands: u32,
    /// Failed logins tolerated on one connection before disconnecting.
    pub max_auth_failures: u32,
    /// Text after `+OK ` in the greeting (Dovecot's `login_greeting`).
    pub greeting: String,
    /// `auth_mechanisms`: the SASL mechanisms CAPA and AUTH offer, in this order (names as
    /// Dovecot spells them, any case). Names we do not implement are left out; USER/PASS is
    /// not a SASL mechanism and stays available.
    pub auth_mechanisms: Vec<String>,
}

impl Default for Pop3Config {
    fn default() -> Pop3Config {
        Pop3Config {
            login_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(600),
            no_nuls: false,
            lock_session: true,
            no_flag_updates: false,
            max_line_length: 8192,
            max_bad_commands: 20,
            max_auth_failures: 3,
            greeting: "POP3 ready.".to_string(),
            auth_mechanisms: vec!["plain".to_string(), "login".to_string()],
        }
    }
}

impl Pop3Config {
    /// The configured mechanisms we implement, without repeats, in configured order.
    pub fn mechanisms(&self) -> Vec<Mechanism> {
        Mechanism::select(&self.auth_mechanisms)
    }

    /// `apop` in `auth_mechanisms` (Dovecot's name): the greeting carries a timestamp and the
    /// APOP command is accepted.
    pub fn apop(&self) -> bool {
        self.auth_mechanisms
            .iter()
            .any(|m| m.eq_ignore_ascii_case("apop"))
    }
}

pub struct Pop3Context {
    pub backend: Arc<dyn Backend>,
    /// Offered as STLS on plaintext connections when set.
    pub tls: Option<Arc<dyn TlsUpgrade>>,
    pub config: Pop3Config,
    /// Cancelled at shutdown: sessions answer `-ERR` and close between commands.
    pub shutdown: CancellationToken,
}

/// Runs one POP3 session to its end. Never panics on input; errors end the session.
pub async fn serve(stream: BoxStream, conn: ConnInfo, ctx: Arc<Pop3Context>) {
    session::run(stream, conn, ctx).await
}
