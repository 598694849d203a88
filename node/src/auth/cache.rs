//! The auth cache in front of every driver (Dovecot's auth_cache_size, auth_cache_ttl,
//! auth_cache_negative_ttl): a login's answer is remembered by user + a keyed hash of the
//! password, so a repeated login skips the directory round trip and the (deliberately slow)
//! hash check, and users seen within the TTL keep logging in while the directory is down.
//! "Unknown user" and "wrong password" are remembered for the negative TTL. userdb answers
//! are cached by user name the same way. The password itself is never stored. Expired
//! entries stay until the capacity pushes them out: when the database cannot be asked, the
//! caller falls back to them (`get_stale`), as Dovecot does.

use super::db::{PassEntry, UserEntry};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct CacheKey([u8; 32]);

/// A remembered passdb answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cached {
    /// The passdb's entry (password removed): the user and the fields the login policy
    /// needs again for the next client.
    Ok(PassEntry),
    Unknown,
    Mismatch,
}

struct Entry {
    value: Cached,
    /// The passdb generations when it was verified: a reloaded file invalidates it.
    generations: Vec<u64>,
    expires: Instant,
}

pub struct LoginCache {
    capacity: usize,
    ttl: Duration,
    negative_ttl: Duration,
    /// Per-process random key: a memory dump does not give offline-guessable hashes.
    secret: [u8; 32],
    entries: HashMap<CacheKey, Entry>,
    /// Insertion order for eviction when full.
    order: VecDeque<CacheKey>,
}

