//! passdb/userdb drivers (Dovecot's names and settings) and the order they are asked in.
//!
//! A driver answers one lookup; the [`PassChain`] applies Dovecot's `skip` and
//! `result_success` / `result_failure` / `result_internalfail` rules over the configured
//! passdbs, and [`lookup_user`] walks the userdbs. Drivers block (file reads, a database
//! round trip on the driver's own small runtime, libpam): callers run them on the blocking
//! pool. Every driver error is an internal failure: a temporary failure for the client,
//! never a wrong password.

pub mod checkpassword;
pub mod conf_file;
pub mod field_templates;
pub mod fields;
mod io_runtime;
pub mod kv_args;
pub mod ldap;
pub mod ldap_attrs;
pub mod pam;
pub mod passwd;
pub mod prefetch;
pub mod sql;
pub mod sql_query;
pub mod static_db;
pub mod username_filter;
pub mod vars;

use crate::config::DbConfig;
use std::net::IpAddr;

pub use fields::Fields;

/// A driver could not answer (directory down, bad reply, bad configuration found late).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DbError(pub String);

/// What a lookup is about: the user as the client gave it (canonicalised) and the
/// connection, for Dovecot's `%u %n %d %s %l %r` variables.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// The canonical name (lower-cased, auth_default_realm applied).
    pub user: String,
    /// Other names a passwd-file may list the user under (without the default realm).
    pub alternatives: Vec<String>,
    pub service: String,
    pub rip: Option<IpAddr>,
    pub lip: Option<IpAddr>,
    /// The login's passdb `userdb_*` fields (prefix removed), for the `prefetch` userdb;
    /// None for a lookup without a passdb answer (LMTP, `node user`).
    pub prefetch: Option<Fields>,
    /// The userdb lookup belongs to a login (its passdb answer is in `prefetch`, if any).
    pub after_login: bool,
}

/// A passdb's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PassReply {
    Unknown,
    /// The driver checked the password itself (LDAP auth_bind, PAM) and it was wrong.
    Mismatch,
    Found(PassEntry),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassEntry {
    /// The user's canonical name (a driver may rename: SQL's `user` column).
    pub user: String,
    /// The stored credential, `{SCHEME}` prefixed; None when there is none (then only
    /// `nopassword` or a driver's own check lets the user in).
    pub password: Option<String>,
    /// The driver verified the given password itself.
    pub verified: bool,
    /// Extra fields (`nologin`, `allow_nets`, `proxy`, `host`, `userdb_*`, ...).
    pub fields: Fields,
}

pub trait PassDb: Send + Sync {
    /// The driver's name for logs (`passwd-file`, `sql`, ...).
    fn name(&self) -> &'static str;
    /// `password` is given for drivers that check it themselves; a lookup without a
    /// password (`node auth lookup`) passes None.
    fn lookup(&self, req: &Request, password: Option<&str>) -> Result<PassReply, DbError>;
    /// Changes when the driver's data changed under it (a re-read passwd-file): cached
    /// logins from before do not count. Drivers without such a signal return 0.
    fn generation(&self) -> Result<u64, DbError> {
        Ok(0)
    }
}

/// A user as a userdb describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserEntry {
    pub user: String,
    /// uid, gid, home, quota_rule, ... (no `userdb_` prefix).
    pub fields: Fields,
}

/// A userdb's answer to a lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserReply {
    Unknown,
    Found(UserEntry),
    /// The static userdb without `allow_all_users`: the user exists if a passdb knows them.
    AskPassdb(UserEntry),
}

pub trait UserDb: Send + Sync {
    fn name(&self) -> &'static str;
    fn lookup(&self, req: &Request) -> Result<UserReply, DbError>;
    /// As [`PassDb::generation`].
    fn generation(&self) -> Result<u64, DbError> {
        Ok(0)
    }
    /// Every user (`node user '*'`); None when the driver cannot list (static, PAM).
    fn iterate(&self) -> Result<Option<Vec<String>>, DbError>;
}

/// Dovecot's result rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    Return,
    ReturnOk,
    ReturnFail,
    Continue,
    ContinueOk,
    ContinueFail,
}

impl Rule {
    pub fn parse(s: &str) -> Option<Rule> {
        Some(match s {
            "return" => Rule::Return,
            "return-ok" => Rule::ReturnOk,
            "return-fail" => Rule::ReturnFail,
            "continue" => Rule::Continue,
            "continue-ok" => Rule::ContinueOk,
            "continue-fail" => Rule::ContinueFail,
            _ => return None,
        })
    }
}

