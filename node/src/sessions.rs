//! Live connections of the running node, for `node who` and `node kick` (doveadm who/kick):
//! each connection registers with its listener and address, its login adds the user, and a
//! kick cancels the connection's token: the session says goodbye as at shutdown.

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;
use tokio_util::sync::CancellationToken;

struct Live {
    listener: &'static str,
    remote: SocketAddr,
    since: SystemTime,
    user: Option<String>,
    kick: CancellationToken,
}

/// One logged-in session as `node who` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoEntry {
    pub user: String,
    pub service: String,
    pub rip: String,
    pub session: String,
    /// Seconds since the connection was accepted.
    pub connected_secs: u64,
}

#[derive(Default)]
pub struct LiveSessions {
    by_id: Mutex<HashMap<String, Live>>,
}

/// Removes the connection from the registry when its task ends.
pub struct LiveGuard {
    sessions: Arc<LiveSessions>,
    id: String,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.sessions.by_id.lock().remove(&self.id);
    }
}

impl LiveSessions {
    /// A new connection; `kick` is cancelled to disconnect it.
    pub fn open(
        self: &Arc<Self>,
        id: &str,
        listener: &'static str,
        remote: SocketAddr,
        kick: CancellationToken,
    ) -> LiveGuard {
        self.by_id.lock().insert(
            id.to_string(),
            Live {
                listener,
                remote,
                since: SystemTime::now(),
                user: None,
                kick,
            },
        );
        LiveGuard {
            sessions: self.clone(),
            id: id.to_string(),
        }
    }

    /// The session `id` logged in as `user`.
    pub fn logged_in(&self, id: &str, user: &str) {
        if let Some(l) = self.by_id.lock().get_mut(id) {
            l.user = Some(user.to_string());
        }
    }

    fn entries(&self, mask: Option<&str>, kick: bool) -> Vec<WhoEntry> {
        let now = SystemTime::now();
        let map = self.by_id.lock();
        let mut out: Vec<WhoEntry> = map
            .iter()
            .filter_map(|(id, l)| {
                let user = l.user.as_ref()?;
                // Kicked (or shutting down): on its way out, no longer listed.
                if l.kick.is_cancelled() {
                    return None;
                }
                if mask.is_some_and(|m| !user_mask_matches(m, user)) {
                    return None;
                }
                if kick {
                    l.kick.cancel();
                }
                Some(WhoEntry {
                    user: user.clone(),
                    // imaps and imap are one service, as doveadm who shows it.
                    service: l.listener.trim_end_matches('s').to_string(),
                    rip: l.remote.ip().to_string(),
                    session: id.clone(),
                    connected_secs: now.duration_since(l.since).map_or(0, |d| d.as_secs()),
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.user, &a.service, &a.rip).cmp(&(&b.user, &b.service, &b.rip)));
        out
    }

    pub fn who(&self, mask: Option<&str>) -> Vec<WhoEntry> {
        self.entries(mask, false)
    }

    /// Disconnects every logged-in session of users matching `mask`; the sessions kicked.
    pub fn kick(&self, mask: &str) -> Vec<WhoEntry> {
        self.entries(Some(mask), true)
    }
}

/// doveadm's user masks: `*` any run, `?` one character; case-insensitive like user names.
pub fn user_mask_matches(mask: &str, user: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some(('?', rest)) => !n.is_empty() && go(rest, &n[1..]),
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    let p: Vec<char> = mask.to_lowercase().chars().collect();
    let n: Vec<char> = user.to_lowercase().chars().collect();
    go(&p, &n)
}

pub fn is_mask(s: &str) -> bool {
    s.contains(['*', '?'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_and_kick() {
        let s = Arc::new(LiveSessions::default());
        let addr: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        let (k1, k2, k3) = (
            CancellationToken::new(),
            CancellationToken::new(),
            CancellationToken::new(),
        );
        let g1 = s.open("a", "imaps", addr, k1.clone());
        let _g2 = s.open("b", "pop3", addr, k2.clone());
        let _g3 = s.open("c", "imap", addr, k3.clone());
        s.logged_in("a", "alice@example.com");
        s.logged_in("b", "bob@example.com");
        // "c" has not logged in: not shown, not kicked.
        let who = s.who(None);
        assert_eq!(who.len(), 2);
        assert_eq!(who[0].service, "imap");
        assert_eq!(s.who(Some("b*")).len(), 1);
        let kicked = s.kick("alice@*");
        assert_eq!(kicked.len(), 1);
        assert!(k1.is_cancelled() && !k2.is_cancelled() && !k3.is_cancelled());
        drop(g1);
        assert_eq!(s.who(None).len(), 1);
    }

    #[test]
    fn masks() {
        assert!(user_mask_matches("*", "x"));
        assert!(user_mask_matches("a?ice", "ALICE"));
        assert!(!user_mask_matches("a?ice", "aice"));
        assert!(user_mask_matches("*@example.com", "bob@example.com"));
        assert!(!user_mask_matches("*@example.com", "bob@example.org"));
    }
}
