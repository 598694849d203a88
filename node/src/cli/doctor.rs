//! `node doctor`: the troubleshooting guides' checklist against this node, one line per check,
//! OK or FAIL with what to do: configuration, the service, the ports, the certificate, a test
//! login and its INBOX, the log file, disk space, the peers and the clock.

use crate::admin::{AdminClient, Request};
use crate::auth::passwd_file::PasswdFile;
use crate::auth::{AuthSettings, Authenticator, Verdict};
use crate::config::{Config, SslMode};
use serde::Serialize;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

/// A certificate that expires sooner than this is reported.
const EXPIRY_WARNING_DAYS: i64 = 14;
/// The hybrid clock running this far ahead of the wall clock means a peer's clock is ahead.
const CLOCK_BEHIND_MS: u64 = 1000;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Ok,
    Fail,
    /// Not checked (no credentials to log in with, no server to ask).
    Skip,
}

#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub check: String,
    pub status: Status,
    pub detail: String,
    /// What to do when it failed.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub fix: String,
}

fn check(name: &str, status: Status, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        check: name.to_string(),
        status,
        detail: detail.into(),
        fix: if status == Status::Fail {
            fix.into()
        } else {
            String::new()
        },
    }
}

/// The login to try: `--user`/`--password`, or the embedded default's demo user.
pub struct Login {
    pub user: String,
    pub password: String,
}

/// A listener's address as a client on this host reaches it (a wildcard is asked on loopback).
fn local(addr: SocketAddr) -> SocketAddr {
    let mut a = addr;
    if a.ip().is_unspecified() {
        a.set_ip(match a.ip() {
            IpAddr::V4(_) => IpAddr::from([127, 0, 0, 1]),
            IpAddr::V6(_) => IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]),
        });
    }
    a
}

fn listeners(config: &Config) -> Vec<(&'static str, SocketAddr)> {
    let mut out = Vec::new();
    let tls = config.ssl != SslMode::No;
    for ip in config.listen_addrs().unwrap_or_default() {
        let mut add = |name: &'static str, port: u16| {
            if port != 0 {
                out.push((name, local(SocketAddr::new(ip, port))));
            }
        };
        if config.protocol_enabled("imap") {
            add("imap", config.imap.port);
            if tls {
                add("imaps", config.imap.ssl_port);
            }
        }
        if config.protocol_enabled("pop3") {
            add("pop3", config.pop3.port);
            if tls {
                add("pop3s", config.pop3.ssl_port);
            }
        }
        if config.protocol_enabled("lmtp") {
            add("lmtp", config.lmtp.port);
        }
    }
    if config.http.port != 0 {
        if let Ok(a) = config.http_addr() {
            out.push(("http", local(a)));
        }
    }
    out
}

fn configuration(config: &Config, source: &str) -> Check {
    let mut problems = Vec::new();
    if let Err(e) = AuthSettings::from_config(config) {
        problems.push(e);
    }
    for db in config.passdb.iter().chain(config.effective_userdbs()) {
        if !db.is_passwd_file() {
            continue;
        }
        if let Err(e) = PasswdFile::new(db.args.clone()).users() {
            problems.push(e.to_string());
        }
    }
    problems.dedup();
    if problems.is_empty() {
        check("configuration", Status::Ok, format!("{source}: valid"), "")
    } else {
        check(
            "configuration",
            Status::Fail,
            problems.join("; "),
            "fix the file and line named, then `node config check` (passwd-file lines are \
             user:{SCHEME}password:uid:gid:gecos:home:shell:extra_fields)",
        )
    }
}

