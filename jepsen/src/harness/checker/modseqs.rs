//! Invariant 3: modseqs only grow. For each reader, within one mailbox and UIDVALIDITY,
//! HIGHESTMODSEQ never goes back between its resyncs, and no message's MODSEQ goes back.

use super::{Input, Verdict};
use crate::harness::history::Kind;
use std::collections::BTreeMap;

pub fn check(input: &Input) -> Verdict {
    let mut v = Verdict::new("modseq-monotonic", "3: modseqs only grow per mailbox");
    let mut highest: BTreeMap<(u32, String, u32), u64> = BTreeMap::new();
    let mut per_msg: BTreeMap<(u32, String, u32, u32), u64> = BTreeMap::new();
    for e in input.history.iter().filter(|e| e.kind == Kind::Ok) {
        let Some(obs) = &e.read else { continue };
        v.count("resyncs", 1);
        let key = (e.process, obs.mailbox.clone(), obs.uidvalidity);
        if let Some(h) = obs.highestmodseq {
            if let Some(prev) = highest.get(&key) {
                if h < *prev {
                    v.fail(format!(
                        "process {} {} (UIDVALIDITY {}): HIGHESTMODSEQ {prev} then {h} at {} ms (node {:?})",
                        e.process, obs.mailbox, obs.uidvalidity, e.t_us / 1000, e.node
                    ));
                }
            }
            highest.insert(key, h);
        }
        for s in &obs.messages {
            let Some(m) = s.modseq else { continue };
            let k = (e.process, obs.mailbox.clone(), obs.uidvalidity, s.uid);
            if let Some(prev) = per_msg.get(&k) {
                if m < *prev {
                    v.fail(format!(
                        "process {} {}/{}: UID {} MODSEQ {prev} then {m} at {} ms",
                        e.process,
                        obs.mailbox,
                        obs.uidvalidity,
                        s.uid,
                        e.t_us / 1000
                    ));
                }
            }
            per_msg.insert(k, m);
        }
    }
    v
}
