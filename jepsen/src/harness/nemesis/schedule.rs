//! The nemesis thread: quiet, fault window, quiet, ... until the run's deadline, cycling
//! through the chosen faults; every start and stop goes into the history and the list of
//! fault windows the report shades.

use super::super::history::{Event, Kind, Recorder, F};
use super::super::lab::Lab;
use super::super::workload::Rng;
use super::{Fault, MIXABLE};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Process id of the nemesis in the history.
pub const NEMESIS: u32 = 0;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Window {
    pub names: Vec<String>,
    pub details: Vec<String>,
    /// The node each fault hit (same order as `names`).
    #[serde(default)]
    pub nodes: Vec<u32>,
    pub start_ms: u64,
    pub end_ms: u64,
    /// A fault that could not be started or undone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub struct Plan {
    pub names: Vec<String>,
    pub quiet: Duration,
    pub window: Duration,
    pub deadline: Instant,
    pub seed: u64,
    /// Every window hits the active node (false: every other window hits another node).
    pub active_only: bool,
}

/// Runs the schedule; returns the windows. `current` shows the fault in force (progress).
pub fn run(
    lab: &Lab,
    plan: &Plan,
    rec: &Recorder,
    stop: &AtomicBool,
    current: &Arc<Mutex<String>>,
) -> Vec<Window> {
    let mut windows = Vec::new();
    if plan.names.is_empty() {
        return windows;
    }
    let mut rng = Rng::new(plan.seed ^ 0x4E3E);
    let ms = |t: Instant| t.saturating_duration_since(rec.start()).as_millis() as u64;
    let set = |s: &str| *current.lock().unwrap_or_else(|p| p.into_inner()) = s.to_string();
    // At most one window per fault and second of run time: bounded.
    for round in 0..10_000usize {
        sleep_until(Instant::now() + plan.quiet, stop);
        if stop.load(Ordering::SeqCst) || Instant::now() + plan.window > plan.deadline {
            break;
        }
        let name = &plan.names[round % plan.names.len()];
        let names: Vec<String> = if name == "mixed" {
            let a = MIXABLE[rng.below(MIXABLE.len())];
            let mut b = MIXABLE[rng.below(MIXABLE.len())];
            if b == a {
                b = MIXABLE
                    [(MIXABLE.iter().position(|x| *x == a).unwrap_or(0) + 1) % MIXABLE.len()];
            }
            vec![a.into(), b.into()]
        } else {
            vec![name.clone()]
        };
        let holders = lab.holders();
        let ids = lab.ids();
        let active = holders.first().copied().unwrap_or(ids[0]);
        // `--target any`: odd windows hit a passive node (a replica that falls behind, a
        // backup that cannot take over), picked by the seed.
        let passive: Vec<u32> = ids.iter().copied().filter(|i| *i != active).collect();
        let target = if plan.active_only || round % 2 == 0 || passive.is_empty() {
            active
        } else {
            passive[rng.below(passive.len())]
        };
        let t0 = Instant::now();
        let mut faults: Vec<Fault> = Vec::new();
        let mut error = None;
        for n in &names {
            match super::start(lab, n, target, round) {
                Ok(f) => {
                    let mut e = Event::new(NEMESIS, Kind::Info, F::Nemesis);
                    e.fault = Some(format!("start {}", f.detail));
                    e.node = Some(target);
                    rec.record(e);
                    tracing::info!("nemesis: {}", f.detail);
                    faults.push(f);
                }
                Err(e) => {
                    tracing::error!("nemesis {n}: {e:#}");
                    error = Some(format!("{n}: {e:#}"));
                }
            }
        }
        set(&faults
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>()
            .join("+"));
        super::hold(lab, &faults, t0 + plan.window);
        if let Err(e) = super::stop(lab, &faults) {
            tracing::error!("nemesis stop: {e:#}");
            error = Some(format!("undo: {e:#}"));
        }
        let mut e = Event::new(NEMESIS, Kind::Info, F::Nemesis);
        e.fault = Some(format!("stop {}", names.join("+")));
        rec.record(e);
        set("-");
        windows.push(Window {
            names: faults.iter().map(|f| f.name.clone()).collect(),
            details: faults.iter().map(|f| f.detail.clone()).collect(),
            nodes: faults.iter().map(|f| f.node).collect(),
            start_ms: ms(t0),
            end_ms: ms(Instant::now()),
            error,
        });
    }
    windows
}

fn sleep_until(t: Instant, stop: &AtomicBool) {
    while Instant::now() < t && !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(20).min(t - Instant::now()));
    }
}
