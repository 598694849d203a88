//! The POP3 session lock (Dovecot's `pop3_lock_session`): one POP3 session per mailbox at a
//! time, so two clients downloading and deleting do not fight over message numbers. A second
//! login gets `-ERR [IN-USE]`.
//!
//! Keyed by the user's store instance: the store hands every session of a user the same
//! instance, and the lock holds a handle on it, so the key cannot be reused while held.

use crate::mail::Reader;
use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

fn held() -> &'static Mutex<HashSet<usize>> {
    static HELD: OnceLock<Mutex<HashSet<usize>>> = OnceLock::new();
    HELD.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Held for the length of a POP3 session; released on drop.
pub struct Pop3Lock {
    key: usize,
    _store: Reader,
}

impl Pop3Lock {
    /// Takes the lock, or None when another POP3 session of this user holds it.
    pub fn try_acquire(store: &Reader) -> Option<Pop3Lock> {
        let key = store.key();
        let mut set = held().lock().unwrap_or_else(|e| e.into_inner());
        set.insert(key).then(|| Pop3Lock {
            key,
            _store: store.clone(),
        })
    }
}

impl Drop for Pop3Lock {
    fn drop(&mut self) {
        held()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
    }
}
