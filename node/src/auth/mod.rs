//! Authentication shared by IMAP, POP3, LMTP and the admin commands: passdb/userdb lookups in
//! Dovecot passwd-files, password schemes, a verified-credentials cache, a failure delay and
//! per-IP failure limiting, with Dovecot-like log lines (fail2ban-friendly: `rip=`).

pub mod cache;
mod credentials;
pub mod limiter;
pub mod nets;
pub mod oauth2;
pub mod passwd_file;
pub mod quota_rule;
pub mod schemes;
mod workers;

use crate::config::Config;
use cache::LoginCache;
use limiter::FailureLimiter;
use parking_lot::Mutex;
use passwd_file::{PasswdEntry, PasswdFile};
use protocols::{AuthOutcome, Service};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::QuotaLimits;

#[derive(Clone, Debug)]
pub struct AuthSettings {
    pub default_realm: String,
    pub cache_size: usize,
    pub cache_ttl: Duration,
    pub failure_delay: Duration,
    pub verbose: bool,
    pub failure_limit: u32,
    pub failure_window: Duration,
    /// Concurrent password hash checks.
    pub worker_max_count: usize,
    /// From the global quota_rule; a user's own rule overrides it.
    pub default_quota: QuotaLimits,
    /// auth_failure_limit_exempt_nets: never locked out.
    pub failure_limit_exempt: Vec<nets::Net>,
}

impl AuthSettings {
    pub fn from_config(c: &Config) -> Result<AuthSettings, String> {
        Ok(AuthSettings {
            default_realm: c.auth_default_realm.trim().to_lowercase(),
            cache_size: usize::try_from(c.auth_cache_size).unwrap_or(usize::MAX),
            cache_ttl: c.auth_cache_ttl.0,
            failure_delay: c.auth_failure_delay.0,
            verbose: c.auth_verbose,
            failure_limit: c.auth_failure_limit,
            failure_window: c.auth_failure_window.0,
            worker_max_count: match c.auth_worker_max_count {
                // Hashing is CPU- and memory-bound: one core (and its share of memory bandwidth)
                // stays with the sessions; more workers than cores only add latency.
                0 => std::thread::available_parallelism()
                    .map_or(1, |n| n.get().saturating_sub(1).max(1)),
                n => n as usize,
            },
            default_quota: quota_rule::parse_rules(c.quota_rule.0.iter().map(String::as_str))
                .map_err(|e| format!("quota_rule: {e}"))?,
            failure_limit_exempt: nets::parse_list(
                c.auth_failure_limit_exempt_nets
                    .0
                    .iter()
                    .map(String::as_str),
            )
            .map_err(|e| format!("auth_failure_limit_exempt_nets: {e}"))?,
        })
    }
}

/// A user as the userdb describes it (`node auth test` prints these fields).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct UserRecord {
    pub user: String,
    pub uid: String,
    pub gid: String,
    pub home: String,
    pub quota: QuotaLimits,
    /// Extra userdb fields as written (`userdb_` prefix removed).
    pub fields: Vec<(String, String)>,
}

/// The result of a password check, before delays and logging.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Ok {
        user: String,
    },
    UnknownUser,
    Mismatch,
    /// The password matched but the passdb refuses the login (`nologin`, `allow_nets`).
    Refused {
        user: String,
        reason: String,
    },
    TempFail(String),
}

