//! Debian's Dovecot 2.3 run beside ours for comparisons: helpers shared by the benchmarks
//! (mail ownership as root, stopping a child, log tails), and the `doveadm sync` measurement
//! of replication's `bench_replication --compare-dovecot` example.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const DOVECOT: &str = "/usr/sbin/dovecot";
pub const DOVEADM: &str = "/usr/bin/doveadm";

/// The system user Dovecot's mail processes run as. Dovecot refuses to run them as root: as
/// root, mail belongs to its package's `dovecot` user, which must be able to reach `dir` (a
/// temporary directory is 0700, so it and its parent are opened with a+rx) and own `owned`.
#[allow(unsafe_code)]
pub fn mail_owner(dir: &Path, owned: &[&Path]) -> Result<String> {
    // SAFETY: geteuid(2) has no preconditions and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(std::env::var("USER").unwrap_or_else(|_| "nobody".into()));
    }
    use std::os::unix::fs::PermissionsExt;
    // Bits are only added: the parent may be /tmp itself, whose 1777 (world-writable,
    // sticky) other tests' servers (MariaDB's temporary files) depend on.
    for p in [dir.parent().unwrap_or(dir), dir] {
        let mode = std::fs::metadata(p)
            .with_context(|| format!("stat {}", p.display()))?
            .permissions()
            .mode();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode | 0o755))
            .with_context(|| format!("chmod a+rx {}", p.display()))?;
    }
    for p in owned {
        let st = Command::new("chown")
            .args(["-R", "dovecot:dovecot"])
            .arg(p)
            .status()
            .context("chown the Dovecot mail directory")?;
        if !st.success() {
            bail!("chown -R dovecot:dovecot {} failed", p.display());
        }
    }
    Ok("dovecot".to_string())
}

/// SIGTERM, then SIGKILL after `grace`; says which it took.
#[allow(unsafe_code)]
pub fn stop_child(child: &mut Child, grace: Duration) -> String {
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let until = Instant::now() + grace;
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return format!("exited on SIGTERM ({st})"),
            Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return format!(
                    "killed after {} s without exiting on SIGTERM",
                    grace.as_secs()
                );
            }
        }
    }
}

