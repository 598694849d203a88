//! \Recent across sessions (RFC 3501 2.3.2): a message is recent in exactly one session, the
//! first one to see it with the mailbox selected read-write. This process-wide registry keeps,
//! per user and mailbox (by GUID and UIDVALIDITY), the highest UID some session has claimed.
//! It lives in memory only: after a restart the messages are unclaimed again, which only makes
//! \Recent generous (the first session after the restart sees them as recent).

use crate::mail::{Reader, WeakReader};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use storage::MailboxId;

/// Keyed by the user's store (one per user in a process) so that two stores never share
/// claims; the weak reference tells a live store from a dropped one whose address was reused.
type Key = (usize, MailboxId, u32);
type Entry = (WeakReader, u32);

fn registry() -> &'static Mutex<HashMap<Key, Entry>> {
    static R: OnceLock<Mutex<HashMap<Key, Entry>>> = OnceLock::new();
    R.get_or_init(|| Mutex::new(HashMap::new()))
}

fn key(store: &Reader, mailbox: MailboxId, uidvalidity: u32) -> Key {
    (store.key(), mailbox, uidvalidity)
}

/// Claims every UID up to `max_uid` for the caller; returns the previous claim: UIDs above it
/// (and up to `max_uid`) are recent for the caller.
pub fn claim(store: &Reader, mailbox: MailboxId, uidvalidity: u32, max_uid: u32) -> u32 {
    let mut r = registry().lock().unwrap_or_else(|e| e.into_inner());
    if r.len() > 4096 {
        r.retain(|_, (w, _)| w.is_alive());
    }
    let e = r
        .entry(key(store, mailbox, uidvalidity))
        .or_insert_with(|| (store.downgrade(), 0));
    if !e.0.is_alive() {
        *e = (store.downgrade(), 0);
    }
    let before = e.1;
    e.1 = e.1.max(max_uid);
    before
}

/// The highest claimed UID, without claiming (STATUS RECENT, EXAMINE).
pub fn claimed(store: &Reader, mailbox: MailboxId, uidvalidity: u32) -> u32 {
    let r = registry().lock().unwrap_or_else(|e| e.into_inner());
    match r.get(&key(store, mailbox, uidvalidity)) {
        Some((w, n)) if w.is_alive() => *n,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestBackend;
    use storage::Guid;

    #[test]
    fn first_claim_wins_per_store() {
        let b1 = TestBackend::demo();
        let b2 = TestBackend::demo();
        let s1 = Reader::new(b1.store.user("demo").unwrap());
        let s2 = Reader::new(b2.store.user("demo").unwrap());
        let m = Guid([7; 16]);
        assert_eq!(claim(&s1, m, 1, 5), 0);
        assert_eq!(claim(&s1, m, 1, 5), 5);
        assert_eq!(claim(&s1, m, 1, 7), 5);
        assert_eq!(claimed(&s1, m, 1), 7);
        assert_eq!(claimed(&s1, m, 2), 0);
        assert_eq!(claimed(&s2, m, 1), 0);
    }
}
