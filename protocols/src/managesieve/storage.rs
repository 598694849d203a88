//! The user's scripts as files, in Pigeonhole's layout: `sieve_dir/NAME.sieve`, and the active
//! one a symbolic link at the `sieve` path (`~/.dovecot.sieve`), which delivery reads.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("Script does not exist.")]
    NoSuchScript,
    #[error("A script with that name already exists.")]
    Exists,
    #[error("Cannot delete the active script.")]
    Active,
    #[error("Invalid script name.")]
    BadName,
    #[error("Script is larger than the maximum size.")]
    TooLarge,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub struct ScriptDir {
    pub dir: PathBuf,
    pub active_link: PathBuf,
}

/// Names are file names: no path separators, no control characters, no leading dot.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name
            .chars()
            .any(|c| c.is_control() || c == '/' || c == '\\')
}

impl ScriptDir {
    fn path(&self, name: &str) -> Result<PathBuf, StoreError> {
        if !valid_name(name) {
            return Err(StoreError::BadName);
        }
        Ok(self.dir.join(format!("{name}.sieve")))
    }

    /// (name, size) of every script.
    pub fn list(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let mut out = Vec::new();
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e.into()),
        };
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str().and_then(|n| n.strip_suffix(".sieve")) else {
                continue;
            };
            if valid_name(name) {
                out.push((name.to_string(), e.metadata().map(|m| m.len()).unwrap_or(0)));
            }
        }
        out.sort();
        Ok(out)
    }

    /// The active script's name, when the link points into the script directory.
    pub fn active(&self) -> Option<String> {
        let target = std::fs::read_link(&self.active_link).ok()?;
        let target = if target.is_absolute() {
            target
        } else {
            self.active_link.parent()?.join(target)
        };
        let name = target
            .file_name()?
            .to_str()?
            .strip_suffix(".sieve")?
            .to_string();
        (target.parent()? == self.dir.as_path() || same_dir(target.parent()?, &self.dir))
            .then_some(name)
    }

    pub fn get(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        match std::fs::read(self.path(name)?) {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::NoSuchScript),
            Err(e) => Err(e.into()),
        }
    }

    pub fn exists(&self, name: &str) -> bool {
        self.path(name).is_ok_and(|p| p.is_file())
    }

    /// Writes a script (replacing one of that name) atomically.
    pub fn put(&self, name: &str, script: &[u8]) -> Result<(), StoreError> {
        let path = self.path(name)?;
        std::fs::create_dir_all(&self.dir)?;
        let tmp = self.dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, script)?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    }

    pub fn delete(&self, name: &str) -> Result<(), StoreError> {
        let path = self.path(name)?;
        if self.active().as_deref() == Some(name) {
            return Err(StoreError::Active);
        }
        match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::NoSuchScript),
            Err(e) => Err(e.into()),
        }
    }

    pub fn rename(&self, from: &str, to: &str) -> Result<(), StoreError> {
        let (a, b) = (self.path(from)?, self.path(to)?);
        if !a.is_file() {
            return Err(StoreError::NoSuchScript);
        }
        if b.exists() {
            return Err(StoreError::Exists);
        }
        let was_active = self.active().as_deref() == Some(from);
        std::fs::rename(&a, &b)?;
        if was_active {
            self.set_active(Some(to))?;
        }
        Ok(())
    }

    /// Points the active link at a script, or removes it (`None`). A regular file in the link's
    /// place (a script written by hand) is kept as the script "dovecot.orig".
    pub fn set_active(&self, name: Option<&str>) -> Result<(), StoreError> {
        let link = &self.active_link;
        if let Ok(meta) = std::fs::symlink_metadata(link) {
            if meta.is_file() {
                std::fs::create_dir_all(&self.dir)?;
                std::fs::rename(link, self.path("dovecot.orig")?)?;
            }
        }
        let Some(name) = name else {
            return match std::fs::remove_file(link) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
                _ => Ok(()),
            };
        };
        let target = self.path(name)?;
        if !target.is_file() {
            return Err(StoreError::NoSuchScript);
        }
        if let Some(parent) = link.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let tmp = link.with_extension("tmp-link");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&target, &tmp)?;
        std::fs::rename(&tmp, link)?;
        Ok(())
    }
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_and_the_active_link() {
        let d = tempfile::tempdir().unwrap();
        let s = ScriptDir {
            dir: d.path().join("sieve"),
            active_link: d.path().join(".dovecot.sieve"),
        };
        assert!(s.list().unwrap().is_empty());
        s.put("a", b"keep;").unwrap();
        s.put("b", b"discard;").unwrap();
        assert_eq!(s.list().unwrap().len(), 2);
        s.set_active(Some("a")).unwrap();
        assert_eq!(s.active().as_deref(), Some("a"));
        assert_eq!(std::fs::read(&s.active_link).unwrap(), b"keep;");
        assert!(matches!(s.delete("a"), Err(StoreError::Active)));
        s.rename("a", "c").unwrap();
        assert_eq!(s.active().as_deref(), Some("c"));
        assert!(matches!(s.rename("b", "c"), Err(StoreError::Exists)));
        s.set_active(None).unwrap();
        s.delete("c").unwrap();
        assert!(matches!(s.get("c"), Err(StoreError::NoSuchScript)));
        assert!(matches!(s.put("../x", b""), Err(StoreError::BadName)));
        // A hand-written script in the link's place is kept.
        std::fs::write(&s.active_link, b"stop;").unwrap();
        s.set_active(Some("b")).unwrap();
        assert_eq!(s.get("dovecot.orig").unwrap(), b"stop;");
    }
}
