//! A short run of every fault of `jepsen test` (issue 12) against a real lab: each fault in
//! its own run (its own lab) of a few seconds with every workload, one after the other.
//! Fails on any invariant violation the checkers find, naming the fault and the report.
//!
//! Three sets, all of real runs that fail on any violation:
//! - keepalived-led mode, two nodes: the faults it survives today (in the test command);
//! - raft mode, three nodes: crash, partition, pause and a flapping link of the active node;
//!   on demand (`--ignored`) until the finding below is fixed: they passed in most runs, but a
//!   crashed active node, once restarted, serves its own never-acknowledged tail with UIDs the
//!   new active node gave to other messages until the merge renumbers them
//!   (docs/reliability.md, "Findings");
//! - the faults under which the checkers found real violations (docs/reliability.md,
//!   "Findings") run on demand (`cargo test -p tests --test jepsen_short -- --ignored`) until
//!   those bugs are fixed; each then moves to the first set.
//!
//! Root only (network namespaces): skipped with a message otherwise.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use tests::{lab, missing_tool, node_bin, run, workspace_root};

/// The faults of the harness (jepsen/src/harness/nemesis/mod.rs) that keep every invariant in
/// keepalived-led mode today.
const SURVIVED: &[&str] = &["partition-split", "latency", "clock"];
/// The faults of the active node that raft mode (3 nodes) survives.
const SURVIVED_RAFT: &[&str] = &["crash", "partition", "pause", "flap"];
/// The faults under which real violations were found in keepalived-led mode (docs/reliability.md, "Findings"): UIDs
/// reused and acknowledged mail lost after a partition heals or a crash (keepalived moves the
/// address back before replication caught up), retried deliveries stored twice, replicas that
/// differ after a flapping link, a store that stays failed after its disk filled.
/// `loss` (30 % of the active node's frames dropped) passed 4 runs, then in one the service
/// address did not answer for 15 s after healing (nodes-serve): not yet understood.
const KNOWN_VIOLATIONS: &[&str] = &[
    "crash",
    "pause",
    "partition",
    "flap",
    "disk",
    "mixed",
    "loss",
];
/// Seconds of workload per fault: two fault windows of 3 s after 1.5 s quiet each.
const SECONDS: &str = "10";

fn jepsen_bin() -> PathBuf {
    let bin = node_bin().with_file_name("jepsen");
    if !bin.exists() {
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "-p", "jepsen", "--bin", "jepsen"])
            .current_dir(workspace_root())
            .status();
        assert!(
            status.is_ok_and(|s| s.success()) && bin.exists(),
            "cannot build {}",
            bin.display()
        );
    }
    bin
}

#[test]
#[ignore = "a restarted deposed node shows its unacknowledged tail under reused UIDs for a moment (docs/reliability.md): run with --ignored"]
fn raft_mode_keeps_the_invariants_under_crash_partition_pause_and_flap() {
    run_faults("raft", SURVIVED_RAFT, "3", "raft");
}

#[test]
fn the_faults_survived_today_keep_the_invariants() {
    run_faults("survived", SURVIVED, "2", "keepalived-led");
}

#[test]
#[ignore = "real violations found (docs/reliability.md, Findings): run with --ignored"]
fn the_faults_with_known_violations() {
    run_faults("known", KNOWN_VIOLATIONS, "2", "keepalived-led");
}

fn run_faults(set: &str, nemeses: &[&str], nodes: &str, mode: &str) {
    if let Some(why) = lab::skip_reason() {
        eprintln!("SKIPPED: jepsen short run: {why}");
        return;
    }
    if missing_tool("keepalived") || missing_tool("nft") || missing_tool("faketime") {
        return;
    }
    let jepsen = jepsen_bin();
    let root = tempfile::Builder::new()
        .prefix("jepsen-short-")
        .tempdir()
        .expect("temp dir");
    let mut failed = Vec::new();
    for (i, nemesis) in nemeses.iter().enumerate() {
        let dir = root.path().join(nemesis);
        let out = run(
            Command::new(&jepsen)
                .args(["test", "--time", SECONDS, "--quiet", "1.5", "--window", "3"])
                .args(["--nemesis", nemesis, "--workload", "all", "--nodes", nodes])
                .args(["--mode", mode])
                .args(["--rate", "10", "--prefix"])
                .arg(format!(
                    "js{}{}{i}",
                    &set[..1],
                    std::process::id() % 100_000
                ))
                .arg("--node-bin")
                .arg(node_bin())
                .arg("--dir")
                .arg(&dir),
            None,
            Duration::from_secs(240),
        )
        .expect("run jepsen test");
        eprintln!(
            "--- jepsen test --nemesis {nemesis} ---\n{}",
            out.stdout_text()
        );
        if !out.status.success() {
            let report = std::fs::read_to_string(dir.join("report.md")).unwrap_or_default();
            eprintln!("{}\n{report}", out.stderr_text());
            failed.push(format!("{nemesis}: {}", last_line(&out.stderr_text())));
        }
    }
    if !failed.is_empty() {
        // Keep the runs for a look (histories, reports, node logs).
        let kept = root.keep();
        panic!(
            "invariants violated or runs failed under {} of {} faults (runs kept in {}):\n{}",
            failed.len(),
            nemeses.len(),
            kept.display(),
            failed.join("\n")
        );
    }
}

fn last_line(s: &str) -> String {
    s.lines()
        .rev()
        .find(|l| l.starts_with("Error:") || l.contains("violated"))
        .unwrap_or("")
        .to_string()
}
