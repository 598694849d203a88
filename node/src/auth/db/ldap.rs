//! The `ldap` driver: an operator's `dovecot-ldap.conf.ext` unchanged. Two modes, as in
//! Dovecot: password lookup (search as `dn`/`dnpass`, read the password from `pass_attrs`,
//! check it here) and `auth_bind = yes` (the directory checks the password by a bind as the
//! user: found by `pass_filter`, or named directly by `auth_bind_userdn`). Filter values
//! are escaped per RFC 4515 and DN values per RFC 4514; the search connection is kept and
//! re-made after an error, so a restarted directory is used again without a node restart.

use super::conf_file::{self, Settings};
use super::io_runtime::IoRuntime;
use super::ldap_attrs::AttrMap;
use super::vars::{self, Piece};
use super::{DbError, PassDb, PassEntry, PassReply, Request, UserDb, UserEntry, UserReply};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const KNOWN: &[&str] = &[
    "hosts",
    "uris",
    "dn",
    "dnpass",
    "auth_bind",
    "auth_bind_userdn",
    "base",
    "scope",
    "deref",
    "ldap_version",
    "tls",
    "tls_ca_cert_file",
    "tls_require_cert",
    "pass_filter",
    "pass_attrs",
    "user_filter",
    "user_attrs",
    "iterate_filter",
    "iterate_attrs",
    "default_pass_scheme",
    // Accepted and without effect here: Dovecot tuning of its own process model.
    "blocking",
    "debug_level",
];

const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub struct LdapConf {
    pub uris: Vec<String>,
    pub dn: Option<String>,
    pub dnpass: String,
    pub auth_bind: bool,
    pub auth_bind_userdn: Option<Vec<Piece>>,
    pub base: Vec<Piece>,
    pub scope: Scope,
    pub starttls: bool,
    pub tls_ca_cert_file: Option<String>,
    pub tls_no_verify: bool,
    pub pass_filter: Vec<Piece>,
    pub pass_attrs: AttrMap,
    pub user_filter: Vec<Piece>,
    pub user_attrs: AttrMap,
    pub iterate_filter: Vec<Piece>,
    pub iterate_attrs: AttrMap,
    pub default_pass_scheme: String,
}