/// passdb `skip`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    Never,
    Authenticated,
    Unauthenticated,
    /// userdb only.
    Found,
    NotFound,
}

/// The rules of one configured passdb or userdb.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    pub skip: Skip,
    pub success: Rule,
    pub failure: Rule,
    pub internalfail: Rule,
    /// `deny = yes`: a user this passdb finds is refused.
    pub deny: bool,
}

impl Rules {
    /// Dovecot's defaults.
    pub const DEFAULT: Rules = Rules {
        skip: Skip::Never,
        success: Rule::ReturnOk,
        failure: Rule::Continue,
        internalfail: Rule::Continue,
        deny: false,
    };

    /// Checks and parses the rule settings of a `[[passdb]]` (`userdb` false) or `[[userdb]]`.
    pub fn from_config(db: &DbConfig, userdb: bool) -> Result<Rules, String> {
        let rule = |key: &str, v: &Option<String>, default: Rule| {
            match v {
            None => Ok(default),
            Some(s) => Rule::parse(s).ok_or_else(|| {
                format!("{key} = {s:?}: not one of return, return-ok, return-fail, continue, continue-ok, continue-fail")
            }),
        }
        };
        let skip = match (db.skip.as_deref().unwrap_or("never"), userdb) {
            ("never", _) => Skip::Never,
            ("authenticated", false) => Skip::Authenticated,
            ("unauthenticated", false) => Skip::Unauthenticated,
            ("found", true) => Skip::Found,
            ("notfound", true) => Skip::NotFound,
            (other, false) => {
                return Err(format!(
                    "skip = {other:?}: a passdb takes never, authenticated or unauthenticated"
                ))
            }
            (other, true) => {
                return Err(format!(
                    "skip = {other:?}: a userdb takes never, found or notfound"
                ))
            }
        };
        if userdb && db.deny {
            return Err("deny is a passdb setting".into());
        }
        Ok(Rules {
            skip,
            success: rule("result_success", &db.result_success, Rule::ReturnOk)?,
            failure: rule("result_failure", &db.result_failure, Rule::Continue)?,
            internalfail: rule(
                "result_internalfail",
                &db.result_internalfail,
                Rule::Continue,
            )?,
            deny: db.deny,
        })
    }
}

/// The drivers this build has.
pub const DRIVERS: &str =
    "passwd-file static sql ldap pam (passdb) checkpassword prefetch (userdb)";

/// Checks a `[[passdb]]`/`[[userdb]]` without connecting anywhere: the driver exists, its
/// rules and its args parse (a configuration file it names is read).
pub fn check_config(db: &DbConfig, userdb: bool) -> Result<(), String> {
    Rules::from_config(db, userdb)?;
    templates_of(db)?;
    username_filter_of(db)?;
    match db.driver.as_str() {
        "passwd-file" if db.args.as_os_str().is_empty() => {
            Err("args must name the passwd-file".into())
        }
        "passwd-file" => Ok(()),
        "static" => static_db::StaticDb::parse(&db.args_str()).map(|_| ()),
        "sql" => sql::SqlConf::read(&db.args).map(|_| ()),
        "ldap" => ldap::LdapConf::read(&db.args).map(|_| ()),
        "pam" if userdb => Err(
            "pam is a passdb only (as in Dovecot): use static or passwd-file as the userdb".into(),
        ),
        "pam" => pam::PamDb::parse_service(&db.args_str()).map(|_| ()),
        "checkpassword" => checkpassword::CheckpasswordDb::new(&db.args_str()).map(|_| ()),
        "prefetch" if !userdb => {
            Err("prefetch is a userdb only (as in Dovecot): the passdb's userdb_* fields".into())
        }
        "prefetch" => Ok(()),
        other => Err(unsupported(other)),
    }
}

/// The section's `username_filter`, if set.
pub fn username_filter_of(
    db: &DbConfig,
) -> Result<Option<username_filter::UsernameFilter>, String> {
    db.username_filter
        .as_deref()
        .map(username_filter::UsernameFilter::parse)
        .transpose()
}

/// The section's `default_fields` / `override_fields`, if either is set.
fn templates_of(db: &DbConfig) -> Result<Option<field_templates::FieldTemplates>, String> {
    field_templates::FieldTemplates::parse(
        db.default_fields.as_deref(),
        db.override_fields.as_deref(),
    )
}

