//! Flags merge last writer wins, per flag, by the HLC time of the change. Each message keeps
//! the time of each flag's last set or clear (`flag_times`), so a change that arrives late
//! (from a peer that was cut off) loses to a later one already applied, and two nodes agree
//! whatever order they saw the changes in.
//!
//! An expunge beats a flag change: a change naming a message that is no longer here (expunged,
//! moved away) changes nothing, so the message stays gone on every node.

use crate::types::{Flag, Flags, HlcTime};
use std::collections::BTreeMap;

/// When each flag of a message was last set or cleared.
pub type FlagTimes = BTreeMap<Flag, HlcTime>;

/// The times a new message starts with: each of its flags set at its insertion.
pub fn initial_times(flags: &Flags, time: HlcTime) -> FlagTimes {
    flags.iter().map(|f| (f.clone(), time)).collect()
}

/// Merges the change "add `add`, remove `remove` at `time`" into `flags`; a flag whose last
/// change is at or after `time` keeps its state. Returns whether `flags` changed. The times of
/// winning changes are kept even when the flag's state does not move, so later merges agree.
pub fn merge(
    flags: &mut Flags,
    times: &mut FlagTimes,
    add: &Flags,
    remove: &Flags,
    time: HlcTime,
) -> bool {
    let mut changed = false;
    let changes = add
        .iter()
        .map(|f| (f, true))
        .chain(remove.iter().map(|f| (f, false)));
    for (f, set) in changes {
        if times.get(f).is_some_and(|t| time <= *t) {
            continue;
        }
        times.insert(f.clone(), time);
        changed |= if set {
            flags.insert(f.clone())
        } else {
            flags.remove(f)
        };
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(wall_ms: u64, node: u32) -> HlcTime {
        HlcTime {
            wall_ms,
            logical: 0,
            node,
        }
    }
    fn set(fs: &[Flag]) -> Flags {
        fs.iter().cloned().collect()
    }

    #[test]
    fn later_change_wins_whatever_the_order() {
        let add = set(&[Flag::Seen]);
        let none = Flags::new();
        // Node 1 sets \Seen at 10, node 2 clears it at 20: cleared on both, in either order.
        let (mut a, mut at) = (Flags::new(), FlagTimes::new());
        merge(&mut a, &mut at, &add, &none, t(10, 1));
        merge(&mut a, &mut at, &none, &add, t(20, 2));
        let (mut b, mut bt) = (Flags::new(), FlagTimes::new());
        assert!(!merge(&mut b, &mut bt, &none, &add, t(20, 2)));
        assert!(
            !merge(&mut b, &mut bt, &add, &none, t(10, 1)),
            "the older set loses"
        );
        assert_eq!((a.clone(), at.clone()), (b, bt));
        assert!(a.is_empty());
    }

    #[test]
    fn equal_time_is_not_a_change() {
        let add = set(&[Flag::Flagged]);
        let (mut f, mut ft) = (Flags::new(), FlagTimes::new());
        assert!(merge(&mut f, &mut ft, &add, &Flags::new(), t(5, 1)));
        // A replay of the same record changes nothing.
        assert!(!merge(&mut f, &mut ft, &Flags::new(), &add, t(5, 1)));
        assert!(f.contains(&Flag::Flagged));
    }

    #[test]
    fn flags_merge_independently() {
        let (mut f, mut ft) = (Flags::new(), FlagTimes::new());
        merge(
            &mut f,
            &mut ft,
            &set(&[Flag::Seen]),
            &Flags::new(),
            t(30, 1),
        );
        merge(
            &mut f,
            &mut ft,
            &set(&[Flag::Answered]),
            &set(&[Flag::Seen]),
            t(20, 2),
        );
        assert_eq!(f, set(&[Flag::Seen, Flag::Answered]));
    }
}