pub fn tail_file(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Settings of one mail-store-only instance: no listeners (doveadm talks to its auth service
/// through `base_dir`), mdbox (Dovecot's multi-message files, like our packs), passwd-file
/// users, defaults otherwise (mail_fsync = optimized) plus `extra` lines.
fn sync_config(dir: &Path, passwd: &Path, mail_user: &str, extra: &str) -> String {
    let d = |p: PathBuf| p.display().to_string();
    format!(
        r#"# written by jepsen bench-replication --compare-dovecot
base_dir = {run}
state_dir = {state}
log_path = {log}
protocols =
ssl = no
mail_location = mdbox:{mail}/%u
mail_uid = {mail_user}
mail_gid = {mail_user}
first_valid_uid = 0
default_internal_user = dovecot
passdb {{
  driver = passwd-file
  args = {passwd}
}}
userdb {{
  driver = static
  args = uid={mail_user} gid={mail_user} home={mail}/%u
}}
{extra}
"#,
        run = d(dir.join("run")),
        state = d(dir.join("state")),
        log = d(dir.join("dovecot.log")),
        mail = d(dir.join("mail")),
        passwd = passwd.display(),
    )
}

/// One Dovecot instance (`dovecot -F -c DIR/dovecot.conf`), stopped on drop.
pub struct Instance {
    pub name: &'static str,
    pub dir: PathBuf,
    pub conf: PathBuf,
    child: Option<Child>,
}

impl Instance {
    pub fn start(
        name: &'static str,
        dir: &Path,
        passwd: &Path,
        mail_user: &str,
        extra: &str,
    ) -> Result<Instance> {
        let conf = dir.join("dovecot.conf");
        std::fs::write(&conf, sync_config(dir, passwd, mail_user, extra))?;
        let out = std::fs::File::create(dir.join("master.out"))?;
        let child = Command::new(DOVECOT)
            .arg("-F")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("spawn {DOVECOT} -F -c {}", conf.display()))?;
        let mut i = Instance {
            name,
            dir: dir.to_path_buf(),
            conf,
            child: Some(child),
        };
        // doveadm needs the auth service's userdb socket for every user lookup.
        let sock = dir.join("run").join("auth-userdb");
        let until = Instant::now() + Duration::from_secs(20);
        while !sock.exists() {
            if let Some(c) = i.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    bail!(
                        "dovecot {name} exited at start-up ({st}):\n{}",
                        i.log_tail(20)
                    );
                }
            }
            if Instant::now() > until {
                bail!(
                    "dovecot {name}: no {} after 20 s:\n{}",
                    sock.display(),
                    i.log_tail(20)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(i)
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let mut s = tail_file(&self.dir.join("master.out"), lines);
        s.push_str(&tail_file(&self.dir.join("dovecot.log"), lines));
        s
    }

    /// `doveadm -c CONF ARGS`, run to completion; a failure carries its stderr.
    pub fn doveadm(&self, args: &[&str]) -> Result<Output> {
        let out = Command::new(DOVEADM)
            .arg("-c")
            .arg(&self.conf)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("spawn doveadm {}", args.join(" ")))?;
        if !out.status.success() {
            bail!(
                "dovecot {}: doveadm -c {} {} failed ({}): {}",
                self.name,
                self.conf.display(),
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(out)
    }

    /// Messages in the user's INBOX (`doveadm mailbox status messages INBOX`).
    pub fn inbox_messages(&self, user: &str) -> Result<u64> {
        let out = self.doveadm(&["mailbox", "status", "-u", user, "messages", "INBOX"])?;
        parse_messages(&String::from_utf8_lossy(&out.stdout))
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop_child(&mut c, Duration::from_secs(10));
        }
    }
}

/// `INBOX messages=123` -> 123.
fn parse_messages(text: &str) -> Result<u64> {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix("messages="))
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no messages=N in doveadm output {text:?}"))
}

/// Writes messages into a new Maildir `dir` (its `new/`), one file each, for `doveadm import`.
/// Returns how many it wrote.
fn write_maildir(dir: &Path, messages: impl Iterator<Item = Vec<u8>>) -> Result<usize> {
    for d in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(dir.join(d))?;
    }
    let mut n = 0;
    for (i, m) in messages.enumerate() {
        std::fs::write(dir.join("new").join(format!("{i}.bench")), m)?;
        n += 1;
    }
    Ok(n)
}

