//! `jepsen bench-backlog` (issue 6: replication yields to client traffic but never starves):
//! two release `node serve` processes replicating over mutual TLS on loopback. IMAP clients
//! work on node A in a loop (a command mix with a think time); their command latency is
//! measured with no backlog, then while node B, back from a stop, drains a backlog of N
//! messages from A, once per `--variants` setting (`replication_yield` on, on with the
//! low-priority threads, off; both nodes restarted with it, a fresh backlog of N each, same
//! run). Printed: latency p50/p99/max in each phase, the drain time and rate (from A's start
//! until B holds every message), and A's pacing counters.
//!
//! Both nodes and the clients share this machine's cores: B's apply competes with A's clients
//! here, which it would not on separate machines (B's own pacing yields to B's clients only).

use crate::node_proc::{free_port, node_config, spawn_node, toml_str, wait_accepting, NodeConfig};
use ::tests::dovecot::stop_child;
use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const USER: &str = "alice";
const PASSWORD: &str = "backlogbench";
/// Longest server line or literal the client accepts.
const MAX_LINE: usize = 1 << 20;

#[derive(clap::Args)]
pub struct Args {
    /// Messages delivered on A while B is stopped (the backlog B drains when it comes back).
    #[arg(long, default_value_t = 5000)]
    pub backlog: usize,
    /// Bytes per message body.
    #[arg(long, default_value_t = 4096)]
    pub size: usize,
    /// IMAP clients working on A.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Pause after each client command (ms): clients that work, not a saturating flood.
    #[arg(long, default_value_t = 5)]
    pub think_ms: u64,
    /// Length of the no-backlog phase (seconds).
    #[arg(long, default_value_t = 5)]
    pub baseline_secs: u64,
    /// Rounds of (no backlog, then a drain per variant; the variants' order reversed every
    /// other round).
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// Drains to run, comma-separated: `yield` (replication_yield, the defaults),
    /// `yield-low-priority` (also replication_yield_low_priority: catch-up store work on nice-10
    /// threads), `no-yield` (replication_yield = false).
    #[arg(long, default_value = "yield,no-yield", value_delimiter = ',')]
    pub variants: Vec<Variant>,
    /// `[cluster] replication_yield_batch_records` for the yielding phases.
    #[arg(long, default_value_t = 100)]
    pub busy_batch: usize,
    /// `[cluster] replication_yield_max_wait` in ms for the yielding phase.
    #[arg(long, default_value_t = 25)]
    pub max_wait_ms: u64,
    /// The node binary (default: `node` beside this executable, i.e. target/release/node).
    #[arg(long)]
    pub node: Option<PathBuf>,
    /// Directory for the temporary data (removed afterwards unless --keep).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Give up after this many seconds in all.
    #[arg(long, default_value_t = 900)]
    pub timeout_secs: u64,
    /// RUST_LOG for the nodes (their logs go to files in the temporary directory).
    #[arg(long, default_value = "info")]
    pub node_log: String,
    /// Keep the temporary directory and print its path.
    #[arg(long)]
    pub keep: bool,
}

pub fn run(a: Args) -> Result<()> {
    if a.backlog == 0 || a.clients == 0 {
        bail!("--backlog and --clients must be at least 1");
    }
    let deadline = Instant::now() + Duration::from_secs(a.timeout_secs);
    let bin = match &a.node {
        Some(b) => b.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("executable has no directory")?
            .join("node"),
    };
    if !bin.exists() {
        bail!(
            "{} not found: build it first (cargo build --release -p node) or pass --node",
            bin.display()
        );
    }
    let tmp = tempfile::Builder::new()
        .prefix("bench-backlog-")
        .tempdir_in(&a.dir)?;
    let dir = tmp.path().to_path_buf();
    let r = bench(&a, &bin, &dir, deadline);
    if a.keep {
        let kept = tmp.keep();
        println!("kept {}", kept.display());
    }
    r
}

