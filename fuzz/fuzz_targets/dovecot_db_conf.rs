//! The user-database configuration parsers of node/src/auth/db on arbitrary text: Dovecot's
//! `.conf.ext` files, `%` variable templates, and SQL queries turned into prepared
//! statements. Nothing may panic; a prepared statement has one parameter per placeholder
//! and never contains a request value (the values are bound, not pasted).
#![no_main]
#![allow(dead_code)]

use libfuzzer_sys::fuzz_target;

/// The request the variables are expanded from (node's auth::db::Request, same fields).
#[derive(Clone, Debug, Default)]
pub struct Request {
    pub user: String,
    pub alternatives: Vec<String>,
    pub service: String,
    pub rip: Option<std::net::IpAddr>,
    pub lip: Option<std::net::IpAddr>,
}

#[path = "../../node/src/auth/db/conf_file.rs"]
mod conf_file;
#[path = "../../node/src/auth/db/sql_query.rs"]
mod sql_query;
#[path = "../../node/src/auth/db/vars.rs"]
mod vars;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = conf_file::parse(text);
    if let Ok(pieces) = vars::parse(text) {
        let req = Request {
            user: "u'@d".into(),
            ..Request::default()
        };
        let _ = vars::expand(&pieces, &req, &|_| None, &|s| s.to_string());
    }
    for dialect in [
        sql_query::Dialect::Pg,
        sql_query::Dialect::MySql,
        sql_query::Dialect::Sqlite,
    ] {
        if let Ok(p) = sql_query::Prepared::new(text, dialect) {
            let marks = match dialect {
                sql_query::Dialect::Pg => (1..=p.params.len())
                    .filter(|i| p.sql.contains(&format!("${i}")))
                    .count(),
                _ => p.sql.matches('?').count(),
            };
            assert!(marks >= p.params.len(), "{text:?} -> {p:?}");
            let req = Request {
                user: "zq'inj\"x@d".into(),
                ..Request::default()
            };
            if let Ok(values) = p.values(&req) {
                assert_eq!(values.len(), p.params.len());
                assert!(
                    text.contains("zq'inj") || !p.sql.contains("zq'inj"),
                    "a request value in the SQL text"
                );
            }
        }
    }
});