/// The passdb's own refusals, checked after the password matched (so they tell a guesser
/// nothing): `nologin` (with its `reason=`) and `allow_nets` (Dovecot's extra fields). `rip`
/// None is a check without a client address (`node auth test` without `-x rip=`), which
/// `allow_nets` lets through only when it lists `local`, as Dovecot does.
pub fn login_policy(entry: &PasswdEntry, rip: Option<IpAddr>) -> Result<(), String> {
    if entry.passdb_field("nologin").is_some() {
        return Err(match entry.passdb_field("reason") {
            Some(r) if !r.is_empty() => format!("Account is disabled (nologin): {r}"),
            _ => "Account is disabled (nologin)".to_string(),
        });
    }
    if let Some(list) = entry.passdb_field("allow_nets") {
        let allowed = nets::parse_list([list])
            .map_err(|e| format!("allow_nets check failed: bad allow_nets field: {e}"))?;
        if !nets::any_contains(&allowed, rip) {
            return Err(match rip {
                Some(ip) => format!("allow_nets check failed: IP {ip} not in allowed networks"),
                None => {
                    "allow_nets check failed: Remote IP not known and 'local' missing".to_string()
                }
            });
        }
    }
    Ok(())
}

fn with_policy(entry: &PasswdEntry, rip: Option<IpAddr>) -> Verdict {
    match login_policy(entry, rip) {
        Ok(()) => Verdict::Ok {
            user: entry.user.clone(),
        },
        Err(reason) => Verdict::Refused {
            user: entry.user.clone(),
            reason,
        },
    }
}

/// A passdb entry found but not in the cache: its hash must be checked.
pub struct PendingCheck {
    entry: PasswdEntry,
    key: cache::CacheKey,
    generations: Vec<u64>,
    rip: Option<IpAddr>,
}

pub struct Authenticator {
    /// auth_worker_max_count concurrent hash checks.
    workers: workers::HashWorkers,
    passdbs: Vec<PasswdFile>,
    userdbs: Vec<PasswdFile>,
    settings: AuthSettings,
    cache: Mutex<LoginCache>,
    limiter: Mutex<FailureLimiter>,
}

impl Authenticator {
    pub fn new(settings: AuthSettings, config: &Config) -> Arc<Authenticator> {
        let files = |dbs: &[crate::config::DbConfig]| {
            dbs.iter()
                .map(|d| PasswdFile::new(d.args.clone()))
                .collect::<Vec<_>>()
        };
        Arc::new(Authenticator {
            workers: workers::HashWorkers::new(settings.worker_max_count),
            passdbs: files(&config.passdb),
            userdbs: files(config.effective_userdbs()),
            cache: Mutex::new(LoginCache::new(settings.cache_size, settings.cache_ttl)),
            limiter: Mutex::new(FailureLimiter::new(
                settings.failure_limit,
                settings.failure_window,
            )),
            settings,
        })
    }

    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    /// `node penalty`: addresses with recent failures (address, failures, locked out).
    pub fn penalties(&self) -> Vec<(IpAddr, usize, bool)> {
        self.limiter.lock().list(Instant::now())
    }

    /// `node penalty clear [IP]`: how many addresses were forgotten.
    pub fn clear_penalty(&self, ip: Option<IpAddr>) -> usize {
        let mut l = self.limiter.lock();
        match ip {
            Some(ip) => usize::from(l.clear(ip)),
            None => l.clear_all(),
        }
    }

    /// `node auth cache flush`: how many cached logins were forgotten.
    pub fn flush_cache(&self) -> usize {
        self.cache.lock().flush()
    }

    /// The passdb entry of `user`, for `node auth lookup` (password field included: the
    /// caller shows it only as doveadm does, to the admin). Blocking (file stat).
    pub fn passdb_entry_blocking(&self, user: &str) -> Result<Option<PasswdEntry>, String> {
        Ok(Self::find(&self.passdbs, &self.candidates(user))?.1)
    }

    /// Lower-cases and applies auth_default_realm to a name without `@`.
    pub fn canonical_name(&self, user: &str) -> String {
        let user = user.trim().to_lowercase();
        if !user.contains('@') && !self.settings.default_realm.is_empty() {
            format!("{user}@{}", self.settings.default_realm)
        } else {
            user
        }
    }

