//! `jepsen bench-idle` (issue 4): many concurrent authenticated IMAP IDLE connections on one
//! node, the node's resident memory while they idle, and how long one LMTP delivery takes to
//! reach every idling connection as `* N EXISTS`.
//!
//! The node is the real release binary (`node serve --config`) with a generated configuration,
//! a passwd-file and a temporary data dir; the clients are tokio tasks in this process. Both
//! processes get RLIMIT_NOFILE raised (set here before the spawn; the child inherits it).

use crate::aconn::Conn;
use crate::compare::servers::{dovecot_config, DovecotConf};
use crate::node_proc::{free_port, node_config, spawn_node, wait_accepting, NodeConfig};
use crate::procinfo::{machine_line, proc_status, raise_nofile, tree_status, Mem};
use ::tests::dovecot::{mail_owner, stop_child, tail_file};
use anyhow::{bail, Context, Result};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch, Notify, Semaphore};

/// Longest server line the client accepts; longer ones are a protocol error.
const MAX_LINE: u64 = 8192;
/// Per-connection read buffer: an idling client reads a few short lines.
const CONN_BUF: usize = 1024;
/// Password of every generated user (stored as {PLAIN}: the benchmark measures idling, not
/// password hashing).
const PASSWORD: &str = "idlebench";

#[derive(clap::Args)]
pub struct Args {
    /// Concurrent IDLE connections to hold.
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,
    /// The node binary (default: `node` beside this executable, i.e. target/release/node).
    #[arg(long)]
    pub node: Option<PathBuf>,
    /// Users the connections are spread over (round-robin); the delivery goes to all of them
    /// in one LMTP transaction.
    #[arg(long, default_value_t = 1)]
    pub users: usize,
    /// Loopback source addresses 127.0.0.1..=127.0.0.N the connections are spread over, so
    /// ephemeral ports do not run short.
    #[arg(long, default_value_t = 4)]
    pub source_addrs: u8,
    /// Connections logging in at the same time.
    #[arg(long, default_value_t = 64)]
    pub parallel: usize,
    /// Give up (with a message saying where) after this many seconds in all.
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
    /// RUST_LOG for the node (its log goes to a file in the temporary directory).
    #[arg(long, default_value = "info")]
    pub node_log: String,
    /// Directory for the temporary data (removed afterwards).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Afterwards hold this many IDLE connections on Debian's Dovecot (`dovecot -F`, a
    /// process per connection) and print the memory of all its processes; 0 = skip.
    #[arg(long, default_value_t = 0)]
    pub compare_dovecot: usize,
    /// Deliveries (one message to every user each), one after another: each waits until
    /// every idling connection has seen the previous one's EXISTS, so every delivery meets
    /// the whole fan-out of its own and none of the previous one's.
    #[arg(long, default_value_t = 50)]
    pub deliveries: u32,
    /// Deliveries in the Dovecot comparison: its fan-out can take a polling interval (30 s)
    /// each when inotify is short (docs/performance.md, IDLE).
    #[arg(long, default_value_t = 1)]
    pub dovecot_deliveries: u32,
    /// Keep the temporary directory (configs, logs, data) and print its path.
    #[arg(long)]
    pub keep: bool,
}

