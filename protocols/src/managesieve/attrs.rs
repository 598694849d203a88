//! The user's Sieve scripts, the active one and the reply tracking as server attributes of the
//! user's store (`Op::Attribute` change-log records), so they replicate and survive a
//! fail-over like mail. The keys are Dovecot's: a script is
//! `/private/vendor/vendor.dovecot/pvt/server/sieve/files/NAME` (its text), the active one
//! `.../sieve/default` (`L` and the script's name, as Pigeonhole writes a link; empty: none).
//! Vacation and `duplicate` tracking is `.../sieve/duplicate/HASH`, the value the expiry in
//! hybrid-logical-clock milliseconds, so the other node knows whom it already answered.
//!
//! Attributes win over script files: a user whose store holds no script attribute and no
//! `default` entry still has the files of Pigeonhole's layout ([`super::storage`]) read, and
//! ManageSieve imports them into attributes at the first login.

use super::storage::{valid_name, ScriptDir, StoreError};
use crate::mail::Reader;
use storage::merge::attributes::MAX_VALUE;
use storage::UserStore;

pub const PREFIX: &str = "/private/vendor/vendor.dovecot/pvt/";
const FILES: &str = "/private/vendor/vendor.dovecot/pvt/server/sieve/files/";
const DEFAULT: &str = "/private/vendor/vendor.dovecot/pvt/server/sieve/default";
const DUPLICATE: &str = "/private/vendor/vendor.dovecot/pvt/server/sieve/duplicate/";
/// Expired tracking entries removed per write, so one write stays small.
const PRUNE: usize = 64;

/// Largest script the attributes hold (a value of the change log).
pub const MAX_SCRIPT: u64 = MAX_VALUE as u64;

/// Reads of the user's server attributes, from a session's reader or from a write.
pub trait Attrs {
    fn attrs(&self, prefix: &str) -> storage::Result<Vec<(String, Vec<u8>)>>;
}

impl Attrs for Reader {
    fn attrs(&self, prefix: &str) -> storage::Result<Vec<(String, Vec<u8>)>> {
        self.attributes(None, prefix)
    }
}

impl Attrs for UserStore {
    fn attrs(&self, prefix: &str) -> storage::Result<Vec<(String, Vec<u8>)>> {
        self.attributes(None, prefix)
    }
}

fn store_err(e: storage::StoreError) -> StoreError {
    StoreError::Io(std::io::Error::other(e.to_string()))
}

/// The active script as the attributes say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Active {
    /// No `default` entry: the attributes were never used (the files decide).
    Unset,
    /// Deactivated.
    None,
    Name(String),
}

/// Whether the attributes hold the user's scripts (else the files do).
pub fn in_use(a: &dyn Attrs) -> Result<bool, StoreError> {
    // Every write of a script sets `default` too, so that key alone usually answers (a
    // read of one key on each delivery, not of every script or tracking entry).
    Ok(active(a)? != Active::Unset || !a.attrs(FILES).map_err(store_err)?.is_empty())
}

/// (name, size) of every script, in name order.
pub fn list(a: &dyn Attrs) -> Result<Vec<(String, u64)>, StoreError> {
    Ok(a.attrs(FILES)
        .map_err(store_err)?
        .into_iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(FILES)?.to_string(), v.len() as u64)))
        .filter(|(n, _)| valid_name(n))
        .collect())
}

pub fn active(a: &dyn Attrs) -> Result<Active, StoreError> {
    let v = a.attrs(DEFAULT).map_err(store_err)?;
    Ok(match v.into_iter().find(|(k, _)| k == DEFAULT) {
        None => Active::Unset,
        Some((_, v)) => match v.strip_prefix(b"L") {
            Some(name) if !name.is_empty() => {
                Active::Name(String::from_utf8_lossy(name).into_owned())
            }
            _ => Active::None,
        },
    })
}

pub fn get(a: &dyn Attrs, name: &str) -> Result<Vec<u8>, StoreError> {
    if !valid_name(name) {
        return Err(StoreError::BadName);
    }
    let key = format!("{FILES}{name}");
    a.attrs(&key)
        .map_err(store_err)?
        .into_iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
        .ok_or(StoreError::NoSuchScript)
}

/// The active script's name and text, or `None` (deactivated, or it names a missing script).
/// `Err` only for a read error; `Ok(Err(()))` when the attributes are not in use.
#[allow(clippy::type_complexity)]
pub fn active_script(a: &dyn Attrs) -> Result<Result<Option<(String, Vec<u8>)>, ()>, StoreError> {
    match active(a)? {
        Active::Unset if a.attrs(FILES).map_err(store_err)?.is_empty() => Ok(Err(())),
        Active::Unset | Active::None => Ok(Ok(None)),
        Active::Name(n) => match get(a, &n) {
            Ok(text) => Ok(Ok(Some((n, text)))),
            Err(StoreError::NoSuchScript) => Ok(Ok(None)),
            Err(e) => Err(e),
        },
    }
}

