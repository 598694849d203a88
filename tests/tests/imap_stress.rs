//! Many clients at once on one shared mailbox, each doing imaptest's default mix (login,
//! list, status, select, fetch flags, fetch bodies, store flags and keywords, expunge,
//! append, logout), while every response is checked the way imaptest's mailbox state
//! tracking does: a keyword is in the last untagged FLAGS before a FETCH shows it, EXISTS
//! never shrinks without EXPUNGE, EXPUNGE and FETCH name existing sequence numbers, UIDNEXT
//! and HIGHESTMODSEQ never go back, and no command gets BAD. The run must end with none.
//!
//! `IMAP_STRESS_SECS` (default 30) and `IMAP_STRESS_CLIENTS` (default 10) size the run.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tests::*;

const MAILBOX: &str = "stress";
const KEYWORDS: [&str; 5] = ["$kw1", "$kw2", "$kw3", "$kw4", "$kw5"];

/// What one connection knows of its selected mailbox, and the checks on what it is told.
#[derive(Default)]
struct Tracker {
    exists: u32,
    /// Keywords (lower case) of the last untagged FLAGS; None before any.
    keywords: Option<HashSet<String>>,
    /// A SELECT is running: its EXISTS starts the count afresh.
    selecting: bool,
    uidvalidity: Option<u64>,
    uidnext: Option<u64>,
    highestmodseq: Option<u64>,
    errors: Vec<String>,
}