/// The disk's rate of "write 4 KiB at the end of a file + fdatasync" in `dir`, over `n`
/// rounds: Dovecot's sync time follows it (its receiving side makes ~4 fdatasyncs per
/// message), so it is printed beside Dovecot's figures.
pub fn raw_fdatasync_rate(dir: &Path, n: u32) -> Result<f64> {
    use std::io::Write;
    let path = dir.join("fsync-probe");
    let mut f = std::fs::File::create(&path)?;
    let block = [b'x'; 4096];
    let t = Instant::now();
    for _ in 0..n {
        f.write_all(&block)?;
        f.sync_data()?;
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    std::fs::remove_file(&path)?;
    Ok(rate)
}

/// What `doveadm sync` took between the two instances.
pub struct SyncFigures {
    pub fill_secs: f64,
    pub full_secs: f64,
    pub incremental_secs: f64,
    pub noop_secs: f64,
    /// Full sync to a third, empty instance with `mail_fsync = never` (not durable): what
    /// Dovecot's fsyncs cost.
    pub full_nofsync_secs: f64,
}

/// Two instances A and B under `base`; A is filled with `full` by `doveadm import`; then
/// `doveadm sync` of `user` from A to the empty B is timed, then again after `more` are
/// imported on A, then once with nothing to do. Each sync is one process started the way an
/// operator runs it, its peer a `doveadm dsync-server` of instance B over a pipe.
pub fn sync_bench(
    base: &Path,
    user: &str,
    full: impl Iterator<Item = Vec<u8>>,
    more: impl Iterator<Item = Vec<u8>>,
) -> Result<SyncFigures> {
    for bin in [DOVECOT, DOVEADM] {
        if !Path::new(bin).exists() {
            bail!("--compare-dovecot needs {bin} (apt-get install -y dovecot-core dovecot-imapd dovecot-lmtpd)");
        }
    }
    let (da, db, dc) = (base.join("A"), base.join("B"), base.join("B-nofsync"));
    let (src_full, src_more) = (base.join("src-full"), base.join("src-more"));
    for d in [&da, &db, &dc] {
        for s in ["run", "state", "mail"] {
            std::fs::create_dir_all(d.join(s))?;
        }
    }
    let expect_full = write_maildir(&src_full, full)?;
    write_maildir(&src_more, more)?;
    let passwd = base.join("passwd");
    std::fs::write(&passwd, format!("{user}:{{PLAIN}}bench::::::\n"))?;
    let mail_user = mail_owner(
        base,
        &[
            &da.join("mail"),
            &db.join("mail"),
            &dc.join("mail"),
            &src_full,
            &src_more,
        ],
    )?;
    let a = Instance::start("A", &da, &passwd, &mail_user, "")?;
    let b = Instance::start("B", &db, &passwd, &mail_user, "")?;
    let import = |src: &Path| -> Result<f64> {
        let loc = format!("maildir:{}", src.display());
        let t = Instant::now();
        a.doveadm(&["import", "-u", user, &loc, "", "all"])?;
        Ok(t.elapsed().as_secs_f64())
    };
    let fill_secs = import(&src_full)?;
    let n_full = a.inbox_messages(user)?;
    if n_full != expect_full as u64 {
        bail!("doveadm import: A has {n_full} messages, {expect_full} were written");
    }
    // The remote side is started by doveadm through a pipe, as with `ssh HOST doveadm
    // dsync-server`. `env -i`: doveadm hands its parsed configuration to children in the
    // environment, which would make B's dsync-server use A's settings (and lock A's mailbox).
    let sync = |to: &Instance| -> Result<f64> {
        let to_conf = to.conf.display().to_string();
        let t = Instant::now();
        a.doveadm(&[
            "sync",
            "-u",
            user,
            "env",
            "-i",
            DOVEADM,
            "-c",
            &to_conf,
            "dsync-server",
            "-u",
            user,
        ])?;
        Ok(t.elapsed().as_secs_f64())
    };
    let full_secs = sync(&b)?;
    let on_b = b.inbox_messages(user)?;
    if on_b != n_full {
        bail!("doveadm sync: B has {on_b} messages, A {n_full}");
    }
    import(&src_more)?;
    let n_more = a.inbox_messages(user)?;
    let incremental_secs = sync(&b)?;
    let on_b = b.inbox_messages(user)?;
    if on_b != n_more {
        bail!("doveadm sync (incremental): B has {on_b} messages, A {n_more}");
    }
    let noop_secs = sync(&b)?;
    drop(b);
    let c = Instance::start("B-nofsync", &dc, &passwd, &mail_user, "mail_fsync = never")?;
    let full_nofsync_secs = sync(&c)?;
    let on_c = c.inbox_messages(user)?;
    if on_c != n_more {
        bail!("doveadm sync (mail_fsync = never): B has {on_c} messages, A {n_more}");
    }
    Ok(SyncFigures {
        full_nofsync_secs,
        fill_secs,
        full_secs,
        incremental_secs,
        noop_secs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_doveadm_mailbox_status() {
        assert_eq!(parse_messages("INBOX messages=10100\n").unwrap(), 10100);
        assert!(parse_messages("INBOX\n").is_err());
        assert!(parse_messages("INBOX messages=x\n").is_err());
    }

    #[test]
    fn config_uses_mdbox_and_own_base_dir() {
        let c = sync_config(
            Path::new("/x/A"),
            Path::new("/x/passwd"),
            "dovecot",
            "mail_fsync = never",
        );
        assert!(c.contains("\nmail_fsync = never\n"));
        assert!(c.contains("mail_location = mdbox:/x/A/mail/%u"));
        assert!(c.contains("base_dir = /x/A/run"));
        assert!(c.contains("args = /x/passwd"));
    }

    #[test]
    fn maildir_holds_one_file_per_message() {
        let t = tempfile::tempdir().unwrap();
        let n = write_maildir(t.path(), (0..3).map(|i| vec![b'a'; i + 1])).unwrap();
        assert_eq!(n, 3);
        let mut sizes: Vec<u64> = std::fs::read_dir(t.path().join("new"))
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .collect();
        sizes.sort();
        assert_eq!(sizes, vec![1, 2, 3]);
    }
}
