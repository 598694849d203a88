//! The `prefetch` userdb: the passdb's `userdb_*` fields (`userdb_home`, `userdb_uid`,
//! `userdb_quota_rule`, ...) are the user's userdb fields, so one `password_query` serves
//! both lookups. Only a login has a passdb answer: a lookup without one (LMTP, `node user`)
//! goes on to the next userdb, and is an error when prefetch is the only one, as in Dovecot.

use super::{DbError, Fields, Request, UserDb, UserEntry, UserReply};

pub struct PrefetchDb {
    /// No other userdb follows: a lookup it cannot answer is an error, not "unknown".
    alone: bool,
}

impl PrefetchDb {
    pub fn new(alone: bool) -> PrefetchDb {
        PrefetchDb { alone }
    }
}

/// A passdb answer's `userdb_*` fields without the prefix; None when it has none.
pub fn userdb_fields(passdb: &Fields) -> Option<Fields> {
    let f = Fields(
        passdb
            .0
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("userdb_")?.to_string(), v.clone())))
            .filter(|(k, _)| !k.is_empty())
            .collect(),
    );
    (!f.0.is_empty()).then_some(f)
}

impl UserDb for PrefetchDb {
    fn name(&self) -> &'static str {
        "prefetch"
    }

    fn lookup(&self, req: &Request) -> Result<UserReply, DbError> {
        match (&req.prefetch, self.alone) {
            (Some(fields), _) => Ok(UserReply::Found(UserEntry {
                user: fields
                    .get("user")
                    .filter(|u| !u.is_empty())
                    .map_or_else(|| req.user.clone(), str::to_lowercase),
                fields: Fields(
                    fields
                        .0
                        .iter()
                        .filter(|(k, _)| k != "user")
                        .cloned()
                        .collect(),
                ),
            })),
            (None, false) => Ok(UserReply::Unknown),
            (None, true) if req.after_login => Err(DbError(
                "passdb didn't return userdb entries (userdb prefetch is the only userdb)".into(),
            )),
            (None, true) => Err(DbError(
                "userdb lookup not possible with only userdb prefetch".into(),
            )),
        }
    }

    fn iterate(&self) -> Result<Option<Vec<String>>, DbError> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_from_the_passdb_or_the_next_userdb() {
        let passdb = Fields::parse_args(
            "userdb_home=/var/vmail/a userdb_uid=2000 userdb_quota_rule=*:bytes=1024 nologin userdb_=x",
        )
        .unwrap();
        let pre = userdb_fields(&passdb).unwrap();
        assert_eq!(
            pre,
            Fields::parse_args("home=/var/vmail/a uid=2000 quota_rule=*:bytes=1024").unwrap()
        );
        assert_eq!(userdb_fields(&Fields::parse_args("nologin").unwrap()), None);
        let login = Request {
            user: "a@x".into(),
            prefetch: Some(pre.clone()),
            after_login: true,
            ..Request::default()
        };
        match PrefetchDb::new(false).lookup(&login).unwrap() {
            UserReply::Found(e) => assert_eq!((e.user.as_str(), e.fields), ("a@x", pre)),
            other => panic!("{other:?}"),
        }
        let lmtp = Request {
            user: "a@x".into(),
            ..Request::default()
        };
        assert_eq!(
            PrefetchDb::new(false).lookup(&lmtp).unwrap(),
            UserReply::Unknown
        );
        assert!(PrefetchDb::new(true).lookup(&lmtp).is_err());
        let no_fields = Request {
            prefetch: None,
            ..login
        };
        assert!(PrefetchDb::new(true)
            .lookup(&no_fields)
            .unwrap_err()
            .0
            .contains("didn't return"));
    }
}
