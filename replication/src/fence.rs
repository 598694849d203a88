//! Fencing: live records from a node behind the epoch this node knows, and not the active
//! node, are refused (raft mode).

use storage::NodeId;

/// Whether live records of `peer` shipped under `peer_epoch` are refused by a node whose
/// coordinator shows `view`, and why.
pub(crate) fn fence_verdict(
    view: &crate::coord::ActiveView,
    peer: NodeId,
    peer_epoch: u64,
) -> Option<String> {
    if peer_epoch >= view.epoch || view.active == Some(peer) {
        return None;
    }
    Some(format!(
        "{FENCED_PREFIX} node {peer} ships under epoch {peer_epoch}, but this node knows epoch {} (active node: {})",
        view.epoch,
        view.active.map_or("none".to_string(), |a| a.to_string())
    ))
}

/// How a fenced refusal starts (`Message::Error`).
pub const FENCED_PREFIX: &str = "fenced:";

#[cfg(test)]
mod fence_tests {
    use super::*;
    use crate::coord::ActiveView;

    #[test]
    fn only_a_behind_and_inactive_sender_is_fenced() {
        let view = ActiveView {
            active: Some(2),
            epoch: 7,
            am_active: false,
        };
        // The deposed node 1, still at epoch 6: refused, with both epochs named.
        let why = fence_verdict(&view, 1, 6).expect("fenced");
        assert!(why.starts_with(FENCED_PREFIX), "{why}");
        assert!(why.contains("epoch 6") && why.contains("epoch 7"), "{why}");
        // Once it knows epoch 7 (or later), its records merge again.
        assert!(fence_verdict(&view, 1, 7).is_none());
        assert!(fence_verdict(&view, 1, 8).is_none());
        // The active node itself is never fenced, even if this node's view ran ahead.
        assert!(fence_verdict(&view, 2, 3).is_none());
        // Before any election nothing is fenced.
        assert!(fence_verdict(&ActiveView::default(), 1, 0).is_none());
    }
}
