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
