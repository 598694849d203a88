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
    println!("# node configuration: {source}");
    print!("{}", config::non_default_settings(&config));
    if config.cluster.mode == config::ClusterMode::Raft {
        // The timers decide how fast a fail-over is: shown even when left at their defaults.
        let c = &config.cluster;
        let t = |d: &config::values::DurationSetting| config::values::format_duration(d.0);
        println!(
            "# raft: heartbeat {}, election timeout {} to {}, active lease {}, take-over pull {}; voters: node {} (this), {}{}",
            t(&c.raft_heartbeat),
            t(&c.raft_election_timeout_min),
            t(&c.raft_election_timeout_max),
            t(&c.raft_election_timeout_min),
            t(&c.raft_takeover_timeout),
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
