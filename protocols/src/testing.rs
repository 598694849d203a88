//! A test [`Backend`]: a real `storage::Store` in a temporary directory, users with plaintext
//! passwords, a per-user+IP connection limit like Dovecot's `mail_max_userip_connections`, and a
//! write gate that is always open unless a test closes it, and a commit wait that a test can hold
//! (a replica that has not acknowledged yet). Used by the IMAP, POP3 and LMTP tests.

use crate::backend::{
    AuthOutcome, AuthRequest, Backend, ConnInfo, Service, SessionGuard, UserInfo, WriteRefused,
};
use async_trait::async_trait;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use storage::{QuotaLimits, Store, StoreConfig, UserStore};

/// Dovecot's default `mail_max_userip_connections`.
pub const DEFAULT_MAX_USERIP_CONNECTIONS: usize = 10;

pub struct TestBackend {
    pub store: Arc<Store>,
    users: HashMap<String, String>,
    /// Open sessions per (user, ip).
    sessions: Arc<Mutex<HashMap<(String, IpAddr), usize>>>,
    pub max_userip_connections: usize,
    /// When false, plaintext auth is refused on non-TLS connections (loopback included).
    pub plaintext: AtomicBool,
    /// When set, `may_write` refuses with this text.
    write_refusal: Mutex<Option<String>>,
    /// Number of `write_committed` calls (counted when the call starts): tests check writes go
    /// through the commit wait.
    pub committed: AtomicUsize,
    /// While true, `write_committed` does not return, as in `replicated` durability while no
    /// peer has acknowledged.
    commits_held: tokio::sync::watch::Sender<bool>,
    /// When set, `write_committed` refuses with this text (the node lost its role while the
    /// write was in flight).
    commit_refusal: Mutex<Option<String>>,
    // Dropped last: the store's files live here.
    _dir: tempfile::TempDir,
}

impl TestBackend {
    /// A store in a fresh temporary directory with the given (user, password) pairs.
    pub fn new(users: &[(&str, &str)]) -> Arc<TestBackend> {
        TestBackend::with_store(users, false)
    }

    /// The demo user on a store that hides this node's writes until "a peer holds them", i.e.
    /// until `write_committed` returns (`replicated` durability).
    pub fn replicated_demo() -> Arc<TestBackend> {
        TestBackend::with_store(&[("demo", "demo")], true)
    }

    fn with_store(users: &[(&str, &str)], hide_unconfirmed_writes: bool) -> Arc<TestBackend> {
        let dir = tempfile::tempdir().expect("test backend: tempdir");
        let config = StoreConfig {
            root: dir.path().to_path_buf(),
            node_id: 1,
            max_message_size: 64 * 1024 * 1024,
            max_clock_drift_ms: 60_000,
            default_quota: QuotaLimits::default(),
            delivery_dedupe_window_secs: 3600,
            recent_objects_bytes: 0,
            min_free_bytes: storage::DEFAULT_MIN_FREE,
            hide_unconfirmed_writes,
        };
        let store = Store::open(config).expect("test backend: open store");
        Arc::new(TestBackend {
            store,
            users: users
                .iter()
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .collect(),
            sessions: Arc::new(Mutex::new(HashMap::new())),
            max_userip_connections: DEFAULT_MAX_USERIP_CONNECTIONS,
            plaintext: AtomicBool::new(true),
            write_refusal: Mutex::new(None),
            committed: AtomicUsize::new(0),
            commits_held: tokio::sync::watch::Sender::new(false),
            commit_refusal: Mutex::new(None),
            _dir: dir,
        })
    }

    /// The usual demo/demo user.
    pub fn demo() -> Arc<TestBackend> {
        TestBackend::new(&[("demo", "demo")])
    }

    /// Closes (Some) or opens (None) the write gate.
    pub fn refuse_writes(&self, why: Option<&str>) {
        *self.write_refusal.lock().unwrap_or_else(|e| e.into_inner()) = why.map(str::to_string);
    }

    /// From now on `write_committed` waits until [`release_commits`](Self::release_commits).
    pub fn hold_commits(&self) {
        self.commits_held.send_replace(true);
    }

    /// Lets every held and later `write_committed` return.
    pub fn release_commits(&self) {
        self.commits_held.send_replace(false);
    }