    /// Names to try, in order: the canonical name, then without the default realm (a file
    /// listing `demo` still serves `demo@realm`).
    fn candidates(&self, user: &str) -> Vec<String> {
        let canonical = self.canonical_name(user);
        let mut out = vec![canonical.clone()];
        if !self.settings.default_realm.is_empty() {
            if let Some(local) =
                canonical.strip_suffix(&format!("@{}", self.settings.default_realm))
            {
                out.push(local.to_string());
            }
        }
        out
    }

    fn find(
        files: &[PasswdFile],
        candidates: &[String],
    ) -> Result<(Vec<u64>, Option<PasswdEntry>), String> {
        let mut generations = Vec::with_capacity(files.len());
        let mut found = None;
        for f in files {
            let (generation, users) = f.users().map_err(|e| e.to_string())?;
            generations.push(generation);
            if found.is_none() {
                found = candidates.iter().find_map(|c| users.get(c).cloned());
            }
        }
        Ok((generations, found))
    }

    /// passdb lookup and the cache: cheap (a `stat`, a hash map). Blocking: file stat.
    fn lookup_password_blocking(
        &self,
        user: &str,
        password: &str,
        rip: Option<IpAddr>,
    ) -> Result<Verdict, Box<PendingCheck>> {
        let candidates = self.candidates(user);
        let (generations, entry) = match Self::find(&self.passdbs, &candidates) {
            Ok(v) => v,
            Err(e) => return Ok(Verdict::TempFail(e)),
        };
        let Some(entry) = entry else {
            return Ok(Verdict::UnknownUser);
        };
        let key = self.cache.lock().key(&entry.user, password);
        if self
            .cache
            .lock()
            .get(&key, &generations, Instant::now())
            .is_some()
        {
            // The cache only skips the hash: the passdb's refusals still apply.
            return Ok(with_policy(&entry, rip));
        }
        if entry.password.is_empty() {
            return Ok(Verdict::Mismatch);
        }
        Err(Box::new(PendingCheck {
            entry,
            key,
            generations,
            rip,
        }))
    }

    /// The slow part: the password hash. CPU-bound (ARGON2ID: tens of ms and 64 MiB).
    fn verify_blocking(&self, check: PendingCheck, password: &str) -> Verdict {
        let PendingCheck {
            entry,
            key,
            generations,
            rip,
        } = check;
        match schemes::verify(&entry.password, password) {
            Ok(true) => {
                self.cache
                    .lock()
                    .insert(key, entry.user.clone(), generations, Instant::now());
                with_policy(&entry, rip)
            }
            Ok(false) => Verdict::Mismatch,
            Err(e) => Verdict::TempFail(format!("user {}: {e}", entry.user)),
        }
    }

    /// passdb lookup + verification in one blocking call (admin commands); `rip` is the
    /// client address to check `allow_nets` against, if any.
    pub fn check_password_blocking(
        &self,
        user: &str,
        password: &str,
        rip: Option<IpAddr>,
    ) -> Verdict {
        match self.lookup_password_blocking(user, password, rip) {
            Ok(v) => v,
            Err(check) => self.verify_blocking(*check, password),
        }
    }

    /// Lookup and cache on the blocking pool; on a miss, the hash check on one of the
    /// `auth_worker_max_count` low-priority workers, so a login storm queues instead of running
    /// hundreds of 64 MiB ARGON2ID computations at once, never starves the sessions of CPU,
    /// and cached logins never wait behind it.
    async fn check_password(self: &Arc<Self>, user: &str, password: &str, rip: IpAddr) -> Verdict {
        let internal =
            |e: tokio::task::JoinError| Verdict::TempFail(format!("internal error: {e}"));
        let this = self.clone();
        let (u, p) = (user.to_string(), password.to_string());
        let looked_up = match tokio::task::spawn_blocking(move || {
            this.lookup_password_blocking(&u, &p, Some(rip))
        })
        .await
        {
            Ok(v) => v,
            Err(e) => return internal(e),
        };
        let check = match looked_up {
            Ok(verdict) => return verdict,
            Err(check) => check,
        };
        let (this, p) = (self.clone(), password.to_string());
        self.workers
            .run(move || this.verify_blocking(*check, &p))
            .await
            .unwrap_or_else(Verdict::TempFail)
    }

