//! Dovecot-style proxying: a login whose passdb entry says `proxy` (with `host`, ...) is not
//! served here but forwarded to that backend. The backend's login dialogue is a small state
//! machine over its reply lines ([`imap_login`], [`pop3_login`], [`sieve_login`],
//! [`lmtp_client`]); the I/O
//! edge ([`drive`]) connects, runs the machine, and then splices the two connections.
//!
//! Where the connection comes from is passed on to the backend (IMAP `ID x-originating-ip`,
//! POP3 and ManageSieve `XCLIENT`), which believes it only from its `login_trusted_networks`.

pub mod drive;
/// The `proxy_reply` fuzz target's body (fuzz/), replayed over its seeds in the tests.
pub mod fuzzing;
pub mod imap_login;
pub mod lmtp_client;
pub mod pop3_login;
mod reply_lines;
pub mod sieve_login;

pub use reply_lines::{LineTooLong, ReplyLines};

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// How the proxy speaks to the backend (the passdb's `ssl` and `starttls` fields).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyTls {
    /// Plaintext (the default: backends on a private network).
    None,
    /// TLS from the first byte (`ssl=yes` or `ssl=any-cert`).
    Implicit,
    /// STARTTLS / STLS before logging in (`starttls=yes` or `starttls=any-cert`).
    StartTls,
}

/// Where and as whom a proxied login goes: the passdb's `host`, `port`, `hostip`, `destuser`,
/// `pass`, `master`, `ssl`/`starttls` and `proxy_timeout` fields.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyTarget {
    pub host: String,
    /// None: the service's standard port (143/993, 110/995, 4190, 24).
    pub port: Option<u16>,
    /// Connect here instead of resolving `host` (Dovecot's `hostip`).
    pub hostip: Option<IpAddr>,
    /// The user name to log in as at the backend (`destuser`, else the client's name).
    pub destuser: String,
    /// The password to give the backend: `pass`, else the one the client gave. None when the
    /// client used a mechanism that does not reveal it and the passdb gives no `pass`.
    pub password: Option<String>,
    /// Log in as this master user on behalf of `destuser` (SASL PLAIN authzid).
    pub master: Option<String>,
    pub tls: ProxyTls,
    /// Check the backend's certificate (false for `any-cert`).
    pub verify_cert: bool,
    /// Connect and login timeout (`proxy_timeout`).
    pub timeout: Duration,
    /// `proxy_maybe`: served locally when the target is this very server.
    pub maybe: bool,
}

// Never print a password.
impl std::fmt::Debug for ProxyTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyTarget")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("hostip", &self.hostip)
            .field("destuser", &self.destuser)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("master", &self.master)
            .field("tls", &self.tls)
            .field("verify_cert", &self.verify_cert)
            .field("timeout", &self.timeout)
            .field("maybe", &self.maybe)
            .finish()
    }
}

/// Dovecot's default `proxy_timeout` is 30 s for connecting and logging in.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

impl ProxyTarget {
    /// A plaintext target with the defaults (tests, LMTP routing).
    pub fn new(host: impl Into<String>, port: Option<u16>, destuser: impl Into<String>) -> Self {
        ProxyTarget {
            host: host.into(),
            port,
            hostip: None,
            destuser: destuser.into(),
            password: None,
            master: None,
            tls: ProxyTls::None,
            verify_cert: true,
            timeout: DEFAULT_TIMEOUT,
            maybe: false,
        }
    }

    /// The port to connect to: the given one, else the service's standard one.
    pub fn port_or(&self, plain: u16, implicit_tls: u16) -> u16 {
        self.port.unwrap_or(match self.tls {
            ProxyTls::Implicit => implicit_tls,
            _ => plain,
        })
    }

    /// `host:port` for logs.
    pub fn display(&self, port: u16) -> String {
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(ip)) => format!("[{ip}]:{port}"),
            _ => format!("{}:{port}", self.host),
        }
    }
}

/// Where the client connection comes from, for the backend's logs and `allow_nets` (passed
/// on as IMAP ID `x-originating-*` / POP3 `XCLIENT`).
#[derive(Clone, Debug)]
pub struct ClientOrigin {
    pub remote: SocketAddr,
    pub local: SocketAddr,
    pub session_id: String,
}

/// How a backend login ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoginResult {
    /// Logged in. IMAP: the backend's tagged reply after its tag (`OK [CAPABILITY ...]
    /// Logged in`), for the client under its own tag. POP3: the `+OK` line.
    Ok { reply: String },
    /// The backend refused the credentials: the client gets the normal auth failure.
    AuthFailed { reply: String },
    /// Anything else (bad greeting, BYE, a temporary failure the backend reported): the
    /// client gets a temporary failure.
    TempFail { reason: String },
}

/// What a login machine asks of its driver next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Write these bytes to the backend, then go on reading.
    Send(Vec<u8>),
    /// Nothing to write: read the next line.
    Wait,
    /// Start TLS on the backend connection, then call the machine's `tls_started`.
    StartTls,
    Done(LoginResult),
}

/// A proxying failure worth its own counter label and log line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("connect({0}) failed: {1}")]
    Connect(String, String),
    #[error("{0}: timed out after {1} secs")]
    Timeout(String, u64),
    #[error("{0}: {1}")]
    Backend(String, String),
}

/// SASL PLAIN's message (RFC 4616), base64: `authzid NUL authcid NUL password`.
pub(crate) fn plain_response(authzid: &str, authcid: &str, password: &str) -> String {
    let mut raw = Vec::with_capacity(authzid.len() + authcid.len() + password.len() + 2);
    raw.extend_from_slice(authzid.as_bytes());
    raw.push(0);
    raw.extend_from_slice(authcid.as_bytes());
    raw.push(0);
    raw.extend_from_slice(password.as_bytes());
    crate::sasl::encode_base64(&raw)
}

/// PLAIN's (authzid, authcid) for a target: a master user logs in on behalf of destuser.
pub(crate) fn plain_identities(t: &ProxyTarget) -> (&str, &str) {
    match &t.master {
        Some(m) => (t.destuser.as_str(), m.as_str()),
        None => ("", t.destuser.as_str()),
    }
}

/// Counts a proxied session or a failure (`node_proxy_*` metrics).
pub(crate) fn count_session(service: &'static str) {
    metrics::counter!("node_proxy_sessions_total", "service" => service).increment(1);
}

pub(crate) fn count_failure(service: &'static str, why: &'static str) {
    metrics::counter!("node_proxy_backend_failures_total", "service" => service, "reason" => why)
        .increment(1);
}