impl LdapConf {
    pub fn read(path: &Path) -> Result<LdapConf, String> {
        let s = conf_file::read(path)?;
        Self::from_settings(&s).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn from_settings(s: &Settings) -> Result<LdapConf, String> {
        conf_file::check_known(s, KNOWN, "ldap")?;
        let get = |k: &str| conf_file::get(s, k);
        let mut uris: Vec<String> = get("uris")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        if uris.is_empty() {
            // hosts = host[:port] ...: plain LDAP.
            uris = get("hosts")
                .unwrap_or_default()
                .split_whitespace()
                .map(|h| format!("ldap://{h}"))
                .collect();
        }
        if uris.is_empty() {
            return Err("neither uris nor hosts is set".into());
        }
        for u in &uris {
            if !(u.starts_with("ldap://") || u.starts_with("ldaps://")) {
                return Err(format!(
                    "uris: {u}: only ldap:// and ldaps:// are supported"
                ));
            }
        }
        if let Some(v) = get("ldap_version") {
            if v != "3" {
                return Err(format!("ldap_version = {v}: only 3 is supported"));
            }
        }
        let template = |k: &str, default: &str| {
            vars::parse(get(k).unwrap_or(default)).map_err(|e| format!("{k}: {e}"))
        };
        let attrs = |k: &str, default: &str| {
            AttrMap::parse(get(k).unwrap_or(default)).map_err(|e| format!("{k}: {e}"))
        };
        let scope = match get("scope").unwrap_or("subtree") {
            "subtree" => Scope::Subtree,
            "onelevel" => Scope::OneLevel,
            "base" => Scope::Base,
            other => return Err(format!("scope = {other}: subtree, onelevel or base")),
        };
        let base = get("base").ok_or("base is not set")?;
        let scheme = get("default_pass_scheme").unwrap_or("CRYPT").to_uppercase();
        crate::auth::schemes::Scheme::parse(&scheme)
            .map_err(|e| format!("default_pass_scheme = {scheme}: {e}"))?;
        let tls_no_verify = match get("tls_require_cert") {
            None | Some("demand" | "hard") => false,
            Some("never" | "allow" | "try") => true,
            Some(other) => return Err(format!("tls_require_cert = {other}")),
        };
        Ok(LdapConf {
            uris,
            dn: get("dn").map(str::to_string),
            dnpass: get("dnpass").unwrap_or_default().to_string(),
            auth_bind: conf_file::yes(get("auth_bind")),
            auth_bind_userdn: match get("auth_bind_userdn") {
                Some(t) => Some(vars::parse(t).map_err(|e| format!("auth_bind_userdn: {e}"))?),
                None => None,
            },
            base: vars::parse(base).map_err(|e| format!("base: {e}"))?,
            scope,
            starttls: conf_file::yes(get("tls")),
            tls_ca_cert_file: get("tls_ca_cert_file").map(str::to_string),
            tls_no_verify,
            pass_filter: template("pass_filter", "(&(objectClass=posixAccount)(uid=%u))")?,
            pass_attrs: attrs("pass_attrs", "uid=user,userPassword=password")?,
            user_filter: template("user_filter", "(&(objectClass=posixAccount)(uid=%u))")?,
            user_attrs: attrs(
                "user_attrs",
                "homeDirectory=home,uidNumber=uid,gidNumber=gid",
            )?,
            iterate_filter: template("iterate_filter", "(objectClass=posixAccount)")?,
            iterate_attrs: attrs("iterate_attrs", "uid=user")?,
            default_pass_scheme: scheme,
        })
    }

    fn settings(&self) -> Result<LdapConnSettings, String> {
        let mut s = LdapConnSettings::new()
            .set_conn_timeout(TIMEOUT)
            .set_starttls(self.starttls)
            .set_no_tls_verify(self.tls_no_verify);
        if let Some(ca) = &self.tls_ca_cert_file {
            s = s.set_config(Arc::new(tls_config(ca)?));
        }
        Ok(s)
    }
}

/// A rustls client trusting `ca_file` (PEM), for a directory with a private CA.
fn tls_config(ca_file: &str) -> Result<rustls::ClientConfig, String> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(ca_file)
        .map_err(|e| format!("tls_ca_cert_file {ca_file}: {e}"))?
    {
        let cert = cert.map_err(|e| format!("tls_ca_cert_file {ca_file}: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("tls_ca_cert_file {ca_file}: {e}"))?;
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
}

fn filter_escape(s: &str) -> String {
    ldap3::ldap_escape(s).into_owned()
}

fn dn_escape(s: &str) -> String {
    ldap3::dn_escape(s).into_owned()
}

struct Shared {
    conf: LdapConf,
    /// The search connection, bound as `dn`; None until first use or after an error.
    conn: tokio::sync::Mutex<Option<Ldap>>,
    /// Idle connections for auth binds (kept apart from the search connection, whose
    /// identity must stay `dn`).
    bind_conns: tokio::sync::Mutex<Vec<Ldap>>,
}

/// Idle auth-bind connections kept.
const BIND_CONNS: usize = 4;

pub struct LdapDb {
    shared: Arc<Shared>,
    /// Found entries' DNs are not cached here: the login cache is in front of all drivers.
    rt: IoRuntime,
}

/// Opens a connection to the first URI that answers and binds it (as `dn`, or as a user).
async fn connect(conf: &LdapConf, bind: Option<(&str, &str)>) -> Result<Ldap, String> {
    let mut errors = Vec::new();
    for uri in &conf.uris {
        let settings = conf.settings()?;
        match LdapConnAsync::with_settings(settings, uri).await {
            Ok((conn, mut ldap)) => {
                tokio::spawn(async move {
                    if let Err(e) = conn.drive().await {
                        tracing::debug!(target: "auth", "ldap connection ended: {e}");
                    }
                });
                ldap.with_timeout(TIMEOUT);
                if let Some((dn, pw)) = bind {
                    ldap.simple_bind(dn, pw)
                        .await
                        .and_then(|r| r.success())
                        .map_err(|e| format!("{uri}: bind as {dn}: {e}"))?;
                }
                return Ok(ldap);
            }
            Err(e) => errors.push(format!("{uri}: {e}")),
        }
    }
    Err(format!("cannot connect: {}", errors.join("; ")))
}

impl Shared {
    async fn search_conn(&self) -> Result<Ldap, String> {
        let mut slot = self.conn.lock().await;
        if let Some(l) = slot.as_mut() {
            if !l.is_closed() {
                return Ok(l.clone());
            }
        }
        let bind = self
            .conf
            .dn
            .as_deref()
            .map(|dn| (dn, self.conf.dnpass.as_str()));
        let l = connect(&self.conf, bind).await?;
        *slot = Some(l.clone());
        Ok(l)
    }

    async fn forget_conn(&self) {
        *self.conn.lock().await = None;
    }

    /// One search; a broken connection is re-made once, so the first lookup after the
    /// directory came back already works.
    async fn search(
        &self,
        base: &str,
        filter: &str,
        attrs: &[String],
    ) -> Result<Vec<SearchEntry>, String> {
        let mut last = String::new();
        for _attempt in 0..2 {
            let mut l = self.search_conn().await?;
            let attrs = if attrs.is_empty() {
                vec!["1.1".to_string()]
            } else {
                attrs.to_vec()
            };
            match l.search(base, self.conf.scope, filter, attrs).await {
                Ok(r) => {
                    // noSuchObject (32): the base does not exist: nobody is there.
                    if r.1.rc == 32 {
                        return Ok(Vec::new());
                    }
                    let (entries, _) = r.success().map_err(|e| e.to_string())?;
                    return Ok(entries.into_iter().map(SearchEntry::construct).collect());
                }
                Err(e) => {
                    last = e.to_string();
                    self.forget_conn().await;
                }
            }
        }
        Err(last)
    }

    /// A bind as `dn` with `password` on a connection of its own (the search connection
    /// keeps its identity). Ok(false): wrong credentials.
    async fn check_bind(&self, dn: &str, password: &str) -> Result<bool, String> {
        if password.is_empty() || dn.is_empty() {
            // An empty password makes a simple bind "unauthenticated": it would succeed.
            return Ok(false);
        }
        // A kept connection if there is one (a new bind replaces the previous identity);
        // one that turns out broken is dropped and a new one made.
        let kept = self.bind_conns.lock().await.pop();
        let mut l = match kept {
            Some(mut l) => {
                if l.is_closed() {
                    connect(&self.conf, None).await?
                } else {
                    l
                }
            }
            None => connect(&self.conf, None).await?,
        };
        let r = match l.simple_bind(dn, password).await {
            Ok(r) => r,
            Err(_) => {
                // The kept connection died with the directory: once more on a new one.
                l = connect(&self.conf, None).await?;
                l.simple_bind(dn, password)
                    .await
                    .map_err(|e| e.to_string())?
            }
        };
        let answer = match r.rc {
            0 => Ok(true),
            // invalidCredentials; and a DN that does not exist (some servers say 32).
            49 | 32 => Ok(false),
            rc => Err(format!("bind as {dn}: rc={rc} {}", r.text)),
        };
        if answer.is_ok() {
            let mut kept = self.bind_conns.lock().await;
            if kept.len() < BIND_CONNS {
                kept.push(l);
            }
        }
        answer
    }

    fn base(&self, req: &Request) -> Result<String, String> {
        vars::expand(&self.conf.base, req, &|_| None, &dn_escape)
    }

    fn filter(&self, t: &[Piece], req: &Request) -> Result<String, String> {
        vars::expand(t, req, &|_| None, &filter_escape)
    }

    /// The one entry `filter` finds; several are an error (which would be the user?).
    async fn find_one(
        &self,
        t: &[Piece],
        attrs: &[String],
        req: &Request,
    ) -> Result<Option<SearchEntry>, String> {
        let base = self.base(req)?;
        let filter = self.filter(t, req)?;
        let mut entries = self.search(&base, &filter, attrs).await?;
        match entries.len() {
            0 => Ok(None),
            1 => Ok(entries.pop()),
            n => Err(format!(
                "{filter} found {n} entries under {base}, expected one"
            )),
        }
    }

    async fn pass_lookup(
        &self,
        req: Request,
        password: Option<String>,
    ) -> Result<PassReply, String> {
        let conf = &self.conf;
        if conf.auth_bind {
            if let Some(userdn) = &conf.auth_bind_userdn {
                // No search at all: the DN is built from the name.
                let dn = vars::expand(userdn, &req, &|_| None, &dn_escape)?;
                let Some(pw) = password else {
                    return Ok(PassReply::Found(PassEntry {
                        user: req.user.clone(),
                        password: None,
                        verified: false,
                        fields: Default::default(),
                    }));
                };
                return Ok(if self.check_bind(&dn, &pw).await? {
                    PassReply::Found(PassEntry {
                        user: req.user.clone(),
                        password: None,
                        verified: true,
                        fields: Default::default(),
                    })
                } else {
                    PassReply::Mismatch
                });
            }
        }
        let Some(entry) = self
            .find_one(&conf.pass_filter, &conf.pass_attrs.wanted, &req)
            .await?
        else {
            return Ok(PassReply::Unknown);
        };
        let mut fields = conf.pass_attrs.fields(&entry.attrs, &req)?;
        let user = fields
            .get("user")
            .map(str::to_lowercase)
            .unwrap_or_else(|| req.user.clone());
        fields.remove("user");
        let stored = fields.get("password").map(str::to_string);
        fields.remove("password");
        if conf.auth_bind {
            let Some(pw) = password else {
                return Ok(PassReply::Found(PassEntry {
                    user,
                    password: None,
                    verified: false,
                    fields,
                }));
            };
            return Ok(if self.check_bind(&entry.dn, &pw).await? {
                PassReply::Found(PassEntry {
                    user,
                    password: None,
                    verified: true,
                    fields,
                })
            } else {
                PassReply::Mismatch
            });
        }
        let password = stored.filter(|p| !p.is_empty()).map(|p| {
            if p.starts_with('{') {
                p
            } else {
                format!("{{{}}}{p}", conf.default_pass_scheme)
            }
        });
        Ok(PassReply::Found(PassEntry {
            user,
            password,
            verified: false,
            fields,
        }))
    }

    async fn user_lookup(&self, req: Request) -> Result<UserReply, String> {
        let conf = &self.conf;
        let Some(entry) = self
            .find_one(&conf.user_filter, &conf.user_attrs.wanted, &req)
            .await?
        else {
            return Ok(UserReply::Unknown);
        };
        let mut fields = conf.user_attrs.fields(&entry.attrs, &req)?;
        let user = fields
            .get("user")
            .map(str::to_lowercase)
            .unwrap_or_else(|| req.user.clone());
        fields.remove("user");
        Ok(UserReply::Found(UserEntry { user, fields }))
    }

    async fn iterate(&self) -> Result<Vec<String>, String> {
        let conf = &self.conf;
        let req = Request::default();
        let base = self.base(&req)?;
        let filter = self.filter(&conf.iterate_filter, &req)?;
        let entries = self
            .search(&base, &filter, &conf.iterate_attrs.wanted)
            .await?;
        let mut out = Vec::new();
        for e in entries {
            let f = conf.iterate_attrs.fields(&e.attrs, &req)?;
            if let Some(u) = f.get("user") {
                out.push(u.to_lowercase());
            }
        }
        Ok(out)
    }
}

impl LdapDb {
    pub fn open(path: &Path) -> Result<LdapDb, String> {
        let conf = LdapConf::read(path)?;
        conf.settings()?;
        Ok(LdapDb {
            shared: Arc::new(Shared {
                conf,
                conn: tokio::sync::Mutex::new(None),
                bind_conns: tokio::sync::Mutex::new(Vec::new()),
            }),
            rt: IoRuntime::new("auth-ldap")?,
        })
    }

    fn run<T: Send + 'static>(
        &self,
        f: impl std::future::Future<Output = Result<T, String>> + Send + 'static,
    ) -> Result<T, DbError> {
        // Connect, bind and search each have TIMEOUT; the whole lookup gets three.
        self.rt.run(TIMEOUT * 3, f).map_err(DbError)
    }
}

impl PassDb for LdapDb {
    fn name(&self) -> &'static str {
        "ldap"
    }

    fn lookup(&self, req: &Request, password: Option<&str>) -> Result<PassReply, DbError> {
        let (s, req, pw) = (
            self.shared.clone(),
            req.clone(),
            password.map(str::to_string),
        );
        self.run(async move { s.pass_lookup(req, pw).await })
    }
}

impl UserDb for LdapDb {
    fn name(&self) -> &'static str {
        "ldap"
    }

