//! What readers may see of this node's own writes before a peer holds them (see
//! `crate::unconfirmed`): the limits per mailbox, and their confirmation.

use super::UserStore;
use crate::types::MailboxId;
use crate::unconfirmed::VisibleLimit;

impl UserStore {
    /// The limit on what readers see of `mailbox` while some of this node's writes to it are
    /// unconfirmed; None when everything may be shown.
    pub fn visible_limit(&self, mailbox: &MailboxId) -> Option<VisibleLimit> {
        self.core.unconfirmed.limit(mailbox)
    }

    /// Whether some of this node's writes are unconfirmed (a cheap check before the limits).
    pub fn has_unconfirmed(&self) -> bool {
        !self.core.unconfirmed.is_empty()
    }

    /// This node's own records up to `seq` are held by a peer (or acknowledged alone after the
    /// replication timeout): readers see them from now on, and watchers (IDLE) are woken.
    pub fn confirm_own(&self, seq: u64) {
        if self.core.unconfirmed.confirm(seq) {
            self.core.notify_changed();
        }
    }

    /// The sequence number of this node's newest record for this user.
    pub fn own_seq(&self) -> crate::error::Result<u64> {
        let me = self.core.shared.config.node_id;
        Ok(self.core.view().meta()?.vv.get(&me).copied().unwrap_or(0))
    }
}
