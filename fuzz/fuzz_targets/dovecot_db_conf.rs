//! The user-database configuration parsers of node/src/auth/db on arbitrary text: Dovecot's
//! `.conf.ext` files, `%` variable templates, SQL queries turned into prepared statements,
//! the `key=value` tokenizer (static args, default_fields / override_fields, SQL
//! `connect`) and username_filter with its wildcard matching (patterns from the
//! configuration, names from clients). Nothing may panic; a prepared statement has one
//! parameter per placeholder and never contains a request value (the values are bound, not
//! pasted).
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
#[path = "../../node/src/auth/db/kv_args.rs"]
mod kv_args;
#[path = "../../node/src/auth/db/sql_query.rs"]
mod sql_query;
#[path = "../../node/src/auth/db/username_filter.rs"]
mod username_filter;
#[path = "../../node/src/auth/db/vars.rs"]
mod vars;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = conf_file::parse(text);
    for quote in ['"', '\'', '='] {
        if let Ok(pairs) = kv_args::tokenize(text, quote) {
            // Every key is a run of the input without whitespace or `=`.
            for (k, _) in &pairs {
                assert!(!k.contains('=') && !k.contains(char::is_whitespace), "{k:?}");
            }
        }
    }
    if let Ok(filter) = username_filter::UsernameFilter::parse(text) {
        let _ = filter.accepts("ann@example.com");
    }
    // The text as a pattern against itself and a long name: a match, and quickly.
    if text.len() < 512 && !text.contains(['*', '?']) {
        assert!(username_filter::wildcard_match(text, text));
    }
    let _ = username_filter::wildcard_match(text, &"a".repeat(300));
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
