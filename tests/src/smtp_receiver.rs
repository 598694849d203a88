//! A submission server stand-in for tests of mail the node sends (Sieve redirect, vacation,
//! reject): Python's aiosmtpd writing each message it receives to a file, envelope first.

use crate::free_port;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// aiosmtpd writing each message it receives as a file `<n>.eml` (envelope first) in a dir.
pub struct Receiver {
    child: Child,
    dir: PathBuf,
    pub port: u16,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const RECEIVER: &str = r#"
import sys, os, time, asyncio
from aiosmtpd.controller import Controller
out, port = sys.argv[1], int(sys.argv[2])
class H:
    n = 0
    async def handle_DATA(self, server, session, envelope):
        H.n += 1
        mail_from = "" if envelope.mail_from in ("", "<>") else envelope.mail_from
        text = "X-Env-From: <%s>\r\nX-Env-To: <%s>\r\n" % (mail_from, ",".join(envelope.rcpt_tos))
        with open(os.path.join(out, "%03d.tmp" % H.n), "wb") as f:
            f.write(text.encode() + envelope.original_content)
        os.rename(os.path.join(out, "%03d.tmp" % H.n), os.path.join(out, "%03d.eml" % H.n))
        return "250 OK"
c = Controller(H(), hostname="127.0.0.1", port=port)
c.start()
print("ready", flush=True)
while True:
    time.sleep(3600)
"#;

/// A Python 3 that has aiosmtpd (Debian's python3-aiosmtpd may not be on the first python3).
pub fn python_with_aiosmtpd() -> Option<String> {
    for py in ["python3", "/usr/bin/python3"] {
        let ok = Command::new(py)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(py.to_string());
        }
    }
    if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
        panic!("aiosmtpd is not installed: scripts/install-test-deps.sh installs python3-aiosmtpd");
    }
    eprintln!("skipped: Python's aiosmtpd is not installed");
    None
}

pub fn start_receiver(py: &str, dir: &Path) -> Receiver {
    let port = free_port();
    let mut child = Command::new(py)
        .arg("-c")
        .arg(RECEIVER)
        .arg(dir)
        .arg(port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start aiosmtpd");
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    assert_eq!(line.trim(), "ready", "aiosmtpd did not start");
    Receiver {
        child,
        dir: dir.to_path_buf(),
        port,
    }
}

impl Receiver {
    /// The messages received so far, in order.
    pub fn messages(&self) -> Vec<String> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        names.retain(|p| p.extension().is_some_and(|e| e == "eml"));
        names.sort();
        names
            .iter()
            .map(|p| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned())
            .collect()
    }

    pub fn wait_for(&self, n: usize) -> Vec<String> {
        let start = Instant::now();
        loop {
            let m = self.messages();
            if m.len() >= n || start.elapsed() > Duration::from_secs(20) {
                return m;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