pub fn run(a: Args) -> Result<()> {
    if a.connections == 0
        || a.users == 0
        || a.source_addrs == 0
        || a.parallel == 0
        || a.deliveries == 0
        || a.dovecot_deliveries == 0
    {
        bail!(
            "--connections, --users, --source-addrs, --parallel and --deliveries must be at \
             least 1"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(a.timeout_secs);
    // The client needs a socket per connection; the node also keeps two files open per
    // open user (measured: docs/performance.md, IDLE section).
    let want_fds = (a.connections.max(a.compare_dovecot) as u64) + 1024;
    let node_fds = want_fds + 2 * a.users.min(a.connections) as u64;
    let nofile = raise_nofile(node_fds)?;
    if nofile < node_fds {
        eprintln!(
            "warning: RLIMIT_NOFILE {nofile} is below the {node_fds} descriptors the node may \
             need (a socket per connection, two files per open user)"
        );
    }
    if nofile < want_fds {
        bail!(
            "RLIMIT_NOFILE is {nofile} and cannot be raised to {want_fds} for {} connections \
             (raise the hard limit: ulimit -Hn, or run with fewer --connections)",
            a.connections
        );
    }
    println!("machine: {}", machine_line());
    println!("rlimit_nofile: {nofile} (client and server)");

    let node_bin = match &a.node {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .context("locate this executable")?
            .with_file_name("node"),
    };
    if !node_bin.exists() {
        bail!(
            "node binary {} not found: cargo build --release -p node, or pass --node PATH",
            node_bin.display()
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;

    // Absolute: the paths go into the servers' configuration files.
    let base =
        std::fs::canonicalize(&a.dir).with_context(|| format!("--dir {}", a.dir.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix("bench-idle-")
        .tempdir_in(&base)
        .with_context(|| format!("temporary directory in {}", base.display()))?;
    let mut node = ServerProc::start_node(&node_bin, tmp.path(), &a, deadline)?;
    let result = rt.block_on(measure(
        &a,
        a.connections,
        a.deliveries,
        &node,
        deadline,
        "node",
    ));
    let stopped = node.stop();
    if let Err(e) = &result {
        print_log_problems("node", &node.log);
        eprintln!("--- node log (tail) ---\n{}", node.log_tail(40));
        if a.keep {
            eprintln!("kept: {}", tmp.keep().display());
        }
        return Err(anyhow::anyhow!("{e:#}"));
    }
    println!("node_stopped: {stopped}");
    print_log_problems("node", &node.log);

    if a.compare_dovecot > 0 {
        let dir = tmp.path().join("dovecot");
        let mut dc = ServerProc::start_dovecot(&dir, &a, deadline)?;
        let result = rt.block_on(measure(
            &a,
            a.compare_dovecot,
            a.dovecot_deliveries,
            &dc,
            deadline,
            "dovecot",
        ));
        let stopped = dc.stop();
        if let Err(e) = &result {
            eprintln!("--- dovecot log (tail) ---\n{}", dc.log_tail(40));
            return Err(anyhow::anyhow!("dovecot: {e:#}"));
        }
        println!("dovecot_stopped: {stopped}");
        print_log_problems("dovecot", &dc.log);
    }

    if a.keep {
        println!("kept: {}", tmp.keep().display());
    }
    Ok(())
}

/// Prints how many warning/error lines a server logged, and the first few: a figure from a
/// run whose server complained is worth a second look.
fn print_log_problems(label: &str, log: &Path) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let bad: Vec<&str> = text
        .lines()
        .filter(|l| {
            [
                " WARN ", " ERROR ", "Warning:", "Error:", "Fatal:", "Panic:",
            ]
            .iter()
            .any(|w| l.contains(w))
        })
        .collect();
    println!("{label}_log_warnings_and_errors: {}", bad.len());
    for l in bad.iter().take(3) {
        let cut: String = l.chars().take(240).collect();
        println!("{label}_log: {cut}");
    }
}

/// Phases of one measurement against a running server (ours or Dovecot).
async fn measure(
    a: &Args,
    n: usize,
    deliveries: u32,
    server: &dyn Server,
    deadline: Instant,
    label: &str,
) -> Result<()> {
    let before = server.rss()?;
    println!(
        "{label}_rss_before_mib: {:.1} ({} processes)",
        kib_to_mib(before.rss_kib),
        before.processes
    );

    let shared = Arc::new(Shared {
        imap: server.imap_addr(),
        users: a.users,
        sources: a.source_addrs,
        login_slots: Semaphore::new(a.parallel),
        exists: (0..deliveries).map(|_| AtomicUsize::new(0)).collect(),
        exists_notify: Notify::new(),
    });
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<Result<(), String>>();
    let (finish_tx, finish_rx) = watch::channel(false);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let shared = shared.clone();
        let ready = ready_tx.clone();
        let finish = finish_rx.clone();
        tasks.spawn(connection(i, shared, ready, finish));
    }
    drop(ready_tx);

    // Phase 1: every connection logged in, INBOX selected, "+ idling" received.
    let (mut idling, mut failed, mut first_errors) = (0usize, 0usize, Vec::new());
    let mut last_progress = Instant::now();
    while idling + failed < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ready_rx.recv()).await {
            Ok(Some(Ok(()))) => idling += 1,
            Ok(Some(Err(e))) => {
                failed += 1;
                if first_errors.len() < 5 {
                    first_errors.push(e);
                }
            }
            Ok(None) => break,
            Err(_) => {
                finish_tx.send_replace(true);
                tasks.abort_all();
                bail!(
                    "timed out establishing connections: {idling} of {n} idling, {failed} failed \
                     after {:.1} s",
                    started.elapsed().as_secs_f64()
                );
            }
        }
        if last_progress.elapsed() >= Duration::from_secs(5) {
            last_progress = Instant::now();
            eprintln!("{label}: {idling} idling, {failed} failed ...");
        }
    }
    let establish = started.elapsed();
    for e in &first_errors {
        println!("{label}_connection_error: {e}");
    }
    if idling == 0 {
        finish_tx.send_replace(true);
        tasks.abort_all();
        bail!("no connection reached IDLE ({failed} failed)");
    }
    // Let the server settle (sessions finish their post-IDLE sync) before reading memory.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_mem = server.rss()?;
    println!("{label}_connections: {idling} idling of {n} ({failed} failed)");
    println!(
        "{label}_establish_secs: {:.2} ({:.0} logins/s, {} at a time)",
        establish.as_secs_f64(),
        idling as f64 / establish.as_secs_f64(),
        a.parallel
    );
    println!(
        "{label}_rss_mib: {:.1} (PSS {:.1}; peak VmHWM {:.1}; {} processes; {} threads; {} fds)",
        kib_to_mib(idle_mem.rss_kib),
        kib_to_mib(idle_mem.pss_kib),
        kib_to_mib(idle_mem.hwm_kib),
        idle_mem.processes,
        idle_mem.threads,
        idle_mem.fds
    );
    println!(
        "{label}_kib_per_connection: {:.1} (RSS / connections); {:.1} (RSS growth / \
         connections); {:.1} (PSS / connections)",
        idle_mem.rss_kib as f64 / idling as f64,
        idle_mem.rss_kib.saturating_sub(before.rss_kib) as f64 / idling as f64,
        idle_mem.pss_kib as f64 / idling as f64
    );

    // Phase 2: deliveries one after another, each timed until every idling connection saw
    // its EXISTS. The LMTP client runs on its own thread and runtime, so its reply is not
    // read behind this process's thousands of connection tasks.
    let mut rounds: Vec<Round> = Vec::with_capacity(deliveries as usize);
    for n in 1..=deliveries {
        let (lmtp, users, domain) = (server.lmtp_addr(), a.users, server.domain().to_string());
        let sent = tokio::task::spawn_blocking(move || -> Result<Delivery> {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("LMTP client runtime")?
                .block_on(deliver_to_all(lmtp, users, &domain, n))
        })
        .await
        .context("LMTP client thread")??;
        let fanout_deadline = (Instant::now() + Duration::from_secs(120)).min(deadline);
        let seen = &shared.exists[n as usize - 1];
        let all_seen = loop {
            let notified = shared.exists_notify.notified();
            if seen.load(Ordering::Acquire) >= idling {
                break Some(Instant::now());
            }
            if tokio::time::timeout_at(fanout_deadline.into(), notified)
                .await
                .is_err()
            {
                break None;
            }
        };
        rounds.push(Round {
            data_end: sent.data_end,
            ack: sent.acked.duration_since(sent.data_end),
        });
        if all_seen.is_none() {
            println!(
                "{label}_delivery_{n}: only {} of {idling} idling connections got * {n} EXISTS \
                 within the wait; stopping the deliveries",
                seen.load(Ordering::Acquire)
            );
            break;
        }
    }
    let after_mem = server.rss()?;

    // Phase 3: DONE + LOGOUT everywhere.
    finish_tx.send_replace(true);
    // got[n - 1]: per connection, delivery n's end of DATA until its EXISTS.
    let mut got: Vec<Vec<Duration>> = vec![Vec::with_capacity(idling); rounds.len()];
    let mut logged_out = 0usize;
    let end_deadline = (Instant::now() + Duration::from_secs(60)).min(deadline);
    loop {
        match tokio::time::timeout_at(end_deadline.into(), tasks.join_next()).await {
            Ok(Some(Ok(r))) => {
                for (i, round) in rounds.iter().enumerate() {
                    if let Some(t) = r.exists_at.get(i).copied().flatten() {
                        got[i].push(t.saturating_duration_since(round.data_end));
                    }
                }
                logged_out += usize::from(r.logged_out);
            }
            Ok(Some(Err(_))) => {} // a task panicked or was aborted: counted as missing below
            Ok(None) => break,
            Err(_) => {
                tasks.abort_all();
                println!("{label}_logout: timed out; remaining connections dropped");
                break;
            }
        }
    }
    let complete = got.iter().filter(|g| g.len() >= idling).count();
    let mut acks: Vec<Duration> = rounds.iter().map(|r| r.ack).collect();
    let mut last: Vec<Duration> = got.iter().filter_map(|g| g.iter().max().copied()).collect();
    let mut every: Vec<Duration> = got.iter().flatten().copied().collect();
    acks.sort();
    last.sort();
    every.sort();
    println!(
        "{label}_deliveries: {} ({complete} reached all {idling} idling connections); \
         {} recipient(s) each",
        rounds.len(),
        a.users
    );
    println!(
        "{label}_lmtp_ack_ms (end of DATA until the last 250): p50 {} p99 {} max {}",
        pct_ms(&acks, 50.0),
        pct_ms(&acks, 99.0),
        pct_ms(&acks, 100.0)
    );
    println!(
        "{label}_last_idler_ms (end of DATA until the last connection's EXISTS, per delivery): \
         p50 {} p99 {} max {}",
        pct_ms(&last, 50.0),
        pct_ms(&last, 99.0),
        pct_ms(&last, 100.0)
    );
    println!(
        "{label}_fanout_ms (end of DATA until each connection's EXISTS, all deliveries): p50 {} \
         p99 {} max {}",
        pct_ms(&every, 50.0),
        pct_ms(&every, 99.0),
        pct_ms(&every, 100.0)
    );
    if let Some(log) = server.delivery_log() {
        let mut ms = delivery_times(&std::fs::read_to_string(log).unwrap_or_default());
        ms.sort_unstable();
        let p = |q: f64| -> String {
            if ms.is_empty() {
                return "-".into();
            }
            let rank = ((q / 100.0) * ms.len() as f64).ceil() as usize;
            ms[rank.clamp(1, ms.len()) - 1].to_string()
        };
        println!(
            "{label}_lmtp_delivery_time_ms (the node's own log, per recipient): {} lines, p50 {} \
             p99 {} max {}",
            ms.len(),
            p(50.0),
            p(99.0),
            p(100.0)
        );
    }
    println!(
        "{label}_rss_after_fanout_mib: {:.1} (peak VmHWM {:.1})",
        kib_to_mib(after_mem.rss_kib),
        kib_to_mib(after_mem.hwm_kib)
    );
    println!("{label}_logged_out: {logged_out} of {idling}");
    if complete < deliveries as usize {
        bail!(
            "{} of {} deliveries did not reach every idling connection within the fan-out wait",
            deliveries as usize - complete,
            deliveries
        );
    }
    Ok(())
}

/// One delivery of phase 2.
struct Round {
    data_end: Instant,
    ack: Duration,
}

/// `delivery_time=N` (ms) of every `saved mail` line of the node's LMTP log: the server's own
/// view of a delivery, from the recipient's start to its durable commit.
fn delivery_times(log: &str) -> Vec<u64> {
    log.lines()
        .filter(|l| l.contains("saved mail to"))
        .filter_map(|l| {
            let v = l.split("delivery_time=").nth(1)?;
            v.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
        })
        .collect()
}

fn pct_ms(sorted: &[Duration], p: f64) -> String {
    if sorted.is_empty() {
        return "-".into();
    }
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let d = sorted[rank.clamp(1, sorted.len()) - 1];
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn kib_to_mib(k: u64) -> f64 {
    k as f64 / 1024.0
}

/// State every connection task shares with the driver.
struct Shared {
    imap: SocketAddr,
    users: usize,
    sources: u8,
    login_slots: Semaphore,
    /// `exists[n - 1]`: connections that have seen `* n EXISTS` (delivery n).
    exists: Vec<AtomicUsize>,
    exists_notify: Notify,
}

struct ConnResult {
    /// `exists_at[n - 1]`: when `* n EXISTS` arrived.
    exists_at: Vec<Option<Instant>>,
    logged_out: bool,
}

/// One client: log in, SELECT INBOX, IDLE; report ready; note when `* N EXISTS` arrives;
/// on the finish signal DONE + LOGOUT.
async fn connection(
    i: usize,
    shared: Arc<Shared>,
    ready: mpsc::UnboundedSender<Result<(), String>>,
    mut finish: watch::Receiver<bool>,
) -> ConnResult {
    let mut out = ConnResult {
        exists_at: vec![None; shared.exists.len()],
        logged_out: false,
    };
    let mut c = match establish(i, &shared).await {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(format!("connection {i}: {e:#}")));
            return out;
        }
    };
    let _ = ready.send(Ok(()));
    drop(ready);

    loop {
        tokio::select! {
            line = c.line() => match line {
                Ok(l) => if let Some(n) = new_exists(&l) {
                    let at = Instant::now();
                    // Each delivery adds one message to every INBOX: `* n EXISTS` is delivery n.
                    if let Some(slot) = out.exists_at.get_mut(n as usize - 1) {
                        slot.get_or_insert(at);
                        shared.exists[n as usize - 1].fetch_add(1, Ordering::AcqRel);
                        shared.exists_notify.notify_one();
                    }
                    if n as usize >= shared.exists.len() {
                        break;
                    }
                }
                // "* OK Still here", "* 1 RECENT", ... are skipped above.
                Err(_) => return out,
            },
            _ = finish.wait_for(|f| *f) => break,
        }
    }
    if finish.wait_for(|f| *f).await.is_err() {
        return out;
    }
    out.logged_out = async {
        c.send("DONE").await?;
        c.until_tagged("c").await?;
        c.send("d LOGOUT").await?;
        c.until_tagged("d").await
    }
    .await
    .is_ok();
    out
}

/// N of `* N EXISTS` with N > 0: the mailbox starts empty, so this is delivery N.
fn new_exists(line: &str) -> Option<u32> {
    let mut w = line.split_ascii_whitespace();
    match (
        w.next(),
        w.next().and_then(|n| n.parse::<u32>().ok()),
        w.next(),
        w.next(),
    ) {
        (Some("*"), Some(n), Some(e), None) if n > 0 && e.eq_ignore_ascii_case("EXISTS") => Some(n),
        _ => None,
    }
}

async fn establish(i: usize, shared: &Shared) -> Result<Conn> {
    let _slot = shared
        .login_slots
        .acquire()
        .await
        .context("login slots closed")?;
    let src = Ipv4Addr::new(127, 0, 0, 1 + (i % shared.sources as usize) as u8);
    let stream = connect_from(src, shared.imap).await?;
    let mut c = Conn::new(stream, CONN_BUF, MAX_LINE);
    let greeting = c.line().await.context("greeting")?;
    if !greeting.starts_with("* OK") {
        bail!("greeting {greeting:?}");
    }
    let user = user_name(i % shared.users);
    c.send(&format!("a LOGIN {user} {PASSWORD}")).await?;
    c.until_tagged("a").await.context("LOGIN")?;
    c.send("b SELECT INBOX").await?;
    c.until_tagged("b").await.context("SELECT INBOX")?;
    c.send("c IDLE").await?;
    loop {
        let l = c.line().await.context("IDLE")?;
        if l.starts_with('+') {
            return Ok(c);
        }
        if l.starts_with("c ") {
            bail!("IDLE refused: {l}");
        }
    }
}

async fn connect_from(src: Ipv4Addr, dst: SocketAddr) -> Result<TcpStream> {
    let timeout = Duration::from_secs(30);
    let fut = async {
        if src == Ipv4Addr::LOCALHOST {
            return TcpStream::connect(dst).await;
        }
        let s = TcpSocket::new_v4()?;
        s.bind(SocketAddr::new(IpAddr::V4(src), 0))?;
        s.connect(dst).await
    };
    tokio::time::timeout(timeout, fut)
        .await
        .with_context(|| format!("connect {src} -> {dst}: timed out"))?
        .with_context(|| format!("connect {src} -> {dst}"))
}

fn user_name(u: usize) -> String {
    format!("idle{u}")
}

struct Delivery {
    /// When the end of DATA (".") had been written: the fan-out clock starts here.
    data_end: Instant,
    /// When the last per-recipient LMTP reply arrived (the delivery was acknowledged durable).
    acked: Instant,
}

/// Recipients per LMTP transaction: well under the node's limit (500, protocols/src/lmtp).
const RCPTS_PER_TRANSACTION: usize = 50;

/// One message to every generated user: transactions of [`RCPTS_PER_TRANSACTION`] recipients
/// on concurrent LMTP connections. The clock starts at the first end of DATA and the
/// acknowledgement is the last transaction's last reply.
/// `n` numbers the delivery: its Message-ID differs from every other delivery's, so the
/// node's duplicate suppression (same Message-ID, sender, recipient and body) saves each.
async fn deliver_to_all(addr: SocketAddr, users: usize, domain: &str, n: u32) -> Result<Delivery> {
    let names: Vec<String> = (0..users).map(user_name).collect();
    let mut set = tokio::task::JoinSet::new();
    for chunk in names.chunks(RCPTS_PER_TRANSACTION) {
        let rcpts: Vec<String> = chunk.iter().map(|u| format!("{u}@{domain}")).collect();
        set.spawn(lmtp_deliver(addr, rcpts, n));
    }
    let mut all: Option<Delivery> = None;
    while let Some(r) = set.join_next().await {
        let d = r.context("LMTP task")??;
        all = Some(match all {
            None => d,
            Some(a) => Delivery {
                data_end: a.data_end.min(d.data_end),
                acked: a.acked.max(d.acked),
            },
        });
    }
    all.context("no recipients")
}

/// One LMTP transaction delivering the benchmark message to `rcpts`.
async fn lmtp_deliver(addr: SocketAddr, rcpts: Vec<String>, n: u32) -> Result<Delivery> {
    let fut = async {
        let s = TcpStream::connect(addr).await.context("connect LMTP")?;
        let mut c = Conn::new(s, CONN_BUF, MAX_LINE);
        c.smtp_reply(220).await.context("LMTP greeting")?;
        c.send("LHLO bench.example.org").await?;
        c.smtp_reply(250).await.context("LHLO")?;
        c.send("MAIL FROM:<bench@example.com>").await?;
        c.smtp_reply(250).await.context("MAIL FROM")?;
        for r in &rcpts {
            c.send(&format!("RCPT TO:<{r}>")).await?;
            c.smtp_reply(250).await.context("RCPT TO")?;
        }
        c.send("DATA").await?;
        c.smtp_reply(354).await.context("DATA")?;
        let msg = format!(
            "From: bench@example.com\r\nTo: idle@example.org\r\n\
             Subject: idle fan-out {n}\r\nMessage-ID: <idle-fanout-{n}@bench>\r\n\r\n\
             One message to wake every idling client.\r\n.\r\n"
        );
        c.send_raw(msg.as_bytes()).await.context("write DATA")?;
        let data_end = Instant::now();
        for _ in &rcpts {
            c.smtp_reply(250).await.context("LMTP reply after DATA")?;
        }
        let acked = Instant::now();
        c.send("QUIT").await?;
        let _ = c.smtp_reply(221).await;
        Ok(Delivery { data_end, acked })
    };
    tokio::time::timeout(Duration::from_secs(60), fut)
        .await
        .context("LMTP delivery timed out")?
}

/// What [`measure`] needs from the server under test.
trait Server: Sync {
    fn imap_addr(&self) -> SocketAddr;
    fn lmtp_addr(&self) -> SocketAddr;
    /// Domain of the LMTP recipients (`user@domain`).
    fn domain(&self) -> &str;
    fn rss(&self) -> Result<Mem>;
    /// The log whose LMTP lines carry `delivery_time=` (ours); None where there is none.
    fn delivery_log(&self) -> Option<&Path> {
        None
    }
}

/// Which server a [`ServerProc`] is: how its memory is counted and where deliveries are logged.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// The release `node serve --config`: one process, its log carries `delivery_time=`.
    Node,
    /// Debian's Dovecot 2.3 (`dovecot -F -c GENERATED`): a process per IMAP connection.
    Dovecot,
}