fn certificate(config: &Config) -> Check {
    if config.ssl == SslMode::No {
        return check(
            "certificate",
            Status::Ok,
            "ssl = no: no certificate used",
            "",
        );
    }
    let (cert, key) = match (&config.ssl_cert, &config.ssl_key) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ => {
            let dir = config.self_signed_dir();
            (dir.join("cert.pem"), dir.join("key.pem"))
        }
    };
    if let Err(e) = crate::tls::load_server_config(
        &crate::tls::TlsFiles {
            cert: cert.clone(),
            key,
        },
        config.ssl_min_protocol,
    ) {
        return check(
            "certificate",
            Status::Fail,
            e.to_string(),
            "make ssl_cert and ssl_key readable by the node's user and matching (cert first, \
             then the chain); `openssl x509 -noout -dates -in CERT` shows what is there",
        );
    }
    match expiry_days(&cert) {
        Ok(days) if days < 0 => check(
            "certificate",
            Status::Fail,
            format!("{} expired {} days ago", cert.display(), -days),
            "renew it (certbot renew, or your CA), then `kill -HUP` the node to reload it",
        ),
        Ok(days) if days < EXPIRY_WARNING_DAYS => check(
            "certificate",
            Status::Fail,
            format!("{} expires in {days} days", cert.display()),
            "renew it now (certbot renew, or your CA), then `kill -HUP` the node to reload it",
        ),
        Ok(days) => check(
            "certificate",
            Status::Ok,
            format!("{} valid for {days} more days", cert.display()),
            "",
        ),
        Err(e) => check(
            "certificate",
            Status::Fail,
            format!("{}: {e}", cert.display()),
            "ssl_cert must be a PEM certificate chain",
        ),
    }
}

/// Days until the first certificate in `path` expires (negative: expired).
fn expiry_days(path: &Path) -> Result<i64, String> {
    let pem = std::fs::read(path).map_err(|e| e.to_string())?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem)
        .map_err(|e| format!("not a PEM certificate: {e}"))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let not_after = cert.validity().not_after.timestamp();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    Ok((not_after - now).div_euclid(86_400))
}

/// An IMAP LOGIN on the plaintext port (loopback), or the passdb check when that port is off
/// or plaintext logins are refused everywhere.
fn login(config: &Config, who: &Login) -> Check {
    let imap = listeners(config)
        .into_iter()
        .find(|(n, _)| *n == "imap")
        .map(|(_, a)| a);
    let name = format!("login {}", who.user);
    match imap {
        Some(addr) if config.ssl != SslMode::Required => match imap_login(addr, who) {
            Ok(()) => check(
                &name,
                Status::Ok,
                format!("IMAP LOGIN on {addr} succeeded"),
                "",
            ),
            Err(e) => check(
                &name,
                Status::Fail,
                format!("IMAP LOGIN on {addr}: {e}"),
                format!(
                    "`node auth test -D {} PASSWORD` shows each step; the log says why \
                     (passwd-file(...): Password mismatch / unknown user / nologin / allow_nets)",
                    who.user
                ),
            ),
        },
        _ => {
            let settings = match AuthSettings::from_config(config) {
                Ok(s) => s,
                Err(e) => return check(&name, Status::Fail, e, "fix the configuration first"),
            };
            let auth = Authenticator::new(settings, config);
            match auth.check_password_blocking(&who.user, &who.password, None) {
                Verdict::Ok { .. } | Verdict::Proxy { .. } => {
                    check(&name, Status::Ok, "passdb: auth succeeded", "")
                }
                other => check(
                    &name,
                    Status::Fail,
                    format!("passdb: {other:?}"),
                    format!("`node auth test -D {} PASSWORD` shows each step", who.user),
                ),
            }
        }
    }
}

fn imap_login(addr: SocketAddr, who: &Login) -> Result<(), String> {
    let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut w = stream.try_clone().map_err(|e| e.to_string())?;
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line).map_err(|e| e.to_string())?;
    if !line.starts_with("* OK") {
        return Err(format!("greeting: {}", line.trim()));
    }
    let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    write!(
        w,
        "d1 LOGIN {} {}\r\n",
        quote(&who.user),
        quote(&who.password)
    )
    .map_err(|e| e.to_string())?;
    loop {
        line.clear();
        if r.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            return Err("connection closed".into());
        }
        if let Some(rest) = line.strip_prefix("d1 ") {
            let _ = w.write_all(b"d2 LOGOUT\r\n");
            return if rest.starts_with("OK") {
                Ok(())
            } else {
                Err(rest.trim().to_string())
            };
        }
    }
}

fn log_file(config: &Config) -> Check {
    if config.log_path.is_empty() {
        return check(
            "log",
            Status::Ok,
            "log_path empty: logging to stderr (journald)",
            "",
        );
    }
    match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&config.log_path)
    {
        Ok(_) => check(
            "log",
            Status::Ok,
            format!("{} writable", config.log_path),
            "",
        ),
        Err(e) => check(
            "log",
            Status::Fail,
            format!("{}: {e}", config.log_path),
            "create its directory and give it to the node's user (after logrotate moved it, \
             `node log reopen` or SIGUSR1 opens the new file)",
        ),
    }
}