    /// userdb lookup. Blocking (file stat): run on the blocking pool.
    pub fn lookup_blocking(&self, user: &str) -> Result<Option<UserRecord>, String> {
        let candidates = self.candidates(user);
        let (_, entry) = Self::find(&self.userdbs, &candidates)?;
        let Some(entry) = entry else { return Ok(None) };
        let rules = entry.quota_rules();
        let quota = quota_rule::apply_rules(self.settings.default_quota, rules)
            .map_err(|e| format!("user {}: quota_rule {e}", entry.user))?;
        Ok(Some(UserRecord {
            user: entry.user.clone(),
            uid: entry.uid.clone(),
            gid: entry.gid.clone(),
            home: entry.home.clone(),
            quota,
            fields: entry
                .extra
                .iter()
                .map(|(k, v)| {
                    (
                        k.strip_prefix("userdb_").unwrap_or(k).to_string(),
                        v.clone(),
                    )
                })
                .collect(),
        }))
    }

    /// Every user the userdbs list (`node user list`). Blocking (file reads).
    pub fn userdb_users(&self) -> Result<Vec<String>, String> {
        let mut out = std::collections::BTreeSet::new();
        for f in &self.userdbs {
            let (_, users) = f.users().map_err(|e| e.to_string())?;
            out.extend(users.keys().cloned());
        }
        Ok(out.into_iter().collect())
    }

    /// A full login attempt from a client: rate limit, verify off the async threads, log like
    /// Dovecot, count, and delay a failure by auth_failure_delay.
    pub async fn authenticate(
        self: &Arc<Self>,
        service: Service,
        user: &str,
        password: &str,
        rip: IpAddr,
        session: &str,
    ) -> AuthOutcome {
        let check = self.check_password(user, password, rip);
        self.authenticate_with(service, user, rip, session, check)
            .await
    }

