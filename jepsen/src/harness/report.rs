//! The run's report: report.json (everything) and report.md (readable): each invariant's
//! verdict with counts, the operations by kind and outcome, and the fault windows.

use super::checker::Verdict;
use super::history::{Event, Kind, F};
use super::nemesis::schedule::Window;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

#[derive(Serialize)]
pub struct Report<'a> {
    pub command: String,
    pub nodes: u32,
    pub seconds: f64,
    pub workloads: &'a [String],
    pub nemeses: &'a [String],
    pub operations: BTreeMap<String, BTreeMap<String, u64>>,
    pub faults: &'a [Window],
    pub verdicts: &'a [Verdict],
    pub valid: bool,
}

pub fn operations(history: &[Event]) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut m: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for e in history
        .iter()
        .filter(|e| e.f != F::Nemesis && e.kind != Kind::Invoke)
    {
        let f = format!("{:?}", e.f).to_lowercase();
        let k = match e.kind {
            Kind::Ok => "ok",
            Kind::Fail => "fail",
            _ => "unknown",
        };
        *m.entry(f).or_default().entry(k.into()).or_default() += 1;
    }
    m
}

pub fn write(r: &Report, dir: &Path) -> anyhow::Result<()> {
    std::fs::write(dir.join("report.json"), serde_json::to_string_pretty(r)?)?;
    std::fs::write(dir.join("report.md"), markdown(r))?;
    Ok(())
}

pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# jepsen test: {}\n",
        if r.valid { "VALID" } else { "INVALID" }
    );
    let _ = writeln!(s, "`{}`\n", r.command);
    let _ = writeln!(
        s,
        "{} nodes, {:.1} s, workloads {}, nemeses {}\n",
        r.nodes,
        r.seconds,
        r.workloads.join(", "),
        r.nemeses.join(", ")
    );
    let _ = writeln!(
        s,
        "## Invariants\n\n| checker | invariant | result | counts |\n|---|---|---|---|"
    );
    for v in r.verdicts {
        let counts: Vec<String> = v.counts.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            v.name,
            v.invariant,
            if v.pass { "pass" } else { "**FAIL**" },
            counts.join(", ")
        );
    }
    for v in r.verdicts.iter().filter(|v| !v.problems.is_empty()) {
        let _ = writeln!(
            s,
            "\n### {} violations (first {})\n",
            v.name,
            v.problems.len()
        );
        for p in &v.problems {
            let _ = writeln!(s, "- {p}");
        }
    }
    let _ = writeln!(
        s,
        "\n## Operations\n\n| operation | ok | fail | unknown |\n|---|---|---|---|"
    );
    for (f, k) in &r.operations {
        let g = |x: &str| k.get(x).copied().unwrap_or(0);
        let _ = writeln!(
            s,
            "| {f} | {} | {} | {} |",
            g("ok"),
            g("fail"),
            g("unknown")
        );
    }
    let _ = writeln!(
        s,
        "\n## Faults\n\n| from (s) | to (s) | fault |\n|---|---|---|"
    );
    for w in r.faults {
        let _ = writeln!(
            s,
            "| {:.1} | {:.1} | {}{} |",
            w.start_ms as f64 / 1e3,
            w.end_ms as f64 / 1e3,
            w.details.join("; "),
            w.error
                .as_ref()
                .map(|e| format!(" (error: {e})"))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(s, "\n![latency and throughput](latency.svg)");
    s
}
