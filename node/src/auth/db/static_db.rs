//! The `static` driver: `args = uid=vmail gid=vmail home=/var/vmail/%d/%n` for a userdb,
//! `args = password=secret` (or `nopassword`) for a passdb. As a userdb it vouches for any
//! user only with `allow_all_users=yes`; otherwise a passdb must know the user (Dovecot's
//! rule, so LMTP does not accept mail for names nobody has).

use super::vars;
use super::{DbError, Fields, PassDb, PassEntry, PassReply, Request, UserDb, UserEntry, UserReply};

pub struct StaticDb {
    /// Fields with their templates, `password` and `allow_all_users` taken out.
    fields: Vec<(String, Vec<vars::Piece>)>,
    password: Option<String>,
    allow_all_users: bool,
}

impl StaticDb {
    pub fn parse(args: &str) -> Result<StaticDb, String> {
        let mut fields = Vec::new();
        let mut password = None;
        let mut allow_all_users = false;
        for (k, v) in Fields::parse_args(args)?.0 {
            match k.as_str() {
                "password" => password = Some(v),
                "allow_all_users" => allow_all_users = matches!(v.as_str(), "yes" | "y" | ""),
                _ => fields.push((k, vars::parse(&v)?)),
            }
        }
        Ok(StaticDb {
            fields,
            password,
            allow_all_users,
        })
    }

    fn expand(&self, req: &Request) -> Result<Fields, DbError> {
        let mut out = Fields::default();
        for (k, pieces) in &self.fields {
            let v = vars::expand(pieces, req, &|_| None, &|s| s.to_string()).map_err(DbError)?;
            out.push(k.clone(), v);
        }
        Ok(out)
    }
}

impl PassDb for StaticDb {
    fn name(&self) -> &'static str {
        "static"
    }

    fn lookup(&self, req: &Request, _password: Option<&str>) -> Result<PassReply, DbError> {
        let password = self.password.as_ref().map(|p| {
            if p.starts_with('{') {
                p.clone()
            } else {
                format!("{{PLAIN}}{p}")
            }
        });
        Ok(PassReply::Found(PassEntry {
            user: req.user.clone(),
            password,
            verified: false,
            fields: self.expand(req)?,
        }))
    }
}

impl UserDb for StaticDb {
    fn name(&self) -> &'static str {
        "static"
    }

    fn lookup(&self, req: &Request) -> Result<UserReply, DbError> {
        let entry = UserEntry {
            user: req.user.clone(),
            fields: self.expand(req)?,
        };
        Ok(if self.allow_all_users {
            UserReply::Found(entry)
        } else {
            UserReply::AskPassdb(entry)
        })
    }

    fn iterate(&self) -> Result<Option<Vec<String>>, DbError> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_userdb_and_passdb() {
        let req = Request {
            user: "bob@example.com".into(),
            ..Request::default()
        };
        let db = StaticDb::parse("uid=vmail gid=vmail home=/var/vmail/%d/%n allow_all_users=yes")
            .unwrap();
        match UserDb::lookup(&db, &req).unwrap() {
            UserReply::Found(e) => {
                assert_eq!(e.fields.get("home"), Some("/var/vmail/example.com/bob"));
                assert!(!e.fields.has("allow_all_users"));
            }
            other => panic!("{other:?}"),
        }
        let strict = StaticDb::parse("uid=vmail home=/h/%u").unwrap();
        assert!(matches!(
            UserDb::lookup(&strict, &req).unwrap(),
            UserReply::AskPassdb(_)
        ));
        let pass = StaticDb::parse("password=s3cret").unwrap();
        match PassDb::lookup(&pass, &req, None).unwrap() {
            PassReply::Found(e) => assert_eq!(e.password.as_deref(), Some("{PLAIN}s3cret")),
            other => panic!("{other:?}"),
        }
        assert!(StaticDb::parse("home=%q").is_err());
    }
}