/// Opens a configured passdb (with its default_fields / override_fields).
pub fn open_passdb(db: &DbConfig) -> Result<Box<dyn PassDb>, String> {
    let inner = open_passdb_driver(db)?;
    Ok(match templates_of(db)? {
        None => inner,
        Some(templates) => Box::new(field_templates::Templated { templates, inner }),
    })
}

fn open_passdb_driver(db: &DbConfig) -> Result<Box<dyn PassDb>, String> {
    match db.driver.as_str() {
        "passwd-file" => Ok(Box::new(passwd::PasswdDb::new(db.args.clone()))),
        "static" => Ok(Box::new(static_db::StaticDb::parse(&db.args_str())?)),
        "sql" => Ok(Box::new(sql::SqlDb::open(&db.args)?)),
        "ldap" => Ok(Box::new(ldap::LdapDb::open(&db.args)?)),
        "pam" => Ok(Box::new(pam::PamDb::open(&db.args_str())?)),
        "checkpassword" => Ok(Box::new(checkpassword::CheckpasswordDb::new(
            &db.args_str(),
        )?)),
        other => Err(unsupported(other)),
    }
}

/// Opens a configured userdb (with its default_fields / override_fields); `alone`: it is
/// the only userdb (prefetch then has no next userdb to leave a lookup to).
pub fn open_userdb(db: &DbConfig, alone: bool) -> Result<Box<dyn UserDb>, String> {
    let inner = open_userdb_driver(db, alone)?;
    Ok(match templates_of(db)? {
        None => inner,
        Some(templates) => Box::new(field_templates::Templated { templates, inner }),
    })
}

fn open_userdb_driver(db: &DbConfig, alone: bool) -> Result<Box<dyn UserDb>, String> {
    match db.driver.as_str() {
        "passwd-file" => Ok(Box::new(passwd::PasswdDb::new(db.args.clone()))),
        "static" => Ok(Box::new(static_db::StaticDb::parse(&db.args_str())?)),
        "sql" => Ok(Box::new(sql::SqlDb::open(&db.args)?)),
        "ldap" => Ok(Box::new(ldap::LdapDb::open(&db.args)?)),
        "checkpassword" => Ok(Box::new(checkpassword::CheckpasswordDb::new(
            &db.args_str(),
        )?)),
        "prefetch" => Ok(Box::new(prefetch::PrefetchDb::new(alone))),
        other => Err(unsupported(other)),
    }
}

fn unsupported(driver: &str) -> String {
    format!("driver {driver:?} is not supported (supported: {DRIVERS})")
}

/// One step of a passdb chain, after the driver answered and the password was checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Ok(PassEntry),
    Unknown,
    Mismatch,
    /// The passdb found the user but refuses the login (`nologin`, `deny`): final.
    Disabled {
        user: String,
        reason: String,
    },
    /// The password matched but `allow_nets` does not list the client: a failure that later
    /// passdbs may still turn into a success, as in Dovecot.
    NetRefused {
        user: String,
        reason: String,
    },
    Internal(String),
}

/// The chain's final answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainResult {
    Ok(PassEntry),
    Unknown,
    Mismatch,
    Refused { user: String, reason: String },
    Internal(String),
}

impl ChainResult {
    /// A one-step result (a cached login re-checked against this client).
    pub fn from_step(step: Step) -> ChainResult {
        match step {
            Step::Ok(e) => ChainResult::Ok(e),
            Step::Unknown => ChainResult::Unknown,
            Step::Mismatch => ChainResult::Mismatch,
            Step::Disabled { user, reason } | Step::NetRefused { user, reason } => {
                ChainResult::Refused { user, reason }
            }
            Step::Internal(e) => ChainResult::Internal(e),
        }
    }
}

/// Walks the passdbs with Dovecot's rules: ask [`PassChain::next`] which passdb to consult,
/// run it, and give its [`Step`] to [`PassChain::feed`] until that returns the result.
pub struct PassChain<'a> {
    rules: &'a [Rules],
    /// Passdbs whose username_filter does not accept this user: not asked at all.
    filtered: Vec<bool>,
    pos: usize,
    success: bool,
    /// Dovecot's skip_password_check: a passdb already verified the password.
    authenticated: bool,
    seen_internal: Option<String>,
    /// The entry of the passdb that made the result a success, for its fields.
    ok_entry: Option<PassEntry>,
    refusal: Option<(String, String)>,
}

