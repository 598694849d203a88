//! `node pw` (doveadm pw) and `node auth test` (doveadm auth test).

use crate::auth::schemes::{self, Scheme};
use crate::auth::{AuthSettings, Authenticator, Verdict};
use crate::config::Config;
use std::io::{BufRead, IsTerminal, Write};

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
            "{e} (supported: ARGON2ID ARGON2I SHA512-CRYPT SHA256-CRYPT BLF-CRYPT PLAIN)"
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
    println!(
        "{}",
        schemes::hash(scheme, &password).map_err(|e| anyhow::anyhow!("{e}"))?
    );
    Ok(0)
}

pub fn test(config: &Config, user: &str, password: Option<String>) -> anyhow::Result<i32> {
    let settings = AuthSettings::from_config(config).map_err(|e| anyhow::anyhow!(e))?;
    let auth = Authenticator::new(settings, config);
    let password = match password {
        Some(p) => p,
        None => read_secret("Password: ")?,
    };
    let verdict = auth.check_password_blocking(user, &password);
    let name = match &verdict {
        Verdict::Ok { user } => {
            println!("passdb: {user} auth succeeded");
            user.clone()
        }
        Verdict::UnknownUser => {
            println!("passdb: {user} auth failed");
            println!("extra fields:");
            println!("  user={}", auth.canonical_name(user));
            eprintln!("node: unknown user");
            return Ok(EX_NOPERM);
        }
        Verdict::Mismatch => {
            println!("passdb: {user} auth failed");
            println!("extra fields:");
            println!("  user={}", auth.canonical_name(user));
            eprintln!("node: Password mismatch");
            return Ok(EX_NOPERM);
        }
        Verdict::TempFail(e) => anyhow::bail!("passdb: {user} auth failed: {e}"),
    };
    println!("extra fields:");
    println!("  user={name}");
    match auth
        .lookup_blocking(&name)
        .map_err(|e| anyhow::anyhow!(e))?
    {
        Some(rec) => {
            println!("userdb: {}", rec.user);
            for (k, v) in [("uid", &rec.uid), ("gid", &rec.gid), ("home", &rec.home)] {
                if !v.is_empty() {
                    println!("  {k:<12}: {v}");
                }
            }
            for (k, v) in &rec.fields {
                println!("  {k:<12}: {v}");
            }
            let q = rec.quota;
            let show = |v: Option<u64>| {
                v.map(|n| n.to_string())
                    .unwrap_or_else(|| "unlimited".into())
            };
            println!(
                "  {:<12}: bytes={} messages={}",
                "quota",
                show(q.max_bytes),
                show(q.max_messages)
            );
        }
        None => println!("userdb: {name} not found"),
    }
    Ok(0)
}
