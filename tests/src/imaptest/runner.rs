//! Runs one parsed script against a server, as imaptest's test executor does: connect
//! and log in every connection, check capabilities, delete the old test mailboxes, create
//! and fill the test mailbox, SELECT it, then send each command group on its connection
//! and match the replies. Blocking sockets with a read timeout bound every wait.

use super::args::{self, bytes, latin1, to_text, Arg, MAX_LITERAL};
use super::matcher::{Vars, FULL};
use super::mbox::Mbox;
use super::script::{Existence, Group, Messages, Script, StartState};
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Longest response line accepted (literals excluded).
const MAX_LINE: u64 = 1 << 20;

#[derive(Clone, Debug)]
pub struct Config {
    pub addr: SocketAddr,
    pub user: (String, String),
    /// The user for `user N: $user2` headers; without one such groups are skipped.
    pub user2: Option<(String, String)>,
    pub mailbox: String,
    /// `$domain` for users without one (imaptest uses its `host` setting).
    pub host: String,
    /// How long to wait for any one reply before the group fails.
    pub cmd_timeout: Duration,
    /// No command group starts after this instant.
    pub deadline: Option<Instant>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed,
    Skipped { missing: Vec<String> },
}

#[derive(Clone, Debug)]
pub struct GroupReport {
    pub name: String,
    pub outcome: Outcome,
    /// imaptest's failure texts, in order.
    pub failures: Vec<String>,
    /// Command groups run (imaptest's "individual commands").
    pub commands: u32,
    /// Failures counted (imaptest counts each failed check).
    pub failed: u32,
    pub extension: bool,
}

enum Resp {
    Cont,
    Untagged(Vec<Arg>),
    Tagged(String, Vec<Arg>),
}

#[derive(Debug)]
enum IoErr {
    Closed,
    Timeout,
    Other(String),
}

/// The run of this script cannot continue (already recorded as a failure, or a skip).
struct Abort;

struct Conn {
    id: usize,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    tags: u32,
    exists: u32,
    closed: bool,
    seen_bye: bool,
    greeting: Vec<Arg>,
    /// A SELECT/EXAMINE was sent: the next EXISTS is a new mailbox's count.
    exists_reset: bool,
    /// `IMAPTEST_TRACE=1`: every line sent and received goes to stderr.
    trace: bool,
    /// UIDVALIDITY of the selected mailbox (from `* OK [UIDVALIDITY n]`).
    uidvalidity: Option<String>,
    /// The mailbox named by the last SELECT/EXAMINE, as sent.
    mailbox: Option<String>,
    /// Keywords of the last untagged FLAGS (lower case); None before any since SELECT.
    flags: Option<Vec<String>>,
    /// `[UIDNEXT n]` and `[HIGHESTMODSEQ n]` seen but not yet checked (UIDVALIDITY may come
    /// after them).
    uidnext: Option<u64>,
    highestmodseq: Option<u64>,
}

fn io_err(e: std::io::Error) -> IoErr {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => IoErr::Timeout,
        std::io::ErrorKind::UnexpectedEof
        | std::io::ErrorKind::ConnectionReset
        | std::io::ErrorKind::ConnectionAborted
        | std::io::ErrorKind::BrokenPipe => IoErr::Closed,
        _ => IoErr::Other(e.to_string()),
    }
}

/// `{N}` / `{N+}` / `~{N}` at the end of a line: the literal's size.
fn trailing_literal(line: &[u8]) -> Option<usize> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let digits = &inner[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The next synchronizing-or-not literal marker in a command from `from`: returns
/// (index where its data starts, size, synchronizing).
fn next_literal(b: &[u8], from: usize) -> Option<(usize, usize, bool)> {
    let mut i = from;
    while i < b.len() {
        if b[i] == b'{' {
            let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
            let mut j = i + 1 + digits;
            let sync = b.get(j) != Some(&b'+');
            if !sync {
                j += 1;
            }
            if digits > 0 && b[j..].starts_with(b"}\r\n") {
                let n = std::str::from_utf8(&b[i + 1..i + 1 + digits])
                    .ok()
                    .and_then(|d| d.parse::<usize>().ok())
                    .unwrap_or(usize::MAX);
                return Some((j + 3, n, sync));
            }
        }
        i += 1;
    }
    None
}

impl Conn {
    fn connect(addr: SocketAddr, id: usize, timeout: Duration) -> std::io::Result<Conn> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        s.set_nodelay(true)?;
        Ok(Conn {
            id,
            writer: s.try_clone()?,
            reader: BufReader::new(s),
            tags: 0,
            exists: 0,
            closed: false,
            seen_bye: false,
            greeting: Vec::new(),
            exists_reset: false,
            uidvalidity: None,
            mailbox: None,
            flags: None,
            uidnext: None,
            highestmodseq: None,
            trace: std::env::var_os("IMAPTEST_TRACE").is_some_and(|v| v != "0"),
        })
    }

    fn next_tag(&mut self) -> String {
        self.tags += 1;
        format!("{}.{}", self.id, self.tags)
    }

    fn write(&mut self, b: &[u8]) -> Result<(), IoErr> {
        if self.trace {
            eprintln!("C{}> {}", self.id, short(&latin1(b)));
        }
        self.writer.write_all(b).map_err(io_err)
    }

    /// Notes a command that changes the selected mailbox (its message count restarts).
    fn note_command(&mut self, wire: &[u8]) {
        let name: Vec<u8> = wire
            .iter()
            .take_while(|&&b| b != b' ')
            .map(u8::to_ascii_uppercase)
            .collect();
        if matches!(&name[..], b"SELECT" | b"EXAMINE" | b"CLOSE" | b"UNSELECT") {
            self.exists = 0;
            self.exists_reset = true;
            self.uidvalidity = None;
            self.flags = None;
            self.uidnext = None;
            self.highestmodseq = None;
            // the mailbox argument (INBOX in any case is one mailbox)
            self.mailbox = args::parse(wire.get(name.len() + 1..).unwrap_or(&[]))
                .ok()
                .and_then(|a| a.first().and_then(Arg::astring).map(str::to_string))
                .map(|m| {
                    if m.eq_ignore_ascii_case("INBOX") {
                        "INBOX".into()
                    } else {
                        m
                    }
                });
        }
    }

    /// One response, literals included (their CRLF kept so the parser sees them).
    fn read_raw(&mut self) -> Result<Vec<u8>, IoErr> {
        let mut out = Vec::new();
        loop {
            let mut line = Vec::new();
            let n = (&mut self.reader)
                .take(MAX_LINE)
                .read_until(b'\n', &mut line)
                .map_err(io_err)?;
            if n == 0 || !line.ends_with(b"\n") {
                if line.len() as u64 >= MAX_LINE {
                    return Err(IoErr::Other("response line longer than 1 MiB".into()));
                }
                return Err(IoErr::Closed);
            }
            out.extend_from_slice(&line);
            let body = line.strip_suffix(b"\n").unwrap_or(&line);
            let body = body.strip_suffix(b"\r").unwrap_or(body);
            match trailing_literal(body) {
                Some(len) if len > MAX_LITERAL => {
                    return Err(IoErr::Other(format!("literal of {len} bytes is too large")));
                }
                Some(len) => {
                    let start = out.len();
                    out.resize(start + len, 0);
                    self.reader.read_exact(&mut out[start..]).map_err(io_err)?;
                }
                None => return Ok(out),
            }
        }
    }

    fn read_resp(&mut self) -> Result<Resp, IoErr> {
        let raw = self.read_raw()?;
        if self.trace {
            eprintln!("S{}< {}", self.id, short(&latin1(&raw)));
        }
        let raw = raw.strip_suffix(b"\n").unwrap_or(&raw);
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let bad = |e: args::ParseError| {
            IoErr::Other(format!("unparsable response ({e}): {}", latin1(raw)))
        };
        if raw.starts_with(b"+") {
            return Ok(Resp::Cont);
        }
        if let Some(rest) = raw.strip_prefix(b"* ") {
            return Ok(Resp::Untagged(args::parse(rest).map_err(bad)?));
        }
        let sp = raw.iter().position(|&b| b == b' ').unwrap_or(raw.len());
        let tag = latin1(&raw[..sp]);
        let rest = raw.get(sp + 1..).unwrap_or(&[]);
        Ok(Resp::Tagged(tag, args::parse(rest).map_err(bad)?))
    }
}

fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The mailbox name as an IMAP URL path segment.
fn url_path(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,=:@/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn atom_is(a: Option<&Arg>, s: &str) -> bool {
    a.and_then(Arg::atom)
        .is_some_and(|x| x.eq_ignore_ascii_case(s))
}

struct Exec<'a> {
    s: &'a Script,
    cfg: &'a Config,
    conns: Vec<Conn>,
    vars: Vars,
    mbox: Option<Mbox>,
    failures: Vec<String>,
    nfail: u32,
    ncmds: u32,
    init_done: bool,
    /// The command group being run (index), for failure messages and matching.
    group: Option<usize>,
    /// Tag of the current group's first command (`$tag` while matching untagged).
    group_tag: Option<String>,
    found: Vec<bool>,
    maybes: Vec<(usize, String)>,
    mismatches: u32,
    first_extra: Option<String>,
    /// Tagged replies read while waiting for something else (a literal's continuation).
    tagged: VecDeque<(String, Vec<Arg>)>,
    /// Untagged replies of the current setup command.
    setup_untagged: Vec<Vec<Arg>>,
    skipped: Option<Vec<String>>,
    /// (UIDVALIDITY, UID) -> the connection that was given its \Recent flag: RFC 3501
    /// gives \Recent to one session only (imaptest's mailbox state tracking checks this).
    recent: HashMap<(String, String), usize>,
    /// (mailbox, UIDVALIDITY) -> the highest UIDNEXT and HIGHESTMODSEQ any session was
    /// told: neither may go back (imaptest's mailbox state checks).
    highest: HashMap<(String, String), (u64, u64)>,
}

pub fn run_script(script: &Script, cfg: &Config) -> GroupReport {
    let mut ex = Exec {
        s: script,
        cfg,
        conns: Vec::new(),
        vars: Vars::default(),
        mbox: None,
        failures: Vec::new(),
        nfail: 0,
        ncmds: 0,
        init_done: false,
        group: None,
        group_tag: None,
        found: Vec::new(),
        maybes: Vec::new(),
        mismatches: 0,
        first_extra: None,
        tagged: VecDeque::new(),
        setup_untagged: Vec::new(),
        skipped: None,
        recent: HashMap::new(),
        highest: HashMap::new(),
    };
    if ex.init().is_ok() && ex.skipped.is_none() {
        ex.init_done = true;
        for gi in 0..script.groups.len() {
            if let Some(d) = cfg.deadline {
                if Instant::now() > d {
                    ex.group = Some(gi);
                    ex.fail("run deadline reached before this group".into());
                    break;
                }
            }
            if ex.run_group(gi).is_err() {
                ex.ncmds += 1;
                break;
            }
        }
    }
    let outcome = if ex.nfail > 0 {
        Outcome::Failed
    } else if let Some(missing) = ex.skipped.take() {
        Outcome::Skipped { missing }
    } else {
        Outcome::Passed
    };
    GroupReport {
        name: script.name.clone(),
        outcome,
        failures: ex.failures,
        commands: ex.ncmds,
        failed: ex.nfail,
        extension: script.is_extension(),
    }
}

