//! The `sql` driver: an operator's `dovecot-sql.conf.ext` unchanged (`driver = pgsql | mysql
//! | sqlite`, `connect`, `password_query`, `user_query`, `iterate_query`,
//! `default_pass_scheme`), over an sqlx pool that connects lazily and reconnects by itself:
//! the node starts while the database is down and recovers when it is back, and a lookup
//! it cannot answer is a temporary failure.

use super::conf_file::{self, Settings};
use super::io_runtime::IoRuntime;
use super::sql_query::{Dialect, Prepared};
use super::{DbError, Fields, PassDb, PassEntry, PassReply, Request, UserDb, UserEntry, UserReply};
use sqlx::{Column, Row};
use std::path::Path;
use std::time::Duration;

const KNOWN: &[&str] = &[
    "driver",
    "connect",
    "password_query",
    "user_query",
    "iterate_query",
    "default_pass_scheme",
    // Dovecot 2.2 names, still read by 2.3.
    "password_scheme",
];

/// Default per-lookup deadline and pool wait (Dovecot's connect timeout is 5 s too).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// A parsed dovecot-sql.conf.ext.
#[derive(Clone, Debug)]
pub struct SqlConf {
    pub dialect: Dialect,
    pub connect: String,
    pub password_query: Prepared,
    pub user_query: Prepared,
    pub iterate_query: Option<Prepared>,
    pub default_pass_scheme: String,
}

impl SqlConf {
    pub fn read(path: &Path) -> Result<SqlConf, String> {
        let s = conf_file::read(path)?;
        Self::from_settings(&s).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn from_settings(s: &Settings) -> Result<SqlConf, String> {
        conf_file::check_known(s, KNOWN, "sql")?;
        let dialect = match conf_file::get(s, "driver") {
            Some("pgsql") => Dialect::Pg,
            Some("mysql") => Dialect::MySql,
            Some("sqlite") => Dialect::Sqlite,
            Some(other) => {
                return Err(format!(
                    "driver = {other}: not supported (pgsql, mysql, sqlite)"
                ))
            }
            None => return Err("driver is not set (pgsql, mysql, sqlite)".into()),
        };
        let connect = conf_file::get(s, "connect")
            .ok_or("connect is not set")?
            .to_string();
        let query = |key: &str, default: &str| -> Result<Prepared, String> {
            Prepared::new(conf_file::get(s, key).unwrap_or(default), dialect)
                .map_err(|e| format!("{key}: {e}"))
        };
        // Dovecot's defaults.
        let password_query = query(
            "password_query",
            "SELECT username, domain, password FROM users WHERE username = '%n' AND domain = '%d'",
        )?;
        let user_query = query(
            "user_query",
            "SELECT home, uid, gid FROM users WHERE username = '%n' AND domain = '%d'",
        )?;
        let iterate_query = match conf_file::get(s, "iterate_query") {
            Some(q) => Some(Prepared::new(q, dialect).map_err(|e| format!("iterate_query: {e}"))?),
            None => None,
        };
        let scheme = conf_file::get(s, "default_pass_scheme")
            .or_else(|| conf_file::get(s, "password_scheme"))
            // Dovecot's default is MD5(-CRYPT), which is not supported here; CRYPT reads
            // the $6$/$5$/$2y$ hashes an unprefixed column usually holds.
            .unwrap_or("CRYPT")
            .to_uppercase();
        // Checked now: a wrong scheme would otherwise fail every login at run time.
        crate::auth::schemes::Scheme::parse(&scheme)
            .map_err(|e| format!("default_pass_scheme = {scheme}: {e}"))?;
        Ok(SqlConf {
            dialect,
            connect,
            password_query,
            user_query,
            iterate_query,
            default_pass_scheme: scheme,
        })
    }
}

/// Dovecot's `connect = host=... dbname=... user=... password=...` (a value may be
/// single-quoted); for sqlite the whole string is the database path.
pub fn parse_connect(text: &str) -> Result<Vec<(String, String)>, String> {
    super::kv_args::tokenize(text, '\'')
        .map_err(|e| format!("connect: {e}"))?
        .into_iter()
        .map(|(k, v)| match v {
            Some(v) => Ok((k, v)),
            None => Err(format!("connect: {k:?} has no value (key=value expected)")),
        })
        .collect()
}

enum Pool {
    Pg(sqlx::PgPool),
    My(sqlx::MySqlPool),
    Lite(sqlx::SqlitePool),
}

/// One result row: column name and value as text (NULL columns left out, as Dovecot does).
type SqlRow = Vec<(String, String)>;

pub struct SqlDb {
    conf: SqlConf,
    pool: std::sync::Arc<Pool>,
    timeout: Duration,
    /// Declared last: dropped after the pool.
    rt: IoRuntime,
}

fn get_opt<'a>(kv: &'a [(String, String)], key: &str) -> Option<&'a str> {
    kv.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

