//! `jepsen test`: fault injection in the manner of Jepsen against a `node lab`. A black box:
//! the lab is driven by the `node` binary and the nodes by IMAP and LMTP only.
//!
//! One job per module: [`lab`] the lab's commands, [`netns`] threads in its namespaces,
//! [`wire`] and [`imap_parse`] the protocols, [`workload`] the clients, [`nemesis`] the
//! faults, [`history`] what happened, [`dump`] the final state, [`checker`] the invariants,
//! [`report`] and [`svg`] the results.

pub mod checker;
pub mod dump;
pub mod history;
pub mod imap_parse;
pub mod lab;
pub mod nemesis;
pub mod netns;
pub mod report;
pub mod svg;
pub mod wire;
pub mod workload;

use anyhow::{bail, Context, Result};
use history::Recorder;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Seconds of workload (faults are injected during it).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(5..=3600))]
    time: u64,
    /// A fault, a comma-separated list, `mixed` (two at once), `all` (each in turn, then
    /// mixed) or `none`. Faults: crash, pause, partition, partition-split, flap, loss,
    /// latency, clock, disk.
    #[arg(long, default_value = "all")]
    nemesis: String,
    /// A workload, a comma-separated list or `all`: lmtp, append, flags, expunge-move, reader.
    #[arg(long, default_value = "all")]
    workload: String,
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(2..=3))]
    nodes: u32,
    /// The run's directory (history, report, picture; the lab under DIR/lab). Must be new or
    /// empty.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Passed to `node lab up --mode` (e.g. raft, once the lab has it).
    #[arg(long)]
    mode: Option<String>,
    /// The node binary (default: `node` beside this binary, or $NODE_BIN).
    #[arg(long, env = "NODE_BIN")]
    node_bin: Option<PathBuf>,
    /// Seconds without faults before each fault window.
    #[arg(long, default_value_t = 2.0)]
    quiet: f64,
    /// Seconds each fault is in force.
    #[arg(long, default_value_t = 4.0)]
    window: f64,
    /// Operations per second per client.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Which node the faults hit: `active` (the holder of the service address) or `any`
    /// (every other window a passive node).
    #[arg(long, default_value = "active", value_parser = ["active", "any"])]
    target: String,
    /// Namespace prefix of the lab (several runs side by side need different ones).
    #[arg(long)]
    prefix: Option<String>,
}

/// What a run saw at its end (DIR/final-state.json), so `jepsen check` can check it again.
#[derive(serde::Serialize, serde::Deserialize)]
struct Final {
    active: Option<u32>,
    dumps: BTreeMap<u32, Result<dump::NodeDump, String>>,
    facts: BTreeMap<u32, checker::NodeFacts>,
}

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// A run directory of `jepsen test` (history.jsonl and final-state.json).
    #[arg(long)]
    dir: PathBuf,
}

/// `jepsen check --dir DIR`: the checkers again over a recorded run (no lab needed).
pub fn check(a: CheckArgs) -> Result<()> {
    let events = history::read_jsonl(&a.dir.join("history.jsonl"))
        .with_context(|| format!("cannot read {}/history.jsonl", a.dir.display()))?;
    let path = a.dir.join("final-state.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let f: Final = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a final state", path.display()))?;
    let verdicts = checker::check_all(&checker::Input {
        history: &events,
        active: f.active,
        dumps: &f.dumps,
        facts: &f.facts,
    });
    // The picture again (a run of an older harness may have a huge one), with the fault
    // windows its report recorded.
    if let Ok(text) = std::fs::read_to_string(a.dir.join("report.json")) {
        #[derive(serde::Deserialize)]
        struct Recorded {
            nodes: u32,
            nemeses: Vec<String>,
            faults: Vec<nemesis::schedule::Window>,
        }
        if let Ok(r) = serde_json::from_str::<Recorded>(&text) {
            std::fs::write(
                a.dir.join("latency.svg"),
                svg::render(
                    &events,
                    &r.faults,
                    &format!("{} nodes, nemeses {}", r.nodes, r.nemeses.join(",")),
                ),
            )
            .with_context(|| format!("cannot write {}/latency.svg", a.dir.display()))?;
        }
    }
    for v in &verdicts {
        println!(
            "{:<18} {}  {}",
            v.name,
            if v.pass { "pass" } else { "FAIL" },
            v.counts
                .iter()
                .map(|(k, n)| format!("{k}={n}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        for p in &v.problems {
            println!("    {p}");
        }
    }
    if verdicts.iter().any(|v| !v.pass) {
        bail!("invariants violated in {}", a.dir.display());
    }
    Ok(())
}

/// How long replicas get to converge after healing.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(60);
/// Set by SIGINT/SIGTERM: the run stops early but still heals, checks and tears down.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    INTERRUPTED.store(true, Ordering::SeqCst);
}