fn write(st: &UserStore, entries: Vec<(String, Option<Vec<u8>>)>) -> Result<(), StoreError> {
    st.set_attributes(None, entries).map_err(store_err)
}

/// Stores a script (replacing one of that name).
pub fn put(st: &UserStore, name: &str, script: &[u8]) -> Result<(), StoreError> {
    if !valid_name(name) {
        return Err(StoreError::BadName);
    }
    if script.len() > MAX_VALUE {
        return Err(StoreError::TooLarge);
    }
    let mut entries = vec![(format!("{FILES}{name}"), Some(script.to_vec()))];
    // The first script stored marks the attributes as the truth (no fallback to files).
    if active(st)? == Active::Unset {
        entries.push((DEFAULT.to_string(), Some(Vec::new())));
    }
    write(st, entries)
}

/// Activates a script, or deactivates (`None`).
pub fn set_active(st: &UserStore, name: Option<&str>) -> Result<(), StoreError> {
    let value = match name {
        Some(n) => {
            get(st, n)?;
            format!("L{n}").into_bytes()
        }
        None => Vec::new(),
    };
    write(st, vec![(DEFAULT.to_string(), Some(value))])
}

pub fn delete(st: &UserStore, name: &str) -> Result<(), StoreError> {
    get(st, name)?;
    if active(st)? == Active::Name(name.to_string()) {
        return Err(StoreError::Active);
    }
    write(st, vec![(format!("{FILES}{name}"), None)])
}

/// Renames a script; the active one stays active under its new name (one write).
pub fn rename(st: &UserStore, from: &str, to: &str) -> Result<(), StoreError> {
    let text = get(st, from)?;
    if !valid_name(to) {
        return Err(StoreError::BadName);
    }
    if get(st, to).is_ok() {
        return Err(StoreError::Exists);
    }
    let mut entries = vec![
        (format!("{FILES}{to}"), Some(text)),
        (format!("{FILES}{from}"), None),
    ];
    if active(st)? == Active::Name(from.to_string()) {
        entries.push((DEFAULT.to_string(), Some(format!("L{to}").into_bytes())));
    }
    write(st, entries)
}

/// Copies the script files into attributes when the attributes are not in use yet (the
/// first ManageSieve login of a user with Pigeonhole files). Scripts too large for an
/// attribute stay behind, and are named in the answer.
pub fn import(st: &UserStore, files: &ScriptDir) -> Result<Vec<String>, StoreError> {
    if in_use(st)? {
        return Ok(Vec::new());
    }
    let mut entries = Vec::new();
    let mut left = Vec::new();
    for (name, size) in files.list()? {
        if size > MAX_SCRIPT {
            left.push(name);
            continue;
        }
        entries.push((format!("{FILES}{name}"), Some(files.get(&name)?)));
    }
    let active = files
        .active()
        .filter(|a| entries.iter().any(|(k, _)| *k == format!("{FILES}{a}")))
        .map(|a| format!("L{a}").into_bytes())
        .unwrap_or_default();
    // A hand-written ~/.dovecot.sieve (a file, not a link) becomes the active "dovecot.orig".
    let mut active = active;
    if active.is_empty() {
        if let Ok(meta) = std::fs::symlink_metadata(&files.active_link) {
            if meta.is_file() && meta.len() <= MAX_SCRIPT {
                let text = std::fs::read(&files.active_link)?;
                entries.push((format!("{FILES}dovecot.orig"), Some(text)));
                active = b"Ldovecot.orig".to_vec();
            }
        }
    }
    // Nothing to import: no write (a later ~/.dovecot.sieve still counts until a script is
    // stored).
    if entries.is_empty() {
        return Ok(left);
    }
    entries.push((DEFAULT.to_string(), Some(active)));
    write(st, entries)?;
    Ok(left)
}

/// The tracking key of an id (a hash of the handle and the sender, or of a duplicate id).
fn tracking_key(id: &str) -> String {
    format!("{DUPLICATE}{}", blake3::hash(id.as_bytes()).to_hex())
}

/// Whether `id` was marked and has not expired at `now_ms` (HLC milliseconds).
pub fn seen(a: &dyn Attrs, id: &str, now_ms: u64) -> Result<bool, StoreError> {
    let key = tracking_key(id);
    Ok(a.attrs(&key)
        .map_err(store_err)?
        .into_iter()
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| std::str::from_utf8(&v).ok()?.parse::<u64>().ok())
        .is_some_and(|expiry| expiry > now_ms))
}