fn bench(a: &Args, bin: &Path, dir: &Path, deadline: Instant) -> Result<()> {
    println!("{}", load_line());
    let mut cluster = Pair::new(a, bin, dir)?;
    cluster.start(0, Variant::Yield, deadline)?;
    cluster.start(1, Variant::Yield, deadline)?;
    let body = "x".repeat(a.size);
    deliver_many(cluster.lmtp(0), 1, 0, "first", &body)?;
    wait_messages(cluster.imap(1), 1, deadline).context("B gets the first message")?;

    // Rows of the table: (phase, client latencies, drain seconds, A's pacing counters).
    let mut rows: Vec<(String, Vec<Duration>, Option<f64>, String)> = Vec::new();
    for round in 0..a.rounds.max(1) {
        let base = client_phase(a, cluster.imap(0), || {
            std::thread::sleep(Duration::from_secs(a.baseline_secs));
            Ok(())
        })?;
        let base: Vec<Duration> = base.iter().map(|s| s.latency).collect();
        println!(
            "round {round}: no backlog: {} client commands, latency {}",
            base.len(),
            summary_of(&base)
        );
        rows.push(("no backlog".into(), base, None, String::new()));
        // Alternate the order between rounds, so neither setting always runs on a warmer
        // cache or a quieter machine.
        let mut order = a.variants.clone();
        if round % 2 == 1 {
            order.reverse();
        }
        for yielding in order {
            let (lat, secs, pacing) =
                drain_phase(a, &mut cluster, round, yielding, &body, deadline)?;
            println!(
                "round {round}: drain, {yielding}: {secs:.2} s ({:.0} messages/s); {} client commands during it, latency {}; A: {pacing}",
                a.backlog as f64 / secs,
                lat.len(),
                summary_of(&lat),
            );
            rows.push((format!("drain, {yielding}"), lat, Some(secs), pacing));
        }
    }
    println!();
    println!(
        "| phase | client commands | latency p50 / p99 / max | drain of {} x {} B | rate | A's pacing counters |",
        a.backlog, a.size
    );
    println!("|---|---|---|---|---|---|");
    for (phase, lat, secs, pacing) in &rows {
        let (drain, rate) = match secs {
            Some(s) => (
                format!("{s:.2} s"),
                format!("{:.0} msg/s", a.backlog as f64 / s),
            ),
            None => (String::new(), String::new()),
        };
        println!(
            "| {phase} | {} | {} | {drain} | {rate} | {pacing} |",
            lat.len(),
            summary_of(lat)
        );
    }
    println!("{}", load_line());
    cluster.stop(0);
    cluster.stop(1);
    Ok(())
}

/// B stopped, a backlog of `a.backlog` delivered on A; both restarted with the switch (B
/// first, so A's shippers find it at their first dial: no reconnect back-off in the figure);
/// clients work on A from its start until B holds every message. Returns the clients'
/// latencies during the drain, the drain's seconds (from A's start) and A's pacing counters.
fn drain_phase(
    a: &Args,
    cluster: &mut Pair,
    round: usize,
    yielding: Variant,
    body: &str,
    deadline: Instant,
) -> Result<(Vec<Duration>, f64, String)> {
    cluster.stop(1);
    deliver_many(
        cluster.lmtp(0),
        4,
        a.backlog,
        &format!("backlog{round}-{}", yielding as u8),
        body,
    )?;
    let expected = messages(cluster.imap(0))?;
    cluster.stop(0);
    cluster.start(1, yielding, deadline)?;
    let t0 = Instant::now();
    cluster.start(0, yielding, deadline)?;
    let mut t1 = None;
    let imap_b = cluster.imap(1);
    let lat = client_phase(a, cluster.imap(0), || {
        wait_messages(imap_b, expected, deadline)?;
        t1 = Some(Instant::now());
        Ok(())
    })?;
    let t1 = t1.context("drain not timed")?;
    let during = lat
        .iter()
        .filter(|s| s.done >= t0 && s.done <= t1)
        .map(|s| s.latency)
        .collect();
    Ok((during, (t1 - t0).as_secs_f64(), cluster.pacing_line(0)?))
}

