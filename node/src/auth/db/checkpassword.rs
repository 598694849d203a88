//! The `checkpassword` driver: Dovecot's (and qmail's) checkpassword protocol. The program in
//! `args` is run with `user NUL password NUL NUL` on fd 3 and one argument, the reply
//! program; a script that accepts the login execs its argument (`exec "$@"`), and the reply
//! program (this binary, as Dovecot's checkpassword-reply) writes `USER`, `HOME`,
//! `userdb_*` and the variables `EXTRA` names back on fd 4. Exit 1 is a wrong password (or
//! unknown user), 3 an unknown user in a userdb lookup, 111 or 2 a temporary failure.
//! userdb lookups run the program with `AUTHORIZED=1` and no password, as Dovecot does.

use super::{DbError, Fields, PassDb, PassEntry, PassReply, Request, UserDb, UserEntry, UserReply};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The environment variable that makes `node` act as the reply program.
pub const REPLY_ENV: &str = "NODE_CHECKPASSWORD_REPLY";

const TIMEOUT: Duration = Duration::from_secs(10);
/// Longest reply read back (fields of one user).
const MAX_REPLY: u64 = 64 << 10;

pub struct CheckpasswordDb {
    program: PathBuf,
}

/// How the program ended and what the reply program wrote.
struct Outcome {
    code: Option<i32>,
    reply: String,
}

#[allow(unsafe_code)]
fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two-element array; O_CLOEXEC keeps the ends out of other
    // children (the child gets its own copies on fds 3 and 4 by dup2 below).
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    if rc != 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

impl CheckpasswordDb {
    pub fn new(args: &str) -> Result<CheckpasswordDb, String> {
        let program = PathBuf::from(args.trim());
        if program.as_os_str().is_empty() {
            return Err("args must name the checkpassword program".into());
        }
        Ok(CheckpasswordDb { program })
    }

