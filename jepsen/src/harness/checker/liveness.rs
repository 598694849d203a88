//! Invariants 6 and 7, as seen from outside: a node that panicked (its log says so), does
//! not serve IMAP at the end (after healing and restarts), or is active and refuses every
//! write after healing, is a failure.

use super::{Input, Verdict};

pub fn check(input: &Input) -> Verdict {
    let mut v = Verdict::new("nodes-serve", "6/7: no node panics or stops serving");
    for (id, d) in input.dumps {
        match d {
            Ok(_) => v.count("nodes_serving", 1),
            Err(e) => v.fail(format!("node {id} does not serve IMAP at the end: {e}")),
        }
    }
    for (id, f) in input.facts {
        for p in &f.panics {
            v.fail(format!("node {id} panicked: {p}"));
        }
        if let Some(why) = &f.refuses_writes {
            v.fail(format!(
                "node {id} is active but refuses writes after healing: {why}"
            ));
        }
    }
    v
}