#[allow(unsafe_code)]
fn catch_interrupts() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic.
        unsafe {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
}

/// How long the active node has after healing to take a write again.
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);
/// Clients stop within a few I/O timeouts of the deadline.
const JOIN_GRACE: Duration = Duration::from_secs(30);

fn names(arg: &str, all: &[&str], extra: &[&str]) -> Result<Vec<String>> {
    if arg == "none" {
        return Ok(vec![]);
    }
    if arg == "all" {
        let mut v: Vec<String> = all.iter().map(|s| s.to_string()).collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        return Ok(v);
    }
    let v: Vec<String> = arg.split(',').map(|s| s.trim().to_string()).collect();
    for n in &v {
        if !all.contains(&n.as_str()) && !extra.contains(&n.as_str()) {
            bail!("unknown name {n:?}: one of {all:?} {extra:?}, all");
        }
    }
    Ok(v)
}

fn node_bin(arg: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(p) = arg {
        return Ok(p);
    }
    let me = std::env::current_exe().context("cannot find this binary's path")?;
    let p = me.with_file_name("node");
    if !p.is_file() {
        bail!(
            "no node binary at {}: build it (cargo build -p node) or give --node-bin",
            p.display()
        );
    }
    Ok(p)
}

fn prepare_dir(dir: &Path) -> Result<()> {
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!("{} is not empty: give a new --dir", dir.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

fn init_logging(dir: &Path) -> Result<()> {
    let file = std::fs::File::create(dir.join("jepsen.log"))?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // The terminal has the progress bar; the log goes to the run directory.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(Mutex::new(file))
        .try_init();
    Ok(())
}

#[allow(unsafe_code)]
pub fn run(a: Args) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("not root: the lab makes network namespaces; run jepsen test as root");
    }
    let nemeses = names(&a.nemesis, nemesis::ALL, &["mixed"])?;
    let workloads = names(&a.workload, workload::ALL, &[])?;
    if workloads.is_empty() {
        bail!("no workload");
    }
    let dir = a.dir.clone().unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        PathBuf::from(format!("/tmp/jepsen/run-{t}"))
    });
    prepare_dir(&dir)?;
    let dir = dir.canonicalize()?;
    init_logging(&dir)?;
    let node_bin = node_bin(a.node_bin.clone())?;
    let (faketime, disk) = nemesis::needs(&nemeses);
    let opts = lab::UpOptions {
        nodes: a.nodes,
        prefix: a
            .prefix
            .clone()
            .unwrap_or_else(|| format!("jep{}", std::process::id() % 100_000)),
        mode: a.mode.clone(),
        faketime,
        // Room for a few thousand small messages and the store's files; small enough to fill fast.
        tmpfs_mb: disk.then_some(128),
    };
    println!(
        "jepsen test: {} nodes, {} s, workloads {}, nemeses {}; run directory {}",
        a.nodes,
        a.time,
        workloads.join(","),
        if nemeses.is_empty() {
            "none".into()
        } else {
            nemeses.join(",")
        },
        dir.display()
    );
    // ^C must not leave namespaces and nodes behind: stop, heal, check, tear down.
    catch_interrupts();
    let t_up = Instant::now();
    let mut the_lab = lab::Lab::up(&node_bin, &dir.join("lab"), &opts)?;
    println!("lab up in {:.1} s", t_up.elapsed().as_secs_f64());
    let result = run_with_lab(&a, &the_lab, &dir, &workloads, &nemeses);
    // Always down (the guard would too); its failure is reported after the run's own.
    let down = the_lab.down();
    let valid = result?;
    down?;
    if !valid {
        bail!(
            "invariants violated: see {}",
            dir.join("report.md").display()
        );
    }
    Ok(())
}

