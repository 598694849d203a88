//! Invariant 2's other half: a mailbox's UIDVALIDITY changes only for a reason a node logged.
//! Every change a reader saw (within one process and mailbox, a value different from the one
//! it saw before) must match a node's `UIDVALIDITY changed ... old=A new=B` log line; an
//! unexplained change is a failure (two replicas serving one mailbox under different
//! UIDVALIDITYs looks exactly like that to a client that moves between them).

use super::{Input, Verdict};
use crate::harness::history::Kind;
use std::collections::{BTreeMap, BTreeSet};

/// How a node's log explains a change (storage/src/index/apply/mailbox.rs).
pub const MARKER: &str = "UIDVALIDITY changed";

/// The (old, new) pairs a node's log explains.
pub fn logged_changes(log: &str) -> Vec<(u32, u32)> {
    log.lines()
        .filter(|l| l.contains(MARKER))
        .filter_map(|l| Some((field(l, "old=")?, field(l, "new=")?)))
        .collect()
}

fn field(line: &str, key: &str) -> Option<u32> {
    let rest = &line[line.find(key)? + key.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

pub fn check(input: &Input) -> Verdict {
    let mut v = Verdict::new(
        "uidvalidity-changes",
        "2: every UIDVALIDITY change is explained in a node's log",
    );
    let explained: BTreeSet<(u32, u32)> = input
        .facts
        .values()
        .flat_map(|f| f.uidvalidity_changes.iter().copied())
        .collect();
    let mut last: BTreeMap<(u32, String), u32> = BTreeMap::new();
    for e in input.history.iter().filter(|e| e.kind == Kind::Ok) {
        let Some(obs) = &e.read else { continue };
        let key = (e.process, obs.mailbox.clone());
        if let Some(prev) = last.insert(key, obs.uidvalidity) {
            if prev != obs.uidvalidity {
                v.count("changes_seen", 1);
                if explained.contains(&(prev, obs.uidvalidity)) {
                    v.count("explained", 1);
                } else {
                    v.fail(format!(
                        "process {} {}: UIDVALIDITY {prev} then {} at {} ms (node {:?}), explained by no node's log",
                        e.process,
                        obs.mailbox,
                        obs.uidvalidity,
                        e.t_us / 1000,
                        e.node
                    ));
                }
            }
        }
    }
    v
}
