//! Invariant 1: nothing acknowledged is lost. Every delivery or APPEND the server
//! acknowledged is, after the run, on the active node and, after healing, on every node
//! (in any mailbox: MOVEs are allowed), unless a client tried to expunge it.

use super::{places, Input, Verdict};
use crate::harness::history::{Kind, F};
use std::collections::{BTreeMap, BTreeSet};

/// For a missing message, why it may be gone: an expunge aimed (by UID) at another message
/// while a client had seen this one under the same UID: the loss then follows from a reused
/// UID (still a loss: the client that expunged never named this message).
fn collateral(input: &Input, msgid: &str) -> Option<String> {
    let mut uids: BTreeSet<(u32, u32)> = BTreeSet::new();
    for e in input.history.iter().filter(|e| e.kind == Kind::Ok) {
        if e.f == F::Append && e.msgid.as_deref() == Some(msgid) {
            if let (Some(v), Some(u)) = (e.uidvalidity, e.uid) {
                uids.insert((v, u));
            }
        }
        // A delivered message's UID is known only from what readers saw.
        if let Some(obs) = e.read.as_ref().filter(|o| o.mailbox == "INBOX") {
            for s in obs
                .messages
                .iter()
                .filter(|s| s.msgid.as_deref() == Some(msgid))
            {
                uids.insert((obs.uidvalidity, s.uid));
            }
        }
    }
    let mut by_uid: BTreeMap<(u32, u32), &str> = BTreeMap::new();
    for e in input
        .history
        .iter()
        .filter(|e| e.kind == Kind::Invoke && e.f == F::Expunge)
    {
        if let (Some(v), Some(u), Some(m)) = (e.uidvalidity, e.uid, e.msgid.as_deref()) {
            if m != msgid {
                by_uid.insert((v, u), m);
            }
        }
    }
    uids.iter().find_map(|k| {
        by_uid.get(k).map(|other| {
            format!(
                " (UID {} also named {other}, which a client expunged by UID)",
                k.1
            )
        })
    })
}

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
                    let why = collateral(input, m);
                    if why.is_some() {
                        v.count("missing_after_uid_reuse", 1);
                    }
                    v.fail(format!(
                        "{m}: acknowledged, not on the active node {a}{}",
                        why.unwrap_or_default()
                    ));
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
