//! The node's implementation of `protocols::Backend`: authentication through the passwd-file
//! authenticator, opening users' stores (with their quota rule), the connection limits, and the
//! seam where replication and cluster coordination decide who may write and when a write is
//! acknowledged ([`ClusterHooks`]).

use crate::auth::Authenticator;
use crate::config::SslMode;
use async_trait::async_trait;
use parking_lot::Mutex;
use protocols::{
    AuthOutcome, AuthRequest, Backend, ConnInfo, Service, SessionGuard, UserInfo, WriteRefused,
};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// What replication and the cluster's coordination decide. [`Standalone`] is a single node or
/// keepalived-led mode in `local` durability: every write is allowed and acknowledged once the
/// local fsync is done. Replication plugs its own implementation in here.
#[async_trait]
pub trait ClusterHooks: Send + Sync + 'static {
    /// Whether this node may accept writes for `user` now.
    fn may_write(&self, user: &str) -> Result<(), WriteRefused>;
    /// Whether this node is the active one (`/health/active`, keepalived's track script).
    fn is_active(&self) -> bool;
    /// Who answers [`ClusterHooks::is_active`]: "standalone", "keepalived-led", later "raft".
    fn active_mode(&self) -> &'static str {
        "standalone"
    }
    /// Waits until a locally durable write of `user` may be acknowledged; an error when it
    /// must not be (raft mode: the node lost the active role while the write was in flight).
    async fn write_committed(&self, user: &str) -> Result<(), WriteRefused>;
    /// A user's store was opened (login, delivery): replication starts shipping it.
    async fn user_opened(&self, _user: &str) {}
    /// Replicated durability has fallen back to local (no peer acked in time).
    fn degraded(&self) -> bool {
        false
    }
    /// The running replicator, for `node replication status` and `node sync` over the admin socket.
    fn replication(&self) -> Option<replication::Handle> {
        None
    }
    /// Raft mode: the running coordinator, for `node cluster status|transfer-active|add|remove`.
    fn coordinator(&self) -> Option<replication::coord::Coordinator> {
        None
    }
}

pub struct Standalone;

#[async_trait]
impl ClusterHooks for Standalone {
    fn may_write(&self, _user: &str) -> Result<(), WriteRefused> {
        Ok(())
    }
    fn is_active(&self) -> bool {
        true
    }
    async fn write_committed(&self, _user: &str) -> Result<(), WriteRefused> {
        // `local` durability: the store returned only after its fsync; nothing more to wait for.
        Ok(())
    }
}

#[derive(Clone, Debug)]
pub struct BackendSettings {
    pub ssl: SslMode,
    pub auth_allow_cleartext: bool,
    /// mail_max_userip_connections; 0 = unlimited.
    pub max_userip_connections: u32,
    /// `[oauth2]`'s token introspection; None = every bearer token is refused.
    pub oauth2: Option<crate::auth::oauth2::Introspector>,
    /// Proxying: login_trusted_networks, lmtp_proxy, this node's name and LMTP listeners
    /// (for `proxy_maybe`).
    pub proxy: ProxySettings,
}

#[derive(Clone, Debug, Default)]
pub struct ProxySettings {
    /// TLS towards backends; None when it could not be set up (the reason was logged):
    /// then a TLS target is a temporary failure.
    pub connector: Option<Arc<crate::proxy::Connector>>,
    pub trusted_networks: Vec<crate::auth::nets::Net>,
    pub lmtp_proxy: bool,
    pub hostname: String,
    pub lmtp_listeners: Vec<std::net::SocketAddr>,
}

/// Live sessions per (service, user, IP), for mail_max_userip_connections.
#[derive(Default)]
pub struct SessionRegistry {
    counts: Mutex<HashMap<(Service, String, IpAddr), u32>>,
}

