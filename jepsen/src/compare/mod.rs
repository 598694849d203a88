//! `jepsen compare` (issue 18): this project's node and Debian's Dovecot on the same machine,
//! the same users and the same workloads (those of `jepsen bench`, run in this process), in
//! alternation over several rounds; one table with both figures, the ratio, each server's
//! peak RSS (summed over its processes) and its CPU seconds per 1,000 operations.

pub mod servers;

use crate::bench::{self, stats::Report, Mix, SizeRange, UserRange, Workload};
use crate::procinfo::{machine_line, raise_nofile};
use anyhow::{bail, Context, Result};
use servers::Server;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PASSWORD: &str = "benchpw";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The node binary (default: `node` beside this executable, i.e. target/release/node).
    #[arg(long)]
    pub node: Option<PathBuf>,
    /// Where the servers' temporary directories go (the disk both servers fsync to).
    #[arg(long, default_value = "/tmp")]
    pub dir: PathBuf,
    /// Seconds per run (one workload on one server).
    #[arg(long, default_value_t = 10.0)]
    pub secs: f64,
    /// Seconds per run of the large-mailbox queries.
    #[arg(long, default_value_t = 30.0)]
    pub large_secs: f64,
    /// Rounds: each workload runs this many times on each server, the servers alternating
    /// which goes first.
    #[arg(long, default_value_t = 2)]
    pub rounds: u32,
    /// Users u1..uN (PLAIN passwords) the IMAP, POP3 and LMTP workloads spread over.
    #[arg(long, default_value_t = 100)]
    pub users: u32,
    /// Messages delivered to the users (in all) before the workloads run.
    #[arg(long, default_value_t = 2000)]
    pub fill: u64,
    /// Messages in the large INBOX (user big1); 0 skips the large-mailbox workload.
    #[arg(long, default_value_t = 10_000)]
    pub large: u64,
    /// Idle IMAP connections held on the node (0 skips the idle workload).
    #[arg(long, default_value_t = 10_000)]
    pub idle: usize,
    /// Idle IMAP connections held on Dovecot (a process each: about half a MiB of PSS).
    #[arg(long, default_value_t = 2_000)]
    pub dovecot_idle: usize,
    /// Only these workloads (comma-separated names from the table), e.g. `imap-10,lmtp-1`.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Keep the temporary directory (configurations, logs, mail) and print its path.
    #[arg(long)]
    pub keep: bool,
}

