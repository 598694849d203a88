//! Merge policy: who resolves a UID conflict.
//!
//! When both sides appended during a partition, each side's apply reports the other's message as
//! a UID conflict. Exactly one node writes the resolution (an `Op::Renumber` record giving both
//! messages new UIDs), and it replicates like any change, so every node ends with the same UIDs.
//! The resolver is the lowest node id of the cluster: a fixed choice needs no coordination and
//! cannot produce two competing renumberings. While that node is down, conflicting remote
//! entries stay pending (durable in the log, not yet visible) on the others, and are resolved
//! when it returns; the local messages stay visible meanwhile.

use storage::NodeId;

/// The node that resolves UID conflicts in a cluster of `me` and `peers`.
pub fn resolver(me: NodeId, peers: impl IntoIterator<Item = NodeId>) -> NodeId {
    peers.into_iter().fold(me, NodeId::min)
}

pub fn should_resolve(me: NodeId, peers: impl IntoIterator<Item = NodeId>) -> bool {
    resolver(me, peers) == me
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
}