impl<'a> PassChain<'a> {
    pub fn new(rules: &'a [Rules]) -> PassChain<'a> {
        PassChain {
            rules,
            filtered: Vec::new(),
            pos: 0,
            success: false,
            authenticated: false,
            seen_internal: None,
            ok_entry: None,
            refusal: None,
        }
    }

    /// Marks the passdbs to pass over for this request (`filtered[i]`: its username_filter
    /// refuses the user).
    pub fn with_filtered(mut self, filtered: Vec<bool>) -> PassChain<'a> {
        self.filtered = filtered;
        self
    }

    fn skipped(&self, i: usize) -> bool {
        if self.filtered.get(i).copied().unwrap_or(false) {
            return true;
        }
        match self.rules.get(i).map(|r| r.skip) {
            Some(Skip::Authenticated) => self.authenticated,
            Some(Skip::Unauthenticated) => !self.authenticated,
            _ => false,
        }
    }

    /// The next passdb to consult, or None when there is none (an empty chain).
    pub fn next(&mut self) -> Option<usize> {
        while self.pos < self.rules.len() && self.skipped(self.pos) {
            self.pos += 1;
        }
        (self.pos < self.rules.len()).then_some(self.pos)
    }

    /// Whether the password was already verified: the next passdb only looks the user up.
    pub fn authenticated(&self) -> bool {
        self.authenticated
    }

