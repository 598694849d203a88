//! Mailboxes are matched by GUID, never by name, so a rename or delete on one node finds the
//! same mailbox on the other.
//!
//! - A delete is final: a mailbox deleted here ignores a create of its GUID arriving later
//!   (a replayed or late record), so the nodes cannot disagree on whether it exists.
//! - The same mailbox created on two nodes (the default mailboxes have one GUID everywhere)
//!   keeps the earlier creation's UIDVALIDITY while it has never held a message: both nodes
//!   end with the same UID space whatever order they see the creations in. Once a message is
//!   in it, its UIDVALIDITY never changes by a merge (clients cache UIDs under it).

use crate::types::HlcTime;

/// Whether an incoming creation at `incoming` of a mailbox already here (created at `created`,
/// next UID `uidnext`) replaces its UIDVALIDITY and creation time.
pub fn earlier_creation_wins(uidnext: u32, created: HlcTime, incoming: HlcTime) -> bool {
    uidnext == 1 && incoming < created
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
    fn only_an_empty_mailbox_takes_an_earlier_uidvalidity() {
        assert!(earlier_creation_wins(1, t(20), t(10)));
        assert!(!earlier_creation_wins(1, t(10), t(20)));
        assert!(
            !earlier_creation_wins(2, t(20), t(10)),
            "held a message: UIDs are cached"
        );
    }
}
