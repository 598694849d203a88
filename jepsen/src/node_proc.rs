//! Release `node serve` children for the benchmarks (bench-idle, bench-backlog): their
//! configuration, their start, and the wait until they accept connections.

use ::tests::dovecot::tail_file;
use anyhow::{bail, Context, Result};
use std::fs::File;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What differs between the benchmarks' node configurations.
pub struct NodeConfig<'a> {
    /// Who wrote the file, for its first line.
    pub written_by: &'a str,
    pub passwd: &'a Path,
    pub data: &'a Path,
    pub imap: u16,
    pub lmtp: u16,
    /// POP3 port; 0 leaves POP3 off.
    pub pop3: u16,
    /// Sections placed before the passdb (e.g. `[cluster]`); "" for none.
    pub sections: String,
}

/// The node's configuration (keys as in node/src/config and tests/src/server.rs): IMAP, LMTP
/// (and POP3 when it has a port) on loopback only, no TLS, no per-user+IP connection limit.
pub fn node_config(c: &NodeConfig) -> String {
    format!(
        r#"# written by {written_by}
protocols = [{protocols}]
listen = "127.0.0.1"
ssl = "no"
auth_default_realm = "example.org"
# Every connection is the same user(s) from a handful of loopback addresses: no limit.
mail_max_userip_connections = 0
{sections}
[[passdb]]
driver = "passwd-file"
args = {passwd}

[[userdb]]
driver = "passwd-file"
args = {passwd}

[storage]
data_dir = {data}

[imap]
port = {imap}
ssl_port = 0

[lmtp]
port = {lmtp}
{pop3}
[http]
port = 0
"#,
        written_by = c.written_by,
        protocols = if c.pop3 > 0 {
            r#""imap", "pop3", "lmtp""#
        } else {
            r#""imap", "lmtp""#
        },
        pop3 = if c.pop3 > 0 {
            format!("\n[pop3]\nport = {}\nssl_port = 0\n", c.pop3)
        } else {
            String::new()
        },
        sections = c.sections,
        passwd = toml_str(c.passwd),
        data = toml_str(c.data),
        imap = c.imap,
        lmtp = c.lmtp,
    )
}

/// `p` as a TOML basic string.
pub fn toml_str(p: &Path) -> String {
    let s = p.display().to_string();
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("find a free port")?;
    Ok(l.local_addr()?.port())
}

/// `bin serve --config config` in `dir`, logging at `rust_log` to `log`.
pub fn spawn_node(
    bin: &Path,
    config: &Path,
    dir: &Path,
    rust_log: &str,
    log: File,
) -> Result<Child> {
    Command::new(bin)
        .args(["serve", "--config"])
        .arg(config)
        .current_dir(dir)
        .env("RUST_LOG", rust_log)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("spawn {} serve", bin.display()))
}

/// Waits until `child` accepts on every address; fails with its log if it exits or is slow.
pub fn wait_accepting(
    mut child: Option<&mut Child>,
    addrs: &[SocketAddr],
    deadline: Instant,
    log: &Path,
    what: &str,
) -> Result<()> {
    let ready_by = (Instant::now() + Duration::from_secs(30)).min(deadline);
    for addr in addrs {
        loop {
            if let Some(Ok(Some(status))) = child.as_mut().map(|c| c.try_wait()) {
                bail!(
                    "{what} exited during start-up ({status})\n--- log ---\n{}",
                    tail_file(log, 40)
                );
            }
            if std::net::TcpStream::connect_timeout(addr, Duration::from_secs(1)).is_ok() {
                break;
            }
            if Instant::now() >= ready_by {
                bail!(
                    "{what} did not accept on {addr} within 30 s\n--- log ---\n{}",
                    tail_file(log, 40)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_config_has_no_userip_limit_and_no_tls() {
        let c = node_config(&NodeConfig {
            written_by: "a test",
            passwd: Path::new("/t/p\"w"),
            data: Path::new("/t/data"),
            imap: 1143,
            lmtp: 2424,
            pop3: 0,
            sections: String::new(),
        });
        assert!(c.contains("mail_max_userip_connections = 0"));
        assert!(c.contains("ssl = \"no\""));
        assert!(c.contains("args = \"/t/p\\\"w\""));
        assert!(c.contains("port = 1143\nssl_port = 0"));
        assert!(c.contains(r#"protocols = ["imap", "lmtp"]"#) && !c.contains("[pop3]"));
        let with_pop3 = node_config(&NodeConfig {
            written_by: "a test",
            passwd: Path::new("/t/p"),
            data: Path::new("/t/data"),
            imap: 1143,
            lmtp: 2424,
            pop3: 1110,
            sections: String::new(),
        });
        assert!(with_pop3.contains(r#"protocols = ["imap", "pop3", "lmtp"]"#));
        assert!(with_pop3.contains("[pop3]\nport = 1110\nssl_port = 0\n"));
    }

    #[test]
    fn config_quotes_paths_and_places_sections_before_the_passdb() {
        let c = node_config(&NodeConfig {
            written_by: "a test",
            passwd: Path::new("/tmp/a \"b\"/passwd"),
            data: Path::new("/tmp/data"),
            imap: 1143,
            lmtp: 1024,
            pop3: 0,
            sections: "\n[cluster]\nnode_id = 1\n".into(),
        });
        assert!(c.starts_with("# written by a test\n"), "{c}");
        assert!(c.contains("args = \"/tmp/a \\\"b\\\"/passwd\""), "{c}");
        assert!(c.contains("[imap]\nport = 1143\nssl_port = 0\n"), "{c}");
        assert!(c.contains("[lmtp]\nport = 1024\n"), "{c}");
        let cluster = c.find("[cluster]").unwrap();
        assert!(cluster < c.find("[[passdb]]").unwrap(), "{c}");
    }
}