impl SessionRegistry {
    pub fn register(
        self: &Arc<Self>,
        service: Service,
        user: &str,
        ip: IpAddr,
        limit: u32,
    ) -> Result<SessionGuard, String> {
        let key = (service, user.to_string(), ip);
        {
            // Check and increment under one lock: a burst of logins cannot overshoot.
            let mut counts = self.counts.lock();
            let n = counts.entry(key.clone()).or_insert(0);
            if limit > 0 && *n >= limit {
                return Err(format!(
                    "Maximum number of connections from user+IP exceeded (mail_max_userip_connections={limit})"
                ));
            }
            *n += 1;
        }
        let this = self.clone();
        Ok(SessionGuard::new(move || {
            let mut counts = this.counts.lock();
            if let Some(n) = counts.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(&key);
                }
            }
        }))
    }

    #[cfg(test)]
    pub fn count(&self, service: Service, user: &str, ip: IpAddr) -> u32 {
        self.counts
            .lock()
            .get(&(service, user.to_string(), ip))
            .copied()
            .unwrap_or(0)
    }
}

pub struct NodeBackend {
    store: Arc<storage::Store>,
    auth: Arc<Authenticator>,
    hooks: Arc<dyn ClusterHooks>,
    settings: BackendSettings,
    sessions: Arc<SessionRegistry>,
    /// Who is logged in where (`node who`, `node kick`).
    live: Arc<crate::sessions::LiveSessions>,
}

impl NodeBackend {
    pub fn new(
        store: Arc<storage::Store>,
        auth: Arc<Authenticator>,
        hooks: Arc<dyn ClusterHooks>,
        settings: BackendSettings,
        live: Arc<crate::sessions::LiveSessions>,
    ) -> Arc<NodeBackend> {
        Arc::new(NodeBackend {
            store,
            auth,
            hooks,
            settings,
            sessions: Arc::new(SessionRegistry::default()),
            live,
        })
    }
}

/// The plaintext-authentication rule shared by every service (see `Backend::allow_plaintext`).
pub fn plaintext_allowed(settings: &BackendSettings, conn: &ConnInfo) -> bool {
    if conn.tls {
        return true;
    }
    match settings.ssl {
        SslMode::Required => false,
        SslMode::Yes | SslMode::No => conn.is_loopback() || settings.auth_allow_cleartext,
    }
}

#[async_trait]
impl Backend for NodeBackend {
    async fn authenticate(&self, req: AuthRequest<'_>) -> AuthOutcome {
        if req.authzid.is_some_and(|z| !z.is_empty() && z != req.user) {
            // Master users are not supported: an authorization identity other than the user fails.
            return AuthOutcome::Failed;
        }
        let outcome = self
            .auth
            .authenticate(
                req.service,
                req.user,
                req.password,
                req.conn.remote.ip(),
                &req.conn.session_id,
            )
            .await;
        let outcome = self.route(req.service, outcome, Some(req.password), req.conn);
        if let AuthOutcome::Ok { user } | AuthOutcome::Proxy { user, .. } = &outcome {
            self.live.logged_in(&req.conn.session_id, user);
        }
        outcome
    }

    async fn lookup_credentials(
        &self,
        _service: Service,
        user: &str,
        kind: protocols::CredentialKind,
    ) -> protocols::CredentialsLookup {
        let auth = self.auth.clone();
        let user = user.to_string();
        protocols::blocking::run(move || auth.credentials_blocking(&user, kind))
            .await
            .unwrap_or_else(protocols::CredentialsLookup::TempFail)
    }

    async fn validate_token(
        &self,
        _service: Service,
        user: &str,
        token: &str,
    ) -> protocols::TokenCheck {
        match &self.settings.oauth2 {
            Some(i) => i.check(user, token, |u| self.auth.canonical_name(u)).await,
            None => protocols::TokenCheck::Invalid,
        }
    }