impl SqlDb {
    pub fn open(path: &Path) -> Result<SqlDb, String> {
        let conf = SqlConf::read(path)?;
        let rt = IoRuntime::new("auth-sql")?;
        let _enter = rt.handle().ok_or("no runtime")?.enter();
        let (pool, timeout) = match conf.dialect {
            Dialect::Sqlite => {
                let opts = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(conf.connect.trim())
                    .create_if_missing(false);
                let pool = sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(5)
                    .acquire_timeout(DEFAULT_TIMEOUT)
                    .connect_lazy_with(opts);
                (Pool::Lite(pool), DEFAULT_TIMEOUT)
            }
            Dialect::Pg => {
                let kv = parse_connect(&conf.connect)?;
                let mut opts = sqlx::postgres::PgConnectOptions::new_without_pgpass();
                for (k, v) in &kv {
                    opts = match k.as_str() {
                        "host" | "hostaddr" => opts.host(v),
                        "port" => opts.port(v.parse().map_err(|_| format!("connect: port={v}"))?),
                        "dbname" => opts.database(v),
                        "user" => opts.username(v),
                        "password" => opts.password(v),
                        "application_name" => opts.application_name(v),
                        "sslmode" => {
                            opts.ssl_mode(v.parse().map_err(|_| {
                                format!("connect: sslmode={v} is not a libpq sslmode")
                            })?)
                        }
                        "sslrootcert" => opts.ssl_root_cert(v.as_str()),
                        "connect_timeout" | "maxconns" => opts,
                        other => {
                            return Err(format!("connect: {other}= is not supported for pgsql"))
                        }
                    };
                }
                let timeout = connect_timeout(&kv)?;
                let max = max_conns(&kv)?;
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(max)
                    .acquire_timeout(timeout)
                    .connect_lazy_with(opts);
                (Pool::Pg(pool), timeout)
            }
            Dialect::MySql => {
                let kv = parse_connect(&conf.connect)?;
                let mut opts = sqlx::mysql::MySqlConnectOptions::new()
                    .ssl_mode(sqlx::mysql::MySqlSslMode::Disabled);
                for (k, v) in &kv {
                    opts = match k.as_str() {
                        "host" if v.starts_with('/') => opts.socket(v),
                        "host" => opts.host(v),
                        "port" => opts.port(v.parse().map_err(|_| format!("connect: port={v}"))?),
                        "dbname" => opts.database(v),
                        "user" => opts.username(v),
                        "password" => opts.password(v),
                        "ssl_ca" => opts
                            .ssl_mode(sqlx::mysql::MySqlSslMode::VerifyCa)
                            .ssl_ca(v.as_str()),
                        "ssl_verify_server_cert" if conf_file::yes(Some(v)) => {
                            opts.ssl_mode(sqlx::mysql::MySqlSslMode::VerifyIdentity)
                        }
                        "ssl_verify_server_cert"
                        | "connect_timeout"
                        | "read_timeout"
                        | "write_timeout"
                        | "maxconns"
                        | "client_flags" => opts,
                        other => {
                            return Err(format!("connect: {other}= is not supported for mysql"))
                        }
                    };
                }
                let timeout = connect_timeout(&kv)?;
                let max = max_conns(&kv)?;
                let pool = sqlx::mysql::MySqlPoolOptions::new()
                    .max_connections(max)
                    .acquire_timeout(timeout)
                    .connect_lazy_with(opts);
                (Pool::My(pool), timeout)
            }
        };
        drop(_enter);
        Ok(SqlDb {
            conf,
            pool: std::sync::Arc::new(pool),
            timeout,
            rt,
        })
    }

