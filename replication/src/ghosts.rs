//! Ghosts per user for `node replication status` and `/metrics`: messages a peer shipped
//! without their object (purged there) that this node keeps invisible until their removal
//! arrives (see `purged`). A count that stays above zero after the peers have nothing more to
//! send is a peer's error for the operator.
//!
//! Counting a user's ghosts is one index prefix scan; `/metrics` must not do that for every user
//! at every scrape. So the counts are cached: a user whose store changed (its `watch` ticked) is
//! marked stale, and the periodic rescan recounts the stale users only. `status()` recounts every
//! tracked user (it already reads each one's version vector).

use crate::store_api::ReplicaUser;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// One user's ghosts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserGhosts {
    pub user: String,
    pub ghosts: u64,
}

#[derive(Default)]
pub(crate) struct GhostCounts {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Users changed since they were last counted.
    stale: HashSet<String>,
    /// Users that have had ghosts: a count that fell to 0 stays listed (at 0) so a metric
    /// labelled with the user goes back to 0 instead of keeping its last value.
    counts: BTreeMap<String, u64>,
}

impl GhostCounts {
    /// `user`'s store changed: its count may have.
    pub(crate) fn touched(&self, user: &str) {
        let mut i = self.inner.lock();
        if !i.stale.contains(user) {
            i.stale.insert(user.to_string());
        }
    }

    pub(crate) fn take_stale(&self) -> Vec<String> {
        self.inner.lock().stale.drain().collect()
    }

    fn set(&self, user: &str, n: u64) {
        let mut i = self.inner.lock();
        if n > 0 {
            i.counts.insert(user.to_string(), n);
        } else if let Some(c) = i.counts.get_mut(user) {
            *c = 0;
        }
    }

    /// Users that have (or had) ghosts, by name; zeros included (see `Inner::counts`).
    pub(crate) fn all(&self) -> Vec<UserGhosts> {
        self.inner
            .lock()
            .counts
            .iter()
            .map(|(user, &ghosts)| UserGhosts {
                user: user.clone(),
                ghosts,
            })
            .collect()
    }

    /// Users with ghosts now.
    pub(crate) fn nonzero(&self) -> Vec<UserGhosts> {
        let mut v = self.all();
        v.retain(|g| g.ghosts > 0);
        v
    }

    /// Stores counts made by the caller (`status()`): they are current, so not stale.
    pub(crate) fn record(&self, counted: &[(String, u64)]) {
        for (user, n) in counted {
            self.set(user, *n);
        }
    }
}

/// Counts `users`' ghosts in one blocking call; a user whose count fails is left out (logged).
pub(crate) fn count(users: &[(String, Arc<dyn ReplicaUser>)]) -> Vec<(String, u64)> {
    users
        .iter()
        .filter_map(|(name, u)| match u.ghost_count() {
            Ok(n) => Some((name.clone(), n as u64)),
            Err(e) => {
                tracing::warn!(user = %name, error = %e, "replication: cannot count ghosts");
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_that_falls_to_zero_stays_listed_at_zero_but_is_not_shown() {
        let g = GhostCounts::default();
        g.record(&[("alice".into(), 2), ("bob".into(), 0)]);
        assert_eq!(
            g.nonzero(),
            vec![UserGhosts {
                user: "alice".into(),
                ghosts: 2
            }]
        );
        g.record(&[("alice".into(), 0)]);
        assert!(g.nonzero().is_empty());
        assert_eq!(
            g.all(),
            vec![UserGhosts {
                user: "alice".into(),
                ghosts: 0
            }]
        );
    }

    #[test]
    fn touched_users_are_taken_once() {
        let g = GhostCounts::default();
        g.touched("alice");
        g.touched("alice");
        g.touched("bob");
        let mut s = g.take_stale();
        s.sort();
        assert_eq!(s, vec!["alice".to_string(), "bob".to_string()]);
        assert!(g.take_stale().is_empty());
    }
}