/// A server child listening on loopback IMAP and LMTP: killed if still running when dropped.
struct ServerProc {
    kind: Kind,
    child: Option<Child>,
    pid: u32,
    imap: SocketAddr,
    lmtp: SocketAddr,
    log: PathBuf,
}

/// A passwd-file with the benchmark's users, all with [`PASSWORD`].
fn write_passwd(path: &Path, users: usize) -> Result<()> {
    let mut lines = String::new();
    for u in 0..users {
        lines.push_str(&format!("{}:{{PLAIN}}{PASSWORD}::::::\n", user_name(u)));
    }
    Ok(std::fs::write(path, lines)?)
}

impl ServerProc {
    /// Takes `child` over and waits until it accepts on both ports.
    fn started(
        kind: Kind,
        child: Child,
        (imap_port, lmtp_port): (u16, u16),
        log: PathBuf,
        deadline: Instant,
    ) -> Result<ServerProc> {
        let mut server = ServerProc {
            kind,
            pid: child.id(),
            child: Some(child),
            imap: SocketAddr::from(([127, 0, 0, 1], imap_port)),
            lmtp: SocketAddr::from(([127, 0, 0, 1], lmtp_port)),
            log,
        };
        let what = match kind {
            Kind::Node => "node",
            Kind::Dovecot => "dovecot",
        };
        wait_accepting(
            server.child.as_mut(),
            &[server.imap, server.lmtp],
            deadline,
            &server.log,
            what,
        )?;
        Ok(server)
    }

