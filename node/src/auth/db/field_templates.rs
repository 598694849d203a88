//! Dovecot 2.3's `default_fields` and `override_fields` on a passdb or userdb: fields added
//! to every answer the database gives, under its own fields (`default_fields`) or over them
//! (`override_fields`), with `%` variables expanded per request (`%u`, `%d`, ...;
//! `%{passdb:NAME}` / `%{userdb:NAME}` are the answer's own field, empty when it has none).
//! `user` renames and `password` sets the stored password, as in Dovecot. Applied by
//! [`Templated`], which wraps the driver, so every lookup (logins, LMTP, the CLI) sees them.

use super::vars::{self, Piece};
use super::{DbError, Fields, PassDb, PassEntry, PassReply, Request, UserDb, UserEntry, UserReply};

type Templates = Vec<(String, Vec<Piece>)>;

#[derive(Clone, Debug, Default)]
pub struct FieldTemplates {
    defaults: Templates,
    overrides: Templates,
}

/// Names a template may use: the request's variables, the answer's fields, `home`.
fn known_variable(name: &str) -> bool {
    name == "home"
        || name.starts_with("passdb:")
        || name.starts_with("userdb:")
        || vars::request_value(&Request::default(), name).is_some()
}

fn parse_list(key: &str, text: &str) -> Result<Templates, String> {
    let mut out = Vec::new();
    for (k, v) in Fields::parse_args(text)
        .map_err(|e| format!("{key}: {e}"))?
        .0
    {
        if k.is_empty() {
            return Err(format!("{key}: a field without a name"));
        }
        let pieces = vars::parse(&v).map_err(|e| format!("{key}: {k}: {e}"))?;
        for p in &pieces {
            if let Piece::Var(var) = p {
                if !known_variable(&var.name) {
                    return Err(format!("{key}: {k}: unknown variable %{{{}}}", var.name));
                }
            }
        }
        out.push((k, pieces));
    }
    Ok(out)
}

impl FieldTemplates {
    /// None when neither setting is given (the driver is used as it is).
    pub fn parse(
        default_fields: Option<&str>,
        override_fields: Option<&str>,
    ) -> Result<Option<FieldTemplates>, String> {
        let t = FieldTemplates {
            defaults: parse_list("default_fields", default_fields.unwrap_or_default())?,
            overrides: parse_list("override_fields", override_fields.unwrap_or_default())?,
        };
        Ok((!t.defaults.is_empty() || !t.overrides.is_empty()).then_some(t))
    }

    /// Expands a list for `req`; `answer` resolves `%{passdb:x}`, `%{userdb:x}` and `%h`.
    fn expand(list: &Templates, req: &Request, answer: &Fields) -> Result<Fields, DbError> {
        let extra = |name: &str| -> Option<String> {
            let field = if name == "home" {
                answer.get("home").or_else(|| answer.get("userdb_home"))
            } else if let Some(f) = name.strip_prefix("passdb:") {
                answer.get(f)
            } else if let Some(f) = name.strip_prefix("userdb:") {
                answer.get(f).or_else(|| answer.get(&format!("userdb_{f}")))
            } else {
                return None;
            };
            Some(field.unwrap_or_default().to_string())
        };
        let mut out = Fields::default();
        for (k, pieces) in list {
            let v = vars::expand(pieces, req, &extra, &|s| s.to_string()).map_err(DbError)?;
            out.push(k.clone(), v);
        }
        Ok(out)
    }

    pub fn apply_pass(&self, req: &Request, entry: &mut PassEntry) -> Result<(), DbError> {
        let mut defaults = Self::expand(&self.defaults, req, &entry.fields)?;
        let mut overrides = Self::expand(&self.overrides, req, &entry.fields)?;
        let scheme = |p: &str| {
            if p.starts_with('{') {
                p.to_string()
            } else {
                format!("{{PLAIN}}{p}")
            }
        };
        if entry.password.is_none() {
            entry.password = defaults.get("password").map(scheme);
        }
        if let Some(p) = overrides.get("password") {
            entry.password = Some(scheme(p));
        }
        if let Some(u) = overrides.get("user").filter(|u| !u.is_empty()) {
            entry.user = u.to_lowercase();
        }
        for f in [&mut defaults, &mut overrides] {
            f.remove("password");
            f.remove("user");
        }
        let fields = std::mem::take(&mut entry.fields);
        entry.fields = defaults.overridden_by(fields).overridden_by(overrides);
        Ok(())
    }