    /// Waits until `write_committed` has been called `n` times in all; panics after 10 s.
    pub async fn commit_calls_reach(&self, n: usize) {
        let waited = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while self.committed.load(Ordering::SeqCst) < n {
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "write_committed called {} times, expected {n}",
            self.committed.load(Ordering::SeqCst)
        );
    }

    /// Makes `write_committed` fail (`None`: succeed again).
    pub fn refuse_commits(&self, why: Option<&str>) {
        *self
            .commit_refusal
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = why.map(str::to_string);
    }
}

/// A loopback, non-TLS connection with the given session id.
pub fn loopback_conn(session_id: &str) -> ConnInfo {
    ConnInfo {
        remote: SocketAddr::from(([127, 0, 0, 1], 40000)),
        local: SocketAddr::from(([127, 0, 0, 1], 1143)),
        tls: false,
        session_id: session_id.to_string(),
        tls_client_user: None,
    }
}

#[async_trait]
impl Backend for TestBackend {
    async fn authenticate(&self, req: AuthRequest<'_>) -> AuthOutcome {
        let user = req.user.to_ascii_lowercase();
        match self.users.get(&user) {
            Some(pw) if pw == req.password => AuthOutcome::Ok { user },
            _ => AuthOutcome::Failed,
        }
    }

    async fn lookup_credentials(
        &self,
        _service: Service,
        user: &str,
        _kind: crate::backend::CredentialKind,
    ) -> crate::backend::CredentialsLookup {
        let user = user.to_ascii_lowercase();
        match self.users.get(&user) {
            Some(pw) => crate::backend::CredentialsLookup::Found {
                user,
                credential: crate::backend::Credential::Plaintext(pw.clone()),
            },
            None => crate::backend::CredentialsLookup::UnknownUser,
        }
    }

    /// The token is "token-" followed by the user's name.
    async fn validate_token(
        &self,
        _service: Service,
        user: &str,
        token: &str,
    ) -> crate::backend::TokenCheck {
        if token == format!("token-{user}") && self.users.contains_key(user) {
            crate::backend::TokenCheck::Valid
        } else {
            crate::backend::TokenCheck::Invalid
        }
    }

    async fn complete_login(&self, req: crate::backend::VerifiedLogin<'_>) -> AuthOutcome {
        if req.proof_ok {
            AuthOutcome::Ok {
                user: req.user.to_string(),
            }
        } else {
            AuthOutcome::Failed
        }
    }

    async fn lookup_user(&self, user: &str) -> Result<Option<UserInfo>, String> {
        let user = user.to_ascii_lowercase();
        Ok(self.users.contains_key(&user).then(|| UserInfo {
            user,
            quota: QuotaLimits::default(),
        }))
    }

    async fn open_user(&self, user: &str) -> Result<Arc<UserStore>, String> {
        let store = self.store.clone();
        let user = user.to_string();
        crate::blocking::run(move || store.user(&user).map_err(|e| e.to_string())).await?
    }

    fn may_write(&self, _user: &str) -> Result<(), WriteRefused> {
        match &*self.write_refusal.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(why) => Err(WriteRefused(why.clone())),
            None => Ok(()),
        }
    }

    async fn write_committed(&self, _user: &str) -> Result<(), WriteRefused> {
        let mut held = self.commits_held.subscribe();
        self.committed.fetch_add(1, Ordering::SeqCst);
        let _ = held.wait_for(|held| !held).await;
        match &*self
            .commit_refusal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
        {
            Some(why) => Err(WriteRefused(why.clone())),
            None => Ok(()),
        }
    }

    fn allow_plaintext(&self, conn: &ConnInfo) -> bool {
        conn.tls || self.plaintext.load(Ordering::Relaxed)
    }

    fn register_session(
        &self,
        service: Service,
        user: &str,
        ip: IpAddr,
    ) -> Result<SessionGuard, String> {
        let key = (user.to_string(), ip);
        let mut map = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(key.clone()).or_insert(0);
        if *n >= self.max_userip_connections {
            return Err(format!(
                "Maximum number of connections from user+IP exceeded (mail_max_userip_connections={})",
                self.max_userip_connections
            ));
        }
        *n += 1;
        let _ = service;
        let sessions = self.sessions.clone();
        Ok(SessionGuard::new(move || {
            let mut map = sessions.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = map.get_mut(&key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    map.remove(&key);
                }
            }
        }))
    }
}
