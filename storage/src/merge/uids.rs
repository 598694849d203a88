//! Within one UIDVALIDITY a UID names one message forever (invariant 2), even after a split
//! brain is merged.
//!
//! - An incoming message whose UID is held here by another message (live, a ghost, or an
//!   expunged UID's tombstone) does not take it: it is parked (pending) until renumbered.
//! - The merge resolver (one node, chosen by replication) then gives every message involved
//!   (the parked ones, and the live holders of contested UIDs) new UIDs from UIDNEXT up, in one
//!   `Renumber` record; the old UIDs are expunged for every client. Both nodes apply the same
//!   record, so they agree on every UID.
//! - UIDs are `1..=MAX_UID` so that UIDNEXT (one past the highest) always fits in 32 bits; a
//!   mailbox with too few UIDs left to renumber its conflicts refuses the change that would
//!   need them rather than wrap around to a used UID.

use crate::types::Guid;

/// The highest UID a message can have: UIDNEXT after it is `u32::MAX`, the last 32-bit value.
pub const MAX_UID: u32 = u32::MAX - 1;

/// Whether `uid` can name a message.
pub fn is_valid(uid: u32) -> bool {
    (1..=MAX_UID).contains(&uid)
}

/// UIDNEXT after a message at `uid` arrived in a mailbox at `uidnext`. Saturates at
/// `u32::MAX` (a full mailbox); callers only pass valid UIDs, whose successor fits.
pub fn uidnext_after(uidnext: u32, uid: u32) -> u32 {
    uidnext.max(uid.saturating_add(1))
}

/// Whether an incoming message `incoming` must be parked because `holder` (the message that
/// holds, or held, its UID here) is another message.
pub fn is_conflict(holder: Option<Guid>, incoming: Guid) -> bool {
    holder.is_some_and(|h| h != incoming)
}

/// Whether a mailbox at `uidnext` has `n` UIDs left for new or renumbered messages.
pub fn has_room(uidnext: u32, n: usize) -> bool {
    let last = u64::from(uidnext) + n as u64; // one past the last UID given
    n == 0 || last <= u64::from(MAX_UID) + 1
}

/// Not enough UIDs left in a mailbox.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{needed} messages need new UIDs from {uidnext}, past the highest UID {MAX_UID}")]
pub struct NoUidsLeft {
    pub uidnext: u32,
    pub needed: usize,
}

/// The resolver's renumbering: `involved` (in the order given, which the resolver makes the
/// same on every node by writing it into one record) get UIDs from `uidnext` up.
pub fn renumber(uidnext: u32, involved: &[Guid]) -> Result<Vec<(Guid, u32)>, NoUidsLeft> {
    if !has_room(uidnext, involved.len()) {
        return Err(NoUidsLeft {
            uidnext,
            needed: involved.len(),
        });
    }
    // has_room bounds every uidnext + i by MAX_UID, so the additions below do not overflow.
    Ok(involved
        .iter()
        .zip(uidnext..)
        .map(|(g, uid)| (*g, uid))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renumbering_stops_before_the_last_uid() {
        let gs = [Guid([1; 16]), Guid([2; 16])];
        assert_eq!(renumber(7, &gs).unwrap(), vec![(gs[0], 7), (gs[1], 8)]);
        assert_eq!(renumber(MAX_UID - 1, &gs).unwrap()[1].1, MAX_UID);
        assert!(renumber(MAX_UID, &gs).is_err());
        assert!(renumber(u32::MAX, &gs[..1]).is_err());
        assert!(renumber(u32::MAX, &[]).unwrap().is_empty());
    }

    #[test]
    fn only_another_message_is_a_conflict() {
        let (a, b) = (Guid([1; 16]), Guid([2; 16]));
        assert!(is_conflict(Some(a), b));
        assert!(!is_conflict(Some(a), a), "a replay of the same message");
        assert!(!is_conflict(None, a));
    }

    #[test]
    fn uid_range() {
        assert!(!is_valid(0));
        assert!(is_valid(1));
        assert!(is_valid(MAX_UID));
        assert!(!is_valid(u32::MAX));
        assert_eq!(uidnext_after(1, MAX_UID), u32::MAX);
        assert_eq!(uidnext_after(10, 3), 10);
    }
}
