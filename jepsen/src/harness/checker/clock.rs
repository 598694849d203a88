//! Invariant 6, as an operator sees it: a wall-clock step is logged as one warning with its
//! size, not once per clock read for as long as the clock stays behind (at 200 deliveries/s an
//! hour-long step used to write a warning per record): never more warnings than steps. A node
//! that did not read its clock while it was stepped (a passive node takes no local writes)
//! logs none, which is counted, not failed.

use super::{Input, Verdict};

/// How a node's log reports a step (storage/src/hlc.rs).
pub const STEP_MARKERS: [&str; 2] = [
    "wall clock stepped backwards by",
    "wall clock jumped forwards by",
];

/// Lines of `log` that report a wall-clock step.
pub fn step_warnings(log: &str) -> u64 {
    log.lines()
        .filter(|l| STEP_MARKERS.iter().any(|m| l.contains(m)))
        .count() as u64
}

pub fn check(input: &Input) -> Verdict {
    let mut v = Verdict::new(
        "clock-steps",
        "6: a clock step is logged once, with its size",
    );
    for (id, f) in input.facts {
        if f.clock_changes == 0 {
            continue;
        }
        v.count("clock_changes", f.clock_changes);
        v.count("step_warnings", f.clock_step_warnings);
        if f.clock_step_warnings > f.clock_changes {
            v.fail(format!(
                "node {id} logged {} clock-step warnings for {} changes of its clock",
                f.clock_step_warnings, f.clock_changes
            ));
        } else if f.clock_step_warnings == 0 {
            v.count("nodes_without_a_clock_read", 1);
        }
    }
    v
}
