//! When this node's own writes may be shown to its readers (`replicated` durability hides
//! them until then, see `storage::VisibleLimit`).
//!
//! A peer holding a record is not enough: a node cut off while it was active comes back with
//! writes the cluster never acknowledged, and the peer that takes them may hold another
//! message at the same UID (the merge then hides both until it renumbers them). This node
//! learns of that conflict only once it holds what the peer held. So its records up to `seq`
//! are confirmed when a peer acknowledged them and this node's version vector covers that
//! peer's: every record that could contest them is applied here too.

use crate::state::Shared;
use crate::store_api::ReplicaUser;
use crate::util::covers;
use std::sync::Arc;
use storage::VersionVector;

pub(crate) fn own_if_caught_up(
    sh: &Shared,
    u: &Arc<dyn ReplicaUser>,
    user: &str,
    local: &VersionVector,
) {
    let me = sh.cfg.node_id;
    let seq = sh
        .peers
        .values()
        .filter_map(|p| {
            let acked = p.acked.lock().get(user).cloned()?;
            covers(local, &acked).then(|| acked.get(&me).copied().unwrap_or(0))
        })
        .max();
    if let Some(seq) = seq.filter(|s| *s > 0) {
        u.confirm_own(seq);
    }
}