    fn lookup(&self, req: &Request) -> Result<UserReply, DbError> {
        let (s, req) = (self.shared.clone(), req.clone());
        self.run(async move { s.user_lookup(req).await })
    }

    fn iterate(&self) -> Result<Option<Vec<String>>, DbError> {
        let s = self.shared.clone();
        self.run(async move { s.iterate().await }).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conf_and_escaping() {
        let s = conf_file::parse(
            "hosts = ldap.example.com:389\ndn = cn=admin,dc=example,dc=com\ndnpass = secret\n\
             auth_bind = yes\nbase = ou=people,dc=%d\nuser_attrs = homeDirectory=home,=uid=vmail\n",
        )
        .unwrap();
        let c = LdapConf::from_settings(&s).unwrap();
        assert_eq!(c.uris, vec!["ldap://ldap.example.com:389"]);
        assert!(c.auth_bind);
        let shared = Shared {
            conf: c,
            conn: tokio::sync::Mutex::new(None),
            bind_conns: tokio::sync::Mutex::new(Vec::new()),
        };
        let req = Request {
            user: "a*)(uid=*@x,dc=evil".into(),
            ..Request::default()
        };
        let filter = shared.filter(&shared.conf.pass_filter, &req).unwrap();
        assert_eq!(
            filter,
            "(&(objectClass=posixAccount)(uid=a\\2a\\29\\28uid=\\2a@x,dc=evil))"
        );
        assert_eq!(shared.base(&req).unwrap(), "ou=people,dc=x\\2cdc\\3devil");
        let bad = conf_file::parse("uris = http://x\nbase = dc=x\n").unwrap();
        assert!(LdapConf::from_settings(&bad).is_err());
        let nobase = conf_file::parse("hosts = x\n").unwrap();
        assert!(LdapConf::from_settings(&nobase)
            .unwrap_err()
            .contains("base"));
    }
}
