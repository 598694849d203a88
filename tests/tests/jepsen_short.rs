//! A short run of every fault of `jepsen test` (issue 12) against a real lab: each fault in
//! its own run (its own lab) of a few seconds with every workload, one after the other.
//! Fails on any invariant violation the checkers find, naming the fault and the report.
//!
//! Every fault runs in the test command, in both modes where the mode promises to survive it:
//! - raft mode, three nodes: crash, pause, flapping link, packet loss, latency, clock steps, a
//!   full disk, the bridge-level split, `mixed` (two at once), and `partition` (the active
//!   node cut off from everyone);
//! - keepalived-led mode, two nodes: the same faults but `partition` and `flap`;
//! - on demand (`--ignored`), `partition` and `flap` in keepalived-led mode: a split brain by
//!   design (two nodes without a witness cannot tell a dead peer from a cut one; a flapping
//!   cable is a string of short cuts): both sides take writes, and the merge keeps everything
//!   (no acknowledged message lost, replicas identical) but a client that saw both sides may
//!   see a UID name two messages (docs/reliability.md). `flap` kept every invariant in most
//!   runs (3 of 3 on demand) but not in one CI run (2 UID reuses), so it is not a CI gate.

use std::process::Command;
use std::time::Duration;
use tests::{jepsen_bin, lab, missing_tool, node_bin, run};

/// Every fault of the harness (jepsen/src/harness/nemesis/mod.rs) but `partition` and `flap`
/// (see the module doc), in both modes.
const SURVIVED: &[&str] = &[
    "crash",
    "pause",
    "loss",
    "latency",
    "clock",
    "disk",
    "partition-split",
    "mixed",
];
/// What raft mode survives besides: the active node cut off from everyone (its readers see
/// only what a peer holds, its late writes are fenced), and a flapping cable.
const RAFT_ALSO: &[&str] = &["partition", "flap"];
/// Split brains by design in keepalived-led mode (see the module doc).
const KLED_SPLIT_BRAIN: &[&str] = &["partition", "flap"];
const SECONDS: &str = "10";

#[test]
fn raft_mode_keeps_the_invariants_under_every_fault() {
    let all: Vec<&str> = SURVIVED.iter().chain(RAFT_ALSO).copied().collect();
    run_faults("raft", &all, "3", "raft");
}

#[test]
fn keepalived_led_mode_keeps_the_invariants_under_every_fault() {
    run_faults("kled", SURVIVED, "2", "keepalived-led");
}

#[test]
#[ignore = "a split brain by design in keepalived-led mode (docs/reliability.md): run with --ignored"]
fn partition_and_flap_in_keepalived_led_mode() {
    run_faults("pkled", KLED_SPLIT_BRAIN, "2", "keepalived-led");
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