    async fn complete_login(&self, req: protocols::VerifiedLogin<'_>) -> AuthOutcome {
        // As for passwords: no master users, so another authorization identity fails.
        let proof_ok = req.proof_ok && req.authzid.is_none_or(|z| z.is_empty() || z == req.user);
        let outcome = self
            .auth
            .complete_login(
                req.service,
                req.user,
                proof_ok,
                req.conn.remote.ip(),
                &req.conn.session_id,
            )
            .await;
        // The proof is checked, but the backend needs a password: only a `pass` field has one.
        let outcome = self.route(req.service, outcome, None, req.conn);
        if let AuthOutcome::Ok { user } | AuthOutcome::Proxy { user, .. } = &outcome {
            self.live.logged_in(&req.conn.session_id, user);
        }
        outcome
    }

    async fn lookup_user(&self, user: &str) -> Result<Option<UserInfo>, String> {
        let auth = self.auth.clone();
        let user = user.to_string();
        let found = protocols::blocking::run(move || auth.lookup_blocking(&user)).await??;
        Ok(found.map(|r| UserInfo {
            user: r.user,
            quota: r.quota,
        }))
    }

    async fn open_user(&self, user: &str) -> Result<Arc<storage::UserStore>, String> {
        let (store, auth, name) = (self.store.clone(), self.auth.clone(), user.to_string());
        let opened = protocols::blocking::run(move || {
            let record = auth.session_user_blocking(&name)?;
            let quota = record
                .map(|r| r.quota)
                .unwrap_or(auth.settings().default_quota);
            let user_store = store.user(&name).map_err(|e| e.to_string())?;
            user_store.set_quota_limits(quota);
            Ok::<_, String>(user_store)
        })
        .await??;
        self.hooks.user_opened(user).await;
        Ok(opened)
    }

    fn may_write(&self, user: &str) -> Result<(), WriteRefused> {
        self.hooks.may_write(user)
    }

    async fn write_committed(&self, user: &str) -> Result<(), WriteRefused> {
        self.hooks.write_committed(user).await
    }

    fn allow_plaintext(&self, conn: &ConnInfo) -> bool {
        plaintext_allowed(&self.settings, conn)
    }

    fn register_session(
        &self,
        service: Service,
        user: &str,
        ip: IpAddr,
    ) -> Result<SessionGuard, String> {
        self.sessions
            .register(service, user, ip, self.settings.max_userip_connections)
    }

    async fn proxy_connect(
        &self,
        target: &protocols::proxy::ProxyTarget,
        port: u16,
    ) -> std::io::Result<protocols::BoxStream> {
        let stream = protocols::proxy::drive::connect_tcp(target, port).await?;
        if target.tls != protocols::proxy::ProxyTls::Implicit {
            return Ok(stream);
        }
        self.backend_tls(stream, target).await
    }

    async fn proxy_starttls(
        &self,
        stream: protocols::BoxStream,
        target: &protocols::proxy::ProxyTarget,
    ) -> std::io::Result<protocols::BoxStream> {
        self.backend_tls(stream, target).await
    }

    fn trusted_network(&self, ip: IpAddr) -> bool {
        crate::auth::nets::any_contains(&self.settings.proxy.trusted_networks, Some(ip))
    }

    async fn lmtp_proxy_target(
        &self,
        user: &str,
    ) -> Result<Option<protocols::proxy::ProxyTarget>, String> {
        if !self.settings.proxy.lmtp_proxy {
            return Ok(None);
        }
        let auth = self.auth.clone();
        let name = user.to_string();
        let Some(entry) =
            protocols::blocking::run(move || auth.passdb_entry_for_blocking(&name, "lmtp"))
                .await??
        else {
            return Ok(None);
        };
        if !crate::proxy::wants_proxy(&entry.fields) {
            return Ok(None);
        }
        let target = crate::proxy::target_from_fields(&entry.user, &entry.fields)?;
        let here = &self.settings.proxy;
        if crate::proxy::is_maybe(&entry.fields)
            && here
                .lmtp_listeners
                .iter()
                .any(|l| crate::proxy::is_self(&target, *l, 24, &here.hostname))
        {
            return Ok(None);
        }
        Ok(Some(target))
    }
}

impl NodeBackend {
    async fn backend_tls(
        &self,
        stream: protocols::BoxStream,
        target: &protocols::proxy::ProxyTarget,
    ) -> std::io::Result<protocols::BoxStream> {
        match &self.settings.proxy.connector {
            Some(c) => c.tls(stream, target).await,
            None => Err(std::io::Error::other("TLS towards backends is not set up")),
        }
    }