/// A drain's replication settings on both nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Yield,
    YieldLowPriority,
    NoYield,
}

impl std::str::FromStr for Variant {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Variant, String> {
        match s {
            "yield" => Ok(Variant::Yield),
            "yield-low-priority" => Ok(Variant::YieldLowPriority),
            "no-yield" => Ok(Variant::NoYield),
            other => Err(format!(
                "unknown variant {other:?} (yield, yield-low-priority, no-yield)"
            )),
        }
    }
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Variant::Yield => "replication_yield = true",
            Variant::YieldLowPriority => {
                "replication_yield = true, replication_yield_low_priority = true"
            }
            Variant::NoYield => "replication_yield = false",
        })
    }
}

/// One client command: when it completed and how long it took.
#[derive(Clone, Copy)]
struct Sample {
    done: Instant,
    latency: Duration,
}

/// Runs `a.clients` IMAP clients on `imap` while `during` runs (then stops them). Any client
/// failure fails the phase.
fn client_phase(
    a: &Args,
    imap: SocketAddr,
    during: impl FnOnce() -> Result<()>,
) -> Result<Vec<Sample>> {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for n in 0..a.clients {
        let (stop, started) = (stop.clone(), started.clone());
        let think = Duration::from_millis(a.think_ms);
        handles.push(std::thread::spawn(move || {
            client(imap, n, think, &stop, &started)
        }));
    }
    let t = Instant::now();
    while started.load(Ordering::SeqCst) < a.clients && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let r = during();
    stop.store(true, Ordering::SeqCst);
    let mut out = Vec::new();
    for h in handles {
        match h.join() {
            Ok(Ok(s)) => out.extend(s),
            Ok(Err(e)) => bail!("a client failed: {e:#}"),
            Err(_) => bail!("a client thread panicked"),
        }
    }
    r?;
    Ok(out)
}

/// Logs in, SELECTs INBOX, then loops over a command mix until `stop`: NOOP, FETCH of the
/// last 20 messages' flags, one body, STATUS, a flag change (a write: live replication).
fn client(
    imap: SocketAddr,
    n: usize,
    think: Duration,
    stop: &AtomicBool,
    started: &AtomicUsize,
) -> Result<Vec<Sample>> {
    let mut c = Line::connect(imap)?;
    c.line()?;
    c.command("l", &format!("LOGIN {USER} {PASSWORD}"))?;
    let exists = c
        .command("s", "SELECT INBOX")?
        .iter()
        .find_map(|l| l.strip_prefix("* ")?.strip_suffix(" EXISTS")?.parse().ok())
        .unwrap_or(1u32)
        .max(1);
    started.fetch_add(1, Ordering::SeqCst);
    let mut out = Vec::new();
    let mut i = 0u32;
    while !stop.load(Ordering::SeqCst) {
        let first = exists.saturating_sub(20).max(1);
        let cmd = match i % 5 {
            0 => "NOOP".to_string(),
            1 => format!("FETCH {first}:{exists} (UID FLAGS RFC822.SIZE)"),
            2 => format!("FETCH {} (BODY.PEEK[])", (i * 7 + n as u32) % exists + 1),
            3 => "STATUS INBOX (MESSAGES UNSEEN)".to_string(),
            _ => format!(
                "STORE 1 {}FLAGS ($Bench{n})",
                if i.is_multiple_of(2) { "+" } else { "-" }
            ),
        };
        let t = Instant::now();
        c.command(&format!("c{i}"), &cmd)?;
        out.push(Sample {
            done: Instant::now(),
            latency: t.elapsed(),
        });
        i += 1;
        std::thread::sleep(think);
    }
    let _ = c.command("z", "LOGOUT");
    Ok(out)
}

