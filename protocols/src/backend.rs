//! What the protocols need from outside and do not own. `node` implements these traits:
//! authentication (passdb/userdb), opening a user's store, and the "who may write now" gate that
//! replication and cluster coordination decide.
//!
//! Sessions reach a user's store through [`crate::mail::UserMail`]: reads through its read-only
//! view, writes through `UserMail::write`, which alone calls [`Backend::write_committed`].

use crate::stream::BoxStream;
use async_trait::async_trait;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The service asking, as Dovecot's auth names it (`service=imap` in log lines).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Service {
    Imap,
    Pop3,
    Lmtp,
    ManageSieve,
    Admin,
}

impl Service {
    pub fn as_str(&self) -> &'static str {
        match self {
            Service::Imap => "imap",
            Service::Pop3 => "pop3",
            Service::Lmtp => "lmtp",
            Service::ManageSieve => "sieve",
            Service::Admin => "admin",
        }
    }
}

/// Where a connection comes from and how it is protected.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    pub remote: SocketAddr,
    pub local: SocketAddr,
    /// True once the connection runs over TLS (implicit or after STARTTLS/STLS).
    pub tls: bool,
    /// Per-connection id for logs (the `session=` field).
    pub session_id: String,
    /// The user named by a TLS client certificate that verified against `ssl_ca`: what SASL
    /// EXTERNAL logs in as.
    pub tls_client_user: Option<String>,
}

impl ConnInfo {
    /// Plaintext authentication is allowed on TLS, and on loopback unless the config says no
    /// (see [`Backend::allow_plaintext`]).
    pub fn is_loopback(&self) -> bool {
        self.remote.ip().is_loopback()
    }
}

pub struct AuthRequest<'a> {
    pub service: Service,
    /// As the client sent it; the backend applies `auth_default_realm` and lower-casing.
    pub user: &'a str,
    pub password: &'a str,
    /// SASL authorization identity, if different from the user (master users); usually None.
    pub authzid: Option<&'a str>,
    pub mechanism: &'a str,
    pub conn: &'a ConnInfo,
}

/// What a challenge-response mechanism needs from the passdb.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialKind {
    /// The password itself (CRAM-MD5, APOP): only a `{PLAIN}` passdb entry serves it.
    Plaintext,
    /// A SCRAM secret of this hash: a `{SCRAM-SHA-*}` entry of the same hash, or the plaintext.
    Scram(crate::sasl::scram::ScramHash),
}

/// A stored credential, in a form the mechanism can use.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    Plaintext(String),
    Scram(crate::sasl::scram::ScramSecret),
}

// Never print a password or a secret.
impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Plaintext(_) => f.write_str("Plaintext(<hidden>)"),
            Credential::Scram(s) => write!(f, "Scram({s:?})"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialsLookup {
    /// The canonical user name and the credential.
    Found {
        user: String,
        credential: Credential,
    },
    /// The user exists but the passdb stores nothing this mechanism can use (a hash).
    Unusable {
        user: String,
    },
    UnknownUser,
    TempFail(String),
}

/// The authorization server's answer about a bearer token (OAUTHBEARER, XOAUTH2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenCheck {
    /// Active and issued to the user the client named.
    Valid,
    /// Inactive, expired, unknown, or someone else's.
    Invalid,
    /// The server could not be asked (down, timeout, bad answer).
    TempFail(String),
}

/// A login whose proof the mechanism checked itself (SCRAM, CRAM-MD5, APOP): the backend
/// applies what it applies to a password login (rate limit, passdb refusals, logging, the
/// failure delay).
pub struct VerifiedLogin<'a> {
    pub service: Service,
    pub user: &'a str,
    pub authzid: Option<&'a str>,
    pub mechanism: &'a str,
    /// Whether the proof was right; false counts as a failed login.
    pub proof_ok: bool,
    pub conn: &'a ConnInfo,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthOutcome {
    /// Authenticated as this canonical user name.
    Ok { user: String },
    /// Wrong user or password. The backend has already applied the failure delay.
    Failed,
    /// The client (by IP) failed too often and is being rate limited.
    RateLimited,
    /// Could not check now (passdb unreadable, ...): `[UNAVAILABLE]`/`[SYS/TEMP]`.
    TempFail(String),
    /// The passdb says this user lives elsewhere (`proxy`, `host`, ...): the session logs in
    /// there and splices the connection (see [`crate::proxy`]).
    Proxy {
        user: String,
        target: Box<crate::proxy::ProxyTarget>,
    },
}