    /// A login the passdb routes elsewhere: `proxy_maybe` to this very listener is served
    /// here; otherwise the target gets the password to log in with (the `pass` field's, else
    /// the client's own).
    fn route(
        &self,
        service: Service,
        outcome: AuthOutcome,
        password: Option<&str>,
        conn: &ConnInfo,
    ) -> AuthOutcome {
        let AuthOutcome::Proxy { user, mut target } = outcome else {
            return outcome;
        };
        let default_port = match (service, target.tls) {
            (Service::Pop3, protocols::proxy::ProxyTls::Implicit) => 995,
            (Service::Pop3, _) => 110,
            (Service::ManageSieve, _) => 4190,
            (_, protocols::proxy::ProxyTls::Implicit) => 993,
            _ => 143,
        };
        if target.maybe
            && crate::proxy::is_self(
                &target,
                conn.local,
                default_port,
                &self.settings.proxy.hostname,
            )
        {
            return AuthOutcome::Ok { user };
        }
        if target.password.is_none() {
            target.password = password.map(str::to_string);
        }
        AuthOutcome::Proxy { user, target }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(remote: &str, tls: bool) -> ConnInfo {
        ConnInfo {
            tls_client_user: None,
            remote: remote.parse().unwrap(),
            local: "127.0.0.1:143".parse().unwrap(),
            tls,
            session_id: "t".into(),
        }
    }

    #[test]
    fn plaintext_rules() {
        let mut s = BackendSettings {
            ssl: SslMode::Yes,
            auth_allow_cleartext: false,
            max_userip_connections: 10,
            oauth2: None,
            proxy: ProxySettings::default(),
        };
        assert!(plaintext_allowed(&s, &conn("127.0.0.1:5000", false)));
        assert!(plaintext_allowed(&s, &conn("[::1]:5000", false)));
        assert!(!plaintext_allowed(&s, &conn("192.0.2.1:5000", false)));
        assert!(plaintext_allowed(&s, &conn("192.0.2.1:5000", true)));
        s.auth_allow_cleartext = true;
        assert!(plaintext_allowed(&s, &conn("192.0.2.1:5000", false)));
        s.ssl = SslMode::Required;
        assert!(!plaintext_allowed(&s, &conn("127.0.0.1:5000", false)));
        assert!(!plaintext_allowed(&s, &conn("192.0.2.1:5000", false)));
        assert!(plaintext_allowed(&s, &conn("192.0.2.1:5000", true)));
    }

    #[test]
    fn userip_limit_holds_and_releases() {
        let reg = Arc::new(SessionRegistry::default());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let guards: Vec<_> = (0..3)
            .map(|_| reg.register(Service::Imap, "demo", ip, 3).unwrap())
            .collect();
        let err = reg.register(Service::Imap, "demo", ip, 3).err().unwrap();
        assert!(err.contains("mail_max_userip_connections=3"), "{err}");
        // Other IPs, users and services are counted apart.
        let _a = reg
            .register(Service::Imap, "demo", "192.0.2.2".parse().unwrap(), 3)
            .unwrap();
        let _b = reg.register(Service::Pop3, "demo", ip, 3).unwrap();
        let _c = reg.register(Service::Imap, "alice", ip, 3).unwrap();
        drop(guards);
        assert_eq!(reg.count(Service::Imap, "demo", ip), 0);
        assert!(reg.register(Service::Imap, "demo", ip, 3).is_ok());
    }

    #[test]
    fn limit_holds_under_a_concurrent_burst() {
        let reg = Arc::new(SessionRegistry::default());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let results: Vec<_> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..50)
                .map(|_| {
                    let reg = reg.clone();
                    s.spawn(move || reg.register(Service::Imap, "demo", ip, 10))
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 10);
        assert_eq!(reg.count(Service::Imap, "demo", ip), 10);
    }
}