/// INBOX's message count on an IMAP server.
fn messages(imap: SocketAddr) -> Result<u64> {
    let mut c = Line::connect(imap)?;
    c.line()?;
    c.command("l", &format!("LOGIN {USER} {PASSWORD}"))?;
    let r = c.command("s", "STATUS INBOX (MESSAGES)")?;
    let _ = c.command("z", "LOGOUT");
    r.iter()
        .find_map(|l| {
            let at = l.find("(MESSAGES ")? + "(MESSAGES ".len();
            l[at..].split(')').next()?.trim().parse().ok()
        })
        .with_context(|| format!("no MESSAGES in {r:?}"))
}

/// Polls (every 100 ms) until INBOX holds `n` messages.
fn wait_messages(imap: SocketAddr, n: u64, deadline: Instant) -> Result<()> {
    loop {
        let have = messages(imap)?;
        if have >= n {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{have} of {n} messages by the deadline");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Delivers `count` messages over `conns` LMTP connections in parallel (several transactions
/// per connection; the deliveries share the store's group commits).
fn deliver_many(
    lmtp: SocketAddr,
    conns: usize,
    count: usize,
    prefix: &str,
    body: &str,
) -> Result<()> {
    let count = count.max(1);
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..conns.max(1))
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    let mut c = Line::connect(lmtp)?;
                    c.smtp("")?;
                    c.send("LHLO bench.local")?;
                    c.smtp("250")?;
                    loop {
                        let n = next.fetch_add(1, Ordering::SeqCst);
                        if n >= count {
                            break;
                        }
                        c.send("MAIL FROM:<bench@example.com>")?;
                        c.smtp("250")?;
                        c.send(&format!("RCPT TO:<{USER}@example.org>"))?;
                        c.smtp("250")?;
                        c.send("DATA")?;
                        c.smtp("354")?;
                        let msg = format!(
                            "From: bench <bench@example.com>\r\nTo: {USER}@example.org\r\nSubject: {prefix} {n}\r\nMessage-ID: <{prefix}-{n}@bench>\r\n\r\n{body}\r\n.\r\n"
                        );
                        c.send_raw(msg.as_bytes())?;
                        c.smtp("250")?;
                    }
                    let _ = c.send("QUIT");
                    Ok(())
                })
            })
            .collect();
        for h in hs {
            h.join()
                .map_err(|_| anyhow::anyhow!("a delivery thread panicked"))??;
        }
        Ok(())
    })
}

/// A blocking line client with a read timeout.
struct Line {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Line {
    fn connect(addr: SocketAddr) -> Result<Line> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .with_context(|| format!("connect {addr}"))?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        s.set_nodelay(true)?;
        Ok(Line {
            w: s.try_clone()?,
            r: BufReader::new(s),
        })
    }
    fn send_raw(&mut self, b: &[u8]) -> Result<()> {
        self.w.write_all(b).context("write")
    }
    fn send(&mut self, line: &str) -> Result<()> {
        self.send_raw(format!("{line}\r\n").as_bytes())
    }
    fn line(&mut self) -> Result<String> {
        let mut buf = Vec::new();
        let n = (&mut self.r)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut buf)
            .context("read")?;
        if n == 0 {
            bail!("connection closed by the server");
        }
        Ok(String::from_utf8_lossy(&buf)
            .trim_end_matches(['\r', '\n'])
            .to_string())
    }
    /// Skips an IMAP literal announced at the end of `line` (`{N}`).
    fn skip_literal(&mut self, line: &str) -> Result<()> {
        if let Some(n) = line
            .strip_suffix('}')
            .and_then(|l| l.rsplit_once('{'))
            .and_then(|(_, n)| n.parse::<usize>().ok())
        {
            if n > MAX_LINE {
                bail!("literal of {n} bytes");
            }
            let mut b = vec![0; n];
            self.r.read_exact(&mut b).context("literal")?;
        }
        Ok(())
    }
    /// Sends a tagged IMAP command; the untagged lines, or an error unless it answers OK.
    fn command(&mut self, tag: &str, cmd: &str) -> Result<Vec<String>> {
        self.send(&format!("{tag} {cmd}"))?;
        let mut lines = Vec::new();
        loop {
            let l = self.line()?;
            if let Some(rest) = l.strip_prefix(tag).and_then(|r| r.strip_prefix(' ')) {
                if rest.starts_with("OK") {
                    return Ok(lines);
                }
                bail!("{cmd}: {l}");
            }
            self.skip_literal(&l)?;
            lines.push(l);
        }
    }
    /// Reads an SMTP reply (multi-line aware) that must start with `code` (any if empty).
    fn smtp(&mut self, code: &str) -> Result<String> {
        loop {
            let l = self.line()?;
            if l.len() >= 4 && l.as_bytes()[3] == b'-' {
                continue;
            }
            if !l.starts_with(code) {
                bail!("expected {code}, got {l:?}");
            }
            return Ok(l);
        }
    }
}

