//! Invariant 5: replicas converge. After healing, every node holds the same mailboxes
//! (UIDVALIDITY) and messages (UID, Message-ID, flags, MODSEQ).

use super::{Input, Verdict};

pub fn check(input: &Input) -> Verdict {
    let mut v = Verdict::new("replicas-identical", "5: replicas converge after healing");
    let readable: Vec<_> = input
        .dumps
        .iter()
        .filter_map(|(id, d)| d.as_ref().ok().map(|d| (*id, d)))
        .collect();
    v.count("nodes_compared", readable.len() as u64);
    if readable.len() < input.dumps.len() {
        v.fail(format!(
            "{} of {} nodes could not be read",
            input.dumps.len() - readable.len(),
            input.dumps.len()
        ));
    }
    let Some((first_id, first)) = readable.first().copied() else {
        return v;
    };
    for (id, d) in readable.iter().skip(1) {
        let names: std::collections::BTreeSet<&String> = first.keys().chain(d.keys()).collect();
        for name in names {
            match (first.get(name), d.get(name)) {
                (Some(a), Some(b)) => {
                    if a.uidvalidity != b.uidvalidity {
                        v.fail(format!(
                            "{name}: UIDVALIDITY {} on node {first_id}, {} on node {id}",
                            a.uidvalidity, b.uidvalidity
                        ));
                    }
                    let ua: std::collections::BTreeMap<u32, _> =
                        a.messages.iter().map(|m| (m.uid, m)).collect();
                    let ub: std::collections::BTreeMap<u32, _> =
                        b.messages.iter().map(|m| (m.uid, m)).collect();
                    let uids: std::collections::BTreeSet<&u32> =
                        ua.keys().chain(ub.keys()).collect();
                    let mut differ = 0u64;
                    for u in uids {
                        if ua.get(u) != ub.get(u) {
                            differ += 1;
                            v.fail(format!(
                                "{name} UID {u}: node {first_id} has {:?}, node {id} has {:?}",
                                ua.get(u),
                                ub.get(u)
                            ));
                        }
                    }
                    v.count("messages_differing", differ);
                }
                (a, b) => v.fail(format!(
                    "mailbox {name}: on node {first_id}: {}, on node {id}: {}",
                    a.is_some(),
                    b.is_some()
                )),
            }
        }
    }
    v
}