/// Free bytes for an unprivileged writer on the file system of `path`.
#[allow(unsafe_code)]
fn free_bytes(path: &Path) -> Result<(u64, u64), String> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: statvfs with a valid C string and a zeroed struct we own.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above; the result is read only when the call succeeded.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    let frsize = st.f_frsize as u64;
    Ok((
        (st.f_bavail as u64).saturating_mul(frsize),
        (st.f_blocks as u64).saturating_mul(frsize),
    ))
}

fn disk(config: &Config) -> Check {
    let dir = config.data_dir();
    let min = config.storage.min_free_space.0;
    match free_bytes(dir) {
        Ok((free, _)) if free < min => check(
            "disk",
            Status::Fail,
            format!(
                "{}: {} MiB free, below [storage] min_free_space ({} MiB): writes are refused",
                dir.display(),
                free >> 20,
                min >> 20
            ),
            "free space there (`node purge -A` reclaims expunged mail; old logs, other files), \
             or grow the file system",
        ),
        Ok((free, total)) => check(
            "disk",
            Status::Ok,
            format!(
                "{}: {} MiB free of {} MiB",
                dir.display(),
                free >> 20,
                total >> 20
            ),
            "",
        ),
        Err(e) => check(
            "disk",
            Status::Fail,
            format!("{}: {e}", dir.display()),
            "[storage] data_dir must exist and be the node's",
        ),
    }
}

/// Runs the checklist; prints it; exit 0 when nothing failed.
pub fn run(config: &Config, source: &str, who: Option<Login>, json: bool) -> anyhow::Result<i32> {
    let mut checks = vec![configuration(config, source)];
    let sock = config.admin_socket_path();
    let mut client = match AdminClient::try_connect(&sock) {
        Ok(Some(c)) => {
            checks.push(check(
                "service",
                Status::Ok,
                format!("running (admin socket {})", sock.display()),
                "",
            ));
            Some(c)
        }
        Ok(None) => {
            checks.push(check(
                "service",
                Status::Fail,
                format!("no node answers on {}", sock.display()),
                "start it (`systemctl start node`, or `node serve -c FILE`) and read the last \
                 lines of its log for why it stopped",
            ));
            None
        }
        Err(e) => {
            checks.push(check(
                "service",
                Status::Fail,
                e,
                "run `node doctor` as the node's user",
            ));
            None
        }
    };
    for (name, addr) in listeners(config) {
        checks.push(match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(_) => check(
                &format!("port {name}"),
                Status::Ok,
                format!("{addr} accepts"),
                "",
            ),
            Err(e) => check(
                &format!("port {name}"),
                Status::Fail,
                format!("{addr}: {e}"),
                "the node is not running, or listens elsewhere (`node config listen {name}`); \
                 `ss -ltnp` shows who holds the port",
            ),
        });
    }
    checks.push(certificate(config));
    match &who {
        Some(w) => {
            checks.push(login(config, w));
            checks.push(match client.as_mut() {
                Some(c) => match c.call(&Request::MailboxStatus {
                    user: w.user.clone(),
                    mailbox: Some("INBOX".into()),
                }) {
                    Ok(v) => check(
                        "INBOX",
                        Status::Ok,
                        format!("{}: {} messages", w.user, v[0]["messages"]),
                        "",
                    ),
                    Err(e) => check(
                        "INBOX",
                        Status::Fail,
                        format!("{}: {e}", w.user),
                        format!(
                            "`node mailbox list -u {}`; if the index is wrong, `node force-resync -u {}`",
                            w.user, w.user
                        ),
                    ),
                },
                None => check("INBOX", Status::Skip, "no running node to ask", ""),
            });
        }
        None => checks.push(check(
            "login",
            Status::Skip,
            "give --user USER --password PASSWORD to test a login and its INBOX",
            "",
        )),
    }
    checks.push(log_file(config));
    checks.push(disk(config));
    peers(config, client.as_mut(), &mut checks);
    checks.push(clock(client.as_mut()));
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    if json {
        outln!("{}", serde_json::to_string_pretty(&checks)?);
    } else {
        for c in &checks {
            let tag = match c.status {
                Status::Ok => "OK  ",
                Status::Fail => "FAIL",
                Status::Skip => "SKIP",
            };
            outln!("{tag} {}: {}", c.check, c.detail);
            if !c.fix.is_empty() {
                outln!("     fix: {}", c.fix);
            }
        }
    }
    Ok(if failed == 0 { 0 } else { 1 })
}

