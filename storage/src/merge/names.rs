//! A mailbox's name. Each mailbox *wants* the name its winning create or rename asked for:
//! the rename with the greatest HLC time wins (last writer wins per GUID); while there is none,
//! the earliest create (a default mailbox is created with one GUID on every node, each node at
//! its own time, and a node that joins late must not undo renames made before it came). A
//! request that loses changes nothing, so what a mailbox wants is a function of the set of its
//! create/rename records, not of their order.
//!
//! Two mailboxes that want one name: the one named earliest (HLC time, then GUID) keeps it, the
//! others get `<name>-<first 8 hex digits of their GUID>`; the suffix goes when the clash does.

use crate::types::{Guid, HlcTime};

/// How a mailbox holds its wanted name now: when it was named and whether by a rename.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Naming {
    pub named: HlcTime,
    pub renamed: bool,
}

/// Whether a create (`rename == false`) or rename at `time` takes over from `current`.
pub fn claim_wins(current: Naming, time: HlcTime, rename: bool) -> bool {
    match (rename, current.renamed) {
        (true, false) => true,
        (false, true) => false,
        (true, true) => time > current.named,
        (false, false) => time < current.named,
    }
}

/// The order in which mailboxes wanting one name get it: the first keeps the plain name.
pub fn clash_order(named: HlcTime, id: Guid) -> (HlcTime, Guid) {
    (named, id)
}

/// The name a mailbox that lost a clash for `name` gets.
pub fn suffixed(name: &str, id: &Guid) -> String {
    let hex = id.to_hex();
    format!("{name}-{}", hex.get(..8).unwrap_or(&hex))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(wall_ms: u64) -> HlcTime {
        HlcTime {
            wall_ms,
            logical: 0,
            node: 1,
        }
    }
    fn naming(named: u64, renamed: bool) -> Naming {
        Naming {
            named: t(named),
            renamed,
        }
    }

    #[test]
    fn latest_rename_beats_everything_earliest_create_beats_creates() {
        assert!(
            claim_wins(naming(50, false), t(10), true),
            "any rename beats a create"
        );
        assert!(
            !claim_wins(naming(10, true), t(50), false),
            "no create beats a rename"
        );
        assert!(claim_wins(naming(10, true), t(20), true));
        assert!(!claim_wins(naming(20, true), t(10), true));
        assert!(claim_wins(naming(20, false), t(10), false));
        assert!(!claim_wins(naming(10, false), t(20), false));
    }

    #[test]
    fn suffix_is_short_and_stable() {
        let g = Guid([0xab; 16]);
        assert_eq!(suffixed("Work", &g), "Work-abababab");
    }
}
