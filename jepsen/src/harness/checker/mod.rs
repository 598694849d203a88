//! Checkers: one per invariant (docs: design.md "Invariants"), each a pure function of the
//! history and the nodes' final state. They never look inside a node.

pub mod clock;
pub mod duplicates;
pub mod liveness;
pub mod lost;
pub mod modseqs;
pub mod replicas;
pub mod uids;
pub mod uidvalidity;

#[cfg(test)]
mod tests;

use super::dump::NodeDump;
use super::history::Event;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a node did besides answering IMAP, read from outside (its log, whether it answered).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NodeFacts {
    /// Lines of its log that say it panicked.
    pub panics: Vec<String>,
    /// Set on the active node when it refused every write after healing (a probe APPEND
    /// through the service address, retried for a while): why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refuses_writes: Option<String>,
    /// Times the harness changed its wall clock (a step, and the heal that undid it).
    #[serde(default)]
    pub clock_changes: u64,
    /// Lines of its log that report a step of its wall clock.
    #[serde(default)]
    pub clock_step_warnings: u64,
    /// UIDVALIDITY changes its log explains: (old, new).
    #[serde(default)]
    pub uidvalidity_changes: Vec<(u32, u32)>,
}

pub struct Input<'a> {
    pub history: &'a [Event],
    /// The node holding the service address after the run (and heal).
    pub active: Option<u32>,
    /// Each node's final state, or why it could not be read.
    pub dumps: &'a BTreeMap<u32, Result<NodeDump, String>>,
    pub facts: &'a BTreeMap<u32, NodeFacts>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Verdict {
    pub name: String,
    pub invariant: String,
    pub pass: bool,
    pub counts: BTreeMap<String, u64>,
    /// The first few violations, readable.
    pub problems: Vec<String>,
}

/// At most this many problems are kept per checker (the counts have the rest).
pub const MAX_PROBLEMS: usize = 20;

impl Verdict {
    pub fn new(name: &str, invariant: &str) -> Verdict {
        Verdict {
            name: name.into(),
            invariant: invariant.into(),
            pass: true,
            counts: BTreeMap::new(),
            problems: Vec::new(),
        }
    }
    pub fn count(&mut self, key: &str, n: u64) {
        *self.counts.entry(key.into()).or_default() += n;
    }
    pub fn fail(&mut self, problem: String) {
        self.pass = false;
        self.count("violations", 1);
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(problem);
        }
    }
}

pub fn check_all(input: &Input) -> Vec<Verdict> {
    vec![
        lost::check(input),
        duplicates::check(input),
        uids::check(input),
        modseqs::check(input),
        replicas::check(input),
        liveness::check(input),
        clock::check(input),
        uidvalidity::check(input),
    ]
}

/// Message-ID -> places ("mailbox/uid") in one node's dump.
pub fn places(dump: &NodeDump) -> BTreeMap<&str, Vec<String>> {
    let mut m: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (name, mb) in dump {
        for s in &mb.messages {
            if let Some(id) = &s.msgid {
                m.entry(id.as_str())
                    .or_default()
                    .push(format!("{name}/{}", s.uid));
            }
        }
    }
    m
}