fn peers(config: &Config, client: Option<&mut AdminClient>, checks: &mut Vec<Check>) {
    if config.cluster.peers.is_empty() {
        checks.push(check(
            "peers",
            Status::Ok,
            "none configured (single node)",
            "",
        ));
        return;
    }
    let status = client.and_then(|c| {
        c.call(&Request::ReplicationStatus)
            .ok()
            .and_then(|v| serde_json::from_value::<replication::ReplicationStatus>(v).ok())
    });
    for p in &config.cluster.peers {
        let name = format!("peer {}", p.node_id);
        let reach = std::net::ToSocketAddrs::to_socket_addrs(p.address.as_str())
            .map_err(|e| e.to_string())
            .and_then(|mut a| a.next().ok_or_else(|| "no address".to_string()))
            .and_then(|a| {
                TcpStream::connect_timeout(&a, CONNECT_TIMEOUT).map_err(|e| e.to_string())
            });
        let link = status
            .as_ref()
            .and_then(|s| s.peers.iter().find(|x| x.id == p.node_id));
        checks.push(match (reach, link) {
            (Err(e), _) => check(
                &name,
                Status::Fail,
                format!("{}: {e}", p.address),
                "start that node, or open the replication port between the nodes (firewall); \
                 its log says why it stopped",
            ),
            // Reachable, but the TLS link is refused: a certificate problem that stays (an
            // I/O error from before the peer came up is history once it is reachable).
            (Ok(_), Some(l))
                if !l.connected
                    && l.last_error
                        .as_deref()
                        .and_then(crate::cluster::tls_hint)
                        .is_some() =>
            {
                let e = l.last_error.clone().unwrap_or_default();
                check(
                    &name,
                    Status::Fail,
                    format!("{} reachable, but the link fails: {e}", p.address),
                    crate::cluster::tls_hint(&e).unwrap_or_default(),
                )
            }
            (Ok(_), Some(l)) => check(
                &name,
                Status::Ok,
                format!(
                    "{} reachable, {}, {} records behind",
                    p.address,
                    if l.connected {
                        "connected"
                    } else {
                        "not connected yet"
                    },
                    l.records_behind
                ),
                "",
            ),
            (Ok(_), None) => check(&name, Status::Ok, format!("{} reachable", p.address), ""),
        });
    }
}

fn clock(client: Option<&mut AdminClient>) -> Check {
    let Some(c) = client else {
        return check("clock", Status::Skip, "no running node to ask", "");
    };
    match c.call(&Request::Clock) {
        Ok(v) => {
            let wall = v["wall_ms"].as_u64().unwrap_or(0);
            let hlc = v["hlc_ms"].as_u64().unwrap_or(0);
            let ahead = hlc.saturating_sub(wall);
            if ahead > CLOCK_BEHIND_MS {
                check(
                    "clock",
                    Status::Fail,
                    format!(
                        "this node's wall clock is {:.1} s behind the time its store has already used (a peer's clock runs ahead, or this clock was set back)",
                        ahead as f64 / 1000.0
                    ),
                    "run NTP on every node (`chronyc tracking` / `timedatectl`)",
                )
            } else {
                check(
                    "clock",
                    Status::Ok,
                    format!(
                        "not behind the peers; {} backward steps, {} forward jumps since start",
                        v["backward_steps"], v["forward_jumps"]
                    ),
                    "",
                )
            }
        }
        Err(e) => check("clock", Status::Fail, e, "see the node's log"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_are_asked_on_loopback() {
        assert_eq!(
            local("0.0.0.0:143".parse().unwrap()),
            "127.0.0.1:143".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            local("[::]:143".parse().unwrap()),
            "[::1]:143".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            local("192.0.2.1:143".parse().unwrap()),
            "192.0.2.1:143".parse::<SocketAddr>().unwrap()
        );
    }

    #[test]
    fn expiry_of_a_bad_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.pem");
        std::fs::write(&p, "not a certificate").unwrap();
        assert!(expiry_days(&p).is_err());
        assert!(expiry_days(&dir.path().join("missing")).is_err());
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(&p, made.cert.pem()).unwrap();
        // rcgen's default validity runs to 4096.
        assert!(expiry_days(&p).unwrap() > 365);
    }
}