    /// Runs a prepared query for `req` and returns its rows as text.
    fn query(&self, q: &Prepared, req: &Request) -> Result<Vec<SqlRow>, DbError> {
        let values = q.values(req).map_err(DbError)?;
        let sql = q.sql.clone();
        let pool = self.pool.clone();
        // The pool's own wait is `timeout`; the query gets as long again.
        self.rt
            .run(self.timeout * 2, async move {
                run_query(&pool, sql, values).await
            })
            .map_err(DbError)
    }
}

fn connect_timeout(kv: &[(String, String)]) -> Result<Duration, String> {
    match get_opt(kv, "connect_timeout") {
        Some(v) => v
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| format!("connect: connect_timeout={v} is not a number of seconds")),
        None => Ok(DEFAULT_TIMEOUT),
    }
}

fn max_conns(kv: &[(String, String)]) -> Result<u32, String> {
    match get_opt(kv, "maxconns") {
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("connect: maxconns={v}")),
        None => Ok(5),
    }
}

async fn run_query(pool: &Pool, sql: String, values: Vec<String>) -> Result<Vec<SqlRow>, String> {
    let err = |e: sqlx::Error| e.to_string();
    match pool {
        Pool::Pg(p) => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for v in values {
                q = q.bind(v);
            }
            let rows = q.fetch_all(p).await.map_err(err)?;
            rows.iter().map(pg_row).collect()
        }
        Pool::My(p) => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for v in values {
                q = q.bind(v);
            }
            let rows = q.fetch_all(p).await.map_err(err)?;
            rows.iter().map(my_row).collect()
        }
        Pool::Lite(p) => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for v in values {
                q = q.bind(v);
            }
            let rows = q.fetch_all(p).await.map_err(err)?;
            rows.iter().map(lite_row).collect()
        }
    }
}

/// Tries the column as each type in turn; the first that decodes gives its text.
macro_rules! decode_row {
    ($row:expr, $($t:ty),+) => {{
        let row = $row;
        let mut out = Vec::new();
        for (i, col) in row.columns().iter().enumerate() {
            let name = col.name().to_string();
            let mut value: Option<Option<String>> = None;
            $(
                if value.is_none() {
                    if let Ok(v) = row.try_get::<Option<$t>, _>(i) {
                        value = Some(v.map(|v| to_text(v)));
                    }
                }
            )+
            match value {
                Some(Some(v)) => out.push((name, v)),
                Some(None) => {}
                None => return Err(format!("column {name}: a type this driver cannot read as text")),
            }
        }
        Ok(out)
    }};
}

trait ToText {
    fn text(self) -> String;
}
impl ToText for String {
    fn text(self) -> String {
        self
    }
}
impl ToText for Vec<u8> {
    fn text(self) -> String {
        String::from_utf8_lossy(&self).into_owned()
    }
}
macro_rules! to_text_display {
    ($($t:ty),+) => { $(impl ToText for $t { fn text(self) -> String { self.to_string() } })+ };
}
to_text_display!(i64, i32, i16, i8, u64, u32, u16, u8, f64, f32, bool);
fn to_text<T: ToText>(v: T) -> String {
    v.text()
}

fn pg_row(row: &sqlx::postgres::PgRow) -> Result<SqlRow, String> {
    decode_row!(row, String, i64, i32, i16, bool, f64, f32, Vec<u8>)
}

fn my_row(row: &sqlx::mysql::MySqlRow) -> Result<SqlRow, String> {
    decode_row!(row, String, i64, u64, i32, u32, f64, f32, bool, Vec<u8>)
}

fn lite_row(row: &sqlx::sqlite::SqliteRow) -> Result<SqlRow, String> {
    decode_row!(row, String, i64, f64, Vec<u8>)
}

