//! The two servers `jepsen compare` measures: this project's release node and Debian's Dovecot
//! 2.3, each a child process with a generated configuration in a temporary directory, on its
//! own loopback ports, stopped by its own pid.

use crate::node_proc::{free_port, node_config, spawn_node, wait_accepting, NodeConfig};
use crate::procinfo::{tree_cpu_secs, tree_rss_kib, tree_status};
use ::tests::dovecot::{mail_owner, stop_child, tail_file, DOVECOT};
use anyhow::{bail, Context, Result};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Binaries of the three Debian packages `compare` needs.
const DOVECOT_PARTS: &[&str] = &[
    DOVECOT,
    "/usr/lib/dovecot/imap",
    "/usr/lib/dovecot/pop3",
    "/usr/lib/dovecot/lmtp",
];

/// Installs dovecot-imapd, dovecot-pop3d and dovecot-lmtpd when a part is missing (as root;
/// otherwise says what to run). The packages' own service is not started (nothing here needs
/// it, and `compare` runs its own instance).
#[allow(unsafe_code)]
pub fn ensure_dovecot() -> Result<()> {
    if DOVECOT_PARTS.iter().all(|p| Path::new(p).exists()) {
        return Ok(());
    }
    let cmd = "apt-get install -y --no-install-recommends dovecot-imapd dovecot-pop3d \
               dovecot-lmtpd";
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("Dovecot is not installed and this is not root: run `{cmd}` as root first");
    }
    eprintln!("compare: installing Dovecot: {cmd}");
    let st = Command::new("apt-get")
        .args(["-o", "DPkg::Lock::Timeout=300", "install", "-y", "-qq"])
        .args(["--no-install-recommends", "dovecot-imapd", "dovecot-pop3d"])
        .arg("dovecot-lmtpd")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .status()
        .context("run apt-get")?;
    if !st.success() {
        bail!("`{cmd}` failed ({st}); an `apt-get update` may be needed first");
    }
    match DOVECOT_PARTS.iter().find(|p| !Path::new(p).exists()) {
        Some(p) => bail!("{p} is still missing after `{cmd}`"),
        None => Ok(()),
    }
}

/// A passwd-file line per (user, password hash), as both servers read it.
pub fn write_passwd(path: &Path, users: &[(String, String)]) -> Result<()> {
    let text: String = users
        .iter()
        .map(|(u, h)| format!("{u}:{h}::::::\n"))
        .collect();
    std::fs::write(path, text).with_context(|| format!("write {}", path.display()))
}

/// One server under test.
pub struct Server {
    pub name: &'static str,
    child: Option<Child>,
    pub pid: u32,
    pub imap: u16,
    pub pop3: u16,
    pub lmtp: u16,
    pub log: PathBuf,
}

impl Server {
    fn started(
        name: &'static str,
        child: Child,
        (imap, pop3, lmtp): (u16, u16, u16),
        log: PathBuf,
    ) -> Result<Server> {
        let mut s = Server {
            name,
            pid: child.id(),
            child: Some(child),
            imap,
            pop3,
            lmtp,
            log,
        };
        let addrs: Vec<SocketAddr> = [imap, pop3, lmtp]
            .iter()
            .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        wait_accepting(s.child.as_mut(), &addrs, deadline, &s.log, name)?;
        Ok(s)
    }

    /// `node serve` with IMAP, POP3 and LMTP on loopback, the passwd-file, auth cache off.
    pub fn start_node(bin: &Path, dir: &Path, passwd: &Path) -> Result<Server> {
        let data = dir.join("data");
        std::fs::create_dir_all(&data)?;
        let ports = (free_port()?, free_port()?, free_port()?);
        let config = dir.join("node.toml");
        std::fs::write(
            &config,
            node_config(&NodeConfig {
                written_by: "jepsen compare",
                passwd,
                data: &data,
                imap: ports.0,
                lmtp: ports.2,
                pop3: ports.1,
                // Dovecot's default is no cache: every login checks its hash on both sides.
                sections: "auth_cache_size = 0\n".into(),
            }),
        )?;
        let log = dir.join("node.log");
        let child = spawn_node(bin, &config, dir, "warn", std::fs::File::create(&log)?)?;
        Server::started("node", child, ports, log)
    }