/// Runs workloads and faults, heals, reads the final state, checks; whether all passed.
fn run_with_lab(
    a: &Args,
    lab: &lab::Lab,
    dir: &Path,
    workloads: &[String],
    nemeses: &[String],
) -> Result<bool> {
    let start = Instant::now();
    let rec = Recorder::new(start);
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = start + Duration::from_secs(a.time);
    let pace = Duration::from_secs_f64(1.0 / a.rate.clamp(0.1, 1000.0));
    let max_ops = ((a.time as f64) * a.rate.clamp(0.1, 1000.0)) as usize + 1;
    let run_id = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    );
    let base = workload::Ctx {
        rec: rec.clone(),
        stop: stop.clone(),
        deadline,
        max_ops,
        pace,
        addr: lab.vip_addr(143),
        lmtp: lab.vip_addr(24),
        process: 0,
        targets: Arc::default(),
        run_id,
        seed: a.seed,
        direct: None,
        holder: Arc::default(),
    };
    let mut handles = Vec::new();
    for (i, w) in workloads.iter().enumerate() {
        let ctx = workload::Ctx {
            // Process 0 is the nemesis; 100 + N the readers straight to node N.
            process: i as u32 + 1,
            ..base.clone()
        };
        let f: fn(workload::Ctx) = match w.as_str() {
            "lmtp" => workload::lmtp::run,
            "append" => workload::append::run,
            "flags" => workload::flags::run,
            "expunge-move" => workload::expunge_move::run,
            _ => workload::reader::run,
        };
        handles.push(netns::spawn_in(&lab.client_ns, w, move || f(ctx))?);
        // Readers also straight to every node, from inside its namespace.
        if w == "reader" {
            for m in &lab.members {
                let ctx = workload::Ctx {
                    process: 100 + m.id,
                    addr: SocketAddr::from((m.addr, 143)),
                    lmtp: SocketAddr::from((m.addr, 24)),
                    direct: Some(m.id),
                    ..base.clone()
                };
                handles.push(netns::spawn_in(&m.netns, "reader-direct", move || {
                    workload::reader::run(ctx)
                })?);
            }
        }
    }

    let current = Arc::new(Mutex::new("-".to_string()));
    let plan = nemesis::schedule::Plan {
        names: nemeses.to_vec(),
        quiet: Duration::from_secs_f64(a.quiet.max(0.5)),
        window: Duration::from_secs_f64(a.window.max(0.5)),
        deadline,
        seed: a.seed,
        active_only: a.target == "active",
    };
    let windows = std::thread::scope(|s| {
        let nem = s.spawn(|| nemesis::schedule::run(lab, &plan, &rec, &stop, &current));
        s.spawn(|| watch_holder(lab, &base.holder, &stop, deadline));
        progress(&rec, &current, start, deadline, &stop);
        nem.join().unwrap_or_default()
    });
    stop.store(true, Ordering::SeqCst);
    let join_deadline = Instant::now() + JOIN_GRACE;
    for h in handles {
        while !h.is_finished() && Instant::now() < join_deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if h.is_finished() {
            match h.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!("client: {e:#}"),
                Err(_) => tracing::error!("a client thread panicked"),
            }
        } else {
            tracing::error!("a client did not stop within {JOIN_GRACE:?}");
        }
    }
    let seconds = start.elapsed().as_secs_f64();

    println!("healing: faults undone, crashed nodes restarted");
    lab.lab(&["heal"])?;
    for id in lab.ids() {
        lab.lab(&["restart", &id.to_string()])?;
    }
    let active = wait_one_holder(lab);
    let refused = probe_writes(lab, &base);
    let (dumps, took) = converge(lab);
    println!(
        "final state read from every node ({:.1} s to converge); active node {}",
        took.as_secs_f64(),
        active.map_or("none".into(), |a| a.to_string())
    );
    let mut facts: BTreeMap<u32, checker::NodeFacts> = lab
        .ids()
        .into_iter()
        .map(|id| (id, facts(lab, id)))
        .collect();
    // Each clock fault is a step, and the heal that ends it another.
    for w in &windows {
        for (name, node) in w.names.iter().zip(&w.nodes) {
            if name == "clock" {
                if let Some(f) = facts.get_mut(node) {
                    f.clock_changes += 2;
                }
            }
        }
    }
    if let (Some(a), Some(why)) = (active, refused) {
        if let Some(f) = facts.get_mut(&a) {
            f.refuses_writes = Some(why);
        }
    }
    let events = rec.snapshot();
    history::write_jsonl(&events, &dir.join("history.jsonl"))?;
    let saved = Final {
        active,
        dumps: dumps.clone(),
        facts: facts.clone(),
    };
    std::fs::write(
        dir.join("final-state.json"),
        serde_json::to_string_pretty(&saved)?,
    )?;
    let verdicts = checker::check_all(&checker::Input {
        history: &events,
        active,
        dumps: &dumps,
        facts: &facts,
    });
    let valid = verdicts.iter().all(|v| v.pass);
    let command: Vec<String> = std::env::args().collect();
    let r = report::Report {
        command: command.join(" "),
        nodes: a.nodes,
        seconds,
        workloads,
        nemeses,
        operations: report::operations(&events),
        faults: &windows,
        verdicts: &verdicts,
        valid,
    };
    report::write(&r, dir)?;
    std::fs::write(
        dir.join("latency.svg"),
        svg::render(
            &events,
            &windows,
            &format!("{} nodes, nemeses {}", a.nodes, nemeses.join(",")),
        ),
    )?;
    print_summary(&r, dir);
    Ok(valid)
}

