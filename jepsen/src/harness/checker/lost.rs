//! Invariant 1: nothing acknowledged is lost. Every delivery or APPEND the server
//! acknowledged is, after the run, on the active node and, after healing, on every node
//! (in any mailbox: MOVEs are allowed), unless a client tried to expunge it.

use super::{places, Input, Verdict};
use crate::harness::history::{Kind, F};
use std::collections::BTreeSet;

pub fn check(input: &Input) -> Verdict {
    let mut v = Verdict::new("lost-writes", "1: nothing acknowledged is lost");
    let acked: BTreeSet<&str> = input
        .history
        .iter()
        .filter(|e| e.kind == Kind::Ok && matches!(e.f, F::Deliver | F::Append))
        .filter_map(|e| e.msgid.as_deref())
        .collect();
    // Any attempt counts: an expunge whose outcome is unknown may have happened.
    let expunged: BTreeSet<&str> = input
        .history
        .iter()
        .filter(|e| e.kind == Kind::Invoke && e.f == F::Expunge)
        .filter_map(|e| e.msgid.as_deref())
        .collect();
    let must: Vec<&str> = acked.difference(&expunged).copied().collect();
    v.count("acknowledged", acked.len() as u64);
    v.count(
        "expunged_on_purpose",
        acked.intersection(&expunged).count() as u64,
    );
    match input.active {
        None => v.fail("no node holds the service address after the run".into()),
        Some(a) => match input.dumps.get(&a) {
            Some(Ok(d)) => {
                let p = places(d);
                let missing: Vec<&&str> = must.iter().filter(|m| !p.contains_key(**m)).collect();
                v.count("missing_on_active", missing.len() as u64);
                for m in missing {
                    v.fail(format!("{m}: acknowledged, not on the active node {a}"));
                }
            }
            _ => v.fail(format!("the active node {a} could not be read")),
        },
    }
    for (id, d) in input.dumps {
        let Ok(d) = d else { continue };
        let p = places(d);
        let missing: Vec<&&str> = must.iter().filter(|m| !p.contains_key(**m)).collect();
        v.count("missing_on_some_node", missing.len() as u64);
        for m in missing {
            v.fail(format!("{m}: acknowledged, not on node {id} after healing"));
        }
    }
    v
}