/// Marks ids as seen for their periods (seconds) from the store's clock, and removes some
/// expired entries, in one write.
pub fn mark(st: &UserStore, ids: &[(String, u64)]) -> Result<(), StoreError> {
    let now = st.clock_now_ms();
    let mut entries: Vec<(String, Option<Vec<u8>>)> = ids
        .iter()
        .map(|(id, period)| {
            let expiry = now.saturating_add(period.saturating_mul(1000));
            (tracking_key(id), Some(expiry.to_string().into_bytes()))
        })
        .collect();
    for (k, v) in st.attrs(DUPLICATE).map_err(store_err)? {
        if entries.len() >= ids.len() + PRUNE {
            break;
        }
        let expired = std::str::from_utf8(&v)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .is_none_or(|e| e <= now);
        if expired && !entries.iter().any(|(x, _)| *x == k) {
            entries.push((k, None));
        }
    }
    write(st, entries)
}

/// Vacation: true when `id` was answered within its period; otherwise marks it now (one
/// call inside one write, so two deliveries here do not both answer).
pub fn check_and_mark(st: &UserStore, id: &str, period: u64) -> Result<bool, StoreError> {
    if seen(st, id, st.clock_now_ms())? {
        return Ok(true);
    }
    mark(st, &[(id.to_string(), period)])?;
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, std::sync::Arc<UserStore>) {
        let d = tempfile::tempdir().unwrap();
        let s = storage::Store::open(storage::StoreConfig::new(d.path().join("s"))).unwrap();
        let u = s.user("u").unwrap();
        (d, u)
    }

    #[test]
    fn scripts_and_the_active_one() {
        let (_d, st) = store();
        assert!(!in_use(&*st).unwrap());
        assert_eq!(active_script(&*st).unwrap(), Err(()));
        put(&st, "a", b"keep;").unwrap();
        put(&st, "b", b"discard;").unwrap();
        assert!(in_use(&*st).unwrap());
        assert_eq!(active_script(&*st).unwrap(), Ok(None));
        assert_eq!(list(&*st).unwrap(), vec![("a".into(), 5), ("b".into(), 8)]);
        set_active(&st, Some("a")).unwrap();
        assert_eq!(
            active_script(&*st).unwrap(),
            Ok(Some(("a".into(), b"keep;".to_vec())))
        );
        assert!(matches!(delete(&st, "a"), Err(StoreError::Active)));
        assert!(matches!(rename(&st, "a", "b"), Err(StoreError::Exists)));
        rename(&st, "a", "c").unwrap();
        assert_eq!(active(&*st).unwrap(), Active::Name("c".into()));
        assert!(matches!(get(&*st, "a"), Err(StoreError::NoSuchScript)));
        assert!(matches!(
            set_active(&st, Some("zz")),
            Err(StoreError::NoSuchScript)
        ));
        set_active(&st, None).unwrap();
        assert_eq!(active(&*st).unwrap(), Active::None);
        delete(&st, "c").unwrap();
        assert_eq!(list(&*st).unwrap().len(), 1);
        assert!(matches!(put(&st, "../x", b""), Err(StoreError::BadName)));
        let big = vec![b' '; MAX_VALUE + 1];
        assert!(matches!(put(&st, "big", &big), Err(StoreError::TooLarge)));
    }

    #[test]
    fn files_are_imported_once() {
        let (d, st) = store();
        let files = ScriptDir {
            dir: d.path().join("sieve"),
            active_link: d.path().join(".dovecot.sieve"),
        };
        // No files: nothing written, the files still decide.
        assert!(import(&st, &files).unwrap().is_empty());
        assert!(!in_use(&*st).unwrap());
        files.put("x", b"stop;").unwrap();
        files.set_active(Some("x")).unwrap();
        assert!(import(&st, &files).unwrap().is_empty());
        assert_eq!(active(&*st).unwrap(), Active::Name("x".into()));
        assert_eq!(get(&*st, "x").unwrap(), b"stop;");
        // Later changes to the files are not imported again: the attributes are the truth.
        files.put("y", b"keep;").unwrap();
        import(&st, &files).unwrap();
        assert!(get(&*st, "y").is_err());
    }

    #[test]
    fn tracking_expires() {
        let (_d, st) = store();
        let now = st.clock_now_ms();
        assert!(!check_and_mark(&st, "h\0a@x", 100).unwrap());
        assert!(check_and_mark(&st, "h\0a@x", 100).unwrap());
        assert!(seen(&*st, "h\0a@x", now).unwrap());
        assert!(!seen(&*st, "h\0a@x", now + 200_000).unwrap());
        // A zero period has expired at once, and the entry is pruned by a later mark.
        assert!(!check_and_mark(&st, "other", 0).unwrap());
        assert!(!check_and_mark(&st, "other", 0).unwrap());
        // Tracking is not a script: the attributes stay unused for scripts.
        assert!(!in_use(&*st).unwrap());
    }
}