impl Exec<'_> {
    fn fail(&mut self, msg: String) {
        self.nfail += 1;
        let text = match (self.init_done, self.group) {
            (true, Some(gi)) => {
                let g = &self.s.groups[gi];
                let (line, cmd) = g
                    .commands
                    .first()
                    .map_or((0, String::new()), |c| (c.linenum, c.text.clone()));
                let tag = self
                    .group_tag
                    .as_deref()
                    .map(|t| format!(" (tag {t})"))
                    .unwrap_or_default();
                format!(
                    "*** Test {} command {}/{} (line {line})\n - failed: {msg}\n - Command{tag}: {}",
                    self.s.name,
                    gi + 1,
                    self.s.groups.len(),
                    short(&cmd)
                )
            }
            _ => format!("*** Test {} initialization failed: {msg}", self.s.name),
        };
        self.failures.push(text);
    }

    fn io_fail(&mut self, ci: usize, e: IoErr, what: &str) -> Abort {
        match e {
            IoErr::Closed => {
                self.conns[ci].closed = true;
                self.fail(format!("Unexpected disconnection ({what})"));
            }
            IoErr::Timeout => self.fail(format!(
                "Timeout: no reply within {:?} ({what})",
                self.cfg.cmd_timeout
            )),
            IoErr::Other(m) => self.fail(format!("{m} ({what})")),
        }
        Abort
    }

    // --- reading ------------------------------------------------------------------------

    /// Reads until a continuation or a tagged reply; untagged replies are handled here.
    fn read_event(&mut self, ci: usize) -> Result<Resp, IoErr> {
        loop {
            match self.conns[ci].read_resp()? {
                Resp::Untagged(a) => self.on_untagged(ci, a),
                other => return Ok(other),
            }
        }
    }

    fn on_untagged(&mut self, ci: usize, a: Vec<Arg>) {
        let num = a
            .first()
            .and_then(Arg::atom)
            .and_then(|s| s.parse::<u32>().ok());
        let mut expunged = None;
        if let Some(n) = num {
            if atom_is(a.get(1), "EXISTS") {
                let reset = std::mem::take(&mut self.conns[ci].exists_reset);
                if !reset && n < self.conns[ci].exists && self.group.is_some() {
                    self.fail(format!(
                        "EXISTS shrank from {} to {n} without EXPUNGE",
                        self.conns[ci].exists
                    ));
                }
                self.conns[ci].exists = n;
            } else if atom_is(a.get(1), "EXPUNGE") {
                if n == 0 || n > self.conns[ci].exists {
                    if self.group.is_some() {
                        self.fail(format!(
                            "EXPUNGE {n} for a sequence that does not exist (EXISTS {})",
                            self.conns[ci].exists
                        ));
                    }
                } else {
                    self.conns[ci].exists -= 1;
                }
                expunged = Some(n);
            } else if atom_is(a.get(1), "FETCH")
                && self.group.is_some()
                && (n == 0 || n > self.conns[ci].exists)
            {
                // a sequence number the client cannot know (RFC 3501 7.4.2 / 2.3.1.2)
                self.fail(format!(
                    "FETCH for sequence {n} that does not exist (EXISTS {}): {}",
                    self.conns[ci].exists,
                    short(&to_text(&a))
                ));
            }
        } else if atom_is(a.first(), "BYE") {
            self.conns[ci].seen_bye = true;
        } else if atom_is(a.first(), "OK") && atom_is(a.get(1), "[UIDVALIDITY") {
            if let Some(v) = a.get(2).and_then(Arg::atom) {
                self.conns[ci].uidvalidity = Some(v.trim_end_matches(']').to_string());
                self.check_highest(ci);
            }
        } else if atom_is(a.first(), "OK")
            && (atom_is(a.get(1), "[UIDNEXT") || atom_is(a.get(1), "[HIGHESTMODSEQ"))
        {
            let v = a
                .get(2)
                .and_then(Arg::atom)
                .and_then(|v| v.trim_end_matches(']').parse::<u64>().ok());
            if let Some(v) = v {
                if atom_is(a.get(1), "[UIDNEXT") {
                    self.conns[ci].uidnext = Some(v);
                } else {
                    self.conns[ci].highestmodseq = Some(v);
                }
                self.check_highest(ci);
            }
        } else if atom_is(a.first(), "FLAGS") {
            let list = a.get(1).and_then(Arg::list).unwrap_or(&[]);
            self.conns[ci].flags = Some(
                list.iter()
                    .filter_map(Arg::atom)
                    .map(str::to_ascii_lowercase)
                    .collect(),
            );
        }
        if num.is_some() && atom_is(a.get(1), "FETCH") {
            let items = a.get(2).and_then(Arg::list).unwrap_or(&[]);
            self.check_recent(ci, items);
            self.check_keywords(ci, items, &a);
        }
        match self.group {
            Some(gi) if self.init_done => {
                self.match_untagged(gi, &a);
                if let Some(n) = expunged {
                    // after matching, as imaptest does: `$N` in this reply is the old seq
                    self.vars.expunge(n);
                }
            }
            _ => self.setup_untagged.push(a),
        }
    }

    /// Fails when a FETCH shows a keyword the last untagged FLAGS did not list (RFC 9051
    /// 7.3.5; imaptest's "Keyword used without being in FLAGS").
    fn check_keywords(&mut self, ci: usize, items: &[Arg], line: &[Arg]) {
        let Some(known) = &self.conns[ci].flags else {
            return;
        };
        let Some(flags) = items
            .chunks(2)
            .find(|p| atom_is(p.first(), "FLAGS"))
            .and_then(|p| p.get(1))
            .and_then(Arg::list)
        else {
            return;
        };
        let unknown: Vec<String> = flags
            .iter()
            .filter_map(Arg::atom)
            .filter(|f| !f.starts_with('\\'))
            .filter(|f| !known.contains(&f.to_ascii_lowercase()))
            .map(str::to_string)
            .collect();
        if self.group.is_some() {
            for k in unknown {
                self.fail(format!(
                    "Keyword used without being in FLAGS: {k}: {}",
                    short(&to_text(line))
                ));
            }
        }
    }

    /// Fails when a session is told a lower UIDNEXT or HIGHESTMODSEQ for a mailbox (same
    /// UIDVALIDITY) than any session was told before: both only grow (RFC 9051 2.3.1.1,
    /// RFC 7162 3.1.2).
    fn check_highest(&mut self, ci: usize) {
        let c = &mut self.conns[ci];
        let (Some(mb), Some(uv)) = (c.mailbox.clone(), c.uidvalidity.clone()) else {
            return;
        };
        let (next, hms) = (c.uidnext.take(), c.highestmodseq.take());
        let seen = self.highest.entry((mb.clone(), uv)).or_insert((0, 0));
        let mut errors = Vec::new();
        if let Some(n) = next {
            if n < seen.0 {
                errors.push(format!("UIDNEXT went back from {} to {n} in {mb}", seen.0));
            }
            seen.0 = seen.0.max(n);
        }
        if let Some(m) = hms {
            if m < seen.1 {
                errors.push(format!(
                    "HIGHESTMODSEQ went back from {} to {m} in {mb}",
                    seen.1
                ));
            }
            seen.1 = seen.1.max(m);
        }
        if self.group.is_some() {
            for e in errors {
                self.fail(e);
            }
        }
    }

    /// Fails when a second session is given \Recent for a message (needs UID in the FETCH).
    fn check_recent(&mut self, ci: usize, items: &[Arg]) {
        let get = |name: &str| {
            items
                .chunks(2)
                .find(|p| atom_is(p.first(), name))
                .and_then(|p| p.get(1))
        };
        let (Some(uid), Some(flags)) = (
            get("UID").and_then(Arg::atom),
            get("FLAGS").and_then(Arg::list),
        ) else {
            return;
        };
        if !flags.iter().any(|f| atom_is(Some(f), "\\Recent")) {
            return;
        }
        let Some(uv) = self.conns[ci].uidvalidity.clone() else {
            return;
        };
        let other = *self.recent.entry((uv, uid.to_string())).or_insert(ci);
        if other != ci && self.group.is_some() {
            self.fail(format!(
                "\\Recent flag for UID {uid} given to two sessions ({} and {})",
                other + 1,
                ci + 1
            ));
        }
    }

    fn match_untagged(&mut self, gi: usize, a: &[Arg]) {
        let g: &Group = &self.s.groups[gi];
        let empty = Vec::new();
        let expected = match &g.untagged {
            Some(u) => u,
            None if self.s.ignore_extra_untagged => return,
            None => &empty,
        };
        let prefix = a.first().and_then(Arg::atom).is_some_and(|s| {
            ["ok", "no", "bad", "bye"]
                .iter()
                .any(|k| s.eq_ignore_ascii_case(k))
        });
        self.vars.begin_attempt();
        let mut found_some = false;
        for (i, ut) in expected.iter().enumerate() {
            if self.found[i] {
                continue;
            }
            if let Some(t) = &self.group_tag {
                self.vars.set("tag", t);
            }
            let n = self.vars.match_args(&ut.args, a, FULL, prefix);
            if self.group_tag.is_some() {
                self.vars.remove("tag");
            }
            if n == FULL {
                if ut.existence == Existence::MustNot {
                    self.fail(format!(
                        "Unexpected untagged match:\nMatch: {}\nReply: {}",
                        short(&to_text(&ut.args)),
                        short(&to_text(a))
                    ));
                    return;
                }
                self.found[i] = true;
                found_some = true;
                self.vars.keep_attempt();
                if g.ordered {
                    break;
                }
                continue;
            }
            if self.maybes[i].0 < n {
                self.maybes[i] = (n, to_text(a));
            }
            self.vars.revert_attempt();
            if g.ordered && ut.existence == Existence::Must {
                break;
            }
        }
        if !found_some {
            self.mismatches += 1;
            if !self.s.ignore_extra_untagged && self.first_extra.is_none() {
                self.first_extra = Some(to_text(a));
            }
        }
    }

    /// The tagged reply to `tag`, reading (and handling untagged replies) as needed.
    fn wait_tagged(&mut self, ci: usize, tag: &str) -> Result<Vec<Arg>, IoErr> {
        if let Some(p) = self.tagged.iter().position(|(t, _)| t == tag) {
            if let Some((_, a)) = self.tagged.remove(p) {
                return Ok(a);
            }
        }
        loop {
            match self.read_event(ci)? {
                Resp::Cont => {}
                Resp::Tagged(t, a) if t == tag => return Ok(a),
                Resp::Tagged(t, a) => self.tagged.push_back((t, a)),
                Resp::Untagged(_) => {}
            }
        }
    }

    /// Writes `tag wire CRLF`, waiting for the server's `+` before each synchronizing
    /// literal; stops early if the command's tagged reply arrives instead.
    fn send(&mut self, ci: usize, tag: &str, wire: &[u8]) -> Result<(), IoErr> {
        self.conns[ci].note_command(wire);
        let mut buf = format!("{tag} ").into_bytes();
        buf.extend_from_slice(wire);
        let mut pos = 0;
        while let Some((data, n, sync)) = next_literal(&buf, pos) {
            self.conns[ci].write(&buf[pos..data])?;
            if sync {
                loop {
                    match self.read_event(ci)? {
                        Resp::Cont => break,
                        Resp::Tagged(t, a) => {
                            let done = t == tag;
                            self.tagged.push_back((t, a));
                            if done {
                                return Ok(());
                            }
                        }
                        Resp::Untagged(_) => {}
                    }
                }
            }
            let end = data.saturating_add(n).min(buf.len());
            self.conns[ci].write(&buf[data..end])?;
            pos = end;
        }
        let mut rest = buf[pos..].to_vec();
        rest.extend_from_slice(b"\r\n");
        self.conns[ci].write(&rest)
    }

    // --- setup --------------------------------------------------------------------------

    /// One setup command: its untagged replies and its tagged reply.
    fn setup_cmd(&mut self, ci: usize, wire: &[u8]) -> Result<(Vec<Vec<Arg>>, Vec<Arg>), Abort> {
        self.setup_untagged.clear();
        let tag = self.conns[ci].next_tag();
        let what = short(&latin1(wire));
        let r = self
            .send(ci, &tag, wire)
            .and_then(|_| self.wait_tagged(ci, &tag));
        match r {
            Ok(t) => Ok((std::mem::take(&mut self.setup_untagged), t)),
            Err(e) => Err(self.io_fail(ci, e, &what)),
        }
    }

    fn setup_ok(&mut self, ci: usize, wire: &str) -> Result<Vec<Vec<Arg>>, Abort> {
        let (u, t) = self.setup_cmd(ci, &bytes(wire))?;
        if !atom_is(t.first(), "OK") {
            self.fail(format!("{wire} failed: {}", to_text(&t)));
            return Err(Abort);
        }
        Ok(u)
    }

    fn capabilities(&mut self) -> Result<Vec<String>, Abort> {
        let u = self.setup_ok(0, "CAPABILITY")?;
        let caps: Vec<String> = u
            .iter()
            .filter(|a| atom_is(a.first(), "CAPABILITY"))
            .flat_map(|a| a[1..].iter().filter_map(Arg::atom).map(String::from))
            .collect();
        if caps.is_empty() {
            self.fail("CAPABILITY failed: no CAPABILITY reply".into());
            return Err(Abort);
        }
        Ok(caps)
    }

    fn check_caps(&mut self, have: &[String]) {
        let missing: Vec<String> = self
            .s
            .capabilities
            .iter()
            .filter(|c| !have.iter().any(|h| h.eq_ignore_ascii_case(c)))
            .cloned()
            .collect();
        if !missing.is_empty() {
            self.skipped = Some(missing);
        }
    }

    fn append_wire(&mut self, args: Option<&str>) -> Result<Vec<u8>, Abort> {
        let msg = match self.mbox.as_mut() {
            Some(m) => m.next_message(),
            None => {
                let path = self.s.mbox.clone();
                match Mbox::load(&path) {
                    Ok(m) => self.mbox.insert(m).next_message(),
                    Err(e) => {
                        self.fail(format!("mbox: {e}"));
                        return Err(Abort);
                    }
                }
            }
        };
        let head = match args {
            Some(a) => format!("APPEND {a} {{{}}}\r\n", msg.body.len()),
            None => format!(
                "APPEND {} \"{}\" {{{}}}\r\n",
                quote(&self.cfg.mailbox),
                msg.internal_date,
                msg.body.len()
            ),
        };
        let mut w = bytes(&head);
        w.extend_from_slice(&msg.body);
        Ok(w)
    }

    fn init(&mut self) -> Result<(), Abort> {
        let s = self.s;
        let cfg = self.cfg;
        self.vars.modseq_tracking = s.modseq_tracking;
        for (k, v) in [
            ("mailbox", cfg.mailbox.clone()),
            ("mailbox_url", url_path(&cfg.mailbox)),
        ] {
            self.vars.set(k, &v);
        }
        for i in 0..s.connections {
            let c = match Conn::connect(cfg.addr, i + 1, cfg.cmd_timeout) {
                Ok(c) => c,
                Err(e) => {
                    self.fail(format!("connect {}: {e}", cfg.addr));
                    return Err(Abort);
                }
            };
            self.conns.push(c);
            let (user, pass) = self.login_for(i);
            let sfx = if i == 0 {
                String::new()
            } else {
                (i + 1).to_string()
            };
            let (name, domain) = match user.split_once('@') {
                Some((n, d)) => (n.to_string(), d.to_string()),
                None => (user.clone(), cfg.host.clone()),
            };
            self.vars.set(&format!("user{sfx}"), &user);
            self.vars.set(&format!("username{sfx}"), &name);
            self.vars.set(&format!("domain{sfx}"), &domain);
            self.vars.set(&format!("password{sfx}"), &pass);
            match self.conns[i].read_resp() {
                Ok(Resp::Untagged(a))
                    if atom_is(a.first(), "OK") || atom_is(a.first(), "PREAUTH") =>
                {
                    self.conns[i].greeting = a;
                }
                Ok(_) => {
                    self.fail("greeting is not * OK".into());
                    return Err(Abort);
                }
                Err(e) => return Err(self.io_fail(i, e, "greeting")),
            }
        }
        if s.require_user2 && cfg.user2.is_none() {
            self.skipped = Some(vec!["user2".into()]);
            return Ok(());
        }
        if s.state == StartState::NonAuth {
            let caps = self.capabilities()?;
            self.check_caps(&caps);
            return Ok(());
        }
        for i in 0..s.connections {
            let (user, pass) = self.login_for(i);
            self.setup_ok(i, &format!("LOGIN {} {}", quote(&user), quote(&pass)))?;
        }
        let caps = self.capabilities()?;
        self.check_caps(&caps);
        if self.skipped.is_some() {
            return Ok(());
        }

        // Delete what an earlier run left: every mailbox named like the test mailbox.
        let mask = quote(&format!("{}*", cfg.mailbox));
        let names = |u: &[Vec<Arg>], kind: &str| -> Vec<String> {
            u.iter()
                .filter(|a| atom_is(a.first(), kind))
                .filter_map(|a| a.get(3).and_then(Arg::astring).map(String::from))
                .collect()
        };
        let listed = self.setup_ok(0, &format!("LIST \"\" {mask}"))?;
        let mut delete = names(&listed, "LIST");
        let lsubbed = self.setup_ok(0, &format!("LSUB \"\" {mask}"))?;
        let mut unsub = names(&lsubbed, "LSUB");
        let rev = |a: &String, b: &String| b.to_ascii_lowercase().cmp(&a.to_ascii_lowercase());
        delete.sort_by(rev);
        unsub.sort_by(rev);
        for (cmd, list) in [("DELETE", delete), ("UNSUBSCRIBE", unsub)] {
            for name in list {
                let wire = format!("{cmd} {}", quote(&name));
                let (_, t) = self.setup_cmd(0, &bytes(&wire))?;
                // NO is fine (a \Noselect parent, already gone); BAD is not
                if atom_is(t.first(), "BAD") {
                    self.fail(format!("{wire} failed: {}", to_text(&t)));
                    return Err(Abort);
                }
            }
        }
        if s.state >= StartState::Created && !cfg.mailbox.eq_ignore_ascii_case("INBOX") {
            self.setup_ok(0, &format!("CREATE {}", quote(&cfg.mailbox)))?;
        }
        if s.state >= StartState::Appended {
            let mut left = match s.messages {
                Messages::Count(n) => n as u64,
                Messages::All => u64::MAX,
            };
            while left > 0 {
                if s.messages == Messages::All {
                    if let Some(m) = &self.mbox {
                        if m.eof() {
                            break;
                        }
                    }
                }
                left -= 1;
                let wire = self.append_wire(None)?;
                let (_, t) = self.setup_cmd(0, &wire)?;
                if !atom_is(t.first(), "OK") {
                    self.fail(format!("APPEND failed: {}", to_text(&t)));
                    return Err(Abort);
                }
            }
        }
        if s.state >= StartState::Selected {
            for i in 0..s.connections {
                if i > 0 && self.login_for(i).0 != self.login_for(0).0 {
                    self.ensure_other_users_mailbox(i)?;
                }
                self.setup_ok(i, &format!("SELECT {}", quote(&cfg.mailbox)))?;
            }
        }
        Ok(())
    }

    /// imaptest deletes and recreates the test mailbox for connection 1's user only, yet
    /// SELECTs it on every connection: against Dovecot a connection logged in as another
    /// user (`user 2: $user2`) finds that user's mailbox made beforehand by the test
    /// environment. This is that environment: the mailbox is created if it is missing.
    fn ensure_other_users_mailbox(&mut self, ci: usize) -> Result<(), Abort> {
        let wire = format!("CREATE {}", quote(&self.cfg.mailbox));
        let (_, t) = self.setup_cmd(ci, &bytes(&wire))?;
        let exists = atom_is(t.first(), "NO") && atom_is(t.get(1), "[ALREADYEXISTS]");
        if !atom_is(t.first(), "OK") && !exists {
            self.fail(format!("{wire} failed: {}", to_text(&t)));
            return Err(Abort);
        }
        Ok(())
    }

    fn login_for(&self, i: usize) -> (String, String) {
        let (user, pass) = &self.cfg.user;
        if self.s.require_user2 && self.s.users.len() > i && self.s.users[i].is_none() && i > 0 {
            if let Some(u2) = &self.cfg.user2 {
                return u2.clone();
            }
        }
        match self.s.users.get(i).cloned().flatten() {
            Some(name) => (name, pass.clone()),
            None => (user.clone(), pass.clone()),
        }
    }

    // --- command groups -----------------------------------------------------------------

    /// The command to send: a bare `append [args]` without a message body gets the next
    /// message from the mbox, as imaptest does.
    fn wire_for(&mut self, text: &str) -> Result<Vec<u8>, Abort> {
        if text.eq_ignore_ascii_case("append") {
            return self.append_wire(None);
        }
        // `get` keeps a non-ASCII expansion (bound from server input) from panicking
        if let Some(rest) = text
            .get(..7)
            .filter(|p| p.eq_ignore_ascii_case("append "))
            .and_then(|_| text.get(7..))
        {
            if !append_has_body(rest) {
                return self.append_wire(Some(rest));
            }
        }
        Ok(bytes(text))
    }

    fn run_group(&mut self, gi: usize) -> Result<(), Abort> {
        let g: &Group = &self.s.groups[gi];
        let ci = g.conn;
        let n_ut = g.untagged.as_ref().map_or(0, Vec::len);
        self.group = Some(gi);
        self.group_tag = None;
        self.found = vec![false; n_ut];
        self.maybes = vec![(0, String::new()); n_ut];
        self.mismatches = 0;
        self.first_extra = None;
        self.tagged.clear();
        if ci >= self.conns.len() {
            self.fail(format!("connection {} does not exist", ci + 1));
            return Err(Abort);
        }
        if g.commands.is_empty() {
            // banner check: match the connection's greeting
            let greeting = self.conns[ci].greeting.clone();
            self.match_untagged(gi, &greeting);
            self.group_finished(gi);
            return Ok(());
        }
        if self.conns[ci].closed {
            self.fail("connection already closed".into());
            return Err(Abort);
        }
        self.vars.reset_seqmap(self.conns[ci].exists);

        let mut pending: Vec<(String, usize)> = Vec::new();
        for (k, cmd) in g.commands.iter().enumerate() {
            let text = match self.vars.expand_all(&cmd.text, false) {
                Ok(t) => t,
                Err(e) => {
                    self.fail(e);
                    continue;
                }
            };
            let wire = self.wire_for(&text)?;
            let tag = self.conns[ci].next_tag();
            if k == 0 {
                self.group_tag = Some(tag.clone());
            }
            pending.push((tag.clone(), k));
            if let Err(e) = self.send(ci, &tag, &wire) {
                return Err(self.io_fail(ci, e, "sending"));
            }
        }
        while !pending.is_empty() {
            let next = match self.tagged.pop_front() {
                Some(t) => Ok(Resp::Tagged(t.0, t.1)),
                None => self.read_event(ci),
            };
            match next {
                Ok(Resp::Tagged(t, a)) => match pending.iter().position(|(pt, _)| *pt == t) {
                    Some(p) => {
                        let (tag, k) = pending.remove(p);
                        self.check_tagged(gi, k, &tag, &a);
                    }
                    None => self.fail(format!("tagged reply for unknown tag: {t} {}", to_text(&a))),
                },
                Ok(_) => {}
                Err(IoErr::Closed) if g.have_bye && self.conns[ci].seen_bye => {
                    self.conns[ci].closed = true;
                    for &(_, k) in &pending {
                        let r = g.commands[k].reply.as_deref().unwrap_or(&[]);
                        if !(r.len() == 1 && r[0].astring() == Some("")) {
                            self.fail(format!(
                                "Command expected '{}' as tagged reply - only \"\" allowed when BYE happens",
                                to_text(r)
                            ));
                        }
                    }
                    pending.clear();
                }
                Err(e) => return Err(self.io_fail(ci, e, "waiting for the tagged reply")),
            }
        }
        self.group_finished(gi);
        Ok(())
    }

    fn check_tagged(&mut self, gi: usize, k: usize, tag: &str, a: &[Arg]) {
        let want = self.s.groups[gi].commands[k]
            .reply
            .clone()
            .unwrap_or_default();
        self.vars.set("tag", tag);
        let n = self.vars.match_args(&want, a, FULL, true);
        self.vars.remove("tag");
        if n != FULL {
            self.fail(format!(
                "Expected tagged reply '{}', got '{}'",
                to_text(&want),
                short(&to_text(a))
            ));
        }
    }

    fn group_finished(&mut self, gi: usize) {
        let g: &Group = &self.s.groups[gi];
        if let Some(ut) = &g.untagged {
            let missing: Vec<usize> = (0..ut.len())
                .filter(|&i| ut[i].existence == Existence::Must && !self.found[i])
                .collect();
            if let Some(&first) = missing.first() {
                let unexpanded = to_text(&ut[first].args);
                let expanded = self
                    .vars
                    .expand_all(&unexpanded, true)
                    .unwrap_or_else(|e| e);
                let best = self.maybes[first].1.clone();
                self.fail(format!(
                    "Missing {} untagged replies ({} mismatches)\n - first unexpanded: {}\n - first expanded: {}\n - best match: {}",
                    missing.len(),
                    self.mismatches,
                    short(&unexpanded),
                    short(&expanded),
                    short(&best)
                ));
            }
        }
        if let Some(x) = self.first_extra.take() {
            self.fail(format!(
                "{} unexpected untagged replies received, first: {}",
                self.mismatches,
                short(&x)
            ));
        }
        if !g.sleep.is_zero() {
            std::thread::sleep(g.sleep);
        }
        self.ncmds += 1;
    }
}