/// Two nodes (index 0 = A, node id 1; 1 = B, node id 2) with certificates, configs and ports.
struct Pair {
    bin: PathBuf,
    dir: PathBuf,
    log: String,
    /// (imap, lmtp, replication) ports per node.
    ports: [(u16, u16, u16); 2],
    procs: [Option<Child>; 2],
    /// `replication_yield_max_wait` (ms) and `replication_yield_batch_records`.
    max_wait_ms: u64,
    busy_batch: usize,
}

impl Pair {
    fn new(a: &Args, bin: &Path, dir: &Path) -> Result<Pair> {
        let log = a.node_log.as_str();
        std::fs::write(
            dir.join("passwd"),
            format!("{USER}:{{PLAIN}}{PASSWORD}::::::\n"),
        )?;
        // Certificates the way an operator makes them.
        let ca_cfg = dir.join("ca.toml");
        std::fs::write(
            &ca_cfg,
            format!(
                "[storage]\ndata_dir = {}\n\n[cluster]\nnode_id = 1\ncerts_dir = {}\n",
                toml_str(&dir.join("unused")),
                toml_str(&dir.join("ca"))
            ),
        )?;
        let node = |args: &[&str]| -> Result<()> {
            let out = Command::new(bin)
                .arg("-c")
                .arg(&ca_cfg)
                .args(args)
                .output()
                .with_context(|| format!("run {}", bin.display()))?;
            if !out.status.success() {
                bail!(
                    "node {args:?}: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            Ok(())
        };
        node(&["cluster", "init"])?;
        for id in 1..=2 {
            let out = dir.join(format!("certs-{id}"));
            node(&[
                "cluster",
                "cert",
                &id.to_string(),
                "--hostname",
                "127.0.0.1",
                "--out",
                &out.display().to_string(),
            ])?;
            std::fs::copy(dir.join("ca").join("ca.pem"), out.join("ca.pem"))?;
        }
        let mut ports = [(0, 0, 0); 2];
        for p in &mut ports {
            *p = (free_port()?, free_port()?, free_port()?);
        }
        Ok(Pair {
            bin: bin.to_path_buf(),
            dir: dir.to_path_buf(),
            log: log.to_string(),
            ports,
            procs: [None, None],
            max_wait_ms: a.max_wait_ms,
            busy_batch: a.busy_batch,
        })
    }

    fn imap(&self, i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports[i].0))
    }
    fn lmtp(&self, i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports[i].1))
    }
    fn config_path(&self, i: usize) -> PathBuf {
        self.dir.join(format!("node{}.toml", i + 1))
    }

    fn config(&self, i: usize, v: Variant) -> String {
        let (max_wait_ms, busy_batch) = (self.max_wait_ms, self.busy_batch);
        let yielding = v != Variant::NoYield;
        let low = v == Variant::YieldLowPriority;
        let other = 1 - i;
        let sections = format!(
            r#"
[cluster]
node_id = {id}
listen = "127.0.0.1:{repl}"
durability = "local"
replication_yield = {yielding}
replication_yield_max_wait = "{max_wait_ms} msecs"
replication_yield_low_priority = {low}
replication_yield_batch_records = {busy_batch}
certs_dir = {certs}
peers = [{{ node_id = {oid}, address = "127.0.0.1:{orepl}" }}]
"#,
            id = i + 1,
            repl = self.ports[i].2,
            certs = toml_str(&self.dir.join(format!("certs-{}", i + 1))),
            oid = other + 1,
            orepl = self.ports[other].2,
        );
        node_config(&NodeConfig {
            written_by: "jepsen bench-backlog",
            passwd: &self.dir.join("passwd"),
            data: &self.dir.join(format!("data-{}", i + 1)),
            imap: self.ports[i].0,
            lmtp: self.ports[i].1,
            pop3: 0,
            sections,
        })
    }

    fn start(&mut self, i: usize, yielding: Variant, deadline: Instant) -> Result<()> {
        self.stop(i);
        let cfg = self.config_path(i);
        std::fs::write(&cfg, self.config(i, yielding))?;
        let log_path = self.dir.join(format!("node{}.log", i + 1));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        self.procs[i] = Some(spawn_node(&self.bin, &cfg, &self.dir, &self.log, log)?);
        let addrs = [self.imap(i), self.lmtp(i)];
        wait_accepting(
            self.procs[i].as_mut(),
            &addrs,
            deadline,
            &log_path,
            &format!("node {}", i + 1),
        )
    }

    fn stop(&mut self, i: usize) {
        if let Some(mut c) = self.procs[i].take() {
            stop_child(&mut c, Duration::from_secs(15));
        }
    }

    /// The pacing line of `node replication status` on node `i`.
    fn pacing_line(&self, i: usize) -> Result<String> {
        let out = Command::new(&self.bin)
            .arg("-c")
            .arg(self.config_path(i))
            .args(["replication", "status"])
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        Ok(text
            .lines()
            .find(|l| l.starts_with("yield to clients="))
            .map(|l| l.trim_start_matches("yield to clients=").to_string())
            .unwrap_or_else(|| format!("(no pacing line: {text})")))
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for p in self.procs.iter_mut() {
            if let Some(mut c) = p.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// Nearest-rank percentile of sorted durations.
fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary_of(lat: &[Duration]) -> String {
    let mut v = lat.to_vec();
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "{:.2} / {:.2} / {:.1} ms",
        ms(pct(&v, 50.0)),
        ms(pct(&v, 99.0)),
        ms(v.last().copied().unwrap_or_default())
    )
}

fn load_line() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!(
        "load average {} (nproc {nproc})",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(pct(&v, 50.0), Duration::from_millis(50));
        assert_eq!(pct(&v, 99.0), Duration::from_millis(99));
        assert_eq!(pct(&[], 99.0), Duration::ZERO);
    }

    #[test]
    fn node_configs_point_at_each_other_with_the_switch() {
        let p = Pair {
            bin: PathBuf::from("node"),
            dir: PathBuf::from("/tmp/x"),
            log: "info".into(),
            ports: [(1, 2, 3), (4, 5, 6)],
            procs: [None, None],
            max_wait_ms: 25,
            busy_batch: 100,
        };
        let a = p.config(0, Variant::NoYield);
        assert!(a.contains("listen = \"127.0.0.1:3\""), "{a}");
        assert!(a.contains("address = \"127.0.0.1:6\""), "{a}");
        assert!(a.contains("replication_yield = false"), "{a}");
        assert!(
            a.contains("replication_yield_max_wait = \"25 msecs\""),
            "{a}"
        );
        let b = p.config(1, Variant::YieldLowPriority);
        assert!(b.contains("replication_yield = true"), "{b}");
        assert!(b.contains("replication_yield_low_priority = true"), "{b}");
        assert!(
            b.contains("node_id = 2") && b.contains("address = \"127.0.0.1:3\""),
            "{b}"
        );
    }
}
