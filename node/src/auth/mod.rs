//! Authentication shared by IMAP, POP3, LMTP and the admin commands: passdb/userdb lookups in
//! Dovecot passwd-files, password schemes, a verified-credentials cache, a failure delay and
//! per-IP failure limiting, with Dovecot-like log lines (fail2ban-friendly: `rip=`).

pub mod cache;
pub mod cram_scheme;
mod credentials;
pub mod db;
pub mod limiter;
pub mod md5crypt;
pub mod nets;
pub mod oauth2;
pub mod passwd_file;
pub mod quota_rule;
pub mod schemes;
mod workers;

use crate::config::Config;
use cache::{Cached, LoginCache, UserCache};
use db::username_filter::UsernameFilter;
use db::{
    ChainResult, Fields, PassChain, PassEntry, PassReply, Request, Rules, Step, UserEntry,
    UserReply,
};
use limiter::FailureLimiter;
use parking_lot::Mutex;
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
    pub cache_negative_ttl: Duration,
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
            cache_negative_ttl: c.auth_cache_negative_ttl.0,
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
    /// The password matched and the passdb routes the user to another server (`proxy` or
    /// `proxy_maybe` with `host`): its fields say where.
    Proxy {
        user: String,
        fields: Fields,
    },
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
pub fn login_policy(fields: &Fields, rip: Option<IpAddr>) -> Result<(), String> {
    policy_step(fields, rip).map_err(|(_, reason)| reason)
}

/// As [`login_policy`]; the bool is true for `nologin` (final), false for `allow_nets`
/// (a later passdb may still accept, as in Dovecot).
fn policy_step(fields: &Fields, rip: Option<IpAddr>) -> Result<(), (bool, String)> {
    if fields.has("nologin") {
        return Err((
            true,
            match fields.get("reason") {
                Some(r) if !r.is_empty() => format!("Account is disabled (nologin): {r}"),
                _ => "Account is disabled (nologin)".to_string(),
            },
        ));
    }
    if let Some(list) = fields.get("allow_nets") {
        let allowed = nets::parse_list([list]).map_err(|e| {
            (
                false,
                format!("allow_nets check failed: bad allow_nets field: {e}"),
            )
        })?;
        if !nets::any_contains(&allowed, rip) {
            return Err((
                false,
                match rip {
                    Some(ip) => format!("allow_nets check failed: IP {ip} not in allowed networks"),
                    None => "allow_nets check failed: Remote IP not known and 'local' missing"
                        .to_string(),
                },
            ));
        }
    }
    Ok(())
}

/// A name that can be anybody's: not empty, no control characters (a NUL would end the
/// name early in PAM and checkpassword, and PostgreSQL refuses it: an error, not "unknown
/// user"). Others are unknown users without asking any database, as in Dovecot.
fn plausible_name(user: &str) -> bool {
    !user.is_empty() && !user.chars().any(char::is_control)
}

/// The chain step of a passdb entry whose password matched (or needs none).
fn with_policy(entry: PassEntry, rip: Option<IpAddr>) -> Step {
    match policy_step(&entry.fields, rip) {
        Ok(()) => Step::Ok(entry),
        Err((true, reason)) => Step::Disabled {
            user: entry.user,
            reason,
        },
        Err((false, reason)) => Step::NetRefused {
            user: entry.user,
            reason,
        },
    }
}

/// A passdb's answer before the (slow) hash check.
enum Lookup {
    Done(Step),
    /// The stored hash must be checked against the password: on a hash worker.
    Hash(PassEntry),
}

/// The password hash check of one passdb entry. CPU-bound (ARGON2ID: tens of ms, 64 MiB).
fn verify_step(entry: PassEntry, password: &str, rip: Option<IpAddr>) -> Step {
    let Some(stored) = entry.password.as_deref() else {
        return Step::Mismatch;
    };
    match schemes::verify(stored, password) {
        Ok(true) => with_policy(entry, rip),
        Ok(false) => Step::Mismatch,
        Err(e) => Step::Internal(format!("user {}: {e}", entry.user)),
    }
}

/// A login whose chain must run: what the cache needs afterwards.
struct Begun {
    req: Request,
    key: cache::CacheKey,
    generations: Vec<u64>,
}

/// A configured driver that could not be opened (its configuration was checked at start-up,
/// so this is rare: a file that vanished since): every lookup is an internal failure.
struct Broken(String);

impl db::PassDb for Broken {
    fn name(&self) -> &'static str {
        "broken"
    }
    fn lookup(&self, _: &Request, _: Option<&str>) -> Result<PassReply, db::DbError> {
        Err(db::DbError(self.0.clone()))
    }
}

impl db::UserDb for Broken {
    fn name(&self) -> &'static str {
        "broken"
    }
    fn lookup(&self, _: &Request) -> Result<UserReply, db::DbError> {
        Err(db::DbError(self.0.clone()))
    }
    fn iterate(&self) -> Result<Option<Vec<String>>, db::DbError> {
        Err(db::DbError(self.0.clone()))
    }
}

/// The shortest time a login's userdb answer waits for the session it opens, and the fewest
/// such answers kept, when the auth cache is smaller or off: a session opens its store
/// right after its login, so a minute and a thousand concurrent logins are ample.
const LOGIN_HANDOFF: Duration = Duration::from_secs(60);
const LOGIN_HANDOFF_USERS: usize = 1000;