    fn start_node(bin: &Path, dir: &Path, a: &Args, deadline: Instant) -> Result<ServerProc> {
        let data = dir.join("data");
        std::fs::create_dir_all(&data)?;
        let passwd = dir.join("passwd");
        write_passwd(&passwd, a.users)?;
        let ports = (free_port()?, free_port()?);
        let config = dir.join("node.toml");
        let written_by = format!("jepsen bench-idle for {} IDLE connections", a.connections);
        std::fs::write(
            &config,
            node_config(&NodeConfig {
                written_by: &written_by,
                passwd: &passwd,
                data: &data,
                imap: ports.0,
                lmtp: ports.1,
                pop3: 0,
                sections: String::new(),
            }),
        )?;
        let log = dir.join("node.log");
        let child = spawn_node(bin, &config, dir, &a.node_log, std::fs::File::create(&log)?)?;
        ServerProc::started(Kind::Node, child, ports, log, deadline)
    }

    fn start_dovecot(dir: &Path, a: &Args, deadline: Instant) -> Result<ServerProc> {
        let bin = Path::new("/usr/sbin/dovecot");
        if !bin.exists() {
            bail!("--compare-dovecot needs /usr/sbin/dovecot (apt-get install dovecot-imapd dovecot-lmtpd)");
        }
        let mail = dir.join("mail");
        for d in ["run", "state", "mail"] {
            std::fs::create_dir_all(dir.join(d))?;
        }
        let passwd = dir.join("passwd");
        write_passwd(&passwd, a.users)?;
        let mail_user = mail_owner(dir, &[&mail])?;
        let (imap_port, lmtp_port) = (free_port()?, free_port()?);
        let conf = dir.join("dovecot.conf");
        let log = dir.join("dovecot.log");
        std::fs::write(
            &conf,
            dovecot_config(&DovecotConf {
                written_by: &format!(
                    "jepsen bench-idle for {} IDLE connections",
                    a.compare_dovecot
                ),
                dir,
                passwd: &passwd,
                mail_user: &mail_user,
                mail_location: format!("maildir:{}/%n", mail.display()),
                imap: imap_port,
                pop3: 0,
                lmtp: lmtp_port,
                n: a.compare_dovecot,
            }),
        )?;
        let logf = std::fs::File::create(&log)?;
        let child = Command::new(bin)
            .arg("-F")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(logf.try_clone()?)
            .stderr(logf)
            .spawn()
            .context("spawn dovecot -F")?;
        ServerProc::started(Kind::Dovecot, child, (imap_port, lmtp_port), log, deadline)
    }

