//! Modseqs only grow per mailbox (invariant 3): CONDSTORE/QRESYNC clients cache by them.
//!
//! Every applied change that a client can see takes HIGHESTMODSEQ + 1. When the merge resolver
//! gives messages (or tombstones) that two nodes numbered differently one common modseq, the
//! common value is never below anything a node has shown: `max(target, HIGHESTMODSEQ + 1)`. A
//! node that moved on since the resolver looked lands higher, and the next check evens it.

/// RFC 7162: a mod-sequence is a positive 63-bit number. Peers may not send larger ones, which
/// leaves room for every later change (each adds one).
pub const MAX_MODSEQ: u64 = (1 << 63) - 1;

/// The modseq of the next visible change after `highest`.
pub fn next(highest: u64) -> u64 {
    // Saturating: highest stays near MAX_MODSEQ at most (peers' values are bounded by it and
    // each record adds one), so this never saturates in practice; if it did, a repeated modseq
    // beats a wrap to 0.
    highest.saturating_add(1)
}

/// The modseq an alignment to `target` gives in a mailbox at `highest`: never below what this
/// node has shown.
pub fn aligned(target: u64, highest: u64) -> u64 {
    target.max(next(highest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_never_goes_back() {
        assert_eq!(aligned(10, 4), 10);
        assert_eq!(aligned(10, 12), 13);
        assert_eq!(aligned(MAX_MODSEQ, MAX_MODSEQ), MAX_MODSEQ + 1);
        assert_eq!(next(u64::MAX), u64::MAX);
    }
}
