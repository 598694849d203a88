//! `node config check`: parse, check what can be checked without serving (TLS files,
//! passwd-files, quota rules), print the non-default settings like `doveconf -n`.

use crate::auth::passwd_file::PasswdFile;
use crate::config::{self, SslMode};
use crate::tls::{load_server_config, TlsFiles};
use std::path::PathBuf;

pub fn check(path: Option<&PathBuf>) -> anyhow::Result<i32> {
    let (config, origin) = super::load_config(path)?;
    let mut problems = Vec::new();
    if config.ssl != SslMode::No {
        if let (Some(cert), Some(key)) = (&config.ssl_cert, &config.ssl_key) {
            if let Err(e) = load_server_config(
                &TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                },
                config.ssl_min_protocol,
            ) {
                problems.push(e.to_string());
            }
        }
    }
    for db in config.passdb.iter().chain(config.effective_userdbs()) {
        if !db.is_passwd_file() {
            continue;
        }
        if origin == crate::server::Origin::Embedded && !db.args.exists() {
            continue; // made at first start
        }
        if let Err(e) = PasswdFile::new(db.args.clone()).users() {
            problems.push(e.to_string());
        }
    }
    let source = match path {
        Some(p) => p.display().to_string(),
        None => "embedded default".to_string(),
    };
    outln!("# node configuration: {source}");
    out!("{}", config::non_default_settings(&config));
    if config.cluster.mode == config::ClusterMode::Raft {
        // The timers decide how fast a fail-over is: shown even when left at their defaults.
        let c = &config.cluster;
        let t = |d: &config::values::DurationSetting| config::values::format_duration(d.0);
        outln!(
            "# raft: heartbeat {}, election timeout {} to {}, active lease {}, take-over pull {}; voters: node {} (this), {}{}",
            t(&c.raft_heartbeat),
            t(&c.raft_election_timeout_min),
            t(&c.raft_election_timeout_max),
            t(&c.raft_election_timeout_min),
            t(&c.takeover_timeout),
            c.node_id,
            c.peers
                .iter()
                .map(|p| format!("node {} ({})", p.node_id, p.raft_address))
                .collect::<Vec<_>>()
                .join(", "),
            c.witness
                .as_ref()
                .map(|w| format!(", witness node {} ({})", w.node_id, w.raft_address))
                .unwrap_or_default()
        );
    }
    if problems.is_empty() {
        Ok(0)
    } else {
        problems.dedup();
        for p in &problems {
            eprintln!("node: config check: {p}");
        }
        Ok(1)
    }
}

/// What `node config [-n] [-H] [KEY...]` prints.
pub struct ShowOpts {
    pub non_default: bool,
    pub hide_key: bool,
    pub json: bool,
    pub keys: Vec<String>,
}

/// A setting's value as written in the file (TOML), or a table's lines.
fn render(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => toml::Value::String(s.clone()).to_string(),
        v => v.to_string(),
    }
}

/// Looks up `ssl`, `storage.data_dir` or `[storage]`'s `data_dir` alone (when unambiguous).
fn find<'a>(
    all: &'a toml::map::Map<String, toml::Value>,
    key: &str,
) -> Option<(String, &'a toml::Value)> {
    let key = key.trim().trim_start_matches('[').trim_end_matches(']');
    let mut cur: &toml::Value = all.get(key.split('.').next()?)?;
    let mut path = vec![key.split('.').next()?.to_string()];
    for part in key.split('.').skip(1) {
        cur = cur.as_table()?.get(part)?;
        path.push(part.to_string());
    }
    Some((path.join("."), cur))
}

/// `node config` (doveconf): every setting, `-n` the non-default ones, or only KEY...; a key
/// we do not have is an error that says so (and, for a Dovecot setting, what to use here).
pub fn show(config: &config::Config, opts: &ShowOpts) -> anyhow::Result<i32> {
    let value = toml::Value::try_from(config)?;
    let Some(all) = value.as_table() else {
        anyhow::bail!("internal: the configuration is not a table");
    };
    if opts.keys.is_empty() {
        if opts.json {
            let v = serde_json::to_value(config)?;
            outln!("{}", serde_json::to_string_pretty(&v)?);
        } else if opts.non_default {
            out!("{}", config::non_default_settings(config));
        } else {
            out!("{}", toml::to_string(config)?);
        }
        return Ok(0);
    }
    let mut code = 0;
    let mut found = serde_json::Map::new();
    for key in &opts.keys {
        let Some((name, v)) = find(all, key) else {
            let hint = config::dovecot_hint(key)
                .map(|h| {
                    if h.is_empty() {
                        " (a Dovecot setting this server does not have)".to_string()
                    } else {
                        format!(" (a Dovecot setting this server does not have: {h})")
                    }
                })
                .unwrap_or_default();
            eprintln!("node config: unknown setting {key:?}{hint}");
            code = 1;
            continue;
        };
        if opts.json {
            found.insert(name, serde_json::to_value(v)?);
            continue;
        }
        match v {
            toml::Value::Table(t) => {
                if !opts.hide_key {
                    outln!("[{name}]");
                }
                for (k, v) in t {
                    outln!("{k} = {}", render(v));
                }
            }
            v if opts.hide_key => outln!("{}", render(v).trim_matches('"')),
            v => outln!("{name} = {}", render(v)),
        }
    }
    if opts.json {
        outln!("{}", serde_json::to_string_pretty(&found)?);
    }
    Ok(code)
}