/// A user as the userdb knows it, for LMTP's RCPT TO and the admin commands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserInfo {
    pub user: String,
    pub quota: storage::QuotaLimits,
}

/// Why a write is refused right now (not the active node, cluster lost quorum, ...).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WriteRefused(pub String);

#[async_trait]
pub trait Backend: Send + Sync + 'static {
    async fn authenticate(&self, req: AuthRequest<'_>) -> AuthOutcome;

    /// The passdb's credential of `user` in the form `kind` asks (no password check, no
    /// failure counted: [`Backend::complete_login`] does that once the proof is checked).
    async fn lookup_credentials(
        &self,
        service: Service,
        user: &str,
        kind: CredentialKind,
    ) -> CredentialsLookup;

    /// Asks the configured token introspection endpoint (RFC 7662) whether `token` is active
    /// and belongs to `user`.
    async fn validate_token(&self, service: Service, user: &str, token: &str) -> TokenCheck;

    /// Ends a login that a challenge-response mechanism verified (or refuted).
    async fn complete_login(&self, req: VerifiedLogin<'_>) -> AuthOutcome;

    /// Looks a user up in the userdb (LMTP RCPT TO). `None` = unknown user (550 5.1.1).
    async fn lookup_user(&self, user: &str) -> Result<Option<UserInfo>, String>;

    /// Opens an authenticated (or LMTP-resolved) user's store.
    async fn open_user(&self, user: &str) -> Result<Arc<storage::UserStore>, String>;

    /// Checked before every write: a node that is not active refuses with this error's text.
    fn may_write(&self, user: &str) -> Result<(), WriteRefused>;

    /// Called after a local write is durable and before it is acknowledged to the client; in
    /// `replicated` durability it waits for a peer's durable ack (or the timeout). Returns
    /// immediately in `local` durability. An error means the write must not be acknowledged
    /// (the node lost the right to write while it was in flight): the client gets the same
    /// temporary failure as a refused write, although the change is durable here. Sessions
    /// never call it themselves: [`crate::mail::UserMail::write`] does, before handing the
    /// write's result back.
    async fn write_committed(&self, user: &str) -> Result<(), WriteRefused>;

    /// Whether plaintext authentication is allowed on this connection (TLS, or loopback, or
    /// `auth_allow_cleartext`), given `ssl = required` and the rest of the config.
    fn allow_plaintext(&self, conn: &ConnInfo) -> bool;

    /// Registers a session of `user` from `ip`; errors when mail_max_userip_connections is
    /// reached. The returned guard unregisters on drop.
    fn register_session(
        &self,
        service: Service,
        user: &str,
        ip: IpAddr,
    ) -> Result<SessionGuard, String>;

    /// Opens a connection to a proxy backend: plain TCP here; `node` adds TLS for
    /// `ssl=yes|any-cert`.
    async fn proxy_connect(
        &self,
        target: &crate::proxy::ProxyTarget,
        port: u16,
    ) -> std::io::Result<BoxStream> {
        crate::proxy::drive::connect_tcp(target, port).await
    }

    /// STARTTLS towards a proxy backend (`starttls=yes|any-cert`).
    async fn proxy_starttls(
        &self,
        _stream: BoxStream,
        _target: &crate::proxy::ProxyTarget,
    ) -> std::io::Result<BoxStream> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "TLS towards proxy backends is not available",
        ))
    }

    /// Whether `ip` is in `login_trusted_networks`: a proxy there may tell the client's
    /// own address (IMAP ID `x-originating-ip`, POP3 XCLIENT).
    fn trusted_network(&self, _ip: IpAddr) -> bool {
        false
    }

    /// `lmtp_proxy`: where an LMTP recipient's mail goes when the passdb routes the user to
    /// another host. Ok(None): deliver here.
    async fn lmtp_proxy_target(
        &self,
        _user: &str,
    ) -> Result<Option<crate::proxy::ProxyTarget>, String> {
        Ok(None)
    }
}

/// Unregisters a session when dropped.
pub struct SessionGuard(Option<Box<dyn FnOnce() + Send + Sync>>);

impl SessionGuard {
    pub fn new(on_drop: impl FnOnce() + Send + Sync + 'static) -> SessionGuard {
        SessionGuard(Some(Box::new(on_drop)))
    }
    pub fn none() -> SessionGuard {
        SessionGuard(None)
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f()
        }
    }
}