    /// The rate limit, logging, counting and failure delay around a verdict that `check`
    /// produces (a password check, or a challenge-response proof checked by the protocol).
    async fn authenticate_with(
        self: &Arc<Self>,
        service: Service,
        user: &str,
        rip: IpAddr,
        session: &str,
        check: impl std::future::Future<Output = Verdict>,
    ) -> AuthOutcome {
        let shown = self.canonical_name(user);
        let exempt = nets::any_contains(&self.settings.failure_limit_exempt, Some(rip));
        // Take the limiter's verdict first: its lock must not be held across the await below.
        let limited = if exempt {
            None
        } else {
            self.limiter.lock().limited(rip, Instant::now())
        };
        if let Some(n) = limited {
            let window = self.limiter.lock().window().as_secs();
            tracing::warn!(
                target: "auth",
                service = service.as_str(),
                rip = %rip,
                "passwd-file({shown},{rip},<{session}>): auth failed, rate limited: {n} failures in {window} secs, rip={rip}"
            );
            metrics::counter!("node_logins_total", "service" => service.as_str(), "result" => "ratelimited").increment(1);
            tokio::time::sleep(self.settings.failure_delay).await;
            return AuthOutcome::RateLimited;
        }
        let verdict = check.await;
        let outcome = match verdict {
            Verdict::Ok { user } => {
                tracing::debug!(target: "auth", service = service.as_str(), rip = %rip, "passwd-file({user},{rip},<{session}>): login ok");
                metrics::counter!("node_logins_total", "service" => service.as_str(), "result" => "ok").increment(1);
                return AuthOutcome::Ok { user };
            }
            Verdict::UnknownUser => {
                if self.settings.verbose {
                    tracing::info!(target: "auth", service = service.as_str(), rip = %rip, "passwd-file({shown},{rip},<{session}>): unknown user");
                }
                AuthOutcome::Failed
            }
            Verdict::Mismatch => {
                if self.settings.verbose {
                    tracing::info!(target: "auth", service = service.as_str(), rip = %rip, "passwd-file({shown},{rip},<{session}>): Password mismatch");
                }
                AuthOutcome::Failed
            }
            Verdict::Refused { user, reason } => {
                // Logged whatever auth_verbose says: the operator disabled this on purpose
                // and wants to see it hold.
                tracing::info!(target: "auth", service = service.as_str(), rip = %rip, "passwd-file({user},{rip},<{session}>): {reason}");
                AuthOutcome::Failed
            }
            Verdict::TempFail(reason) => {
                tracing::error!(target: "auth", service = service.as_str(), rip = %rip, "passwd-file({shown},{rip},<{session}>): {reason}");
                metrics::counter!("node_logins_total", "service" => service.as_str(), "result" => "tempfail").increment(1);
                return AuthOutcome::TempFail(reason);
            }
        };
        metrics::counter!("node_logins_total", "service" => service.as_str(), "result" => "failed")
            .increment(1);
        if !exempt {
            let locked = self.limiter.lock().record_failure(rip, Instant::now());
            if locked {
                let (limit, window) = {
                    let l = self.limiter.lock();
                    (self.settings.failure_limit, l.window().as_secs())
                };
                tracing::warn!(
                    target: "auth",
                    rip = %rip,
                    "auth: rip={rip} locked out: {limit} failed logins within {window} secs \
                     (auth_failure_limit); further logins are refused until the window passes \
                     or `node penalty clear {rip}`"
                );
            }
        }
        // The delay runs on a timer, not a thread: other sessions are not held up.
        tokio::time::sleep(self.settings.failure_delay).await;
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DbConfig;

    fn setup(realm: &str, limit: u32) -> (tempfile::TempDir, Arc<Authenticator>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        std::fs::write(
            &path,
            "demo:{PLAIN}demo:1000:1000::/home/demo::\n\
             alice@example.com:{SHA256-CRYPT}$5$irrdusuLWeD9g2ta$mxJ.gVxf/Z3e7aPCCEblUdRZHjHc16pPKZxYjpZwvT9::::::userdb_quota_rule=*:storage=1G\n\
             broken:{NOPE}x\n",
        )
        .unwrap();
        let config = Config {
            passdb: vec![DbConfig {
                driver: "passwd-file".into(),
                args: path,
            }],
            auth_default_realm: realm.into(),
            auth_failure_delay: crate::config::values::DurationSetting(Duration::from_millis(10)),
            auth_failure_limit: limit,
            quota_rule: crate::config::RuleList(vec!["*:messages=50".into()]),
            ..Config::default()
        };
        let settings = AuthSettings::from_config(&config).unwrap();
        (dir, Authenticator::new(settings, &config))
    }

    #[test]
    fn verdicts() {
        let (_d, a) = setup("", 0);
        assert_eq!(
            a.check_password_blocking("demo", "demo", None),
            Verdict::Ok {
                user: "demo".into()
            }
        );
        assert_eq!(
            a.check_password_blocking("DEMO", "demo", None),
            Verdict::Ok {
                user: "demo".into()
            }
        );
        assert_eq!(
            a.check_password_blocking("demo", "x", None),
            Verdict::Mismatch
        );
        assert_eq!(
            a.check_password_blocking("nobody", "x", None),
            Verdict::UnknownUser
        );
        assert_eq!(
            a.check_password_blocking("alice@example.com", "Sup3r secret", None),
            Verdict::Ok {
                user: "alice@example.com".into()
            }
        );
        assert!(matches!(
            a.check_password_blocking("broken", "x", None),
            Verdict::TempFail(_)
        ));
    }

    #[test]
    fn nologin_and_allow_nets_refuse_after_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        std::fs::write(
            &path,
            "off:{PLAIN}pw::::::nologin reason=moved\n\
             lan:{PLAIN}pw::::::allow_nets=192.0.2.0/24,local\n\
             wan:{PLAIN}pw::::::allow_nets=198.51.100.1\n",
        )
        .unwrap();
        let config = Config {
            passdb: vec![DbConfig {
                driver: "passwd-file".into(),
                args: path,
            }],
            ..Config::default()
        };
        let a = Authenticator::new(AuthSettings::from_config(&config).unwrap(), &config);
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let refused = |v: Verdict| match v {
            Verdict::Refused { reason, .. } => reason,
            other => panic!("{other:?}"),
        };
        assert!(refused(a.check_password_blocking("off", "pw", None)).contains("moved"));
        // A wrong password is a mismatch, not a refusal: the refusal tells a guesser nothing.
        assert_eq!(
            a.check_password_blocking("off", "x", None),
            Verdict::Mismatch
        );
        assert!(matches!(
            a.check_password_blocking("lan", "pw", ip("192.0.2.9")),
            Verdict::Ok { .. }
        ));
        assert!(matches!(
            a.check_password_blocking("lan", "pw", None),
            Verdict::Ok { .. }
        ));
        assert!(
            refused(a.check_password_blocking("lan", "pw", ip("203.0.113.1")))
                .contains("203.0.113.1")
        );
        assert!(refused(a.check_password_blocking("wan", "pw", None)).contains("'local' missing"));
        // Cached logins are refused too.
        assert!(matches!(
            a.check_password_blocking("wan", "pw", ip("198.51.100.1")),
            Verdict::Ok { .. }
        ));
        assert!(matches!(
            a.check_password_blocking("wan", "pw", ip("198.51.100.2")),
            Verdict::Refused { .. }
        ));
    }