/// The single row a lookup may return; several are an error (Dovecot refuses them too:
/// which one would be the user?).
fn one_row(mut rows: Vec<SqlRow>, what: &str) -> Result<Option<SqlRow>, DbError> {
    match rows.len() {
        0 => Ok(None),
        1 => Ok(rows.pop()),
        n => Err(DbError(format!("{what} returned {n} rows, expected one"))),
    }
}

impl PassDb for SqlDb {
    fn name(&self) -> &'static str {
        "sql"
    }

    fn lookup(&self, req: &Request, _password: Option<&str>) -> Result<PassReply, DbError> {
        let Some(row) = one_row(
            self.query(&self.conf.password_query, req)?,
            "password_query",
        )?
        else {
            return Ok(PassReply::Unknown);
        };
        let mut user = req.user.clone();
        let mut username = None;
        let mut domain = None;
        let mut password = None;
        let mut fields = Fields::default();
        for (k, v) in row {
            match k.to_ascii_lowercase().as_str() {
                "user" => user = v.to_lowercase(),
                // Dovecot's default query returns the parts: they rebuild the name.
                "username" => username = Some(v),
                "domain" => domain = Some(v),
                "password" => password = Some(v),
                "password_noscheme" => {
                    password = Some(format!("{{{}}}{v}", self.conf.default_pass_scheme))
                }
                _ => fields.push(k, v),
            }
        }
        if let (Some(n), Some(d)) = (&username, &domain) {
            if !d.is_empty() {
                user = format!("{n}@{d}").to_lowercase();
            }
        }
        let password = password.filter(|p| !p.is_empty()).map(|p| {
            if p.starts_with('{') {
                p
            } else {
                format!("{{{}}}{p}", self.conf.default_pass_scheme)
            }
        });
        Ok(PassReply::Found(PassEntry {
            user,
            password,
            verified: false,
            fields,
        }))
    }
}

