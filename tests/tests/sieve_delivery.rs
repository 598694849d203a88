//! Sieve at delivery with real clients: swaks delivers over LMTP into a user's script that
//! files into a folder it creates (with a flag), rejects, redirects and answers with a
//! vacation reply; the outgoing mail is caught by Python's aiosmtpd standing in for the
//! submission server, and the vacation reply is not repeated within its period.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tests::*;

/// aiosmtpd writing each message it receives as a file `<n>.eml` (envelope first) in a dir.
struct Receiver {
    child: Child,
    dir: PathBuf,
    port: u16,
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
fn python_with_aiosmtpd() -> Option<String> {
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn start_receiver(py: &str, dir: &Path) -> Receiver {
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
    fn messages(&self) -> Vec<String> {
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

    fn wait_for(&self, n: usize) -> Vec<String> {
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

/// swaks over LMTP: the transcript.
fn swaks(server: &Server, from: &str, to: &str, subject: &str) -> String {
    let out = run(
        Command::new("swaks")
            .args(["--server", "127.0.0.1", "--port"])
            .arg(server.ports.lmtp.to_string())
            .args(["--protocol", "LMTP", "--from", from, "--to", to])
            .args(["--header", &format!("Subject: {subject}")])
            .args(["--header", "To: demo@example.org", "--body", "hello"])
            .args(["--timeout", "20"]),
        None,
        Duration::from_secs(60),
    )
    .expect("swaks");
    out.both()
}

/// (messages, flags of message 1) of a mailbox, over IMAP.
fn mailbox_state(server: &Server, mailbox: &str) -> (usize, String) {
    let mut c = LineConn::connect(server.addr(Proto::Imap)).expect("connect");
    c.line().expect("greeting");
    let r = c.imap("l", "LOGIN demo demo").expect("login");
    assert!(tagged(&r).starts_with("l OK"), "{r:?}");
    let r = c
        .imap("s", &format!("EXAMINE \"{mailbox}\""))
        .expect("examine");
    if !tagged(&r).starts_with("s OK") {
        return (0, String::new());
    }
    let n = r
        .iter()
        .find_map(|l| l.strip_prefix("* ")?.strip_suffix(" EXISTS")?.parse().ok())
        .unwrap_or(0);
    let flags = if n > 0 {
        let r = c.imap("f", "FETCH 1 FLAGS").expect("fetch");
        r.iter()
            .find(|l| l.contains("FLAGS"))
            .cloned()
            .unwrap_or_default()
    } else {
        String::new()
    };
    (n, flags)
}

const SCRIPT: &str = r#"require ["fileinto", "mailbox", "imap4flags", "reject", "vacation", "copy"];
if header :contains "subject" "[list]" {
    fileinto :create :flags "\\Seen" "Lists";
    stop;
}
if header :contains "subject" "reject me" {
    reject "Not accepted here.";
    stop;
}
if header :contains "subject" "forward" {
    redirect :copy "friend@elsewhere.example";
}
vacation :days 1 :addresses ["demo@example.org"] :subject "Away" "I am away until Monday.";
"#;

#[test]
fn swaks_into_a_sieve_script() {
    if missing_tool("swaks") {
        return;
    }
    let Some(py) = python_with_aiosmtpd() else {
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    let scripts = work.path().join("sieve");
    let outbox = work.path().join("outbox");
    std::fs::create_dir_all(&scripts).unwrap();
    std::fs::create_dir_all(&outbox).unwrap();
    std::fs::write(scripts.join("demo.sieve"), SCRIPT).unwrap();
    let receiver = start_receiver(&py, &outbox);
    let server = Server::start(ServerSpec {
        wait_for: vec![Proto::Imap, Proto::Lmtp],
        extra_toml: format!(
            "[sieve]\nsieve = \"{}/%n.sieve\"\nsubmission_host = \"127.0.0.1:{}\"\n",
            scripts.display(),
            receiver.port
        ),
        ..Default::default()
    })
    .expect("start node");

    // fileinto :create with a flag.
    let t = swaks(
        &server,
        "list@lists.example",
        "demo@example.org",
        "[list] news",
    );
    assert!(t.contains("250 2.0.0"), "{t}");
    let (n, flags) = mailbox_state(&server, "Lists");
    assert_eq!(n, 1, "{}", server.log_text());
    assert!(flags.contains("\\Seen"), "{flags}");

    // reject: refused in LMTP, nothing stored, nothing sent.
    let t = swaks(
        &server,
        "spammer@bad.example",
        "demo@example.org",
        "reject me",
    );
    assert!(
        t.contains("550 5.7.1") && t.contains("Not accepted here."),
        "{t}"
    );

    // redirect :copy and the vacation reply, both through the submission host.
    let t = swaks(
        &server,
        "friend@far.example",
        "demo@example.org",
        "please forward",
    );
    assert!(t.contains("250 2.0.0"), "{t}");
    let got = receiver.wait_for(2);
    assert_eq!(got.len(), 2, "{got:?}\n{}", server.log_text());
    let redirect = got
        .iter()
        .find(|m| m.contains("X-Env-To: <friend@elsewhere.example>"));
    let redirect = redirect.unwrap_or_else(|| panic!("no redirect in {got:?}"));
    assert!(redirect.contains("X-Env-From: <friend@far.example>"));
    assert!(redirect.contains("Subject: please forward"));
    let reply = got
        .iter()
        .find(|m| m.contains("X-Env-To: <friend@far.example>"));
    let reply = reply.unwrap_or_else(|| panic!("no vacation reply in {got:?}"));
    assert!(reply.contains("X-Env-From: <>"), "{reply}");
    assert!(reply.contains("Subject: Away") && reply.contains("I am away until Monday."));
    assert!(reply.contains("Auto-Submitted: auto-replied"));

    // The same sender again within :days: redirected again, no second reply.
    let t = swaks(
        &server,
        "friend@far.example",
        "demo@example.org",
        "forward again",
    );
    assert!(t.contains("250 2.0.0"), "{t}");
    let got = receiver.wait_for(3);
    std::thread::sleep(Duration::from_millis(500));
    let got_later = receiver.messages();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(
        got_later.len(),
        3,
        "a second vacation reply went out: {got_later:?}"
    );
    let log = server.log_text();
    assert!(log.contains("already replied"), "{log}");
    // The kept copies are in INBOX.
    assert_eq!(mailbox_state(&server, "INBOX").0, 2);
}