    #[test]
    fn default_realm() {
        let (_d, a) = setup("example.com", 0);
        assert_eq!(a.canonical_name("Alice"), "alice@example.com");
        assert_eq!(
            a.check_password_blocking("alice", "Sup3r secret", None),
            Verdict::Ok {
                user: "alice@example.com".into()
            }
        );
        // A file entry without the domain still serves name@realm.
        assert_eq!(
            a.check_password_blocking("demo", "demo", None),
            Verdict::Ok {
                user: "demo".into()
            }
        );
    }

    #[test]
    fn embedded_default_demo_answers_with_and_without_domain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwd");
        std::fs::write(&path, "demo:{PLAIN}demo::::::\n").unwrap();
        let mut config = Config::embedded();
        config.passdb[0].args = path;
        let a = Authenticator::new(AuthSettings::from_config(&config).unwrap(), &config);
        for name in ["demo", "demo@localhost", "DEMO@LOCALHOST"] {
            assert_eq!(
                a.check_password_blocking(name, "demo", None),
                Verdict::Ok {
                    user: "demo".into()
                }
            );
            assert_eq!(a.lookup_blocking(name).unwrap().unwrap().user, "demo");
        }
        assert_eq!(a.lookup_blocking("demo@example.com").unwrap(), None);
    }

    #[test]
    fn userdb_fields_and_quota() {
        let (_d, a) = setup("", 0);
        let alice = a.lookup_blocking("alice@example.com").unwrap().unwrap();
        assert_eq!(alice.quota.max_bytes, Some(1 << 30));
        assert_eq!(
            alice.fields,
            vec![("quota_rule".to_string(), "*:storage=1G".to_string())]
        );
        let demo = a.lookup_blocking("demo").unwrap().unwrap();
        assert_eq!(demo.home, "/home/demo");
        // No rule of its own: the global quota_rule.
        assert_eq!(demo.quota.max_messages, Some(50));
        assert_eq!(a.lookup_blocking("nobody").unwrap(), None);
    }

    #[tokio::test]
    async fn rate_limits_per_ip_after_failures() {
        let (_d, a) = setup("", 3);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(
                a.authenticate(Service::Imap, "demo", "bad", ip, "s").await,
                AuthOutcome::Failed
            );
        }
        // Even the right password is refused while limited; another address is not.
        assert_eq!(
            a.authenticate(Service::Imap, "demo", "demo", ip, "s").await,
            AuthOutcome::RateLimited
        );
        assert_eq!(
            a.authenticate(Service::Imap, "demo", "demo", other, "s")
                .await,
            AuthOutcome::Ok {
                user: "demo".into()
            }
        );
    }

    #[tokio::test]
    async fn failure_is_delayed() {
        let (_d, a) = setup("", 0);
        let t0 = Instant::now();
        let r = a
            .authenticate(
                Service::Pop3,
                "demo",
                "bad",
                "192.0.2.1".parse().unwrap(),
                "s",
            )
            .await;
        assert_eq!(r, AuthOutcome::Failed);
        assert!(t0.elapsed() >= Duration::from_millis(10));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hash_checks_are_bounded_and_cached_logins_do_not_queue() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        // doveadm pw -s SHA512-CRYPT -r 10000 -p 'Sup3r secret'
        let slow = "{SHA512-CRYPT}$6$rounds=10000$BwEulPK8SgtIMYqW$g7JGHFBY6KQFBMjmTpMRNYIn3Ovwg0zmbv1vSLNUaZ/fQsxKy4wZQmtA1Y7G5P0nW.AOdwOQURRGtt54yFClH1";
        let mut text = String::new();
        for i in 0..8 {
            text.push_str(&format!("u{i}:{slow}::::::\n"));
        }
        std::fs::write(&path, text).unwrap();
        let config = Config {
            passdb: vec![DbConfig {
                driver: "passwd-file".into(),
                args: path,
            }],
            auth_worker_max_count: 1,
            ..Config::default()
        };
        let a = Authenticator::new(AuthSettings::from_config(&config).unwrap(), &config);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            a.authenticate(Service::Imap, "u0", "Sup3r secret", ip, "s")
                .await,
            AuthOutcome::Ok { user: "u0".into() }
        );
        // Hold the only worker: uncached logins must queue for it...
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let held = {
            let a = a.clone();
            tokio::spawn(async move { a.workers.run(move || wait.recv().is_ok()).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let storm: Vec<_> = (1..8)
            .map(|i| {
                let a = a.clone();
                tokio::spawn(async move {
                    a.authenticate(Service::Imap, &format!("u{i}"), "Sup3r secret", ip, "s")
                        .await
                })
            })
            .collect();
        // ...while a cached login is answered without a worker.
        let cached = tokio::time::timeout(
            Duration::from_secs(10),
            a.authenticate(Service::Imap, "u0", "Sup3r secret", ip, "s"),
        )
        .await
        .expect("a cached login must not wait for a hash worker");
        assert_eq!(cached, AuthOutcome::Ok { user: "u0".into() });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            storm.iter().all(|h| !h.is_finished()),
            "uncached logins ran without a worker"
        );
        release.send(()).unwrap();
        assert_eq!(held.await.unwrap(), Ok(true));
        for h in storm {
            assert!(matches!(h.await.unwrap(), AuthOutcome::Ok { .. }));
        }
    }

    #[test]
    fn missing_passwd_file_is_tempfail() {
        let config = Config {
            passdb: vec![DbConfig {
                driver: "passwd-file".into(),
                args: "/nonexistent/users".into(),
            }],
            ..Config::default()
        };
        let a = Authenticator::new(AuthSettings::from_config(&config).unwrap(), &config);
        match a.check_password_blocking("demo", "demo", None) {
            Verdict::TempFail(e) => assert!(e.contains("/nonexistent/users"), "{e}"),
            other => panic!("{other:?}"),
        }
    }
}