pub struct Authenticator {
    /// auth_worker_max_count concurrent hash checks.
    workers: workers::HashWorkers,
    passdbs: Vec<Box<dyn db::PassDb>>,
    pass_rules: Vec<Rules>,
    userdbs: Vec<Box<dyn db::UserDb>>,
    user_rules: Vec<Rules>,
    /// Each passdb's / userdb's username_filter.
    pass_filters: Vec<Option<UsernameFilter>>,
    user_filters: Vec<Option<UsernameFilter>>,
    /// A `prefetch` userdb is configured: a login looks its user up in the userdbs with
    /// the passdb's answer at hand, and the session it opens uses that answer.
    has_prefetch: bool,
    settings: AuthSettings,
    cache: Mutex<LoginCache>,
    user_cache: Mutex<UserCache>,
    /// The userdb answer of each user's latest login (prefetch only), handed to the
    /// session that login opens ([`Authenticator::session_user_blocking`]).
    login_users: Mutex<UserCache>,
    limiter: Mutex<FailureLimiter>,
}

impl Authenticator {
    pub fn new(settings: AuthSettings, config: &Config) -> Arc<Authenticator> {
        let mut passdbs: Vec<Box<dyn db::PassDb>> = Vec::new();
        let mut pass_rules = Vec::new();
        // Checked at start-up (config check): a bad filter here cannot happen; ignoring it
        // would only ask the database about more users.
        let filter = |d: &crate::config::DbConfig| db::username_filter_of(d).ok().flatten();
        let pass_filters = config.passdb.iter().map(filter).collect();
        for d in &config.passdb {
            passdbs.push(db::open_passdb(d).unwrap_or_else(|e| {
                tracing::error!(target: "auth", "passdb {}: {e}", d.driver);
                Box::new(Broken(format!("passdb {}: {e}", d.driver)))
            }));
            pass_rules.push(Rules::from_config(d, false).unwrap_or(Rules::DEFAULT));
        }
        let mut userdbs: Vec<Box<dyn db::UserDb>> = Vec::new();
        let mut user_rules = Vec::new();
        // Passdbs standing in for the userdbs: a deny list is not a list of users.
        let user_configs: Vec<_> = config
            .effective_userdbs()
            .iter()
            .filter(|d| !(config.userdb.is_empty() && d.deny))
            .collect();
        let alone = user_configs.len() == 1;
        let has_prefetch = config.userdb.iter().any(|d| d.driver == "prefetch");
        let user_filters = user_configs.iter().map(|d| filter(d)).collect();
        for d in user_configs {
            userdbs.push(db::open_userdb(d, alone).unwrap_or_else(|e| {
                tracing::error!(target: "auth", "userdb {}: {e}", d.driver);
                Box::new(Broken(format!("userdb {}: {e}", d.driver)))
            }));
            // A passdb standing in for the userdb keeps the userdb's default rules.
            user_rules.push(if config.userdb.is_empty() {
                Rules::DEFAULT
            } else {
                Rules::from_config(d, true).unwrap_or(Rules::DEFAULT)
            });
        }
        Arc::new(Authenticator {
            workers: workers::HashWorkers::new(settings.worker_max_count),
            passdbs,
            pass_rules,
            userdbs,
            user_rules,
            pass_filters,
            user_filters,
            has_prefetch,
            // A session opens its store within moments of its login: the hand-off lives
            // as long as a cached login (at least LOGIN_HANDOFF), whatever the cache says.
            login_users: Mutex::new(UserCache::new(
                settings.cache_size.max(LOGIN_HANDOFF_USERS),
                settings.cache_ttl.max(LOGIN_HANDOFF),
                Duration::ZERO,
            )),
            cache: Mutex::new(LoginCache::new(
                settings.cache_size,
                settings.cache_ttl,
                settings.cache_negative_ttl,
            )),
            user_cache: Mutex::new(UserCache::new(
                settings.cache_size,
                settings.cache_ttl,
                settings.cache_negative_ttl,
            )),
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

    /// `node auth cache flush`: how many cached logins and userdb answers were forgotten.
    pub fn flush_cache(&self) -> usize {
        self.login_users.lock().flush();
        self.cache.lock().flush() + self.user_cache.lock().flush()
    }

    /// Which passdbs (`userdb` false) or userdbs this user's lookups pass over: their
    /// username_filter does not accept the name.
    fn filtered(&self, user: &str, userdb: bool) -> Vec<bool> {
        let filters = if userdb {
            &self.user_filters
        } else {
            &self.pass_filters
        };
        filters
            .iter()
            .map(|f| f.as_ref().is_some_and(|f| !f.accepts(user)))
            .collect()
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

    /// The lookup request for `user`: the canonical name, and without the default realm as
    /// an alternative (a passwd-file listing `demo` still serves `demo@realm`).
    fn request(&self, user: &str, service: &str, rip: Option<IpAddr>) -> Request {
        let canonical = self.canonical_name(user);
        let mut alternatives = Vec::new();
        if !self.settings.default_realm.is_empty() {
            if let Some(local) =
                canonical.strip_suffix(&format!("@{}", self.settings.default_realm))
            {
                alternatives.push(local.to_string());
            }
        }
        Request {
            user: canonical,
            alternatives,
            service: service.to_string(),
            rip,
            lip: None,
            prefetch: None,
            after_login: false,
        }
    }

    /// The passdb entry of `user` from the first passdb that knows them, for `node auth
    /// lookup` (password field included: the caller shows it only as doveadm does, to the
    /// admin). Blocking.
    pub fn passdb_entry_blocking(&self, user: &str) -> Result<Option<PassEntry>, String> {
        self.passdb_entry_for_blocking(user, "")
    }

    /// As [`Authenticator::passdb_entry_blocking`], for a service (`%s` in a driver's query:
    /// LMTP's proxy routing asks as `lmtp`).
    pub fn passdb_entry_for_blocking(
        &self,
        user: &str,
        service: &str,
    ) -> Result<Option<PassEntry>, String> {
        let req = self.request(user, service, None);
        if !plausible_name(&req.user) {
            return Ok(None);
        }
        let mut failure = None;
        let filtered = self.filtered(&req.user, false);
        for (i, (db, rules)) in self.passdbs.iter().zip(&self.pass_rules).enumerate() {
            if rules.deny || filtered.get(i).copied().unwrap_or(false) {
                continue;
            }
            match db.lookup(&req, None) {
                Ok(PassReply::Found(e)) => return Ok(Some(e)),
                Ok(_) => {}
                Err(e) => failure = Some(format!("{}: {e}", db.name())),
            }
        }
        failure.map_or(Ok(None), Err)
    }

    /// The passdbs' generations (a re-read passwd-file changes its own). One that cannot be
    /// read counts as a generation of its own: its lookup will say what is wrong, and a
    /// later passdb may still answer.
    fn generations(&self) -> Vec<u64> {
        self.passdbs
            .iter()
            .map(|d| d.generation().unwrap_or(u64::MAX))
            .collect()
    }

    /// The cache, before any passdb is asked. Blocking (a passwd-file `stat`).
    fn begin_blocking(
        &self,
        service: &str,
        user: &str,
        password: &str,
        rip: Option<IpAddr>,
    ) -> Result<Begun, Verdict> {
        let req = self.request(user, service, rip);
        if !plausible_name(&req.user) {
            return Err(Verdict::UnknownUser);
        }
        let generations = self.generations();
        // The service is part of the key, as Dovecot's cache keys hold the variables a
        // query uses: a passdb may answer per service (`%s`: a proxy's port for IMAP vs
        // POP3). Names hold no control characters, so the newline cannot be forged.
        let key = self
            .cache
            .lock()
            .key(&format!("{}\n{}", req.service, req.user), password);
        let hit = self.cache.lock().get(&key, &generations, Instant::now());
        match hit {
            // The cache only skips the lookup and the hash: the passdb's refusals still
            // apply to this client.
            Some(Cached::Ok(entry)) => {
                return Err(self.conclude(ChainResult::from_step(with_policy(entry, rip)), &req))
            }
            Some(Cached::Unknown) => return Err(Verdict::UnknownUser),
            Some(Cached::Mismatch) => return Err(Verdict::Mismatch),
            None => {}
        }
        Ok(Begun {
            req,
            key,
            generations,
        })
    }

    /// One passdb's lookup, and whether its hash must be checked. Blocking (driver I/O).
    fn passdb_step_blocking(
        &self,
        i: usize,
        req: &Request,
        password: &str,
        authenticated: bool,
    ) -> Lookup {
        let Some(db) = self.passdbs.get(i) else {
            return Lookup::Done(Step::Unknown);
        };
        match db.lookup(req, Some(password)) {
            Err(e) => Lookup::Done(Step::Internal(format!("{}: {e}", db.name()))),
            Ok(PassReply::Unknown) => Lookup::Done(Step::Unknown),
            Ok(PassReply::Mismatch) => Lookup::Done(Step::Mismatch),
            Ok(PassReply::Found(entry)) => {
                if authenticated || entry.verified || entry.fields.has("nopassword") {
                    Lookup::Done(with_policy(entry, req.rip))
                } else if entry.password.is_none() {
                    Lookup::Done(Step::Mismatch)
                } else {
                    Lookup::Hash(entry)
                }
            }
        }
    }

    /// The chain's result as a verdict; a success is remembered in the cache. When the
    /// passdbs could not be asked, an answer the cache holds for this login however old
    /// is used instead (Dovecot does the same): a user seen once keeps logging in while the
    /// database is down. Blocking (the prefetch userdb lookup).
    fn finish(&self, result: ChainResult, begun: Begun) -> Verdict {
        if let ChainResult::Internal(e) = &result {
            let stale = self.cache.lock().get_stale(&begun.key, &begun.generations);
            if let Some(cached) = stale {
                tracing::warn!(target: "auth", "passdb({}): {e}: falling back to expired data from cache", begun.req.user);
                return match cached {
                    Cached::Ok(entry) => self.conclude(
                        ChainResult::from_step(with_policy(entry, begun.req.rip)),
                        &begun.req,
                    ),
                    Cached::Unknown => Verdict::UnknownUser,
                    Cached::Mismatch => Verdict::Mismatch,
                };
            }
        }
        let cached = match &result {
            ChainResult::Ok(entry) => Some(Cached::Ok(PassEntry {
                password: None,
                ..entry.clone()
            })),
            ChainResult::Unknown => Some(Cached::Unknown),
            ChainResult::Mismatch => Some(Cached::Mismatch),
            // Refusals depend on the client (allow_nets) or are rare; failures must be
            // asked again.
            ChainResult::Refused { .. } | ChainResult::Internal(_) => None,
        };
        if let Some(c) = cached {
            self.cache
                .lock()
                .insert(begun.key, c, begun.generations, Instant::now());
        }
        self.conclude(result, &begun.req)
    }

    /// The verdict of a login's passdb result; with a `prefetch` userdb, a success also
    /// looks the user up in the userdbs with the passdb's `userdb_*` fields, as Dovecot
    /// does within the login, and keeps that answer for the session. A userdb that cannot
    /// answer makes the login a temporary failure. Blocking.
    fn conclude(&self, result: ChainResult, req: &Request) -> Verdict {
        if let ChainResult::Ok(entry) = &result {
            if self.has_prefetch && !crate::proxy::wants_proxy(&entry.fields) {
                if let Err(e) = self.login_userdb_blocking(entry, req) {
                    return Verdict::TempFail(e);
                }
            }
        }
        Self::verdict(result)
    }

    /// The userdbs for a login whose passdb answered `entry`; the answer is kept for
    /// [`Authenticator::session_user_blocking`].
    fn login_userdb_blocking(&self, entry: &PassEntry, req: &Request) -> Result<(), String> {
        let login_req = Request {
            user: entry.user.clone(),
            alternatives: Vec::new(),
            prefetch: db::prefetch::userdb_fields(&entry.fields),
            after_login: true,
            ..req.clone()
        };
        let found = self.userdb_chain_blocking(&entry.user, &login_req)?;
        let mut handoff = self.login_users.lock();
        match found {
            Some(user_entry) => handoff.insert(
                entry.user.clone(),
                Some(user_entry),
                self.userdb_generations(),
                Instant::now(),
            ),
            None => handoff.remove(&entry.user),
        }
        Ok(())
    }

    fn userdb_generations(&self) -> Vec<u64> {
        self.userdbs
            .iter()
            .map(|d| d.generation().unwrap_or(u64::MAX))
            .collect()
    }

    /// The user a session that just logged in opens: the userdb answer its login got (with
    /// the passdb's prefetched fields), else a plain userdb lookup. Blocking.
    pub fn session_user_blocking(&self, user: &str) -> Result<Option<UserRecord>, String> {
        if self.has_prefetch {
            // Kept under the login's name, which a passdb may have given without the realm.
            let generations = self.userdb_generations();
            let now = Instant::now();
            let handed = {
                let mut handoff = self.login_users.lock();
                handoff
                    .get(user, &generations, now)
                    .or_else(|| handoff.get(&self.canonical_name(user), &generations, now))
            };
            if let Some(Some(entry)) = handed {
                return self.user_record(entry).map(Some);
            }
        }
        self.lookup_blocking(user)
    }

    fn verdict(result: ChainResult) -> Verdict {
        match result {
            ChainResult::Ok(entry) if crate::proxy::wants_proxy(&entry.fields) => Verdict::Proxy {
                user: entry.user,
                fields: entry.fields,
            },
            ChainResult::Ok(entry) => Verdict::Ok { user: entry.user },
            ChainResult::Unknown => Verdict::UnknownUser,
            ChainResult::Mismatch => Verdict::Mismatch,
            ChainResult::Refused { user, reason } => Verdict::Refused { user, reason },
            ChainResult::Internal(e) => Verdict::TempFail(e),
        }
    }

    /// passdb chain + verification in one blocking call (admin commands); `rip` is the
    /// client address to check `allow_nets` against, if any.
    pub fn check_password_blocking(
        &self,
        user: &str,
        password: &str,
        rip: Option<IpAddr>,
    ) -> Verdict {
        let begun = match self.begin_blocking("", user, password, rip) {
            Ok(b) => b,
            Err(verdict) => return verdict,
        };
        let mut chain =
            PassChain::new(&self.pass_rules).with_filtered(self.filtered(&begun.req.user, false));
        let result = loop {
            let Some(i) = chain.next() else {
                break ChainResult::Unknown;
            };
            let step =
                match self.passdb_step_blocking(i, &begun.req, password, chain.authenticated()) {
                    Lookup::Done(step) => step,
                    Lookup::Hash(entry) => verify_step(entry, password, rip),
                };
            if let Some(r) = chain.feed(step) {
                break r;
            }
        };
        self.finish(result, begun)
    }

    /// Lookups and the cache on the blocking pool; hash checks on one of the
    /// `auth_worker_max_count` low-priority workers, so a login storm queues instead of running
    /// hundreds of 64 MiB ARGON2ID computations at once, never starves the sessions of CPU,
    /// and cached logins never wait behind it.
    async fn check_password(
        self: &Arc<Self>,
        service: &str,
        user: &str,
        password: &str,
        rip: IpAddr,
    ) -> Verdict {
        let internal =
            |e: tokio::task::JoinError| Verdict::TempFail(format!("internal error: {e}"));
        let this = self.clone();
        let (u, p, svc) = (user.to_string(), password.to_string(), service.to_string());
        let begun =
            match tokio::task::spawn_blocking(move || this.begin_blocking(&svc, &u, &p, Some(rip)))
                .await
            {
                Ok(Ok(b)) => Arc::new(b),
                Ok(Err(verdict)) => return verdict,
                Err(e) => return internal(e),
            };
        let mut chain =
            PassChain::new(&self.pass_rules).with_filtered(self.filtered(&begun.req.user, false));
        let result = loop {
            let Some(i) = chain.next() else {
                break ChainResult::Unknown;
            };
            let authenticated = chain.authenticated();
            let (this, b, p) = (self.clone(), begun.clone(), password.to_string());
            let looked_up = match tokio::task::spawn_blocking(move || {
                this.passdb_step_blocking(i, &b.req, &p, authenticated)
            })
            .await
            {
                Ok(l) => l,
                Err(e) => return internal(e),
            };
            let step = match looked_up {
                Lookup::Done(step) => step,
                Lookup::Hash(entry) => {
                    let p = password.to_string();
                    self.workers
                        .run(move || verify_step(entry, &p, Some(rip)))
                        .await
                        .unwrap_or_else(Step::Internal)
                }
            };
            if let Some(r) = chain.feed(step) {
                break r;
            }
        };
        let begun = Arc::try_unwrap(begun).unwrap_or_else(|b| Begun {
            req: b.req.clone(),
            key: b.key,
            generations: b.generations.clone(),
        });
        // On the blocking pool: the prefetch userdb lookup and a stale fallback's may ask
        // a database.
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.finish(result, begun))
            .await
            .unwrap_or_else(internal)
    }

    /// userdb lookup through the userdbs in order (Dovecot's rules: the first that finds
    /// the user answers, unless its result_success says continue). Blocking (driver I/O):
    /// run on the blocking pool. An unreachable userdb is an error (a temporary failure),
    /// never "no such user".
    pub fn lookup_blocking(&self, user: &str) -> Result<Option<UserRecord>, String> {
        let req = self.request(user, "", None);
        if !plausible_name(&req.user) {
            return Ok(None);
        }
        let generations = self.userdb_generations();
        let hit = self
            .user_cache
            .lock()
            .get(&req.user, &generations, Instant::now());
        let entry = match hit {
            Some(entry) => entry,
            None => {
                let entry = match self.userdb_chain_blocking(user, &req) {
                    Ok(entry) => entry,
                    Err(e) => {
                        // As for logins: an answer however old beats "try again later".
                        let stale = self.user_cache.lock().get_stale(&req.user, &generations);
                        let Some(entry) = stale else {
                            return Err(e);
                        };
                        tracing::warn!(target: "auth", "userdb({}): {e}: falling back to expired data from cache", req.user);
                        return entry.map(|e| self.user_record(e)).transpose();
                    }
                };
                self.user_cache.lock().insert(
                    req.user.clone(),
                    entry.clone(),
                    generations,
                    Instant::now(),
                );
                entry
            }
        };
        let Some(entry) = entry else {
            return Ok(None);
        };
        self.user_record(entry).map(Some)
    }

    /// The userdbs in order, without the cache.
    fn userdb_chain_blocking(
        &self,
        user: &str,
        req: &Request,
    ) -> Result<Option<UserEntry>, String> {
        let mut found: Option<UserEntry> = None;
        let mut failure: Option<String> = None;
        let filtered = self.filtered(&req.user, true);
        for (i, (db, rules)) in self.userdbs.iter().zip(&self.user_rules).enumerate() {
            let skip = match rules.skip {
                db::Skip::Found => found.is_some(),
                db::Skip::NotFound => found.is_none(),
                _ => false,
            } || filtered.get(i).copied().unwrap_or(false);
            if skip {
                continue;
            }
            let reply = match db.lookup(req) {
                Ok(UserReply::AskPassdb(e)) => match self.passdb_entry_blocking(user) {
                    Ok(Some(p)) => Ok(UserReply::Found(UserEntry {
                        user: p.user,
                        fields: e.fields,
                    })),
                    Ok(None) => Ok(UserReply::Unknown),
                    Err(e) => Err(e),
                },
                Ok(r) => Ok(r),
                Err(e) => Err(format!("{}: {e}", db.name())),
            };
            let rule = match reply {
                Ok(UserReply::Found(e)) | Ok(UserReply::AskPassdb(e)) => {
                    found = Some(match found.take() {
                        // A later userdb's fields override an earlier one's.
                        Some(prev) => UserEntry {
                            user: e.user,
                            fields: prev.fields.overridden_by(e.fields),
                        },
                        None => e,
                    });
                    rules.success
                }
                Ok(UserReply::Unknown) => rules.failure,
                Err(e) => {
                    failure = Some(e);
                    rules.internalfail
                }
            };
            match rule {
                db::Rule::Return | db::Rule::ReturnOk => break,
                db::Rule::ReturnFail => {
                    found = None;
                    break;
                }
                db::Rule::Continue | db::Rule::ContinueOk => {}
                db::Rule::ContinueFail => found = None,
            }
        }
        match (found, failure) {
            (Some(entry), _) => Ok(Some(entry)),
            (None, Some(e)) => Err(e),
            (None, None) => Ok(None),
        }
    }

    fn user_record(&self, entry: UserEntry) -> Result<UserRecord, String> {
        let quota =
            quota_rule::apply_rules(self.settings.default_quota, entry.fields.quota_rules())
                .map_err(|e| format!("user {}: quota_rule {e}", entry.user))?;
        let take = |k: &str| entry.fields.get(k).unwrap_or_default().to_string();
        Ok(UserRecord {
            uid: take("uid"),
            gid: take("gid"),
            home: take("home"),
            user: entry.user.clone(),
            quota,
            fields: entry
                .fields
                .0
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "uid" | "gid" | "home"))
                .cloned()
                .collect(),
        })
    }

    /// Every user the userdbs can list (`node user list`). Blocking (driver I/O).
    pub fn userdb_users(&self) -> Result<Vec<String>, String> {
        let mut out = std::collections::BTreeSet::new();
        for d in &self.userdbs {
            if let Some(users) = d.iterate().map_err(|e| format!("{}: {e}", d.name()))? {
                out.extend(users);
            }
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
        let check = self.check_password(service.as_str(), user, password, rip);
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
        // Dovecot's log prefix names the passdb: `sql(user,rip,<session>)`.
        let db = self.passdbs.first().map_or("passdb", |d| d.name());
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
                "{db}({shown},{rip},<{session}>): auth failed, rate limited: {n} failures in {window} secs, rip={rip}"
            );
            metrics::counter!("node_logins_total", "service" => service.as_str(), "result" => "ratelimited").increment(1);
            tokio::time::sleep(self.settings.failure_delay).await;
            return AuthOutcome::RateLimited;
        }
        let verdict = check.await;
        let outcome = match verdict {
            Verdict::Ok { user } => {
                tracing::debug!(target: "auth", service = service.as_str(), rip = %rip, "{db}({user},{rip},<{session}>): login ok");
                metrics::counter!("node_logins_total", "service" => service.as_str(), "result" => "ok").increment(1);
                return AuthOutcome::Ok { user };
            }
            Verdict::Proxy { user, fields } => {
                metrics::counter!("node_logins_total", "service" => service.as_str(), "result" => "ok").increment(1);
                return match crate::proxy::target_from_fields(&user, &fields) {
                    Ok(target) => AuthOutcome::Proxy {
                        user,
                        target: Box::new(target),
                    },
                    Err(e) => {
                        // A routing entry the proxy cannot follow is the operator's to fix.
                        tracing::error!(target: "auth", service = service.as_str(), rip = %rip, "{db}({user},{rip},<{session}>): {e}");
                        AuthOutcome::TempFail(e)
                    }
                };
            }
            Verdict::UnknownUser => {
                if self.settings.verbose {
                    tracing::info!(target: "auth", service = service.as_str(), rip = %rip, "{db}({shown},{rip},<{session}>): unknown user");
                }
                AuthOutcome::Failed
            }
            Verdict::Mismatch => {
                if self.settings.verbose {
                    tracing::info!(target: "auth", service = service.as_str(), rip = %rip, "{db}({shown},{rip},<{session}>): Password mismatch");
                }
                AuthOutcome::Failed
            }
            Verdict::Refused { user, reason } => {
                // Logged whatever auth_verbose says: the operator disabled this on purpose
                // and wants to see it hold.
                tracing::info!(target: "auth", service = service.as_str(), rip = %rip, "{db}({user},{rip},<{session}>): {reason}");
                AuthOutcome::Failed
            }
            Verdict::TempFail(reason) => {
                tracing::error!(target: "auth", service = service.as_str(), rip = %rip, "{db}({shown},{rip},<{session}>): {reason}");
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
            passdb: vec![DbConfig::passwd_file(path)],
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
            passdb: vec![DbConfig::passwd_file(path)],
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
            passdb: vec![DbConfig::passwd_file(path)],
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

    /// The SQL driver behind the whole chain: logins and userdb lookups are cached, so a
    /// user seen within the TTL keeps working when the database is gone; a user not seen
    /// gets a temporary failure, never "wrong password"; unknown users are cached
    /// negatively.
    #[test]
    fn cache_serves_while_the_directory_is_down() {
        let dir = tempfile::tempdir().unwrap();
        let (db, conf) = db::sql::tests::make_sqlite(dir.path());
        let sql = DbConfig {
            driver: "sql".into(),
            ..DbConfig::passwd_file(conf)
        };
        let config = Config {
            passdb: vec![sql.clone()],
            userdb: vec![sql],
            ..Config::default()
        };
        let a = Authenticator::new(AuthSettings::from_config(&config).unwrap(), &config);
        let bob = || a.check_password_blocking("bob@example.com", "pw", None);
        assert_eq!(
            bob(),
            Verdict::Ok {
                user: "bob@example.com".into()
            }
        );
        assert_eq!(
            a.check_password_blocking("bob@example.com", "wrong", None),
            Verdict::Mismatch
        );
        assert_eq!(
            a.check_password_blocking("nobody@example.com", "pw", None),
            Verdict::UnknownUser
        );
        assert_eq!(
            a.check_password_blocking("x' OR '1'='1", "pw", None),
            Verdict::UnknownUser
        );
        assert_eq!(
            a.check_password_blocking("bob@example.com\0x", "pw", None),
            Verdict::UnknownUser
        );
        assert_eq!(a.lookup_blocking("bob\n@example.com").unwrap(), None);
        let rec = a.lookup_blocking("bob@example.com").unwrap().unwrap();
        assert_eq!(rec.home, "/var/vmail/bob@example.com");
        assert_eq!(rec.quota.max_bytes, Some(1024));
        let mut all = a.userdb_users().unwrap();
        all.sort();
        assert_eq!(all, vec!["bob@example.com", "off@example.com"]);

        // The database breaks under the pool's open connections (a removed file would still
        // be read through them).
        std::fs::write(&db, vec![b'x'; 8192]).unwrap();
        // Seen within the TTL: served from the cache, positive and negative.
        assert!(matches!(bob(), Verdict::Ok { .. }));
        assert_eq!(
            a.lookup_blocking("bob@example.com").unwrap().unwrap().home,
            rec.home
        );
        assert_eq!(
            a.check_password_blocking("nobody@example.com", "pw", None),
            Verdict::UnknownUser
        );
        // Not seen: the database must answer, and cannot.
        assert!(matches!(
            a.check_password_blocking("off@example.com", "pw", None),
            Verdict::TempFail(_)
        ));
        assert!(a.lookup_blocking("off@example.com").is_err());
        assert!(a.userdb_users().is_err());
        // A flushed cache asks again.
        a.flush_cache();
        assert!(matches!(bob(), Verdict::TempFail(_)));
    }

    #[test]
    fn static_userdb_needs_a_passdb_unless_allow_all_users() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        std::fs::write(&path, "demo:{PLAIN}demo::::::\n").unwrap();
        let stat = |args: &str| DbConfig {
            driver: "static".into(),
            ..DbConfig::passwd_file(args.into())
        };
        let config = Config {
            passdb: vec![DbConfig::passwd_file(path.clone())],
            userdb: vec![stat("uid=vmail gid=vmail home=/var/vmail/%d/%n")],
            ..Config::default()
        };
        let a = Authenticator::new(AuthSettings::from_config(&config).unwrap(), &config);
        assert_eq!(
            a.lookup_blocking("demo").unwrap().unwrap().home,
            "/var/vmail//demo"
        );
        assert_eq!(a.lookup_blocking("ghost").unwrap(), None);
        let config = Config {
            passdb: vec![DbConfig::passwd_file(path)],
            userdb: vec![stat("uid=vmail home=/h/%u allow_all_users=yes")],
            ..Config::default()
        };
        let a = Authenticator::new(AuthSettings::from_config(&config).unwrap(), &config);
        assert_eq!(
            a.lookup_blocking("ghost").unwrap().unwrap().home,
            "/h/ghost"
        );
        // A static passdb: one password for everyone.
        let config = Config {
            passdb: vec![stat("password=shared")],
            userdb: vec![stat("allow_all_users=yes")],
            ..Config::default()
        };
        let a = Authenticator::new(AuthSettings::from_config(&config).unwrap(), &config);
        assert!(matches!(
            a.check_password_blocking("anyone", "shared", None),
            Verdict::Ok { .. }
        ));
        assert_eq!(
            a.check_password_blocking("anyone", "other", None),
            Verdict::Mismatch
        );
    }

    /// Two passdbs with Dovecot's rules from the configuration: a deny list first, then the
    /// users; an unreadable first passdb with result_internalfail = continue is a temporary
    /// failure when the second does not know the user.
    #[test]
    fn configured_rules_deny_and_internalfail() {
        let dir = tempfile::tempdir().unwrap();
        let users = dir.path().join("users");
        let denied = dir.path().join("denied");
        std::fs::write(&users, "demo:{PLAIN}demo::::::\nbad:{PLAIN}bad::::::\n").unwrap();
        std::fs::write(&denied, "bad:::::::\n").unwrap();
        let config = crate::config::parse_str(
            &format!(
                "[[passdb]]\ndriver = \"passwd-file\"\nargs = {:?}\ndeny = true\n\
             [[passdb]]\ndriver = \"passwd-file\"\nargs = {:?}\n",
                denied.display().to_string(),
                users.display().to_string()
            ),
            std::path::Path::new("t.toml"),
        )
        .unwrap();
        let a = Authenticator::new(AuthSettings::from_config(&config).unwrap(), &config);
        assert!(matches!(
            a.check_password_blocking("bad", "bad", None),
            Verdict::Refused { .. }
        ));
        assert!(matches!(
            a.check_password_blocking("demo", "demo", None),
            Verdict::Ok { .. }
        ));
        // Without [[userdb]] the passdbs serve as userdbs, but not the deny list.
        assert!(a.lookup_blocking("demo").unwrap().is_some());
        assert!(
            a.lookup_blocking("bad").unwrap().is_some(),
            "bad is in the users file too"
        );
        std::fs::write(&denied, "ghost:::::::\n").unwrap();
        assert_eq!(a.lookup_blocking("ghost").unwrap(), None);
        let config = crate::config::parse_str(
            &format!(
                "[[passdb]]\ndriver = \"passwd-file\"\nargs = \"/nonexistent\"\n\
             [[passdb]]\ndriver = \"passwd-file\"\nargs = {:?}\n",
                users.display().to_string()
            ),
            std::path::Path::new("t.toml"),
        )
        .unwrap();
        let a = Authenticator::new(AuthSettings::from_config(&config).unwrap(), &config);
        assert!(matches!(
            a.check_password_blocking("demo", "demo", None),
            Verdict::Ok { .. }
        ));
        assert!(matches!(
            a.check_password_blocking("ghost", "x", None),
            Verdict::TempFail(_)
        ));
        assert!(crate::config::parse_str(
            "[[passdb]]\ndriver = \"static\"\nargs = \"password=x\"\nresult_success = \"sometimes\"\n",
            std::path::Path::new("t.toml"),
        )
        .unwrap_err()
        .to_string()
        .contains("sometimes"));
    }

    fn toml_config(text: &str) -> Config {
        crate::config::parse_str(text, std::path::Path::new("t.toml")).unwrap()
    }

    /// prefetch: after a login the passdb's userdb_* fields are the user's; a lookup
    /// without a login (LMTP, `node user`) goes on to the next userdb, and fails when
    /// prefetch is the only one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn prefetch_answers_after_a_login_and_the_next_userdb_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let users = dir.path().join("users");
        std::fs::write(
            &users,
            "ann:{PLAIN}pw::::::userdb_home=/pre/ann userdb_quota_rule=*:storage=2M\n\
             bob:{PLAIN}pw::::::\n",
        )
        .unwrap();
        let u = users.display();
        let config = toml_config(&format!(
            "[[passdb]]\ndriver = \"passwd-file\"\nargs = \"{u}\"\n\
             [[userdb]]\ndriver = \"prefetch\"\n\
             [[userdb]]\ndriver = \"static\"\nargs = \"home=/static/%u allow_all_users=yes\"\n"
        ));
        let a = Authenticator::new(AuthSettings::from_config(&config).unwrap(), &config);
        assert_eq!(
            a.lookup_blocking("ann").unwrap().unwrap().home,
            "/static/ann"
        );
        assert_eq!(
            a.session_user_blocking("ann").unwrap().unwrap().home,
            "/static/ann",
            "no login yet"
        );
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            a.authenticate(Service::Imap, "ann", "pw", ip, "s").await,
            AuthOutcome::Ok { user: "ann".into() }
        );
        let rec = a.session_user_blocking("ann").unwrap().unwrap();
        assert_eq!(rec.home, "/pre/ann");
        assert_eq!(rec.quota.max_bytes, Some(2 << 20));
        // LMTP still has no passdb answer.
        assert_eq!(
            a.lookup_blocking("ann").unwrap().unwrap().home,
            "/static/ann"
        );
        // A cached login hands the fields on too.
        a.login_users.lock().flush();
        assert!(matches!(
            a.check_password_blocking("ann", "pw", None),
            Verdict::Ok { .. }
        ));
        assert_eq!(
            a.session_user_blocking("ann").unwrap().unwrap().home,
            "/pre/ann"
        );
        // bob's passdb entry has no userdb_* field: the static userdb answers his login.
        assert!(matches!(
            a.check_password_blocking("bob", "pw", None),
            Verdict::Ok { .. }
        ));
        assert_eq!(
            a.session_user_blocking("bob").unwrap().unwrap().home,
            "/static/bob"
        );

        let alone = toml_config(&format!(
            "[[passdb]]\ndriver = \"passwd-file\"\nargs = \"{u}\"\n\
             [[userdb]]\ndriver = \"prefetch\"\n"
        ));
        let a = Authenticator::new(AuthSettings::from_config(&alone).unwrap(), &alone);
        assert!(a
            .lookup_blocking("ann")
            .unwrap_err()
            .contains("only userdb prefetch"));
        assert!(matches!(
            a.check_password_blocking("ann", "pw", None),
            Verdict::Ok { .. }
        ));
        assert_eq!(
            a.session_user_blocking("ann").unwrap().unwrap().home,
            "/pre/ann"
        );
        match a.check_password_blocking("bob", "pw", None) {
            Verdict::TempFail(e) => assert!(e.contains("didn't return userdb entries"), "{e}"),
            other => panic!("{other:?}"),
        }
        // Refused when the configuration is read (node config check, start-up).
        for bad in [
            "[[passdb]]\ndriver = \"prefetch\"\n",
            "[[userdb]]\ndriver = \"prefetch\"\nusername_filter = \"a !\"\n",
            "[[userdb]]\ndriver = \"prefetch\"\ndefault_fields = \"home=%{nonsense}\"\n",
            "[[passdb]]\ndriver = \"static\"\noverride_fields = \"x=\\\"open\"\n",
        ] {
            assert!(
                crate::config::parse_str(bad, std::path::Path::new("t.toml")).is_err(),
                "{bad}"
            );
        }
    }

