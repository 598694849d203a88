//! Settings of the IMAP service, with Dovecot's defaults, and what every session shares.

use crate::backend::Backend;
use crate::sasl::Mechanism;
use crate::stream::TlsUpgrade;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug)]
pub struct ImapConfig {
    /// Longest command line (without literals); Dovecot's `imap_max_line_length` (64k).
    pub max_line_length: usize,
    /// Largest literal accepted (APPEND): the store's maximum message size.
    pub max_literal_size: u64,
    /// Time a client may stay unauthenticated.
    pub login_timeout: Duration,
    /// Autologout of an idle authenticated client (RFC 9051: at least 30 min); IDLE excepted.
    pub idle_timeout: Duration,
    /// Keepalive interval in IDLE (`* OK Still here`), Dovecot's `imap_idle_notify_interval`.
    pub idle_notify_interval: Duration,
    /// Delay after a failed authentication when the backend does not apply one itself.
    pub auth_failure_delay: Duration,
    /// Text of the greeting (after the CAPABILITY response code).
    pub greeting: String,
    /// Capabilities added to the built-in list.
    pub capability_extra: Vec<String>,
    /// `auth_mechanisms`: the SASL mechanisms CAPABILITY (AUTH=...) and AUTHENTICATE offer, in
    /// this order (names as Dovecot spells them, any case). Names we do not implement are left
    /// out; LOGIN the command is not a SASL mechanism and stays available.
    pub auth_mechanisms: Vec<String>,
    /// Most keywords one mailbox may have: a STORE or APPEND that would make more is refused
    /// with NO [LIMIT], and PERMANENTFLAGS drops `\*` once the limit is reached.
    pub max_keywords: usize,
}

impl Default for ImapConfig {
    fn default() -> Self {
        ImapConfig {
            max_line_length: 64 * 1024,
            max_literal_size: 64 * 1024 * 1024,
            login_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(30 * 60),
            idle_notify_interval: Duration::from_secs(2 * 60),
            auth_failure_delay: Duration::ZERO,
            greeting: "Dovecot-compatible ready.".to_string(),
            capability_extra: Vec::new(),
            auth_mechanisms: vec!["plain".to_string(), "login".to_string()],
            max_keywords: 256,
        }
    }
}

impl ImapConfig {
    /// The configured mechanisms we implement, without repeats, in configured order.
    pub fn mechanisms(&self) -> Vec<Mechanism> {
        Mechanism::select(&self.auth_mechanisms)
    }
}

/// What every IMAP session of a listener shares.
pub struct ImapContext {
    pub backend: Arc<dyn Backend>,
    /// Some => STARTTLS is offered on a connection that is not already TLS.
    pub tls: Option<Arc<dyn TlsUpgrade>>,
    pub config: ImapConfig,
    /// Cancelled => sessions say `* BYE Server shutting down` and close.
    pub shutdown: CancellationToken,
}