fn progress(
    rec: &Recorder,
    current: &Mutex<String>,
    start: Instant,
    deadline: Instant,
    stop: &AtomicBool,
) {
    let total = deadline.saturating_duration_since(start).as_secs();
    let pb = indicatif::ProgressBar::new(total);
    pb.set_style(
        indicatif::ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {pos}/{len} s  {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    // Bounded by the deadline.
    while Instant::now() < deadline && !stop.load(Ordering::SeqCst) {
        if INTERRUPTED.load(Ordering::SeqCst) {
            pb.println("interrupted: stopping the clients and the faults, then healing");
            stop.store(true, Ordering::SeqCst);
            break;
        }
        let (ok, fail, info) = rec.counts();
        let fault = current.lock().map(|c| c.clone()).unwrap_or_default();
        pb.set_position(start.elapsed().as_secs().min(total));
        pb.set_message(format!(
            "ok {ok}  fail {fail}  unknown {info}  fault: {fault}"
        ));
        std::thread::sleep(Duration::from_millis(200));
    }
    pb.finish();
}

/// After healing, the active node must take writes again: APPENDs through the service
/// address (recorded in the history like any other, process 99), retried for a while. None
/// when one was acknowledged, else the last refusal.
fn probe_writes(lab: &lab::Lab, base: &workload::Ctx) -> Option<String> {
    let ctx = workload::Ctx {
        process: 99,
        stop: Arc::new(AtomicBool::new(false)),
        deadline: Instant::now() + PROBE_TIMEOUT,
        max_ops: 30,
        pace: Duration::from_millis(500),
        ..base.clone()
    };
    let rec = ctx.rec.clone();
    let from = rec.snapshot().len();
    let run_id = format!("probe-{}", ctx.run_id);
    let ctx = workload::Ctx { run_id, ..ctx };
    // One append workload that stops at its first acknowledgement.
    let r = netns::run_in(&lab.client_ns, move || workload::append::run_until_ok(ctx));
    let events = rec.snapshot();
    let last = events[from.min(events.len())..]
        .iter()
        .rev()
        .find(|e| e.process == 99 && e.kind != history::Kind::Invoke);
    match (r, last) {
        (Ok(true), _) => None,
        (Err(e), _) => Some(format!("{e:#}")),
        (Ok(false), Some(e)) => Some(e.error.clone().unwrap_or_else(|| "no reply".into())),
        (Ok(false), None) => Some("no attempt".into()),
    }
}

/// Keeps `holder` at the node that holds the service address (0 when none or several).
fn watch_holder(
    lab: &lab::Lab,
    holder: &std::sync::atomic::AtomicU32,
    stop: &AtomicBool,
    deadline: Instant,
) {
    while Instant::now() < deadline && !stop.load(Ordering::SeqCst) {
        let h = lab.holders();
        holder.store(if h.len() == 1 { h[0] } else { 0 }, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits (bounded) until exactly one node holds the service address; that node.
fn wait_one_holder(lab: &lab::Lab) -> Option<u32> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let h = lab.holders();
        if h.len() == 1 || Instant::now() > deadline {
            return h.first().copied();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Reads every node until they agree or the time is up; the last reading and the time taken.
fn converge(lab: &lab::Lab) -> (BTreeMap<u32, Result<dump::NodeDump, String>>, Duration) {
    let t0 = Instant::now();
    loop {
        let dumps = dump::read_all(lab);
        let all_ok = dumps.values().all(|d| d.is_ok());
        let same = all_ok && {
            let v: Vec<_> = dumps.values().filter_map(|d| d.as_ref().ok()).collect();
            v.windows(2).all(|w| w[0] == w[1])
        };
        if same || t0.elapsed() > CONVERGE_TIMEOUT {
            return (dumps, t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Panics in a node's log.
fn facts(lab: &lab::Lab, id: u32) -> checker::NodeFacts {
    let text = std::fs::read_to_string(lab.node_log(id)).unwrap_or_default();
    checker::NodeFacts {
        panics: text
            .lines()
            .filter(|l| l.contains("panicked at"))
            .take(checker::MAX_PROBLEMS)
            .map(str::to_string)
            .collect(),
        refuses_writes: None,
        clock_changes: 0,
        clock_step_warnings: checker::clock::step_warnings(&text),
        uidvalidity_changes: checker::uidvalidity::logged_changes(&text),
    }
}

fn print_summary(r: &report::Report, dir: &Path) {
    for (f, k) in &r.operations {
        let g = |x: &str| k.get(x).copied().unwrap_or(0);
        println!(
            "  {f:<8} ok {:>5}  fail {:>5}  unknown {:>4}",
            g("ok"),
            g("fail"),
            g("unknown")
        );
    }
    println!("  faults injected: {}", r.faults.len());
    for v in r.verdicts {
        println!(
            "  {:<18} {}  {}",
            v.name,
            if v.pass { "pass" } else { "FAIL" },
            v.counts
                .iter()
                .map(|(k, n)| format!("{k}={n}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        for p in v.problems.iter().take(5) {
            println!("      {p}");
        }
    }
    println!(
        "{}: report {}",
        if r.valid { "VALID" } else { "INVALID" },
        dir.join("report.md").display()
    );
}
