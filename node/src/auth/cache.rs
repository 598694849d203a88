//! Verified-credentials cache (Dovecot's auth_cache_size/auth_cache_ttl): a successful login
//! is remembered by user + a keyed hash of the password, so a repeated login skips the
//! (deliberately slow) hash check. The password itself is never stored.

use super::db::PassEntry;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct CacheKey([u8; 32]);

struct Entry {
    /// The passdb's answer (password removed): the user and the fields the login policy
    /// needs again for the next client.
    entry: PassEntry,
    /// The passdb generations when it was verified: a reloaded file invalidates it.
    generations: Vec<u64>,
    expires: Instant,
}

pub struct LoginCache {
    capacity: usize,
    ttl: Duration,
    /// Per-process random key: a memory dump does not give offline-guessable hashes.
    secret: [u8; 32],
    entries: HashMap<CacheKey, Entry>,
    /// Insertion order for eviction when full.
    order: VecDeque<CacheKey>,
}

impl LoginCache {
    pub fn new(capacity: usize, ttl: Duration) -> LoginCache {
        let mut secret = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut secret);
        LoginCache {
            capacity,
            ttl,
            secret,
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    pub fn key(&self, user: &str, password: &str) -> CacheKey {
        let mut h = blake3::Hasher::new_keyed(&self.secret);
        h.update(&(user.len() as u64).to_le_bytes());
        h.update(user.as_bytes());
        h.update(password.as_bytes());
        CacheKey(*h.finalize().as_bytes())
    }

    /// The passdb's answer if this key was verified against the same passdb generations.
    pub fn get(&mut self, key: &CacheKey, generations: &[u64], now: Instant) -> Option<PassEntry> {
        let hit = self.entries.get(key)?;
        if hit.expires > now && hit.generations == generations {
            return Some(hit.entry.clone());
        }
        self.entries.remove(key);
        None
    }

    /// Forgets every entry (`node auth cache flush`): the next logins check their hashes.
    /// Only the whole cache: entries are keyed by a hash that hides the user.
    pub fn flush(&mut self) -> usize {
        let n = self.entries.len();
        self.entries.clear();
        self.order.clear();
        n
    }

    pub fn insert(&mut self, key: CacheKey, entry: PassEntry, generations: Vec<u64>, now: Instant) {
        if self.capacity == 0 {
            return;
        }
        while self.entries.len() >= self.capacity {
            match self.order.pop_front() {
                Some(old) => {
                    self.entries.remove(&old);
                }
                None => break,
            }
        }
        if self
            .entries
            .insert(
                key,
                Entry {
                    entry,
                    generations,
                    expires: now + self.ttl,
                },
            )
            .is_none()
        {
            self.order.push_back(key);
        }
        // `order` may hold keys already removed (expired, invalidated): keep it bounded.
        if self.order.len() > self.capacity.saturating_mul(2) {
            let entries = &self.entries;
            self.order.retain(|k| entries.contains_key(k));
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(user: &str) -> PassEntry {
        PassEntry {
            user: user.into(),
            password: None,
            verified: false,
            fields: Default::default(),
        }
    }

    #[test]
    fn hit_miss_expiry_and_generation() {
        let mut c = LoginCache::new(10, Duration::from_secs(60));
        let t0 = Instant::now();
        let k = c.key("demo", "pw");
        assert_ne!(k, c.key("demo", "pw2"));
        assert_ne!(c.key("de", "mopw"), c.key("dem", "opw"));
        assert_eq!(c.get(&k, &[1], t0), None);
        c.insert(k, e("demo"), vec![1], t0);
        assert_eq!(c.get(&k, &[1], t0), Some(e("demo")));
        // The passwd-file was re-read: not trusted.
        assert_eq!(c.get(&k, &[2], t0), None);
        c.insert(k, e("demo"), vec![1], t0);
        assert_eq!(c.get(&k, &[1], t0 + Duration::from_secs(61)), None);
    }

    #[test]
    fn bounded_by_capacity() {
        let mut c = LoginCache::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        let keys: Vec<_> = (0..5).map(|i| c.key(&format!("u{i}"), "pw")).collect();
        for (i, k) in keys.iter().enumerate() {
            c.insert(*k, e(&format!("u{i}")), vec![1], t0);
        }
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(&keys[0], &[1], t0), None);
        assert_eq!(c.get(&keys[4], &[1], t0), Some(e("u4")));
        let mut off = LoginCache::new(0, Duration::from_secs(60));
        let k = off.key("a", "b");
        off.insert(k, e("a"), vec![], t0);
        assert_eq!(off.len(), 0);
    }
}
