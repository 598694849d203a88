//! `node pw` (doveadm pw) and `node auth test|lookup|cache flush` (doveadm auth).

use super::{AuthCacheCmd, AuthCmd};
use crate::admin::{AdminClient, Request};
use crate::auth::schemes::{self, Scheme};
use crate::auth::{AuthSettings, Authenticator, Verdict};
use crate::config::Config;
use std::io::{BufRead, IsTerminal, Write};
use std::net::IpAddr;

/// Exit code of a failed authentication, as doveadm (EX_NOPERM).
const EX_NOPERM: i32 = 77;

/// Reads a line from stdin; on a terminal, with echo off.
#[allow(unsafe_code)]
fn read_secret(prompt: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    let mut saved: Option<libc::termios> = None;
    if tty {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
        // SAFETY: tcgetattr/tcsetattr on fd 0 with a zeroed termios we own.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) == 0 {
                saved = Some(t);
                t.c_lflag &= !libc::ECHO;
                libc::tcsetattr(0, libc::TCSANOW, &t);
            }
        }
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(t) = saved {
        // SAFETY: restores the settings read above.
        unsafe {
            libc::tcsetattr(0, libc::TCSANOW, &t);
        }
        eprintln!();
    }
    read?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

pub fn pw(scheme: &str, password: Option<String>) -> anyhow::Result<i32> {
    let scheme = Scheme::parse(scheme).map_err(|e| {
        anyhow::anyhow!(
            "{e} (supported: ARGON2ID ARGON2I SHA512-CRYPT SHA256-CRYPT MD5-CRYPT CRAM-MD5 BLF-CRYPT PLAIN SCRAM-SHA-1 SCRAM-SHA-256)"
        )
    })?;
    let password = match password {
        Some(p) => p,
        None => {
            let first = read_secret("Enter new password: ")?;
            if std::io::stdin().is_terminal() {
                let again = read_secret("Retype new password: ")?;
                anyhow::ensure!(first == again, "Passwords don't match!");
            }
            first
        }
    };
    // An empty hash would let the user in with an empty password: never what was meant
    // (typically `echo | node pw` or a script whose variable was unset).
    anyhow::ensure!(
        !password.is_empty(),
        "Empty passwords are not allowed: give one with -p PASSWORD, type it when asked, or \
         pipe it in (`printf %s \"$PASS\" | node pw`); nothing was printed"
    );
    outln!(
        "{}",
        schemes::hash(scheme, &password).map_err(|e| anyhow::anyhow!("{e}"))?
    );
    Ok(0)
}

pub fn run(config: &Config, what: AuthCmd, json: bool) -> anyhow::Result<i32> {
    match what {
        AuthCmd::Test {
            debug,
            info,
            user,
            password,
        } => {
            let mut rip = None;
            for kv in &info {
                match kv.split_once('=') {
                    Some(("rip", v)) => {
                        rip = Some(
                            v.parse::<IpAddr>()
                                .map_err(|_| anyhow::anyhow!("-x rip={v}: not an IP address"))?,
                        )
                    }
                    // doveadm accepts more (lip, service, ...); they change nothing here.
                    Some((_, _)) => {}
                    None => anyhow::bail!("-x {kv}: expected KEY=VALUE (e.g. -x rip=192.0.2.1)"),
                }
            }
            test(config, &user, password, rip, debug, json)
        }
        AuthCmd::Lookup { users } => lookup(config, &users, json),
        AuthCmd::Cache {
            what: AuthCacheCmd::Flush,
        } => {
            let path = config.admin_socket_path();
            let mut client = AdminClient::connect(&path).ok_or_else(|| {
                anyhow::anyhow!(
                    "no running node answers on {}: there is no login cache to flush",
                    path.display()
                )
            })?;
            let v = client
                .call(&Request::AuthCacheFlush)
                .map_err(|e| anyhow::anyhow!(e))?;
            if json {
                outln!("{v}");
            } else {
                outln!("{} cache entries flushed", v["flushed"]);
            }
            Ok(0)
        }
    }
}

