//! Merge policy: who resolves a UID conflict (and evens modseqs, [`crate::align`]).
//!
//! When both sides appended during a partition, each side's apply reports the other's message as
//! a UID conflict. Exactly one node writes the resolution (an `Op::Renumber` record giving both
//! messages new UIDs), and it replicates like any change, so every node ends with the same UIDs.
//!
//! Raft mode: the resolver is the active node. Its renumbering takes new UIDs from the same
//! UIDNEXT as its clients' appends, in the same stream of records, so no UID a renumbering gives
//! is also given to a new message elsewhere. With a fixed resolver that was not the active node,
//! the 30-minute jepsen run saw a reader on one node read a renumbered message at a UID that the
//! active node's APPENDUID then gave to another message (invariant 2). While no node is active
//! (an election), conflicts wait pending; the next active node resolves every pending conflict
//! when it takes the role ([`crate::replicator::resolve_pending_on_activation`]).
//!
//! Without raft (keepalived-led, or a plain pair): the lowest node id of the cluster. A fixed
//! choice needs no coordination and cannot produce two competing renumberings (two keepalived
//! masters during a split brain would). While that node is down, conflicting remote entries stay
//! pending (durable in the log, not yet visible) on the others, and are resolved when it
//! returns.

use storage::NodeId;

/// The node that resolves UID conflicts in a cluster of `me` and `peers`.
pub fn resolver(me: NodeId, peers: impl IntoIterator<Item = NodeId>) -> NodeId {
    peers.into_iter().fold(me, NodeId::min)
}

pub fn should_resolve(me: NodeId, peers: impl IntoIterator<Item = NodeId>) -> bool {
    resolver(me, peers) == me
}

/// Whether this node resolves now: the active node in raft mode (`view`), else the fixed
/// [`resolver`].
pub fn resolves_now(
    me: NodeId,
    peers: impl IntoIterator<Item = NodeId>,
    view: Option<&crate::coord::ActiveView>,
) -> bool {
    match view {
        Some(v) => v.am_active,
        None => should_resolve(me, peers),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_resolver_in_any_cluster() {
        let cluster = [3, 1, 2];
        let resolvers: Vec<_> = cluster
            .iter()
            .filter(|&&me| should_resolve(me, cluster.iter().copied().filter(|&p| p != me)))
            .collect();
        assert_eq!(resolvers, vec![&1]);
        assert!(should_resolve(7, []));
    }

    #[test]
    fn in_raft_mode_only_the_active_node_resolves() {
        use crate::coord::ActiveView;
        let active3 = |me| ActiveView {
            active: Some(3),
            epoch: 4,
            am_active: me == 3,
        };
        let cluster = [1u32, 2, 3];
        let resolvers: Vec<_> = cluster
            .iter()
            .filter(|&&me| {
                let v = active3(me);
                resolves_now(me, cluster.iter().copied().filter(|&p| p != me), Some(&v))
            })
            .collect();
        assert_eq!(resolvers, vec![&3]);
        // During an election nobody resolves (conflicts wait pending).
        let none = ActiveView::default();
        assert!(!resolves_now(1, [2, 3], Some(&none)));
        // Without raft: the lowest id, as before.
        assert!(resolves_now(1, [2, 3], None) && !resolves_now(3, [1, 2], None));
    }
}