    /// Past the TTL with the database down: the expired login, its userdb answer and a
    /// negative answer are served; a user never seen, or a password never tried, is a
    /// temporary failure.
    #[test]
    fn expired_cache_entries_serve_while_the_database_is_down() {
        let dir = tempfile::tempdir().unwrap();
        let (db, conf) = db::sql::tests::make_sqlite(dir.path());
        let sql = DbConfig {
            driver: "sql".into(),
            ..DbConfig::passwd_file(conf)
        };
        let config = Config {
            passdb: vec![sql.clone()],
            userdb: vec![sql],
            ..Config::default()
        };
        let mut settings = AuthSettings::from_config(&config).unwrap();
        settings.cache_ttl = Duration::from_millis(200);
        settings.cache_negative_ttl = Duration::from_millis(200);
        let a = Authenticator::new(settings, &config);
        assert!(matches!(
            a.check_password_blocking("bob@example.com", "pw", None),
            Verdict::Ok { .. }
        ));
        assert!(a.lookup_blocking("bob@example.com").unwrap().is_some());
        assert_eq!(
            a.check_password_blocking("nobody@example.com", "pw", None),
            Verdict::UnknownUser
        );
        std::fs::write(&db, vec![b'x'; 8192]).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert!(matches!(
            a.check_password_blocking("bob@example.com", "pw", None),
            Verdict::Ok { .. }
        ));
        assert_eq!(
            a.lookup_blocking("bob@example.com").unwrap().unwrap().home,
            "/var/vmail/bob@example.com"
        );
        assert_eq!(
            a.check_password_blocking("nobody@example.com", "pw", None),
            Verdict::UnknownUser
        );
        assert!(matches!(
            a.check_password_blocking("bob@example.com", "other", None),
            Verdict::TempFail(_)
        ));
        assert!(matches!(
            a.check_password_blocking("off@example.com", "pw", None),
            Verdict::TempFail(_)
        ));
        assert!(a.lookup_blocking("off@example.com").is_err());
    }

