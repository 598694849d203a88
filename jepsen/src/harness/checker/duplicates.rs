//! Invariant 4: a message is delivered once. No Message-ID appears twice on a node (our
//! clients never COPY and never retry an APPEND; LMTP retries reuse the Message-ID), nor
//! twice in one mailbox in anything a reader saw at once.

use super::{places, Input, Verdict};
use crate::harness::history::{Kind, F};
use std::collections::BTreeMap;

pub fn check(input: &Input) -> Verdict {
    let mut v = Verdict::new("duplicates", "4: a message is delivered once");
    let retried = {
        let mut n: BTreeMap<&str, u64> = BTreeMap::new();
        for e in input
            .history
            .iter()
            .filter(|e| e.kind == Kind::Invoke && e.f == F::Deliver)
        {
            if let Some(m) = &e.msgid {
                *n.entry(m.as_str()).or_default() += 1;
            }
        }
        n.values().filter(|c| **c > 1).count()
    };
    v.count("deliveries_retried", retried as u64);
    for (id, d) in input.dumps {
        let Ok(d) = d else { continue };
        for (msgid, at) in places(d) {
            if at.len() > 1 {
                v.fail(format!(
                    "node {id}: {msgid} stored {} times: {at:?}",
                    at.len()
                ));
            }
        }
    }
    for e in input.history.iter().filter(|e| e.kind == Kind::Ok) {
        let Some(obs) = &e.read else { continue };
        let mut seen: BTreeMap<&str, u32> = BTreeMap::new();
        for s in &obs.messages {
            let Some(m) = &s.msgid else { continue };
            if let Some(other) = seen.insert(m, s.uid) {
                v.fail(format!(
                    "process {} saw {m} at UIDs {other} and {} of {}",
                    e.process, s.uid, obs.mailbox
                ));
            }
        }
    }
    v
}