/// How a workload's figure is read from a report, and which way is better.
#[derive(Clone, Copy)]
enum Figure {
    /// Operations per second of one command (all commands when None): higher is better.
    Rate(Option<&'static str>),
    /// Median latency of one command in ms: lower is better.
    P50(&'static str),
    /// Memory per idle connection in KiB: lower is better.
    IdleKib,
}

struct Spec {
    name: &'static str,
    args: bench::Args,
    /// Table rows: label and figure.
    rows: Vec<(String, Figure)>,
}

/// One run of one workload on one server.
struct Run {
    report: Report,
    cpu_secs: f64,
    peak_rss_kib: u64,
    /// Idle: memory per connection (KiB) and connections held.
    idle: Option<(f64, usize)>,
}

fn base(workload: Workload, clients: usize, secs: f64) -> bench::Args {
    bench::Args {
        workload,
        host: "127.0.0.1".into(),
        port: 0,
        tls: false,
        user: "u%d".into(),
        users: UserRange(1, 100),
        password: PASSWORD.into(),
        domain: "example.org".into(),
        clients,
        secs,
        count: 0,
        mix: "fetch=20,body=30,store=25,expunge=5,append=20"
            .parse::<Mix>()
            .unwrap_or_else(|_| unreachable!("a valid mix")),
        ops_per_session: 20,
        msg_size: SizeRange(1024, 1 << 20),
        pop3_dele_pct: 0,
        login_parallel: 64,
        quiet: true,
        seed: 1,
    }
}

fn specs(a: &Args) -> Vec<Spec> {
    let users = UserRange(1, a.users.max(1));
    let with = |name: &'static str, mut args: bench::Args, rows: Vec<(String, Figure)>| {
        if args.user == "u%d" {
            args.users = users;
        }
        Spec { name, args, rows }
    };
    let rate = |label: &str, op| vec![(label.to_string(), Figure::Rate(op))];
    let mut v = vec![
        with(
            "imap-10",
            base(Workload::Imap, 10, a.secs),
            rate("IMAP mixed, 10 clients (ops/s)", None),
        ),
        with(
            "imap-50",
            base(Workload::Imap, 50, a.secs),
            rate("IMAP mixed, 50 clients (ops/s)", None),
        ),
        with(
            "append-10",
            base(Workload::Append, 10, a.secs),
            rate("APPEND, 10 clients (appends/s)", Some("append")),
        ),
        with(
            "login-plain",
            base(Workload::Login, 10, a.secs),
            rate("LOGIN+LOGOUT PLAIN, 10 clients (logins/s)", Some("login")),
        ),
        with(
            "login-argon2id",
            bench::Args {
                user: "a%d".into(),
                users: UserRange(1, 10),
                ..base(Workload::Login, 10, a.secs)
            },
            rate(
                "LOGIN+LOGOUT ARGON2ID, 10 clients (logins/s)",
                Some("login"),
            ),
        ),
    ];
    for n in [1, 4, 16] {
        v.push(with(
            ["lmtp-1", "lmtp-4", "lmtp-16"][[1, 4, 16].iter().position(|x| *x == n).unwrap_or(0)],
            base(Workload::Lmtp, n, a.secs),
            rate(
                &format!("LMTP, {n} connections (deliveries/s)"),
                Some("deliver"),
            ),
        ));
    }
    for (name, n) in [("pop3-1", 1), ("pop3-8", 8)] {
        v.push(with(
            name,
            base(Workload::Pop3, n, a.secs),
            rate(&format!("POP3 RETR, {n} clients (RETR/s)"), Some("retr")),
        ));
    }
    if a.large > 0 {
        let rows = bench::imap::LARGE_QUERIES
            .iter()
            .map(|(op, _)| (format!("{} msgs: {op} (p50 ms)", a.large), Figure::P50(op)))
            .collect();
        v.push(with(
            "large",
            bench::Args {
                user: "big%d".into(),
                users: UserRange(1, 1),
                ..base(Workload::Large, 1, a.large_secs)
            },
            rows,
        ));
    }
    if a.idle > 0 {
        v.push(with(
            "idle",
            base(Workload::Idle, a.idle, 5.0),
            vec![("idle IMAP connections (KiB each)".into(), Figure::IdleKib)],
        ));
    }
    if !a.only.is_empty() {
        v.retain(|s| a.only.iter().any(|o| o == s.name));
    }
    v
}

pub fn run(a: Args) -> Result<()> {
    if a.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    let node_bin = match &a.node {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("node"),
    };
    if !node_bin.exists() {
        bail!(
            "node binary {} not found: cargo build --release -p node, or pass --node PATH",
            node_bin.display()
        );
    }
    servers::ensure_dovecot()?;
    let specs = specs(&a);
    if specs.is_empty() {
        bail!("--only names no workload");
    }
    let idle = specs.iter().any(|s| s.name == "idle");
    // Each process has its own limit: this one holds a socket per idle connection, the node
    // one per connection (and two files per open user), Dovecot's processes a few each.
    let want_fds = if idle {
        a.idle.max(a.dovecot_idle) as u64 + 2048
    } else {
        8192
    };
    let nofile = raise_nofile(want_fds)?;
    println!("machine: {}", machine_line());
    println!(
        "rlimit_nofile: {nofile} (both servers and the load generator inherit it{})",
        if nofile < want_fds {
            format!("; {want_fds} wanted: the idle counts are cut to fit")
        } else {
            String::new()
        }
    );
    let node_idle = a.idle.min(nofile.saturating_sub(2048) as usize);
    let dovecot_idle = a.dovecot_idle.min(nofile.saturating_sub(2048) as usize);

    let base_dir = std::fs::canonicalize(&a.dir).with_context(|| a.dir.display().to_string())?;
    let tmp = tempfile::Builder::new()
        .prefix("jepsen-compare-")
        .tempdir_in(&base_dir)?;
    let root = tmp.path().to_path_buf();
    let passwd = root.join("passwd");
    let mut users: Vec<(String, String)> = (1..=a.users.max(1))
        .map(|i| (format!("u{i}"), format!("{{PLAIN}}{PASSWORD}")))
        .collect();
    users.push(("big1".into(), format!("{{PLAIN}}{PASSWORD}")));
    let argon = argon2id_hash(&node_bin)?;
    users.extend((1..=10).map(|i| (format!("a{i}"), argon.clone())));
    servers::write_passwd(&passwd, &users)?;
    std::fs::create_dir_all(root.join("node"))?;
    std::fs::create_dir_all(root.join("dovecot"))?;
    let mut node = Server::start_node(&node_bin, &root.join("node"), &passwd)?;
    let mut dovecot = Server::start_dovecot(&root.join("dovecot"), &passwd, dovecot_idle.max(200))?;
    println!(
        "servers: node pid {} (imap {}, pop3 {}, lmtp {}); dovecot pid {} (imap {}, pop3 {}, \
         lmtp {}); auth cache off on both",
        node.pid,
        node.imap,
        node.pop3,
        node.lmtp,
        dovecot.pid,
        dovecot.imap,
        dovecot.pop3,
        dovecot.lmtp
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = (|| -> Result<bool> {
        for s in [&node, &dovecot] {
            provision(&rt, &a, s)?;
        }
        let mut results: Vec<(Vec<Run>, Vec<Run>)> = Vec::new();
        for spec in &specs {
            let (mut on_node, mut on_dovecot) = (Vec::new(), Vec::new());
            for round in 0..a.rounds {
                let order: [&Server; 2] = if round % 2 == 0 {
                    [&node, &dovecot]
                } else {
                    [&dovecot, &node]
                };
                for s in order {
                    let mut args = spec.args.clone();
                    args.port = match args.workload {
                        Workload::Pop3 => s.pop3,
                        Workload::Lmtp => s.lmtp,
                        _ => s.imap,
                    };
                    if args.workload == Workload::Idle {
                        args.clients = if s.name == "node" {
                            node_idle
                        } else {
                            dovecot_idle
                        };
                    }
                    let r = measure(&rt, s, args)?;
                    eprintln!(
                        "compare: {} round {} on {}: {} operations, {} errors, {:.1} s",
                        spec.name,
                        round + 1,
                        s.name,
                        r.report.total(),
                        r.report.errors(),
                        r.report.elapsed.as_secs_f64()
                    );
                    for e in r.report.first_errors.iter().take(3) {
                        eprintln!("compare:   {e}");
                    }
                    if s.name == "node" {
                        on_node.push(r);
                    } else {
                        on_dovecot.push(r);
                    }
                }
            }
            results.push((on_node, on_dovecot));
        }
        print!("{}", table(&specs, &results));
        Ok(results
            .iter()
            .flat_map(|(n, d)| n.iter().chain(d))
            .any(|r| r.report.errors() > 0))
    })();
    let (ns, ds) = (node.stop(), dovecot.stop());
    println!("node: {ns}; dovecot: {ds}");
    if a.keep {
        println!("kept: {}", tmp.keep().display());
    }
    match result {
        Ok(false) => Ok(()),
        Ok(true) => bail!("protocol errors in some runs (see the errors column)"),
        Err(e) => {
            eprintln!("--- node log ---\n{}", node.log_tail());
            eprintln!("--- dovecot log ---\n{}", dovecot.log_tail());
            Err(e)
        }
    }
}

/// `node pw -s ARGON2ID`: one hash shared by the a%d users (the same cost on both servers).
fn argon2id_hash(node: &std::path::Path) -> Result<String> {
    let out = std::process::Command::new(node)
        .args(["pw", "-s", "ARGON2ID", "-p", PASSWORD])
        .output()
        .context("run node pw")?;
    let hash = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || !hash.starts_with("{ARGON2ID}") {
        bail!(
            "node pw -s ARGON2ID failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(hash)
}

/// The same mail on both servers before the workloads: `--fill` messages spread over the
/// users (1-64 KiB), and the large INBOX (1-16 KiB each), delivered over LMTP.
fn provision(rt: &tokio::runtime::Runtime, a: &Args, s: &Server) -> Result<()> {
    let mut jobs = vec![bench::Args {
        count: a.fill,
        users: UserRange(1, a.users.max(1)),
        msg_size: SizeRange(1024, 64 * 1024),
        port: s.lmtp,
        seed: 7,
        ..base(Workload::Lmtp, 4, 3600.0)
    }];
    if a.large > 0 && (a.only.is_empty() || a.only.iter().any(|o| o == "large")) {
        jobs.push(bench::Args {
            count: a.large,
            user: "big%d".into(),
            users: UserRange(1, 1),
            msg_size: SizeRange(1024, 16 * 1024),
            port: s.lmtp,
            seed: 8,
            ..base(Workload::Lmtp, 8, 3600.0)
        });
    }
    for job in jobs {
        let t = Instant::now();
        let (n, who) = (job.count, job.user.clone());
        let r = rt.block_on(bench::measure(job))?;
        let delivered = r.row("deliver").map_or(0, |d| d.count - d.errors);
        eprintln!(
            "compare: {} filled with {delivered} messages for {who} in {:.1} s",
            s.name,
            t.elapsed().as_secs_f64()
        );
        if r.errors() > 0 || delivered < n {
            bail!(
                "{}: filling: {delivered} of {n} delivered; {}",
                s.name,
                r.first_errors.join("; ")
            );
        }
    }
    Ok(())
}

/// One run with the server's memory sampled throughout and its CPU time before and after.
fn measure(rt: &tokio::runtime::Runtime, s: &Server, args: bench::Args) -> Result<Run> {
    let idle = args.workload == Workload::Idle;
    let before = if idle { mem_kib(s) } else { 0 };
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (stop, pid, name) = (stop.clone(), s.pid, s.name);
        std::thread::spawn(move || {
            let (mut rss, mut held) = (0u64, 0u64);
            let period = Duration::from_millis(if idle { 1000 } else { 100 });
            while !stop.load(Ordering::Acquire) {
                rss = rss.max(crate::procinfo::tree_rss_kib(pid));
                if idle {
                    held = held.max(mem_of(pid, name));
                }
                std::thread::sleep(period);
            }
            (rss, held)
        })
    };
    let cpu0 = s.cpu_secs();
    let report = rt.block_on(bench::measure(args));
    let cpu_secs = s.cpu_secs() - cpu0;
    stop.store(true, Ordering::Release);
    let (peak_rss_kib, held) = sampler
        .join()
        .map_err(|_| anyhow::anyhow!("memory sampler panicked"))?;
    let report = report?;
    let idle = idle.then(|| {
        let n = report
            .row("idle")
            .map_or(0, |r| (r.count - r.errors) as usize);
        (held.saturating_sub(before) as f64 / n.max(1) as f64, n)
    });
    Ok(Run {
        report,
        cpu_secs,
        peak_rss_kib,
        idle,
    })
}

/// Memory counted per idle connection: VmRSS of the node's one process; PSS summed over
/// Dovecot's processes (its summed VmRSS counts the shared pages of every process again).
fn mem_kib(s: &Server) -> u64 {
    if s.name == "node" {
        s.rss_kib()
    } else {
        s.pss_kib()
    }
}

fn mem_of(pid: u32, name: &str) -> u64 {
    if name == "node" {
        crate::procinfo::tree_rss_kib(pid)
    } else {
        crate::procinfo::tree_status(pid).map_or(0, |m| m.pss_kib)
    }
}

/// A run's figure.
fn figure(r: &Run, f: Figure) -> f64 {
    match f {
        Figure::Rate(op) => r.report.rate(op),
        Figure::P50(op) => r.report.row(op).map_or(f64::NAN, |x| x.p50_ms),
        Figure::IdleKib => r.idle.map_or(f64::NAN, |i| i.0),
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// CPU seconds per 1,000 operations over all of a workload's runs on one server.
fn cpu_per_k(runs: &[Run]) -> f64 {
    let ops: u64 = runs.iter().map(|r| r.report.total()).sum();
    runs.iter().map(|r| r.cpu_secs).sum::<f64>() * 1000.0 / ops.max(1) as f64
}

fn table(specs: &[Spec], results: &[(Vec<Run>, Vec<Run>)]) -> String {
    let mut s = String::from(
        "\n| workload | node | Dovecot | node vs Dovecot | node peak RSS MiB | Dovecot peak RSS \
         MiB | node CPU s / 1k ops | Dovecot CPU s / 1k ops | errors node / Dovecot |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut details = String::new();
    for (spec, (n, d)) in specs.iter().zip(results) {
        let peak =
            |runs: &[Run]| runs.iter().map(|r| r.peak_rss_kib).max().unwrap_or(0) as f64 / 1024.0;
        let errors = |runs: &[Run]| runs.iter().map(|r| r.report.errors()).sum::<u64>();
        for (label, f) in &spec.rows {
            let nv: Vec<f64> = n.iter().map(|r| figure(r, *f)).collect();
            let dv: Vec<f64> = d.iter().map(|r| figure(r, *f)).collect();
            let (nm, dm) = (mean(&nv), mean(&dv));
            // "node vs Dovecot" > 1 when the node is ahead, whichever way the figure points.
            let ratio = match f {
                Figure::Rate(_) => nm / dm,
                Figure::P50(_) | Figure::IdleKib => dm / nm,
            };
            s.push_str(&format!(
                "| {label} | {nm:.1} | {dm:.1} | {ratio:.2}x | {:.0} | {:.0} | {:.3} | {:.3} | {} / \
                 {} |\n",
                peak(n),
                peak(d),
                cpu_per_k(n),
                cpu_per_k(d),
                errors(n),
                errors(d)
            ));
            let fmt = |v: &[f64]| {
                v.iter()
                    .map(|x| format!("{x:.1}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            details.push_str(&format!(
                "- {label}: node rounds {}; Dovecot rounds {}\n",
                fmt(&nv),
                fmt(&dv)
            ));
        }
        if let (Some(ni), Some(di)) = (
            n.first().and_then(|r| r.idle),
            d.first().and_then(|r| r.idle),
        ) {
            details.push_str(&format!(
                "- idle connections held: node {}, Dovecot {} (node: VmRSS growth; Dovecot: PSS \
                 growth summed over its processes)\n",
                ni.1, di.1
            ));
        }
    }
    s.push('\n');
    s.push_str(&details);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_cover_the_issue_and_only_filters() {
        let a = Args {
            node: None,
            dir: "/tmp".into(),
            secs: 1.0,
            large_secs: 1.0,
            rounds: 2,
            users: 10,
            fill: 10,
            large: 100,
            idle: 10,
            dovecot_idle: 10,
            only: vec![],
            keep: false,
        };
        let names: Vec<&str> = specs(&a).iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            [
                "imap-10",
                "imap-50",
                "append-10",
                "login-plain",
                "login-argon2id",
                "lmtp-1",
                "lmtp-4",
                "lmtp-16",
                "pop3-1",
                "pop3-8",
                "large",
                "idle"
            ]
        );
        assert!(specs(&a).iter().all(|s| s.args.users.1 <= 10));
        let only = Args {
            only: vec!["lmtp-4".into(), "idle".into()],
            ..a
        };
        let names: Vec<&str> = specs(&only).iter().map(|s| s.name).collect();
        assert_eq!(names, ["lmtp-4", "idle"]);
    }
}