    /// The result of the passdb [`PassChain::next`] returned; Some when the chain is done.
    pub fn feed(&mut self, step: Step) -> Option<ChainResult> {
        let rules = *self.rules.get(self.pos)?;
        self.pos += 1;
        if rules.deny {
            match step {
                Step::Unknown => {}
                Step::Internal(e) => return Some(ChainResult::Internal(e)),
                Step::Ok(PassEntry { user, .. })
                | Step::Disabled { user, .. }
                | Step::NetRefused { user, .. } => {
                    return Some(ChainResult::Refused {
                        user,
                        reason: "User found from deny passdb".into(),
                    })
                }
                Step::Mismatch => {
                    return Some(ChainResult::Refused {
                        user: String::new(),
                        reason: "User found from deny passdb".into(),
                    })
                }
            }
        }
        let ok = matches!(step, Step::Ok(_));
        let rule = match &step {
            Step::Disabled { user, reason } => {
                return Some(ChainResult::Refused {
                    user: user.clone(),
                    reason: reason.clone(),
                })
            }
            Step::Ok(_) => rules.success,
            Step::Internal(_) => rules.internalfail,
            Step::Unknown | Step::Mismatch | Step::NetRefused { .. } => rules.failure,
        };
        if ok {
            // A verified password makes the request a success until a rule says otherwise.
            self.success = true;
        }
        let mut cont = false;
        match rule {
            Rule::Return => {}
            Rule::ReturnOk => self.success = true,
            Rule::ReturnFail => self.success = false,
            Rule::Continue => {
                cont = true;
                if ok {
                    self.authenticated = true;
                }
            }
            Rule::ContinueOk => {
                cont = true;
                self.success = true;
                self.authenticated = true;
            }
            Rule::ContinueFail => {
                cont = true;
                self.success = false;
            }
        }
        let final_step = match step {
            Step::Ok(mut entry) => {
                // Fields of every passdb that succeeded add up; a later one overrides.
                if let Some(prev) = self.ok_entry.take() {
                    entry.fields = prev.fields.overridden_by(entry.fields);
                }
                self.ok_entry = Some(entry);
                ChainResult::Unknown
            }
            Step::Internal(e) => {
                self.seen_internal = Some(e.clone());
                ChainResult::Internal(e)
            }
            Step::NetRefused { user, reason } => {
                self.refusal = Some((user, reason));
                ChainResult::Unknown
            }
            Step::Unknown => ChainResult::Unknown,
            Step::Mismatch => ChainResult::Mismatch,
            Step::Disabled { .. } => ChainResult::Unknown,
        };
        if cont && self.next().is_some() {
            return None;
        }
        Some(if self.success {
            match self.ok_entry.take() {
                Some(entry) => ChainResult::Ok(entry),
                // return-ok / continue-ok without any passdb having found the user: Dovecot
                // would let the request through without a user record; refuse instead.
                None => ChainResult::Unknown,
            }
        } else if let Some(e) = self.seen_internal.take() {
            // It may have had the right password: a temporary failure, not a wrong one.
            ChainResult::Internal(e)
        } else if let Some((user, reason)) = self.refusal.take() {
            ChainResult::Refused { user, reason }
        } else if ok {
            // return-fail on a verified password.
            ChainResult::Mismatch
        } else {
            final_step
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(success: Rule, failure: Rule, internal: Rule, skip: Skip) -> Rules {
        Rules {
            skip,
            success,
            failure,
            internalfail: internal,
            deny: false,
        }
    }
    fn default_rules() -> Rules {
        rules(Rule::ReturnOk, Rule::Continue, Rule::Continue, Skip::Never)
    }
    fn entry(user: &str) -> PassEntry {
        PassEntry {
            user: user.into(),
            password: None,
            verified: true,
            fields: Fields::default(),
        }
    }
    /// Runs a chain whose passdbs answer `steps` in order; returns the result and which
    /// passdbs were consulted.
    fn run(rules: &[Rules], steps: &[Step]) -> (ChainResult, Vec<usize>) {
        let mut chain = PassChain::new(rules);
        let mut asked = Vec::new();
        while let Some(i) = chain.next() {
            asked.push(i);
            if let Some(r) = chain.feed(steps[i].clone()) {
                return (r, asked);
            }
        }
        (ChainResult::Unknown, asked)
    }

    #[test]
    fn defaults_first_success_wins_and_failures_fall_through() {
        let r = [default_rules(), default_rules()];
        let (res, asked) = run(&r, &[Step::Unknown, Step::Ok(entry("b"))]);
        assert_eq!(res, ChainResult::Ok(entry("b")));
        assert_eq!(asked, vec![0, 1]);
        let (res, asked) = run(&r, &[Step::Ok(entry("a")), Step::Ok(entry("b"))]);
        assert_eq!(res, ChainResult::Ok(entry("a")));
        assert_eq!(asked, vec![0]);
        let (res, _) = run(&r, &[Step::Mismatch, Step::Unknown]);
        assert_eq!(res, ChainResult::Unknown);
        let (res, _) = run(&r, &[Step::Unknown, Step::Mismatch]);
        assert_eq!(res, ChainResult::Mismatch);
    }

    #[test]
    fn internal_failure_is_temporary_unless_another_passdb_succeeds() {
        let r = [default_rules(), default_rules()];
        let (res, _) = run(&r, &[Step::Internal("down".into()), Step::Unknown]);
        assert_eq!(res, ChainResult::Internal("down".into()));
        let (res, _) = run(&r, &[Step::Internal("down".into()), Step::Mismatch]);
        assert_eq!(res, ChainResult::Internal("down".into()));
        let (res, _) = run(&r, &[Step::Internal("down".into()), Step::Ok(entry("b"))]);
        assert_eq!(res, ChainResult::Ok(entry("b")));
        // result_internalfail = return-fail: a down directory is a plain failure on purpose.
        let r = [
            rules(
                Rule::ReturnOk,
                Rule::Continue,
                Rule::ReturnFail,
                Skip::Never,
            ),
            default_rules(),
        ];
        let (res, asked) = run(&r, &[Step::Internal("down".into()), Step::Ok(entry("b"))]);
        assert_eq!(res, ChainResult::Internal("down".into()));
        assert_eq!(asked, vec![0]);
    }

    #[test]
    fn continue_ok_and_skip_authenticated() {
        // The first passdb verifies, the second only adds fields (skip = unauthenticated),
        // the third is skipped once authenticated.
        let r = [
            rules(
                Rule::ContinueOk,
                Rule::ReturnFail,
                Rule::Continue,
                Skip::Never,
            ),
            rules(
                Rule::Continue,
                Rule::Continue,
                Rule::Continue,
                Skip::Unauthenticated,
            ),
            rules(
                Rule::ReturnOk,
                Rule::Continue,
                Rule::Continue,
                Skip::Authenticated,
            ),
        ];
        let (res, asked) = run(
            &r,
            &[Step::Ok(entry("a")), Step::Ok(entry("a2")), Step::Unknown],
        );
        assert_eq!(res, ChainResult::Ok(entry("a2")));
        assert_eq!(asked, vec![0, 1]);
        // A wrong password stops at the first (return-fail).
        let (res, asked) = run(&r, &[Step::Mismatch, Step::Ok(entry("a2")), Step::Unknown]);
        assert_eq!(res, ChainResult::Mismatch);
        assert_eq!(asked, vec![0]);
        // continue-ok then a failing passdb: still a success.
        let r = [
            rules(
                Rule::ContinueOk,
                Rule::Continue,
                Rule::Continue,
                Skip::Never,
            ),
            default_rules(),
        ];
        let (res, _) = run(&r, &[Step::Ok(entry("a")), Step::Unknown]);
        assert_eq!(res, ChainResult::Ok(entry("a")));
        // continue-fail on success, then unknown: a failure.
        let r = [
            rules(
                Rule::ContinueFail,
                Rule::Continue,
                Rule::Continue,
                Skip::Never,
            ),
            default_rules(),
        ];
        let (res, _) = run(&r, &[Step::Ok(entry("a")), Step::Unknown]);
        assert_eq!(res, ChainResult::Unknown);
        // return-fail on success.
        let r = [rules(
            Rule::ReturnFail,
            Rule::Continue,
            Rule::Continue,
            Skip::Never,
        )];
        let (res, _) = run(&r, &[Step::Ok(entry("a"))]);
        assert_eq!(res, ChainResult::Mismatch);
    }

    #[test]
    fn deny_passdb_and_disabled_users() {
        let mut deny = default_rules();
        deny.deny = true;
        let r = [deny, default_rules()];
        let (res, asked) = run(&r, &[Step::Ok(entry("bad")), Step::Ok(entry("bad"))]);
        assert!(matches!(res, ChainResult::Refused { .. }), "{res:?}");
        assert_eq!(asked, vec![0]);
        let (res, _) = run(&r, &[Step::Unknown, Step::Ok(entry("good"))]);
        assert_eq!(res, ChainResult::Ok(entry("good")));
        // A deny list that cannot be read is a temporary failure, not a way in.
        let (res, _) = run(&r, &[Step::Internal("x".into()), Step::Ok(entry("good"))]);
        assert_eq!(res, ChainResult::Internal("x".into()));
        let r = [default_rules(), default_rules()];
        let disabled = Step::Disabled {
            user: "a".into(),
            reason: "nologin".into(),
        };
        let (res, asked) = run(&r, &[disabled, Step::Ok(entry("a"))]);
        assert!(matches!(res, ChainResult::Refused { .. }));
        assert_eq!(asked, vec![0]);
        // allow_nets refusal: a later passdb may still accept.
        let net = Step::NetRefused {
            user: "a".into(),
            reason: "allow_nets".into(),
        };
        let (res, _) = run(&r, &[net.clone(), Step::Ok(entry("a"))]);
        assert_eq!(res, ChainResult::Ok(entry("a")));
        let (res, _) = run(&r, &[net, Step::Unknown]);
        assert!(matches!(res, ChainResult::Refused { .. }));
    }

    #[test]
    fn filtered_passdbs_are_not_asked_and_their_rules_do_not_apply() {
        // The first would stop the chain with return-fail; filtered out, it is not asked.
        let r = [
            rules(
                Rule::ReturnOk,
                Rule::ReturnFail,
                Rule::ReturnFail,
                Skip::Never,
            ),
            default_rules(),
        ];
        let mut chain = PassChain::new(&r).with_filtered(vec![true, false]);
        assert_eq!(chain.next(), Some(1));
        assert_eq!(
            chain.feed(Step::Ok(entry("b"))),
            Some(ChainResult::Ok(entry("b")))
        );
        let mut chain = PassChain::new(&r).with_filtered(vec![false, true]);
        assert_eq!(chain.next(), Some(0));
        assert_eq!(chain.feed(Step::Unknown), Some(ChainResult::Unknown));
        let mut all = PassChain::new(&r).with_filtered(vec![true, true]);
        assert_eq!(all.next(), None);
    }

    #[test]
    fn rules_parse_and_refuse_bad_values() {
        let mut db = DbConfig::passwd_file("/x".into());
        assert_eq!(Rules::from_config(&db, false).unwrap(), default_rules());
        db.result_success = Some("continue-ok".into());
        db.skip = Some("authenticated".into());
        let r = Rules::from_config(&db, false).unwrap();
        assert_eq!((r.success, r.skip), (Rule::ContinueOk, Skip::Authenticated));
        assert!(Rules::from_config(&db, true).is_err());
        db.result_success = Some("maybe".into());
        assert!(Rules::from_config(&db, false)
            .unwrap_err()
            .contains("maybe"));
    }
}
