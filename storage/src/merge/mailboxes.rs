//! Mailboxes are matched by GUID, never by name, so a rename or delete on one node finds the
//! same mailbox on the other.
//!
//! - A delete is final: a mailbox deleted here ignores a create of its GUID arriving later
//!   (a replayed or late record), so the nodes cannot disagree on whether it exists.
//! - The same mailbox created on two nodes (the default mailboxes have one GUID everywhere,
//!   and a user first seen on both nodes before they replicated gets them on both) keeps the
//!   earliest creation's UIDVALIDITY: a function of the set of its creations, so both nodes
//!   end with the same UID space whatever order they see them in (invariant 5). A node whose
//!   copy already held messages changes its UIDVALIDITY then, which tells its clients to drop
//!   what they cached; messages keep their UIDs, and two messages that claim one UID are
//!   renumbered like any UID conflict ([`super::uids`]), so no UID names two messages under
//!   the UIDVALIDITY that stays (invariant 2). Keeping the later one on a node that had
//!   messages (the rule before) left the two nodes on different UIDVALIDITYs for good.

use crate::types::HlcTime;

/// Whether an incoming creation at `incoming` of a mailbox already here (created at
/// `created`) replaces its UIDVALIDITY and creation time: the earliest creation wins.
pub fn earlier_creation_wins(created: HlcTime, incoming: HlcTime) -> bool {
    incoming < created
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

    #[test]
    fn the_earliest_creation_wins_whatever_the_mailbox_holds() {
        assert!(earlier_creation_wins(t(20), t(10)));
        assert!(!earlier_creation_wins(t(10), t(20)));
        assert!(
            !earlier_creation_wins(t(10), t(10)),
            "a replay changes nothing"
        );
    }
}