/// `node auth lookup USER...`: the passdb entry, without checking a password.
fn lookup(config: &Config, users: &[String], json: bool) -> anyhow::Result<i32> {
    let settings = AuthSettings::from_config(config).map_err(|e| anyhow::anyhow!(e))?;
    let auth = Authenticator::new(settings, config);
    let mut code = 0;
    let mut out = Vec::new();
    for user in users {
        match auth
            .passdb_entry_blocking(user)
            .map_err(|e| anyhow::anyhow!(e))?
        {
            Some(e) => {
                if json {
                    out.push(serde_json::json!({
                        "user": e.user,
                        "password": e.password.as_deref().unwrap_or_default(),
                        "extra": e.fields,
                    }));
                    continue;
                }
                outln!("passdb: {user}");
                outln!("  {:<12}: {}", "user", e.user);
                outln!(
                    "  {:<12}: {}",
                    "password",
                    e.password.as_deref().unwrap_or_default()
                );
                for (k, v) in &e.fields.0 {
                    outln!("  {k:<12}: {v}");
                }
            }
            None => {
                eprintln!("passdb: {user}: user doesn't exist");
                if json {
                    out.push(serde_json::json!({ "user": user, "error": "user doesn't exist" }));
                }
                code = super::admin_cmds::EX_NOUSER;
            }
        }
    }
    if json {
        outln!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(code)
}

/// `-D`: each step of the lookup, to stderr, as doveadm auth test's debug lines.
fn trace(auth: &Authenticator, config: &Config, user: &str, rip: Option<IpAddr>) {
    eprintln!(
        "auth: debug: user {user:?}, canonical {:?}",
        auth.canonical_name(user)
    );
    for db in &config.passdb {
        eprintln!("auth: debug: passdb {} {}", db.driver, db.args.display());
    }
    match auth.passdb_entry_blocking(user) {
        Ok(Some(e)) => {
            let scheme = e
                .password
                .as_deref()
                .unwrap_or_default()
                .strip_prefix('{')
                .and_then(|p| p.split_once('}'))
                .map_or("(none: no {SCHEME} prefix)", |(s, _)| s);
            eprintln!("auth: debug: found entry {:?}, scheme {scheme}", e.user);
            for (k, v) in &e.fields.0 {
                eprintln!("auth: debug: extra field {k}={v}");
            }
            match crate::auth::login_policy(&e.fields, rip) {
                Ok(()) => eprintln!("auth: debug: nologin/allow_nets: allowed"),
                Err(why) => eprintln!("auth: debug: refused: {why}"),
            }
        }
        Ok(None) => eprintln!("auth: debug: no passdb entry"),
        Err(e) => eprintln!("auth: debug: passdb error: {e}"),
    }
}

pub fn test(
    config: &Config,
    user: &str,
    password: Option<String>,
    rip: Option<IpAddr>,
    debug: bool,
    json: bool,
) -> anyhow::Result<i32> {
    let settings = AuthSettings::from_config(config).map_err(|e| anyhow::anyhow!(e))?;
    let auth = Authenticator::new(settings, config);
    let password = match password {
        Some(p) => p,
        None => read_secret("Password: ")?,
    };
    if debug {
        trace(&auth, config, user, rip);
    }
    let verdict = auth.check_password_blocking(user, &password, rip);
    let failed = |reason: &str| -> anyhow::Result<i32> {
        if json {
            outln!(
                "{}",
                serde_json::json!({ "user": auth.canonical_name(user), "passdb": "failed", "reason": reason })
            );
        } else {
            outln!("passdb: {user} auth failed");
            outln!("extra fields:");
            outln!("  user={}", auth.canonical_name(user));
        }
        eprintln!("node: {reason}");
        Ok(EX_NOPERM)
    };
    let name = match &verdict {
        Verdict::Ok { user } => user.clone(),
        Verdict::Proxy { user, fields } => {
            // As doveadm auth test: the routing fields are the answer.
            if json {
                outln!(
                    "{}",
                    serde_json::json!({ "user": user, "passdb": "ok", "fields": fields })
                );
            } else {
                outln!("passdb: {user} auth succeeded");
                outln!("extra fields:");
                outln!("  user={user}");
                for (k, v) in fields.0.iter().filter(|(k, _)| k != "pass") {
                    outln!("  {k}={v}");
                }
            }
            return Ok(0);
        }
        Verdict::UnknownUser => return failed("unknown user"),
        Verdict::Mismatch => return failed("Password mismatch"),
        Verdict::Refused { reason, .. } => return failed(reason),
        Verdict::TempFail(e) => anyhow::bail!("passdb: {user} auth failed: {e}"),
    };
    let rec = auth
        .session_user_blocking(&name)
        .map_err(|e| anyhow::anyhow!(e))?;
    if json {
        outln!(
            "{}",
            serde_json::json!({ "user": name, "passdb": "ok", "userdb": rec })
        );
        return Ok(0);
    }
    outln!("passdb: {user} auth succeeded");
    outln!("extra fields:");
    outln!("  user={name}");
    match rec {
        Some(rec) => {
            outln!("userdb: {}", rec.user);
            for (k, v) in [("uid", &rec.uid), ("gid", &rec.gid), ("home", &rec.home)] {
                if !v.is_empty() {
                    outln!("  {k:<12}: {v}");
                }
            }
            for (k, v) in &rec.fields {
                outln!("  {k:<12}: {v}");
            }
            let q = rec.quota;
            let show = |v: Option<u64>| {
                v.map(|n| n.to_string())
                    .unwrap_or_else(|| "unlimited".into())
            };
            outln!(
                "  {:<12}: bytes={} messages={}",
                "quota",
                show(q.max_bytes),
                show(q.max_messages)
            );
        }
        None => outln!("userdb: {name} not found"),
    }
    Ok(0)
}

/// `node quota set -u USER storage=1G [messages=1000]`: the user's own quota rule in the
/// passwd-file (the userdb this node has), replacing the quota rules the line had.
pub fn quota_set(
    config: &Config,
    user: &str,
    limits: &[String],
    json: bool,
) -> anyhow::Result<i32> {
    for l in limits {
        let name = l.split('=').next().unwrap_or_default();
        anyhow::ensure!(
            l.contains('=') && matches!(name, "storage" | "messages" | "bytes"),
            "{l:?}: expected storage=SIZE, bytes=N or messages=N (0 = unlimited)"
        );
    }
    let rule = format!("*:{}", limits.join(":"));
    crate::auth::quota_rule::parse_rule(&rule).map_err(|e| anyhow::anyhow!(e))?;
    let settings = AuthSettings::from_config(config).map_err(|e| anyhow::anyhow!(e))?;
    let auth = Authenticator::new(settings.clone(), config);
    let Some(rec) = auth.lookup_blocking(user).map_err(|e| anyhow::anyhow!(e))? else {
        eprintln!("node quota set: User {user} doesn't exist in the userdb");
        return Ok(super::admin_cmds::EX_NOUSER);
    };
    let is_rule = |k: &str| {
        let k = k.strip_prefix("userdb_").unwrap_or(k);
        k.strip_prefix("quota_rule")
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
    };
    let add = vec![("userdb_quota_rule".to_string(), rule.clone())];
    let mut edited = None;
    for db in config
        .effective_userdbs()
        .iter()
        .filter(|d| d.is_passwd_file())
    {
        if crate::auth::passwd_file::edit_extra_fields(&db.args, &rec.user, is_rule, &add)
            .map_err(|e| anyhow::anyhow!(e))?
        {
            edited = Some(db.args.clone());
            break;
        }
    }
    let Some(file) = edited else {
        anyhow::bail!("no userdb passwd-file has a line for {} to edit", rec.user);
    };
    // A fresh reader: the file just changed.
    let after = Authenticator::new(settings, config)
        .lookup_blocking(&rec.user)
        .map_err(|e| anyhow::anyhow!(e))?
        .map(|r| r.quota)
        .unwrap_or_default();
    let show = |v: Option<u64>| v.map_or("unlimited".to_string(), |n| n.to_string());
    if json {
        outln!(
            "{}",
            serde_json::json!({ "user": rec.user, "file": file, "rule": rule, "quota": after })
        );
    } else {
        outln!(
            "{}: userdb_quota_rule={rule} in {} (bytes={} messages={}; the node re-reads the file)",
            rec.user,
            file.display(),
            show(after.max_bytes),
            show(after.max_messages)
        );
    }
    Ok(0)
}