    #[allow(unsafe_code)]
    fn run(&self, req: &Request, password: Option<&str>) -> Result<Outcome, DbError> {
        let err = |what: &str, e: std::io::Error| {
            DbError(format!("{}: {what}: {e}", self.program.display()))
        };
        let reply_prog = std::env::current_exe().map_err(|e| err("own path", e))?;
        let (in_read, in_write) = pipe().map_err(DbError)?;
        let (out_read, out_write) = pipe().map_err(DbError)?;
        let mut cmd = Command::new(&self.program);
        // A clean environment: the node's own (HOME, ...) must not read as the user's.
        cmd.arg(&reply_prog)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env(REPLY_ENV, "1")
            .env("SERVICE", &req.service)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(ip) = req.rip {
            cmd.env("TCPREMOTEIP", ip.to_string());
        }
        if let Some(ip) = req.lip {
            cmd.env("TCPLOCALIP", ip.to_string());
        }
        if password.is_none() {
            cmd.env("AUTHORIZED", "1");
        }
        let (r, w) = (in_read.as_raw_fd(), out_write.as_raw_fd());
        // SAFETY: between fork and exec only async-signal-safe calls. The pipe ends are first
        // copied above fd 10 (they may themselves be 3 or 4 in a process with few files
        // open), then dup2 puts them on fds 3 and 4, clearing close-on-exec on the copies.
        unsafe {
            cmd.pre_exec(move || {
                let r2 = libc::fcntl(r, libc::F_DUPFD_CLOEXEC, 10);
                let w2 = libc::fcntl(w, libc::F_DUPFD_CLOEXEC, 10);
                if r2 < 0 || w2 < 0 || libc::dup2(r2, 3) < 0 || libc::dup2(w2, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| err("cannot run", e))?;
        drop(in_read);
        drop(out_write);
        let mut input = Vec::new();
        input.extend_from_slice(req.user.as_bytes());
        input.push(0);
        input.extend_from_slice(password.unwrap_or_default().as_bytes());
        input.extend_from_slice(b"\0\0");
        let mut to_child = std::fs::File::from(in_write);
        // A program that does not read its input is its own business: ignore EPIPE.
        let _ = to_child.write_all(&input);
        drop(to_child);
        // Read the reply beside the wait, so a program that hangs with fd 4 open is still
        // killed at the deadline.
        let reader = std::thread::spawn(move || {
            let mut reply = String::new();
            let _ = std::fs::File::from(out_read)
                .take(MAX_REPLY)
                .read_to_string(&mut reply);
            reply
        });
        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            match child.try_wait().map_err(|e| err("wait", e))? {
                Some(s) => break s,
                None if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(DbError(format!(
                        "{}: no answer within {} s",
                        self.program.display(),
                        TIMEOUT.as_secs()
                    )));
                }
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        // The reply program has exited with the script; a daemon the script left holding
        // fd 4 open would keep the reader waiting: then there is no reply.
        let reply = if reader.is_finished() || status.code() == Some(0) {
            let t0 = Instant::now();
            while !reader.is_finished() && t0.elapsed() < Duration::from_secs(1) {
                std::thread::sleep(Duration::from_millis(2));
            }
            if reader.is_finished() {
                reader.join().unwrap_or_default()
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        if status.code() != Some(0) && status.code() != Some(1) && status.code() != Some(3) {
            let mut e = String::new();
            if let Some(mut s) = child.stderr.take() {
                let _ = (&mut s).take(4096).read_to_string(&mut e);
            }
            return Err(DbError(format!(
                "{}: {} {}",
                self.program.display(),
                match status.code() {
                    Some(111) => "temporary failure (exit 111)".to_string(),
                    Some(c) => format!("internal failure (exit {c})"),
                    None => "killed by a signal".to_string(),
                },
                e.trim()
            )));
        }
        Ok(Outcome {
            code: status.code(),
            reply,
        })
    }
}

/// The reply's `key=value` fields (tab-separated).
fn reply_fields(reply: &str) -> Fields {
    Fields(
        reply
            .split(['\t', '\n'])
            .filter(|f| !f.is_empty())
            .map(|f| match f.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (f.to_string(), String::new()),
            })
            .collect(),
    )
}

impl PassDb for CheckpasswordDb {
    fn name(&self) -> &'static str {
        "checkpassword"
    }

    fn lookup(&self, req: &Request, password: Option<&str>) -> Result<PassReply, DbError> {
        let Some(password) = password else {
            return Err(DbError(
                "checkpassword looks nobody up without a password".into(),
            ));
        };
        let out = self.run(req, Some(password))?;
        if out.code != Some(0) {
            return Ok(PassReply::Mismatch);
        }
        let mut fields = reply_fields(&out.reply);
        let user = fields
            .get("userdb_user")
            .or_else(|| fields.get("user"))
            .map(str::to_lowercase)
            .unwrap_or_else(|| req.user.clone());
        fields.remove("userdb_user");
        fields.remove("user");
        Ok(PassReply::Found(PassEntry {
            user,
            password: None,
            verified: true,
            fields,
        }))
    }
}

impl UserDb for CheckpasswordDb {
    fn name(&self) -> &'static str {
        "checkpassword"
    }

    fn lookup(&self, req: &Request) -> Result<UserReply, DbError> {
        let out = self.run(req, None)?;
        if out.code != Some(0) {
            return Ok(UserReply::Unknown);
        }
        let mut fields = Fields::default();
        let mut user = req.user.clone();
        for (k, v) in reply_fields(&out.reply).0 {
            let k = k.strip_prefix("userdb_").unwrap_or(&k).to_string();
            if k == "user" {
                user = v.to_lowercase();
            } else {
                fields.push(k, v);
            }
        }
        Ok(UserReply::Found(UserEntry { user, fields }))
    }

    fn iterate(&self) -> Result<Option<Vec<String>>, DbError> {
        Ok(None)
    }
}

/// `node` started by a checkpassword program as its reply program (Dovecot's
/// checkpassword-reply): writes the login's fields to fd 4 and exits 0.
#[allow(unsafe_code)]
pub fn reply_main() -> i32 {
    let mut out = String::new();
    let mut add = |k: &str, v: String| {
        if !v.contains(['\t', '\n']) {
            out.push_str(&format!("{k}={v}\t"));
        }
    };
    if let Ok(u) = std::env::var("USER") {
        add("userdb_user", u);
    }
    if let Ok(h) = std::env::var("HOME") {
        add("userdb_home", h);
    }
    for (k, v) in std::env::vars() {
        if let Some(field) = k.strip_prefix("userdb_") {
            add(&format!("userdb_{field}"), v);
        }
    }
    for name in std::env::var("EXTRA")
        .unwrap_or_default()
        .split_whitespace()
    {
        if let Ok(v) = std::env::var(name) {
            add(&name.to_lowercase(), v);
        }
    }
    // SAFETY: fd 4 is the pipe the node gave this process; the File owns it from here.
    let mut f = unsafe { std::fs::File::from_raw_fd(4) };
    match f.write_all(out.as_bytes()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("checkpassword-reply: cannot write to fd 4: {e}");
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_parsing() {
        let f = reply_fields("userdb_user=Ann\tuserdb_home=/h/ann\tnologin\t");
        assert_eq!(f.get("userdb_home"), Some("/h/ann"));
        assert_eq!(f.get("nologin"), Some(""));
        assert!(CheckpasswordDb::new(" ").is_err());
    }
}