    fn log_tail(&self, lines: usize) -> String {
        tail_file(&self.log, lines)
    }

    /// SIGTERM (graceful: sessions get BYE), SIGKILL after 15 s. Returns how it ended.
    fn stop(&mut self) -> String {
        let Some(mut child) = self.child.take() else {
            return "not running".into();
        };
        stop_child(&mut child, Duration::from_secs(15))
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Server for ServerProc {
    fn imap_addr(&self) -> SocketAddr {
        self.imap
    }
    fn lmtp_addr(&self) -> SocketAddr {
        self.lmtp
    }
    fn domain(&self) -> &str {
        "example.org"
    }
    fn rss(&self) -> Result<Mem> {
        match self.kind {
            Kind::Node => proc_status(self.pid),
            Kind::Dovecot => tree_status(self.pid),
        }
    }
    fn delivery_log(&self) -> Option<&Path> {
        (self.kind == Kind::Node).then_some(self.log.as_path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exists_line_is_recognised_only_for_a_delivery() {
        assert_eq!(new_exists("* 1 EXISTS"), Some(1));
        assert_eq!(new_exists("* 12 exists"), Some(12));
        assert_eq!(new_exists("* 0 EXISTS"), None);
        assert_eq!(new_exists("* 1 RECENT"), None);
        assert_eq!(new_exists("* OK Still here"), None);
        assert_eq!(new_exists("* 1 EXISTS extra"), None);
        assert_eq!(new_exists("* x EXISTS"), None);
    }

    #[test]
    fn delivery_times_come_from_saved_mail_lines_only() {
        let log = "2026 INFO lmtp: msgid=<a>: from=<b>, size=1, session=<x>, delivery_time=12: \
                   saved mail to INBOX\n\
                   2026 INFO lmtp: delivery_time=7: duplicate delivery, already saved to INBOX as uid 1\n\
                   2026 INFO lmtp: delivery_time=3: saved mail to Spam\n";
        assert_eq!(delivery_times(log), vec![12, 3]);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(pct_ms(&v, 50.0), "50.0");
        assert_eq!(pct_ms(&v, 99.0), "99.0");
        assert_eq!(pct_ms(&v, 100.0), "100.0");
        assert_eq!(pct_ms(&v[..1], 99.0), "1.0");
        assert_eq!(pct_ms(&[], 50.0), "-");
    }
}
