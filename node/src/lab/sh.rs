//! Running the system tools the lab drives (`ip`, `nft`, `keepalived -t`), each bounded in
//! time, with their output in the error when they fail.

use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// No lab tool takes long; one that hangs is stopped and reported.
const TOOL_TIMEOUT: Duration = Duration::from_secs(30);

pub fn ip() -> Command {
    Command::new("ip")
}

/// Runs `cmd`; its stdout when it exits 0, else an error with its stderr.
pub fn run_ok(cmd: &mut Command) -> Result<String> {
    run_ok_stdin(cmd, &[])
}

pub fn run_ok_stdin(cmd: &mut Command, stdin: &[u8]) -> Result<String> {
    let (code, out, err) = run(cmd, stdin)?;
    if code != Some(0) {
        bail!(
            "{} failed ({}): {}",
            describe(cmd),
            code.map_or("killed".to_string(), |c| format!("exit {c}")),
            err.trim()
        );
    }
    Ok(out)
}

/// (exit code, stdout, stderr); None as the code when killed by a signal or the timeout.
pub fn run(cmd: &mut Command, stdin: &[u8]) -> Result<(Option<i32>, String, String)> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", describe(cmd)))?;
    if let Some(mut pipe) = child.stdin.take() {
        let _ = pipe.write_all(stdin);
    }
    let mut out_pipe = child.stdout.take().context("stdout pipe")?;
    let mut err_pipe = child.stderr.take().context("stderr pipe")?;
    // Read while it runs: a full pipe would stall it.
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + TOOL_TIMEOUT;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let out = out_t.join().unwrap_or_default();
    let mut err = err_t.join().unwrap_or_default();
    if status.is_none() {
        err.push_str(&format!("\n(stopped after {TOOL_TIMEOUT:?})"));
    }
    Ok((status.and_then(|s| s.code()), out, err))
}

pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Whether a program is on PATH (or in the sbin directories root's PATH usually has).
pub fn installed(program: &str) -> bool {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"])
        .any(|d| std::path::Path::new(d).join(program).is_file());
    found
}