/// Whether `APPEND <rest>` already carries its message (a literal or CATENATE).
fn append_has_body(rest: &str) -> bool {
    let Ok(a) = args::parse(&bytes(rest)) else {
        return true;
    };
    if a.is_empty() {
        return false;
    }
    let mut i = 0;
    if matches!(a.get(i + 1), Some(Arg::List(_))) {
        i += 1;
    }
    if matches!(a.get(i + 1), Some(Arg::Str(_))) {
        i += 1;
    }
    matches!(a.get(i + 1), Some(Arg::Literal { .. })) || atom_is(a.get(i + 1), "catenate")
}

/// Failure texts stay readable: long replies (message bodies) are cut.
fn short(s: &str) -> String {
    const MAX: usize = 600;
    let s = s.replace("\r\n", "\\r\\n");
    if s.chars().count() <= MAX {
        return s;
    }
    let cut: String = s.chars().take(MAX).collect();
    format!("{cut}... ({} chars)", s.chars().count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_markers() {
        assert_eq!(trailing_literal(b"* 1 FETCH (BODY[] {12}"), Some(12));
        assert_eq!(trailing_literal(b"x ~{3}"), Some(3));
        assert_eq!(trailing_literal(b"x {3+}"), Some(3));
        assert_eq!(trailing_literal(b"x {}"), None);
        assert_eq!(trailing_literal(b"x {a}"), None);
        let cmd = b"APPEND box {3}\r\nabc {5+}\r\nhello";
        let (d, n, sync) = next_literal(cmd, 0).unwrap();
        assert_eq!((&cmd[d..d + n], sync), (&b"abc"[..], true));
        let (d, n, sync) = next_literal(cmd, d + n).unwrap();
        assert_eq!((&cmd[d..d + n], sync), (&b"hello"[..], false));
        assert!(next_literal(b"SELECT {x}", 0).is_none());
    }

    #[test]
    fn bare_append_detection() {
        assert!(!append_has_body("imaptest"));
        assert!(!append_has_body("imaptest (\\seen \\flagged)"));
        assert!(!append_has_body(
            "imaptest (\\seen) \"01-Jan-2020 00:00:00 +0000\""
        ));
        assert!(append_has_body("imaptest {3}\r\nabc"));
        assert!(append_has_body("imaptest (\\seen) ~{3}\r\nabc"));
        assert!(append_has_body(
            "imaptest (\\seen \\flagged) catenate (text {1}\r\nx)"
        ));
    }

    /// A fake IMAP server on loopback for `conns` connections sharing one message count;
    /// FETCH is answered with `fetch(connection index)`.
    fn fake_server(
        conns: usize,
        fetch: fn(usize) -> &'static str,
    ) -> (SocketAddr, std::thread::JoinHandle<()>) {
        fake_server_with(conns, fetch, |_, _| None)
    }

    /// [`fake_server`] whose SELECT is answered with `select(connection index, how many
    /// SELECTs it sent before)` when that gives an answer.
    fn fake_server_with(
        conns: usize,
        fetch: fn(usize) -> &'static str,
        select: fn(usize, usize) -> Option<&'static str>,
    ) -> (SocketAddr, std::thread::JoinHandle<()>) {
        use std::net::TcpListener;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let exists = Arc::new(AtomicUsize::new(0));
        let serve = move |i: usize, s: TcpStream, exists: Arc<AtomicUsize>| {
            let mut w = s.try_clone().unwrap();
            let mut r = BufReader::new(s);
            w.write_all(b"* OK ready\r\n").unwrap();
            let mut line = String::new();
            let mut selects = 0;
            // a second user ("u2") has no test mailbox until it CREATEs one; "u2old" has
            let (mut second_user, mut created) = (false, false);
            loop {
                line.clear();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                let (tag, cmd) = line.trim_end().split_once(' ').unwrap();
                let up = cmd.to_ascii_uppercase();
                let mut no = None;
                if up.starts_with("LOGIN") {
                    second_user = cmd.contains("\"u2");
                    created = cmd.contains("\"u2old\"");
                } else if up.starts_with("CREATE") && second_user {
                    if created {
                        no = Some("NO [ALREADYEXISTS] exists");
                    }
                    created = true;
                } else if up.starts_with("SELECT") && second_user && !created {
                    no = Some("NO [NONEXISTENT] no such mailbox");
                }
                if let Some(no) = no {
                    w.write_all(format!("{tag} {no}\r\n").as_bytes()).unwrap();
                    continue;
                }
                let out = if up.starts_with("CAPABILITY") {
                    "* CAPABILITY IMAP4rev1 UIDPLUS\r\n".to_string()
                } else if up.starts_with("APPEND") {
                    let n: usize = cmd[cmd.rfind('{').unwrap() + 1..cmd.len() - 1]
                        .parse()
                        .unwrap();
                    w.write_all(b"+ go\r\n").unwrap();
                    let mut body = vec![0; n + 2];
                    r.read_exact(&mut body).unwrap();
                    exists.fetch_add(1, Ordering::SeqCst);
                    String::new()
                } else if up.starts_with("SELECT") {
                    selects += 1;
                    let n = exists.load(Ordering::SeqCst);
                    select(i, selects - 1).map_or_else(
                        || format!("* {n} EXISTS\r\n* OK [UIDVALIDITY 42] ok\r\n"),
                        str::to_string,
                    )
                } else if up.starts_with("FETCH") {
                    fetch(i).to_string()
                } else if up.starts_with("LOGOUT") {
                    "* BYE bye\r\n".into()
                } else {
                    String::new()
                };
                let tagged = if up.starts_with("SELECT") {
                    "OK [READ-WRITE] done"
                } else {
                    "OK done"
                };
                w.write_all(format!("{out}{tag} {tagged}\r\n").as_bytes())
                    .unwrap();
                if up.starts_with("LOGOUT") {
                    return;
                }
            }
        };
        let h = std::thread::spawn(move || {
            let mut hs = Vec::new();
            for i in 0..conns {
                let (s, _) = l.accept().unwrap();
                let exists = exists.clone();
                hs.push(std::thread::spawn(move || serve(i, s, exists)));
            }
            for h in hs {
                let _ = h.join();
            }
        });
        (addr, h)
    }

    fn run_text(addr: SocketAddr, text: &str) -> GroupReport {
        run_text_as(addr, text, None)
    }

    fn run_text_as(addr: SocketAddr, text: &str, user2: Option<(String, String)>) -> GroupReport {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("default.mbox");
        std::fs::write(
            &mbox,
            "From a  Fri Feb 22 17:06:23 2008\nSubject: x\n\nbody\n",
        )
        .unwrap();
        let script =
            super::super::script::parse("t", &dir.path().join("t"), &mbox, text.as_bytes())
                .unwrap();
        let cfg = Config {
            addr,
            user: ("u".into(), "p".into()),
            user2,
            mailbox: "imaptest".into(),
            host: "127.0.0.1".into(),
            cmd_timeout: Duration::from_secs(5),
            deadline: None,
        };
        run_script(&script, &cfg)
    }

    #[test]
    fn runs_a_script_against_a_fake_server() {
        let (addr, server) = fake_server(1, |_| {
            "* 1 FETCH (FLAGS (\\Recent) UID 7)\r\n* 2 FETCH (UID 8 FLAGS (\\Seen))\r\n"
        });
        let text = "messages: 2\n\nok fetch 1:2 (uid flags)\n* 1 fetch (uid $u1 flags ())\n\
                    * 2 fetch (uid $u2 flags (\\seen))\n\nok fetch 1:2 uid\n* 1 fetch (uid $u2)\n";
        let rep = run_text(addr, text);
        server.join().unwrap();
        assert_eq!(rep.outcome, Outcome::Failed, "{:#?}", rep.failures);
        assert_eq!(rep.failed, 1, "{:#?}", rep.failures);
        assert_eq!(rep.commands, 3, "two groups and the logout");
        let f = &rep.failures[0];
        assert!(
            f.contains("command 2/3") && f.contains("Missing 1 untagged replies"),
            "{f}"
        );
        assert!(f.contains("first expanded: 1 fetch ( uid 8)"), "{f}");
    }

    #[test]
    fn a_second_users_test_mailbox_is_created_before_select() {
        let text = "connections: 2\nuser 2: $user2\n\n2 ok noop\n";
        let u2 = Some(("u2".to_string(), "p".to_string()));
        let (addr, server) = fake_server(2, |_| "");
        let rep = run_text_as(addr, text, u2);
        server.join().unwrap();
        assert_eq!(rep.outcome, Outcome::Passed, "{:#?}", rep.failures);
        // a user whose mailbox exists: its NO [ALREADYEXISTS] is fine
        let (addr, server) = fake_server(2, |_| "");
        let rep = run_text_as(addr, text, Some(("u2old".into(), "p".into())));
        server.join().unwrap();
        assert_eq!(rep.outcome, Outcome::Passed, "{:#?}", rep.failures);
    }

    #[test]
    fn state_tracking_catches_shared_recent_and_bad_sequences() {
        let (addr, server) = fake_server(2, |i| {
            if i == 0 {
                "* 1 FETCH (UID 7 FLAGS (\\Recent))\r\n"
            } else {
                "* 1 FETCH (UID 7 FLAGS (\\Recent))\r\n* 5 FETCH (FLAGS ())\r\n"
            }
        });
        let text =
            "connections: 2\nmessages: 1\n\n1 ok fetch 1 (uid flags)\n2 ok fetch 1 (uid flags)\n";
        let rep = run_text(addr, text);
        server.join().unwrap();
        let all = rep.failures.join("\n");
        assert_eq!(rep.failed, 2, "{all}");
        assert!(
            all.contains("Recent flag for UID 7 given to two sessions (1 and 2)"),
            "{all}"
        );
        assert!(
            all.contains("FETCH for sequence 5 that does not exist (EXISTS 1)"),
            "{all}"
        );
    }

    #[test]
    fn state_tracking_catches_unannounced_keywords_and_counters_going_back() {
        let (addr, server) = fake_server_with(
            1,
            |_| "* 1 FETCH (FLAGS (\\Seen $known $unknown))\r\n",
            |_, n| {
                Some(if n == 0 {
                    "* FLAGS (\\Seen $Known)\r\n* 1 EXISTS\r\n* OK [UIDVALIDITY 42] ok\r\n\
                     * OK [UIDNEXT 5] ok\r\n* OK [HIGHESTMODSEQ 9] ok\r\n"
                } else {
                    "* FLAGS (\\Seen $known $unknown)\r\n* 1 EXISTS\r\n\
                     * OK [UIDNEXT 4] ok\r\n* OK [HIGHESTMODSEQ 8] ok\r\n\
                     * OK [UIDVALIDITY 42] ok\r\n"
                })
            },
        );
        let text = "messages: 1\n\nok fetch 1 (flags)\n\nok select $mailbox\n\n\
                    ok fetch 1 (flags)\n";
        let rep = run_text(addr, text);
        server.join().unwrap();
        let all = rep.failures.join("\n");
        assert_eq!(rep.failed, 3, "{all}");
        assert!(
            all.contains("Keyword used without being in FLAGS: $unknown: 1 FETCH"),
            "{all}"
        );
        assert!(all.contains("UIDNEXT went back from 5 to 4"), "{all}");
        assert!(all.contains("HIGHESTMODSEQ went back from 9 to 8"), "{all}");
    }
}
