//! What a test server is made of: free loopback ports, users with hashed passwords, a
//! self-signed certificate.

use crate::{node_bin, run};
use anyhow::{bail, Result};
use std::collections::HashSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// A loopback port that was free a moment ago. Ports handed out in this process are never
/// handed out again, so two servers of one test binary do not collide.
pub fn free_port() -> u16 {
    static GIVEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let given = GIVEN.get_or_init(Default::default);
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral loopback port");
        let port = l.local_addr().expect("local addr").port();
        if given.lock().unwrap().insert(port) {
            return port;
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Plain,
    Argon2id,
    /// A `{SCHEME}hash` made elsewhere (e.g. by Dovecot's `doveadm pw`), used verbatim.
    Precomputed(&'static str),
}

impl Scheme {
    fn name(self) -> &'static str {
        match self {
            Scheme::Plain => "PLAIN",
            Scheme::Argon2id => "ARGON2ID",
            Scheme::Precomputed(h) => h,
        }
    }
}

#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    pub password: String,
    pub scheme: Scheme,
}

impl User {
    pub fn plain(name: &str, password: &str) -> User {
        User {
            name: name.into(),
            password: password.into(),
            scheme: Scheme::Plain,
        }
    }
    pub fn argon2id(name: &str, password: &str) -> User {
        User {
            name: name.into(),
            password: password.into(),
            scheme: Scheme::Argon2id,
        }
    }
}

/// `node pw -s SCHEME -p PASS`, as an operator makes a passwd-file entry (like doveadm pw).
pub fn hash_password(scheme: Scheme, password: &str) -> Result<String> {
    match scheme {
        Scheme::Plain => return Ok(format!("{{PLAIN}}{password}")),
        Scheme::Precomputed(hash) => return Ok(hash.to_string()),
        Scheme::Argon2id => {}
    }
    let out = run(
        Command::new(node_bin()).args(["pw", "-s", scheme.name(), "-p", password]),
        None,
        Duration::from_secs(60),
    )?;
    if !out.status.success() {
        bail!("node pw -s {} failed: {}", scheme.name(), out.stderr_text());
    }
    let hash = out.stdout_text().trim().to_string();
    if !hash.starts_with(&format!("{{{}}}", scheme.name())) {
        bail!(
            "node pw printed {hash:?}, expected a {{{}}} hash",
            scheme.name()
        );
    }
    Ok(hash)
}

/// A self-signed certificate for `localhost` / 127.0.0.1, made with the openssl CLI so the
/// clients' trust path (CertificateFile, --cafile) is the one an operator would use.
pub fn make_cert(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let out = run(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .args(["-nodes", "-days", "30", "-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert),
        None,
        Duration::from_secs(30),
    )?;
    if !out.status.success() {
        bail!("openssl req failed: {}", out.stderr_text());
    }
    Ok((cert, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_not_handed_out_twice() {
        let a: HashSet<u16> = (0..50).map(|_| free_port()).collect();
        assert_eq!(a.len(), 50);
    }
}
