//! Faults, injected through `node lab` commands on a schedule: quiet, fault, quiet, ... Each
//! window's fault hits the active node (the one holding the service address) when it starts.

pub mod schedule;

use super::lab::Lab;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// Every fault, in the order `all` runs them.
pub const ALL: &[&str] = &[
    "crash",
    "pause",
    "partition",
    "partition-split",
    "flap",
    "loss",
    "latency",
    "clock",
    "disk",
];

/// Faults that may be combined in one window ("mixed"): flap is left out because it plugs
/// the cable back, which must not happen to a crashed node holding a stale address.
pub const MIXABLE: &[&str] = &[
    "crash",
    "pause",
    "partition",
    "loss",
    "latency",
    "clock",
    "disk",
];

/// Added to every packet the node sends by the latency fault (`node lab delay`: NFQUEUE, no
/// netem here). Below keepalived's 0.35 s dead-master interval, so it slows, not fails over.
const LATENCY_MS: &str = "200";

/// The wall-clock steps the clock fault cycles through (seconds).
const CLOCK_STEPS: &[&str] = &["+3600", "-3600", "+86400", "-86400"];

/// How the link flaps during a window.
const FLAP_HALF_PERIOD: Duration = Duration::from_millis(400);

/// A fault in force and how to undo it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Fault {
    pub name: String,
    pub node: u32,
    pub detail: String,
}

/// Starts fault `name` on `node`; `round` picks among variants (clock steps).
pub fn start(lab: &Lab, name: &str, node: u32, round: usize) -> Result<Fault> {
    let others: Vec<String> = lab
        .ids()
        .into_iter()
        .filter(|i| *i != node)
        .map(|i| i.to_string())
        .collect();
    let n = node.to_string();
    let detail = match name {
        "crash" => {
            lab.lab(&["crash", &n])?;
            format!("node {node} crashed (freeze, kill -9, cable out)")
        }
        "pause" => {
            lab.lab(&["pause", &n])?;
            format!("node {node} paused (SIGSTOP)")
        }
        "partition" => {
            let spec = format!("{node}|{},client", others.join(","));
            lab.lab(&["partition", &spec])?;
            format!("node {node} isolated from the other nodes and clients ({spec})")
        }
        "partition-split" => {
            let spec = format!("{node},client|{}", others.join(","));
            lab.lab(&["partition", &spec])?;
            format!("node {node} with the clients cut from the other nodes ({spec})")
        }
        "flap" => {
            // The flapping itself is done by `hold`.
            format!(
                "node {node}'s cable flaps every {} ms",
                FLAP_HALF_PERIOD.as_millis()
            )
        }
        "loss" => {
            lab.lab(&["loss", &n, "30"])?;
            format!("node {node} loses 30% of its frames")
        }
        "latency" => {
            lab.lab(&["delay", &n, LATENCY_MS])?;
            format!("every packet node {node} sends waits {LATENCY_MS} ms")
        }
        "clock" => {
            let step = CLOCK_STEPS[round % CLOCK_STEPS.len()];
            lab.lab(&["clock", &n, step])?;
            format!("node {node}'s wall clock stepped {step} s")
        }
        "disk" => {
            lab.lab(&["fill", &n])?;
            format!("node {node}'s data filesystem full")
        }
        other => anyhow::bail!("unknown nemesis {other:?}: one of {ALL:?}, mixed, all or none"),
    };
    Ok(Fault {
        name: name.into(),
        node,
        detail,
    })
}

/// Keeps the faults in force until `until` (flapping a cable meanwhile).
pub fn hold(lab: &Lab, faults: &[Fault], until: Instant) {
    let flapping: Vec<u32> = faults
        .iter()
        .filter(|f| f.name == "flap")
        .map(|f| f.node)
        .collect();
    let mut down = false;
    // Bounded by the deadline: one step per half period.
    while Instant::now() < until {
        if !flapping.is_empty() {
            down = !down;
            for n in &flapping {
                let state = if down { "down" } else { "up" };
                if let Err(e) = lab.lab(&["link", &n.to_string(), state]) {
                    tracing::warn!("flap: {e:#}");
                }
            }
        }
        let left = until.saturating_duration_since(Instant::now());
        std::thread::sleep(left.min(FLAP_HALF_PERIOD));
    }
}

/// Undoes `faults`: restarts crashed nodes, resumes paused ones, heals the rest.
pub fn stop(lab: &Lab, faults: &[Fault]) -> Result<()> {
    // heal first: it resumes, re-plugs live nodes and clears rules, clocks and disks.
    lab.lab(&["heal"])?;
    for f in faults.iter().filter(|f| f.name == "crash") {
        lab.lab(&["restart", &f.node.to_string()])?;
    }
    Ok(())
}

/// Which `node lab up` options the chosen faults need.
pub fn needs(names: &[String]) -> (bool, bool) {
    let has = |n: &str| names.iter().any(|x| x == n || x == "mixed");
    (has("clock"), has("disk"))
}