impl LoginCache {
    pub fn new(capacity: usize, ttl: Duration, negative_ttl: Duration) -> LoginCache {
        let mut secret = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut secret);
        LoginCache {
            capacity,
            ttl,
            negative_ttl,
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

    /// The passdb's answer if this key was verified within the TTL against the same passdb
    /// generations. An expired entry stays (until the capacity pushes it out) for
    /// [`LoginCache::get_stale`].
    pub fn get(&mut self, key: &CacheKey, generations: &[u64], now: Instant) -> Option<Cached> {
        let hit = self.entries.get(key)?;
        (hit.expires > now && hit.generations == generations).then(|| hit.value.clone())
    }

    /// The answer for this key however old, when the passdbs could not be asked (Dovecot's
    /// "Falling back to expired data from cache"): a user seen once keeps logging in while
    /// the database is down. Not when a passdb that can be read changed since (a re-read
    /// passwd-file): its data is newer than the entry.
    pub fn get_stale(&self, key: &CacheKey, generations: &[u64]) -> Option<Cached> {
        let hit = self.entries.get(key)?;
        generations_compatible(&hit.generations, generations).then(|| hit.value.clone())
    }

    /// Forgets every entry (`node auth cache flush`): the next logins check their hashes.
    /// Only the whole cache: entries are keyed by a hash that hides the user.
    pub fn flush(&mut self) -> usize {
        let n = self.entries.len();
        self.entries.clear();
        self.order.clear();
        n
    }

    pub fn insert(&mut self, key: CacheKey, value: Cached, generations: Vec<u64>, now: Instant) {
        let ttl = match value {
            Cached::Ok(_) => self.ttl,
            Cached::Unknown | Cached::Mismatch => self.negative_ttl,
        };
        if self.capacity == 0 || ttl.is_zero() {
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
                    value,
                    generations,
                    expires: now + ttl,
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

/// userdb answers by canonical user name (None: the userdbs do not know the user).
pub struct UserCache {
    capacity: usize,
    ttl: Duration,
    negative_ttl: Duration,
    entries: HashMap<String, (Option<UserEntry>, Vec<u64>, Instant)>,
    order: VecDeque<String>,
}

impl UserCache {
    pub fn new(capacity: usize, ttl: Duration, negative_ttl: Duration) -> UserCache {
        UserCache {
            capacity,
            ttl,
            negative_ttl,
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Some(answer) when `user` was looked up within the TTL against the same generations.
    #[allow(clippy::option_option)]
    pub fn get(
        &mut self,
        user: &str,
        generations: &[u64],
        now: Instant,
    ) -> Option<Option<UserEntry>> {
        let (value, gens, expires) = self.entries.get(user)?;
        (*expires > now && gens == generations).then(|| value.clone())
    }

    /// As [`LoginCache::get_stale`]: the answer however old, for when the userdbs fail.
    #[allow(clippy::option_option)]
    pub fn get_stale(&self, user: &str, generations: &[u64]) -> Option<Option<UserEntry>> {
        let (value, gens, _) = self.entries.get(user)?;
        generations_compatible(gens, generations).then(|| value.clone())
    }

    /// Forgets one user (a fresh answer said nothing, or the entry must not outlive a login).
    pub fn remove(&mut self, user: &str) {
        self.entries.remove(user);
    }

    pub fn insert(
        &mut self,
        user: String,
        value: Option<UserEntry>,
        generations: Vec<u64>,
        now: Instant,
    ) {
        let ttl = if value.is_some() {
            self.ttl
        } else {
            self.negative_ttl
        };
        if self.capacity == 0 || ttl.is_zero() {
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
            .insert(user.clone(), (value, generations, now + ttl))
            .is_none()
        {
            self.order.push_back(user);
        }
        if self.order.len() > self.capacity.saturating_mul(2) {
            let entries = &self.entries;
            self.order.retain(|k| entries.contains_key(k));
        }
    }

    pub fn flush(&mut self) -> usize {
        let n = self.entries.len();
        self.entries.clear();
        self.order.clear();
        n
    }
}

/// Whether an entry verified under `cached` generations may stand in for the current ones:
/// each driver's generation is the same, or unreadable now (`u64::MAX`: the passwd-file is
/// gone, which is the outage the stale entry is for).
fn generations_compatible(cached: &[u64], now: &[u64]) -> bool {
    cached.len() == now.len()
        && cached
            .iter()
            .zip(now)
            .all(|(c, n)| c == n || *n == u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(user: &str) -> Cached {
        Cached::Ok(PassEntry {
            user: user.into(),
            password: None,
            verified: false,
            fields: Default::default(),
        })
    }

    #[test]
    fn hit_miss_expiry_and_generation() {
        let mut c = LoginCache::new(10, Duration::from_secs(60), Duration::from_secs(5));
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
        // Expired, but kept for a database that is down; not across a changed file, but
        // across one that cannot be read.
        assert_eq!(c.get_stale(&k, &[1]), Some(e("demo")));
        assert_eq!(c.get_stale(&k, &[2]), None);
        assert_eq!(c.get_stale(&k, &[u64::MAX]), Some(e("demo")));
        assert_eq!(c.get_stale(&c.key("demo", "other"), &[1]), None);
    }

    #[test]
    fn negative_answers_use_their_own_ttl() {
        let mut c = LoginCache::new(10, Duration::from_secs(60), Duration::from_secs(5));
        let t0 = Instant::now();
        let k = c.key("nobody", "pw");
        c.insert(k, Cached::Unknown, vec![], t0);
        assert_eq!(
            c.get(&k, &[], t0 + Duration::from_secs(4)),
            Some(Cached::Unknown)
        );
        assert_eq!(c.get(&k, &[], t0 + Duration::from_secs(6)), None);
        let mut off = LoginCache::new(10, Duration::from_secs(60), Duration::ZERO);
        off.insert(k, Cached::Mismatch, vec![], t0);
        assert_eq!(off.len(), 0);
        let mut u = UserCache::new(2, Duration::from_secs(60), Duration::from_secs(5));
        let entry = UserEntry {
            user: "a".into(),
            fields: Default::default(),
        };
        u.insert("a".into(), Some(entry.clone()), vec![1], t0);
        u.insert("b".into(), None, vec![1], t0);
        assert_eq!(u.get("a", &[1], t0), Some(Some(entry)));
        assert_eq!(u.get("a", &[2], t0), None, "a re-read passwd-file");
        assert_eq!(u.get("b", &[1], t0 + Duration::from_secs(6)), None);
        assert_eq!(u.get("b", &[1], t0), Some(None));
        assert_eq!(u.get_stale("b", &[1]), Some(None));
        assert_eq!(u.get_stale("a", &[u64::MAX]), u.get("a", &[1], t0));
        assert_eq!(u.get_stale("a", &[3]), None);
        u.remove("a");
        assert_eq!(u.get_stale("a", &[1]), None);
    }

    #[test]
    fn bounded_by_capacity() {
        let mut c = LoginCache::new(3, Duration::from_secs(60), Duration::from_secs(5));
        let t0 = Instant::now();
        let keys: Vec<_> = (0..5).map(|i| c.key(&format!("u{i}"), "pw")).collect();
        for (i, k) in keys.iter().enumerate() {
            c.insert(*k, e(&format!("u{i}")), vec![1], t0);
        }
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(&keys[0], &[1], t0), None);
        assert_eq!(c.get(&keys[4], &[1], t0), Some(e("u4")));
        let mut off = LoginCache::new(0, Duration::from_secs(60), Duration::from_secs(5));
        let k = off.key("a", "b");
        off.insert(k, e("a"), vec![], t0);
        assert_eq!(off.len(), 0);
    }
}