fn number_after(l: &str, word: &str) -> Option<u64> {
    let rest = &l[l.find(word)? + word.len()..];
    rest.trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

impl Tracker {
    fn on_line(&mut self, l: &str) {
        // Only the line itself, not literal data inlined after it.
        let head = l.split("\r\n").next().unwrap_or(l);
        let mut words = head.split(' ');
        if words.next() != Some("*") {
            return;
        }
        let second = words.next().unwrap_or_default();
        let third = words.next().unwrap_or_default();
        if second == "FLAGS" {
            let list = head.split_once('(').map(|x| x.1).unwrap_or_default();
            self.keywords = Some(
                list.trim_end_matches(')')
                    .split(' ')
                    .filter(|f| !f.is_empty() && !f.starts_with('\\'))
                    .map(str::to_ascii_lowercase)
                    .collect(),
            );
        } else if second == "OK" {
            if let Some(v) = number_after(head, "[UIDVALIDITY") {
                self.uidvalidity = Some(v);
            }
            if let Some(v) = number_after(head, "[UIDNEXT") {
                self.uidnext = Some(v);
            }
            if let Some(v) = number_after(head, "[HIGHESTMODSEQ") {
                self.highestmodseq = Some(v);
            }
        } else if let Ok(n) = second.parse::<u32>() {
            match third {
                "EXISTS" => {
                    if n < self.exists && !self.selecting {
                        self.errors.push(format!(
                            "EXISTS shrank from {} to {n} without EXPUNGE",
                            self.exists
                        ));
                    }
                    self.selecting = false;
                    self.exists = n;
                }
                "EXPUNGE" => {
                    if n == 0 || n > self.exists {
                        self.errors
                            .push(format!("EXPUNGE {n} beyond EXISTS {}", self.exists));
                    } else {
                        self.exists -= 1;
                    }
                }
                "FETCH" => {
                    if n == 0 || n > self.exists {
                        self.errors
                            .push(format!("FETCH {n} beyond EXISTS {}: {head}", self.exists));
                    }
                    self.check_keywords(head);
                }
                _ => {}
            }
        }
    }

    fn check_keywords(&mut self, head: &str) {
        let Some(known) = &self.keywords else {
            return;
        };
        let Some(at) = head.find("FLAGS (") else {
            return;
        };
        let list = &head[at + 7..];
        let list = &list[..list.find(')').unwrap_or(list.len())];
        for f in list.split(' ') {
            if !f.is_empty() && !f.starts_with('\\') && !known.contains(&f.to_ascii_lowercase()) {
                self.errors
                    .push(format!("Keyword used without being in FLAGS: {f}: {head}"));
            }
        }
    }
}

/// UIDVALIDITY -> the highest UIDNEXT and HIGHESTMODSEQ any client has been told.
type Highest = Arc<Mutex<HashMap<u64, (u64, u64)>>>;

struct Client {
    conn: LineConn,
    t: Tracker,
    tags: u32,
    rng: u64,
    highest: Highest,
}

impl Client {
    fn rand(&mut self, n: u64) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng % n.max(1)
    }

    /// Sends a command and tracks every response; BAD is an error.
    fn cmd(&mut self, cmd: &str) -> anyhow::Result<Vec<String>> {
        self.tags += 1;
        let tag = format!("t{}", self.tags);
        if cmd.starts_with("SELECT") {
            self.t.selecting = true;
            self.t.keywords = None;
            self.t.uidnext = None;
            self.t.highestmodseq = None;
        }
        // Counters seen before the command was sent: its answer may not be lower.
        let before = self.highest.lock().map(|h| h.clone()).unwrap_or_default();
        self.conn.send(&format!("{tag} {cmd}"))?;
        let lines = self.conn.imap_until(&tag)?;
        for l in &lines {
            self.t.on_line(l);
        }
        let done = lines.last().cloned().unwrap_or_default();
        if done.starts_with(&format!("{tag} BAD")) {
            self.t.errors.push(format!("{cmd} -> {done}"));
        }
        self.check_highest(&before);
        Ok(lines)
    }

    fn check_highest(&mut self, before: &HashMap<u64, (u64, u64)>) {
        let Some(uv) = self.t.uidvalidity else { return };
        let (seen_next, seen_hms) = before.get(&uv).copied().unwrap_or((0, 0));
        if let Some(n) = self.t.uidnext.take() {
            if n < seen_next {
                self.t
                    .errors
                    .push(format!("UIDNEXT went back from {seen_next} to {n}"));
            }
            if let Ok(mut h) = self.highest.lock() {
                let e = h.entry(uv).or_default();
                e.0 = e.0.max(n);
            }
        }
        if let Some(m) = self.t.highestmodseq.take() {
            if m < seen_hms {
                self.t
                    .errors
                    .push(format!("HIGHESTMODSEQ went back from {seen_hms} to {m}"));
            }
            if let Ok(mut h) = self.highest.lock() {
                let e = h.entry(uv).or_default();
                e.1 = e.1.max(m);
            }
        }
    }

    fn connect(addr: std::net::SocketAddr, rng: u64, highest: Highest) -> anyhow::Result<Client> {
        let mut conn = LineConn::connect(addr)?;
        conn.line()?;
        let mut c = Client {
            conn,
            t: Tracker::default(),
            tags: 0,
            rng,
            highest,
        };
        let r = c.cmd("LOGIN demo demo")?;
        let done = r.last().cloned().unwrap_or_default();
        anyhow::ensure!(done.contains(" OK "), "LOGIN: {done}");
        c.cmd("SELECT stress (CONDSTORE)")?;
        Ok(c)
    }

    /// One step of the mix.
    fn step(&mut self, addr: std::net::SocketAddr) -> anyhow::Result<()> {
        let n = self.t.exists;
        let msg = if n > 0 {
            1 + self.rand(u64::from(n))
        } else {
            0
        };
        let kw = KEYWORDS[self.rand(KEYWORDS.len() as u64) as usize];
        match self.rand(20) {
            0..=3 if n > 0 => drop(self.cmd("FETCH 1:* (UID FLAGS)")?),
            4..=5 if n > 0 => drop(self.cmd(&format!("FETCH {msg} (UID FLAGS BODY.PEEK[])"))?),
            6..=8 if n > 0 => drop(self.cmd(&format!("STORE {msg} +FLAGS ({kw} \\Seen)"))?),
            9 if n > 0 => drop(self.cmd(&format!("STORE {msg} -FLAGS ({kw})"))?),
            10 if n > 0 => {
                self.cmd(&format!("STORE {msg} +FLAGS.SILENT (\\Deleted)"))?;
                self.cmd("EXPUNGE")?;
            }
            11..=13 => {
                let body = format!(
                    "From: stress@example.org\r\nSubject: stress {}\r\n\r\nbody\r\n",
                    self.rand(1_000_000)
                );
                let flags = if self.rand(2) == 0 { kw } else { "\\Flagged" };
                self.tags += 1;
                let tag = format!("t{}", self.tags);
                self.conn.send_raw(
                    format!(
                        "{tag} APPEND {MAILBOX} ({flags}) {{{}+}}\r\n{body}\r\n",
                        body.len()
                    )
                    .as_bytes(),
                )?;
                for l in self.conn.imap_until(&tag)? {
                    self.t.on_line(&l);
                }
            }
            14 => drop(self.cmd(&format!("STATUS {MAILBOX} (MESSAGES UIDNEXT)"))?),
            15 => drop(self.cmd("LIST \"\" *")?),
            16 => drop(self.cmd("SELECT stress (CONDSTORE)")?),
            17 => {
                self.cmd("LOGOUT")?;
                let rng = self.rng;
                let errors = std::mem::take(&mut self.t.errors);
                *self = Client::connect(addr, rng, self.highest.clone())?;
                self.t.errors = errors;
            }
            _ => drop(self.cmd("NOOP")?),
        }
        Ok(())
    }
}