    pub fn apply_user(&self, req: &Request, entry: &mut UserEntry) -> Result<(), DbError> {
        let mut defaults = Self::expand(&self.defaults, req, &entry.fields)?;
        let mut overrides = Self::expand(&self.overrides, req, &entry.fields)?;
        if let Some(u) = overrides.get("user").filter(|u| !u.is_empty()) {
            entry.user = u.to_lowercase();
        }
        defaults.remove("user");
        overrides.remove("user");
        let fields = std::mem::take(&mut entry.fields);
        entry.fields = defaults.overridden_by(fields).overridden_by(overrides);
        Ok(())
    }
}

/// A driver with its `default_fields` / `override_fields`.
pub struct Templated<T: ?Sized> {
    pub templates: FieldTemplates,
    pub inner: Box<T>,
}

impl PassDb for Templated<dyn PassDb> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn lookup(&self, req: &Request, password: Option<&str>) -> Result<PassReply, DbError> {
        Ok(match self.inner.lookup(req, password)? {
            PassReply::Found(mut e) => {
                self.templates.apply_pass(req, &mut e)?;
                PassReply::Found(e)
            }
            other => other,
        })
    }

    fn generation(&self) -> Result<u64, DbError> {
        self.inner.generation()
    }
}

impl UserDb for Templated<dyn UserDb> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn lookup(&self, req: &Request) -> Result<UserReply, DbError> {
        Ok(match self.inner.lookup(req)? {
            UserReply::Found(mut e) => {
                self.templates.apply_user(req, &mut e)?;
                UserReply::Found(e)
            }
            UserReply::AskPassdb(mut e) => {
                self.templates.apply_user(req, &mut e)?;
                UserReply::AskPassdb(e)
            }
            UserReply::Unknown => UserReply::Unknown,
        })
    }

    fn generation(&self) -> Result<u64, DbError> {
        self.inner.generation()
    }

    fn iterate(&self) -> Result<Option<Vec<String>>, DbError> {
        self.inner.iterate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> Request {
        Request {
            user: "ann@example.com".into(),
            service: "imap".into(),
            ..Request::default()
        }
    }

    #[test]
    fn defaults_under_overrides_over_with_variables() {
        let t = FieldTemplates::parse(
            Some("quota_rule=*:storage=1G home=/var/vmail/%d/%n"),
            Some("allow_nets=127.0.0.1 note=\"%{passdb:mail} via %s\""),
        )
        .unwrap()
        .unwrap();
        let mut e = PassEntry {
            user: "ann@example.com".into(),
            password: Some("{PLAIN}x".into()),
            verified: false,
            fields: Fields::parse_args("home=/h/ann mail=ann@x allow_nets=0.0.0.0/0").unwrap(),
        };
        t.apply_pass(&req(), &mut e).unwrap();
        assert_eq!(
            e.fields.get("home"),
            Some("/h/ann"),
            "the answer wins over defaults"
        );
        assert_eq!(e.fields.get("quota_rule"), Some("*:storage=1G"));
        assert_eq!(
            e.fields.get("allow_nets"),
            Some("127.0.0.1"),
            "overrides win"
        );
        assert_eq!(e.fields.get("note"), Some("ann@x via imap"));
        assert_eq!(e.password.as_deref(), Some("{PLAIN}x"));
        let mut u = UserEntry {
            user: "ann@example.com".into(),
            fields: Fields::default(),
        };
        t.apply_user(&req(), &mut u).unwrap();
        assert_eq!(u.fields.get("home"), Some("/var/vmail/example.com/ann"));
        assert_eq!(
            u.fields.get("note"),
            Some(" via imap"),
            "a missing field is empty"
        );
    }

    #[test]
    fn user_and_password_fields() {
        let t = FieldTemplates::parse(Some("password=fallback"), Some("user=%Ln"))
            .unwrap()
            .unwrap();
        let mut e = PassEntry {
            user: "Ann@Example.com".into(),
            password: None,
            verified: false,
            fields: Fields::default(),
        };
        t.apply_pass(&req(), &mut e).unwrap();
        assert_eq!(e.password.as_deref(), Some("{PLAIN}fallback"));
        assert_eq!(e.user, "ann");
        assert!(!e.fields.has("user") && !e.fields.has("password"));
    }

    #[test]
    fn parse_errors_and_nothing_set() {
        assert!(FieldTemplates::parse(None, None).unwrap().is_none());
        assert!(FieldTemplates::parse(Some(""), Some(" "))
            .unwrap()
            .is_none());
        assert!(FieldTemplates::parse(Some("home=%q"), None).is_err());
        assert!(FieldTemplates::parse(None, Some("x=%{nonsense}"))
            .unwrap_err()
            .contains("nonsense"));
        assert!(FieldTemplates::parse(Some("a=\"open"), None).is_err());
        assert!(FieldTemplates::parse(Some("=x"), None).is_err());
    }
}