impl UserDb for SqlDb {
    fn name(&self) -> &'static str {
        "sql"
    }

    fn lookup(&self, req: &Request) -> Result<UserReply, DbError> {
        let Some(row) = one_row(self.query(&self.conf.user_query, req)?, "user_query")? else {
            return Ok(UserReply::Unknown);
        };
        let mut user = req.user.clone();
        let mut fields = Fields::default();
        for (k, v) in row {
            match k.as_str() {
                "user" => user = v.to_lowercase(),
                _ => fields.push(k.strip_prefix("userdb_").unwrap_or(&k), v),
            }
        }
        Ok(UserReply::Found(UserEntry { user, fields }))
    }

    fn iterate(&self) -> Result<Option<Vec<String>>, DbError> {
        let Some(q) = &self.conf.iterate_query else {
            return Ok(None);
        };
        let rows = self.query(q, &Request::default())?;
        // Dovecot reads `user`, or `username` and `domain`.
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let get = |k: &str| row.iter().find(|(c, _)| c == k).map(|(_, v)| v.as_str());
            match (get("user"), get("username"), get("domain")) {
                (Some(u), _, _) => out.push(u.to_lowercase()),
                (None, Some(n), Some(d)) if !d.is_empty() => {
                    out.push(format!("{n}@{d}").to_lowercase())
                }
                (None, Some(n), _) => out.push(n.to_lowercase()),
                _ => {
                    return Err(DbError(
                        "iterate_query must return a user column (or username and domain)".into(),
                    ))
                }
            }
        }
        Ok(Some(out))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn connect_strings() {
        let kv =
            parse_connect("host=localhost dbname=mails user=admin password='se cret' port=5432")
                .unwrap();
        assert_eq!(get_opt(&kv, "password"), Some("se cret"));
        assert_eq!(get_opt(&kv, "port"), Some("5432"));
        assert!(parse_connect("host").is_err());
        assert!(parse_connect("password='x").is_err());
    }

    #[test]
    fn conf_defaults_and_errors() {
        let s = conf_file::parse("driver = mysql\nconnect = host=db dbname=postfix user=postfix password=x\ndefault_pass_scheme = sha512-crypt\n").unwrap();
        let c = SqlConf::from_settings(&s).unwrap();
        assert_eq!(c.dialect, Dialect::MySql);
        assert_eq!(c.default_pass_scheme, "SHA512-CRYPT");
        assert!(c.password_query.sql.contains("username = ?"));
        let bad = conf_file::parse("driver = oracle\nconnect = x\n").unwrap();
        assert!(SqlConf::from_settings(&bad).unwrap_err().contains("oracle"));
        let typo = conf_file::parse("driver = pgsql\nconnect = x\npasword_query = x\n").unwrap();
        assert!(SqlConf::from_settings(&typo)
            .unwrap_err()
            .contains("pasword_query"));
    }

    /// A SQLite database with a Postfixadmin-style `mailbox` table (bob active, off not)
    /// and its dovecot-sql.conf.ext; returns (database, conf).
    pub(crate) fn make_sqlite(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
        let db = dir.join("users.db");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            use sqlx::ConnectOptions;
            let mut c = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&db)
                .create_if_missing(true)
                .connect()
                .await
                .unwrap();
            sqlx::raw_sql(
                "CREATE TABLE mailbox (username TEXT, password TEXT, quota INTEGER, active INTEGER, note TEXT);
                 INSERT INTO mailbox VALUES ('bob@example.com', '{PLAIN}pw', 1024, 1, NULL);
                 INSERT INTO mailbox VALUES ('off@example.com', 'pw', 0, 0, 'x');",
            )
            .execute(&mut c)
            .await
            .unwrap();
        });
        let conf = dir.join("dovecot-sql.conf.ext");
        std::fs::write(
            &conf,
            format!(
                "driver = sqlite\nconnect = {}\ndefault_pass_scheme = PLAIN\n\
                 password_query = SELECT username AS user, password, note FROM mailbox WHERE username = '%u' AND active = 1\n\
                 user_query = SELECT '/var/vmail/' || username AS home, 2000 AS uid, '*:bytes=' || quota AS quota_rule FROM mailbox WHERE username = '%u'\n\
                 iterate_query = SELECT username AS user FROM mailbox\n",
                db.display()
            ),
        )
        .unwrap();
        (db, conf)
    }

    /// A real database (SQLite, bundled): rows become fields, variables are bound, NULLs
    /// are left out, an injection attempt finds nobody.
    #[test]
    fn sqlite_lookups() {
        let dir = tempfile::tempdir().unwrap();
        let (db, conf) = make_sqlite(dir.path());
        let sql = SqlDb::open(&conf).unwrap();
        let req = |u: &str| Request {
            user: u.into(),
            ..Request::default()
        };
        match PassDb::lookup(&sql, &req("bob@example.com"), None).unwrap() {
            PassReply::Found(e) => {
                assert_eq!(e.user, "bob@example.com");
                assert_eq!(e.password.as_deref(), Some("{PLAIN}pw"));
                assert!(!e.fields.has("note"), "NULL columns are left out");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            PassDb::lookup(&sql, &req("off@example.com"), None).unwrap(),
            PassReply::Unknown
        );
        assert_eq!(
            PassDb::lookup(&sql, &req("x' OR '1'='1"), None).unwrap(),
            PassReply::Unknown
        );
        match UserDb::lookup(&sql, &req("bob@example.com")).unwrap() {
            UserReply::Found(e) => {
                assert_eq!(e.fields.get("home"), Some("/var/vmail/bob@example.com"));
                assert_eq!(e.fields.get("uid"), Some("2000"));
                assert_eq!(e.fields.get("quota_rule"), Some("*:bytes=1024"));
            }
            other => panic!("{other:?}"),
        }
        let mut all = sql.iterate().unwrap().unwrap();
        all.sort();
        assert_eq!(all, vec!["bob@example.com", "off@example.com"]);
        // The database goes away: an error (a temporary failure), not "unknown user".
        std::fs::remove_file(&db).unwrap();
        drop(sql);
        let sql = SqlDb::open(&conf).unwrap();
        assert!(PassDb::lookup(&sql, &req("bob@example.com"), None).is_err());
    }
}