#[test]
fn tracker_reports_each_kind_of_protocol_error() {
    let mut t = Tracker::default();
    for l in [
        "* FLAGS (\\Seen $a)",
        "* 2 EXISTS",
        "* 1 FETCH (FLAGS (\\Seen $a $b))",
        "* 1 EXISTS",
        "* 3 EXPUNGE",
        "* 9 FETCH (UID 1)",
    ] {
        t.on_line(l);
    }
    let all = t.errors.join("\n");
    assert_eq!(t.errors.len(), 4, "{all}");
    assert!(
        all.contains("Keyword used without being in FLAGS: $b"),
        "{all}"
    );
    assert!(all.contains("EXISTS shrank from 2 to 1"), "{all}");
    assert!(all.contains("EXPUNGE 3 beyond EXISTS 1"), "{all}");
    assert!(all.contains("FETCH 9 beyond EXISTS 1"), "{all}");
}

#[test]
fn concurrent_default_mix_makes_no_protocol_errors() {
    let secs: u64 = std::env::var("IMAP_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let clients: u64 = std::env::var("IMAP_STRESS_CLIENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let mut server = Server::start(ServerSpec {
        wait_for: vec![Proto::Imap],
        // Every client is the same user from one address.
        extra_toml: "mail_max_userip_connections = 1000".into(),
        ..Default::default()
    })
    .expect("start node");
    let addr = server.addr(Proto::Imap);
    let mut setup = LineConn::connect(addr).expect("connect");
    setup.line().expect("greeting");
    setup.imap("l", "LOGIN demo demo").expect("login");
    setup
        .imap("c", &format!("CREATE {MAILBOX}"))
        .expect("create");
    let highest: Highest = Arc::default();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let handles: Vec<_> = (0..clients)
        .map(|i| {
            let highest = highest.clone();
            std::thread::spawn(move || -> (u64, Vec<String>) {
                let mut c = Client::connect(addr, 0x9e37_79b9_7f4a_7c15 ^ (i + 1), highest)
                    .expect("client connects");
                let mut steps = 0;
                while Instant::now() < deadline {
                    if let Err(e) = c.step(addr) {
                        c.t.errors.push(format!("client {i}: {e:#}"));
                        break;
                    }
                    steps += 1;
                }
                (steps, c.t.errors)
            })
        })
        .collect();
    let mut steps = 0;
    let mut errors = Vec::new();
    for h in handles {
        let (n, e) = h.join().expect("client thread");
        steps += n;
        errors.extend(e);
    }
    eprintln!(
        "{clients} clients, {secs} s: {steps} steps, {} protocol errors",
        errors.len()
    );
    assert!(server.is_running(), "the node died during the run");
    assert!(steps > clients * 10, "too few steps ran: {steps}");
    assert!(
        errors.is_empty(),
        "{} protocol error(s), first ones:\n{}",
        errors.len(),
        errors
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
