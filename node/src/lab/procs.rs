//! The lab's processes: started detached inside a namespace (their own session, output to a
//! log file, so they outlive `node lab up`), found again by pid or by namespace, stopped
//! gracefully or crashed for real.

use super::sh;
use anyhow::{Context, Result};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Starts `program args` in namespace `ns`, detached, stdout and stderr appended to `log`;
/// its pid (`ip netns exec` execs the program, so the pid is the program's).
#[allow(unsafe_code)]
pub fn spawn_in(ns: &str, program: &Path, args: &[&str], log: &Path) -> Result<u32> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    let err = out.try_clone()?;
    let mut cmd = sh::ip();
    cmd.args(["netns", "exec", ns])
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    // SAFETY: setsid is async-signal-safe; its own session keeps a terminal's ^C away from it.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot start {} in {ns}", program.display()))?;
    Ok(child.id())
}

pub fn alive(pid: u32) -> bool {
    // A zombie still answers kill(0); /proc's state says it is gone.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit(") ").next().and_then(|r| r.chars().next());
    !matches!(state, None | Some('Z') | Some('X'))
}

#[allow(unsafe_code)]
fn signal(pid: u32, sig: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    if pid > 1 {
        // SAFETY: plain syscall on a pid the lab started or found in its own namespace.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// Sends `sig` to every pid (pause and resume of a lab node).
pub fn signal_all(pids: &[u32], sig: libc::c_int) {
    for &p in pids {
        signal(p, sig);
    }
}

/// Waits until every pid is gone; false at the deadline.
fn wait_gone(pids: &[u32], within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if pids.iter().all(|p| !alive(*p)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    pids.iter().all(|p| !alive(*p))
}

/// SIGTERM, up to `grace`, then SIGKILL (and SIGCONT first, so a paused one can exit).
pub fn stop(pids: &[u32], grace: Duration) {
    let live: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
    for &p in &live {
        signal(p, libc::SIGTERM);
        signal(p, libc::SIGCONT);
    }
    if !wait_gone(&live, grace) {
        for &p in &live {
            signal(p, libc::SIGKILL);
        }
        wait_gone(&live, Duration::from_secs(5));
    }
}

/// Every process in namespace `ns`.
pub fn pids_in(ns: &str) -> Vec<u32> {
    sh::run_ok(sh::ip().args(["netns", "pids", ns]))
        .map(|out| out.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// A real crash of everything in `ns`: freeze all first (so no keepalived child can clean up
/// and hand the address over politely), then kill all. Returns the pids killed.
pub fn crash_all_in(ns: &str) -> Vec<u32> {
    let pids = pids_in(ns);
    for &p in &pids {
        signal(p, libc::SIGSTOP);
    }
    for &p in &pids {
        signal(p, libc::SIGKILL);
    }
    wait_gone(&pids, Duration::from_secs(5));
    pids
}
