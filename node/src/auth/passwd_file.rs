//! Dovecot's passwd-file: `user:password:uid:gid:gecos:home:shell:extra_fields`, one user a
//! line, `#` comments, extra fields space separated `key=value` (e.g.
//! `userdb_quota_rule=*:storage=1G`). Re-read when its modification time or size changes,
//! so an operator's edit takes effect without a restart.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswdEntry {
    pub user: String,
    /// `{SCHEME}hash`, or empty (no password: passdb lookups fail).
    pub password: String,
    pub uid: String,
    pub gid: String,
    pub home: String,
    /// Extra fields in file order, `userdb_` prefixes kept.
    pub extra: Vec<(String, String)>,
}

impl PasswdEntry {
    /// A userdb field: `name` or `userdb_name` in the extra fields (last one wins).
    #[cfg(test)]
    pub fn userdb_field(&self, name: &str) -> Option<&str> {
        self.extra
            .iter()
            .rev()
            .find(|(k, _)| k == name || k.strip_prefix("userdb_") == Some(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every `quota_rule`, `quota_rule2`, ... userdb field, in order.
    #[cfg(test)]
    pub fn quota_rules(&self) -> Vec<&str> {
        self.extra
            .iter()
            .filter(|(k, _)| {
                let k = k.strip_prefix("userdb_").unwrap_or(k);
                k.strip_prefix("quota_rule")
                    .is_some_and(|n| n.is_empty() || n.bytes().all(|b| b.is_ascii_digit()))
            })
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path} line {line}: {what}")]
pub struct ParseError {
    pub path: String,
    pub line: usize,
    pub what: String,
}

/// Parses a whole file; a malformed line is an error naming the line.
pub fn parse(text: &str, path: &Path) -> Result<HashMap<String, PasswdEntry>, ParseError> {
    let mut users = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let err = |what: &str| ParseError {
            path: path.display().to_string(),
            line: i + 1,
            what: what.to_string(),
        };
        // Seven ':' separators at most; the extra fields may contain ':' (quota rules do).
        let fields: Vec<&str> = line.splitn(8, ':').collect();
        if fields.len() < 2 {
            // Not a user with no password: a stray line (a pasted hash, a half-edited entry).
            return Err(err(
                "no ':' in the line: expected user:{SCHEME}password:uid:gid:gecos:home:shell:extra_fields",
            ));
        }
        let user = fields.first().copied().unwrap_or_default().trim();
        if user.is_empty() {
            return Err(err("empty user name"));
        }
        if user.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err(&format!(
                "user name {user:?} contains white space: expected user:{{SCHEME}}password:..."
            )));
        }
        let get = |n: usize| fields.get(n).copied().unwrap_or_default().to_string();
        let mut extra = Vec::new();
        for item in fields
            .get(7)
            .copied()
            .unwrap_or_default()
            .split_whitespace()
        {
            match item.split_once('=') {
                Some((k, v)) => extra.push((k.to_string(), v.to_string())),
                // A bare word is a boolean field (e.g. `nologin`).
                None => extra.push((item.to_string(), String::new())),
            }
        }
        let entry = PasswdEntry {
            user: user.to_lowercase(),
            password: get(1),
            uid: get(2),
            gid: get(3),
            home: get(5),
            extra,
        };
        if users.insert(entry.user.clone(), entry).is_some() {
            return Err(err(&format!("user {user:?} appears twice")));
        }
    }
    Ok(users)
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum PasswdFileError {
    #[error("passwd-file {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("{0}")]
    Parse(String),
}

struct Loaded {
    stamp: Option<(SystemTime, u64)>,
    /// Bumped at every reload: cached logins of an older generation are not trusted.
    generation: u64,
    users: Arc<HashMap<String, PasswdEntry>>,
}

/// One passwd-file, re-read when it changes. Methods block on `stat`/`read`: call them from
/// the blocking pool.
pub struct PasswdFile {
    path: PathBuf,
    loaded: Mutex<Loaded>,
}

impl PasswdFile {
    pub fn new(path: PathBuf) -> PasswdFile {
        PasswdFile {
            path,
            loaded: Mutex::new(Loaded {
                stamp: None,
                generation: 0,
                users: Arc::new(HashMap::new()),
            }),
        }
    }

    /// The current users, re-reading the file if its mtime or size changed. A file that became
    /// unreadable or malformed is an error (the previous content is not silently kept: a
    /// removed user must not keep logging in).
    pub fn users(&self) -> Result<(u64, Arc<HashMap<String, PasswdEntry>>), PasswdFileError> {
        let unreadable = |e: std::io::Error| PasswdFileError::Unreadable {
            path: self.path.display().to_string(),
            reason: e.to_string(),
        };
        let meta = std::fs::metadata(&self.path).map_err(unreadable)?;
        let stamp = (meta.modified().map_err(unreadable)?, meta.len());
        let mut loaded = self.loaded.lock();
        if loaded.stamp != Some(stamp) {
            let text = std::fs::read_to_string(&self.path).map_err(unreadable)?;
            let users =
                parse(&text, &self.path).map_err(|e| PasswdFileError::Parse(e.to_string()))?;
            if loaded.stamp.is_some() {
                tracing::info!(target: "auth", "passwd-file {}: reloaded ({} users)", self.path.display(), users.len());
            }
            loaded.stamp = Some(stamp);
            loaded.generation += 1;
            loaded.users = Arc::new(users);
        }
        Ok((loaded.generation, loaded.users.clone()))
    }
}

/// Rewrites `user`'s line in the passwd-file at `path`: extra fields for which `drop` is true
/// are removed and `add` appended; every other byte of the file stays as it was. The new file
/// replaces the old one atomically (same mode and owner), so the running node, which re-reads
/// the file when it changes, never sees half of it. Ok(false) when no line names `user`.
pub fn edit_extra_fields(
    path: &Path,
    user: &str,
    drop: impl Fn(&str) -> bool,
    add: &[(String, String)],
) -> Result<bool, String> {
    use std::io::Write as _;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
    let fail = |what: &str, e: std::io::Error| format!("{}: {what}: {e}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| fail("cannot read", e))?;
    // Refuse to rewrite a file that does not parse: the edit could not be checked.
    parse(&text, path).map_err(|e| e.to_string())?;
    let mut found = false;
    let mut out = String::with_capacity(text.len() + 64);
    for raw in text.split_inclusive('\n') {
        let body = raw.trim_end_matches(['\n', '\r']);
        let ending = &raw[body.len()..];
        let is_user = !body.trim_start().starts_with('#')
            && body
                .split(':')
                .next()
                .is_some_and(|u| u.trim().to_lowercase() == user);
        if !is_user || found {
            out.push_str(raw);
            continue;
        }
        found = true;
        let mut fields: Vec<String> = body.splitn(8, ':').map(str::to_string).collect();
        while fields.len() < 8 {
            fields.push(String::new());
        }
        let mut extra: Vec<String> = fields[7]
            .split_whitespace()
            .filter(|item| !drop(item.split('=').next().unwrap_or(item)))
            .map(str::to_string)
            .collect();
        extra.extend(add.iter().map(|(k, v)| format!("{k}={v}")));
        fields[7] = extra.join(" ");
        out.push_str(&fields.join(":"));
        out.push_str(if ending.is_empty() { "\n" } else { ending });
    }
    if !found {
        return Ok(false);
    }
    parse(&out, path).map_err(|e| format!("the edited file would not parse: {e}"))?;
    let meta = std::fs::metadata(path).map_err(|e| fail("cannot stat", e))?;
    let tmp = path.with_extension("node-edit");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(meta.permissions().mode() & 0o7777)
        .open(&tmp)
        .map_err(|e| fail("cannot write a temporary file beside it", e))?;
    let written = f
        .write_all(out.as_bytes())
        .and_then(|()| f.sync_all())
        .and_then(|()| std::os::unix::fs::chown(&tmp, Some(meta.uid()), Some(meta.gid())))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail("cannot replace", e));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const FILE: &str = "\
# users of example.com
demo:{PLAIN}demo:1000:1000::/home/demo::
alice@example.com:{SHA512-CRYPT}$6$abc$def:1001:1001::/home/alice::userdb_quota_rule=*:storage=1G userdb_quota_rule2=*:messages=1000 nologin

Bob:{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$aGFzaA
";

    #[test]
    fn parses_dovecot_lines() {
        let users = parse(FILE, Path::new("/etc/users")).unwrap();
        assert_eq!(users.len(), 3);
        let alice = &users["alice@example.com"];
        assert_eq!(alice.password, "{SHA512-CRYPT}$6$abc$def");
        assert_eq!(alice.uid, "1001");
        assert_eq!(alice.home, "/home/alice");
        assert_eq!(alice.userdb_field("quota_rule"), Some("*:storage=1G"));
        assert_eq!(alice.quota_rules(), vec!["*:storage=1G", "*:messages=1000"]);
        assert_eq!(alice.userdb_field("nologin"), Some(""));
        // Short lines (no uid/gid/home) are fine, names are lower-cased.
        let bob = &users["bob"];
        assert!(bob.password.starts_with("{ARGON2ID}"));
        assert_eq!(bob.home, "");
        assert!(bob.extra.is_empty());
    }

    #[test]
    fn malformed_lines_name_the_line() {
        let e = parse("ok:{PLAIN}x\n:nouser\n", Path::new("/u")).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.to_string().starts_with("/u line 2"), "{e}");
        let e = parse("a:{PLAIN}x\nA:{PLAIN}y\n", Path::new("/u")).unwrap_err();
        assert!(e.what.contains("twice"), "{e}");
        // A line without ':' is not a user named after the line.
        let e = parse("a:{PLAIN}x\n# c\ngarbage line here\n", Path::new("/u")).unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        let e = parse("a:{PLAIN}x\nlonelyword\n", Path::new("/u")).unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        let e = parse("two words:{PLAIN}x\n", Path::new("/u")).unwrap_err();
        assert!(e.what.contains("white space"), "{e}");
    }

    #[test]
    fn edits_one_users_extra_fields_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        let text = "# c\nalice:{PLAIN}a:1:1::/h::userdb_quota_rule=*:storage=1G nologin\nbob:{PLAIN}b\r\ncarol:{PLAIN}c::::::\n";
        std::fs::write(&path, text).unwrap();
        let is_quota = |k: &str| k.starts_with("userdb_quota_rule");
        let add = vec![("userdb_quota_rule".to_string(), "*:storage=2M".to_string())];
        assert!(edit_extra_fields(&path, "alice", is_quota, &add).unwrap());
        assert!(edit_extra_fields(&path, "bob", is_quota, &add).unwrap());
        assert!(!edit_extra_fields(&path, "nobody", is_quota, &add).unwrap());
        let after = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            after,
            "# c\nalice:{PLAIN}a:1:1::/h::nologin userdb_quota_rule=*:storage=2M\nbob:{PLAIN}b::::::userdb_quota_rule=*:storage=2M\r\ncarol:{PLAIN}c::::::\n"
        );
        let users = parse(&after, &path).unwrap();
        assert_eq!(users["bob"].quota_rules(), vec!["*:storage=2M"]);
        assert_eq!(users["alice"].password, "{PLAIN}a");
        // A broken file is not rewritten.
        std::fs::write(&path, "broken line\n").unwrap();
        assert!(edit_extra_fields(&path, "alice", is_quota, &add).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "broken line\n");
    }

    #[test]
    fn reloads_when_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        std::fs::write(&path, "a:{PLAIN}1\n").unwrap();
        let f = PasswdFile::new(path.clone());
        let (g1, users) = f.users().unwrap();
        assert!(users.contains_key("a"));
        // Same mtime granularity could hide a same-size rewrite; the size differs here.
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(b"b:{PLAIN}22\n").unwrap();
        drop(file);
        let (g2, users) = f.users().unwrap();
        assert!(users.contains_key("b"));
        assert!(g2 > g1);
        // Unchanged file: same generation, no re-read.
        assert_eq!(f.users().unwrap().0, g2);
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(f.users(), Err(PasswdFileError::Unreadable { .. })));
    }
}