    /// `dovecot -F` with [`dovecot_config`].
    pub fn start_dovecot(dir: &Path, passwd: &Path, max_connections: usize) -> Result<Server> {
        let mail = dir.join("mail");
        for d in ["run", "state", "mail"] {
            std::fs::create_dir_all(dir.join(d))?;
        }
        let mail_user = mail_owner(dir, &[&mail])?;
        let ports = (free_port()?, free_port()?, free_port()?);
        let conf = dir.join("dovecot.conf");
        std::fs::write(
            &conf,
            dovecot_config(&DovecotConf {
                written_by: "jepsen compare",
                dir,
                passwd,
                mail_user: &mail_user,
                mail_location: format!("sdbox:{}/%n", mail.display()),
                imap: ports.0,
                pop3: ports.1,
                lmtp: ports.2,
                n: max_connections,
            }),
        )?;
        let log = dir.join("dovecot.log");
        let logf = std::fs::File::create(&log)?;
        let child = Command::new(DOVECOT)
            .args(["-F", "-c"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(logf.try_clone()?)
            .stderr(logf)
            .spawn()
            .context("spawn dovecot -F")?;
        Server::started("dovecot", child, ports, log)
    }

    /// VmRSS summed over the server's processes.
    pub fn rss_kib(&self) -> u64 {
        tree_rss_kib(self.pid)
    }

    /// PSS summed over the server's processes (shared pages divided among them).
    pub fn pss_kib(&self) -> u64 {
        tree_status(self.pid).map(|m| m.pss_kib).unwrap_or(0)
    }

    pub fn cpu_secs(&self) -> f64 {
        tree_cpu_secs(self.pid)
    }

    pub fn log_tail(&self) -> String {
        tail_file(&self.log, 30)
    }

    /// SIGTERM to its own pid (Dovecot's master stops its children), SIGKILL after 20 s.
    pub fn stop(&mut self) -> String {
        match self.child.take() {
            Some(mut c) => stop_child(&mut c, Duration::from_secs(20)),
            None => "not running".into(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop_child(&mut c, Duration::from_secs(5));
        }
    }
}

/// What differs between the benchmarks' Dovecot instances.
pub struct DovecotConf<'a> {
    pub written_by: &'a str,
    /// Holds run/ and state/.
    pub dir: &'a Path,
    pub passwd: &'a Path,
    pub mail_user: &'a str,
    /// `mail_location`, e.g. `sdbox:/x/mail/%n`.
    pub mail_location: String,
    pub imap: u16,
    /// 0 leaves POP3 off.
    pub pop3: u16,
    pub lmtp: u16,
    /// Connections it must let in.
    pub n: usize,
}

/// Dovecot 2.3 with its defaults (mail_fsync = optimized: fsync at the end of every
/// transaction; auth cache off, auth_cache_size = 0) except: the mail location, the
/// passwd-file, loopback ports, and limits that let `n` connections in (processes, clients,
/// per user+IP).
pub fn dovecot_config(c: &DovecotConf) -> String {
    let d = |p: PathBuf| p.display().to_string();
    let pop3 = if c.pop3 > 0 {
        format!(
            "service pop3-login {{\n  inet_listener pop3 {{\n    port = {}\n  }}\n  \
             inet_listener pop3s {{\n    port = 0\n  }}\n}}\n",
            c.pop3
        )
    } else {
        String::new()
    };
    format!(
        r#"# written by {written_by}
base_dir = {run}
state_dir = {state}
log_path = /dev/stderr
protocols = imap {pop3_protocol}lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_username_format = %n
auth_cache_size = 0
mail_location = {location}
mail_uid = {mail_user}
mail_gid = {mail_user}
first_valid_uid = 0
default_internal_user = dovecot
default_login_user = dovenull
mail_max_userip_connections = {limit}
default_process_limit = {limit}
default_client_limit = {clients}
default_vsz_limit = 1G
passdb {{
  driver = passwd-file
  args = {passwd}
}}
userdb {{
  driver = static
  args = uid={mail_user} gid={mail_user} home={home}/%n
}}
service imap-login {{
  inet_listener imap {{
    port = {imap}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
# Its built-in `service imap {{ process_limit = 1024 }}` overrides default_process_limit.
service imap {{
  process_limit = {limit}
}}
{pop3}service lmtp {{
  inet_listener lmtp {{
    port = {lmtp}
  }}
}}
"#,
        written_by = c.written_by,
        run = d(c.dir.join("run")),
        state = d(c.dir.join("state")),
        pop3_protocol = if c.pop3 > 0 { "pop3 " } else { "" },
        location = c.mail_location,
        mail_user = c.mail_user,
        home = d(c.dir.join("mail")),
        passwd = c.passwd.display(),
        imap = c.imap,
        lmtp = c.lmtp,
        limit = c.n + 100,
        // auth and anvil serve every login, POP3, LMTP and IMAP process (doveconf warns below
        // four times the process limit).
        clients = 4 * (c.n + 100) + 1000,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dovecot_config_is_sdbox_with_cache_off_and_room_for_n() {
        let conf = |pop3| {
            dovecot_config(&DovecotConf {
                written_by: "a test",
                dir: Path::new("/t"),
                passwd: Path::new("/t/passwd"),
                mail_user: "dovecot",
                mail_location: "sdbox:/t/mail/%n".into(),
                imap: 1,
                pop3,
                lmtp: 3,
                n: 500,
            })
        };
        let c = conf(2);
        assert!(c.contains("mail_location = sdbox:/t/mail/%n"), "{c}");
        assert!(c.contains("auth_cache_size = 0"));
        assert!(!c.contains("mail_fsync"), "Dovecot's default fsync is kept");
        assert!(c.contains("protocols = imap pop3 lmtp"));
        assert!(c.contains("default_process_limit = 600"));
        assert!(c.contains("service imap {\n  process_limit = 600\n}"));
        assert!(c.contains("inet_listener pop3 {\n    port = 2\n"));
        assert!(c.contains("default_client_limit = 3400"));
        assert!(c.contains("mail_max_userip_connections = 600"));
        assert!(c.contains("base_dir = /t/run"));
        let no_pop3 = conf(0);
        assert!(no_pop3.contains("protocols = imap lmtp\n"));
        assert!(!no_pop3.contains("pop3"));
    }
}