    /// username_filter through the chains: a filtered passdb or userdb is not asked.
    #[test]
    fn username_filter_and_field_templates_in_the_chains() {
        let dir = tempfile::tempdir().unwrap();
        let users = dir.path().join("users");
        std::fs::write(&users, "ann@a.test:{PLAIN}pw:1000:::::\n").unwrap();
        let u = users.display();
        let config = toml_config(&format!(
            "[[passdb]]\ndriver = \"static\"\nargs = \"password=shared\"\n\
             username_filter = \"*@b.test\"\nresult_failure = \"return-fail\"\n\
             [[passdb]]\ndriver = \"passwd-file\"\nargs = \"{u}\"\n\
             override_fields = \"userdb_quota_rule=*:storage=1M\"\n\
             [[userdb]]\ndriver = \"passwd-file\"\nargs = \"{u}\"\n\
             default_fields = \"home=/v/%d/%n gid=%{{userdb:uid}}\"\n\
             [[userdb]]\ndriver = \"static\"\nargs = \"allow_all_users=yes\"\n\
             username_filter = \"*@b.test\"\n"
        ));
        let a = Authenticator::new(AuthSettings::from_config(&config).unwrap(), &config);
        assert!(matches!(
            a.check_password_blocking("ann@a.test", "pw", None),
            Verdict::Ok { .. }
        ));
        assert_eq!(
            a.check_password_blocking("ann@a.test", "shared", None),
            Verdict::Mismatch
        );
        assert!(matches!(
            a.check_password_blocking("x@b.test", "shared", None),
            Verdict::Ok { .. }
        ));
        let entry = a.passdb_entry_blocking("ann@a.test").unwrap().unwrap();
        assert_eq!(entry.fields.get("userdb_quota_rule"), Some("*:storage=1M"));
        let rec = a.lookup_blocking("ann@a.test").unwrap().unwrap();
        assert_eq!(
            (rec.home.as_str(), rec.gid.as_str()),
            ("/v/a.test/ann", "1000")
        );
        assert!(a.lookup_blocking("x@b.test").unwrap().is_some());
        assert_eq!(a.lookup_blocking("nobody@a.test").unwrap(), None);
    }

    #[test]
    fn missing_passwd_file_is_tempfail() {
        let config = Config {
            passdb: vec![DbConfig::passwd_file("/nonexistent/users".into())],
            ..Config::default()
        };
        let a = Authenticator::new(AuthSettings::from_config(&config).unwrap(), &config);
        match a.check_password_blocking("demo", "demo", None) {
            Verdict::TempFail(e) => assert!(e.contains("/nonexistent/users"), "{e}"),
            other => panic!("{other:?}"),
        }
    }
}
