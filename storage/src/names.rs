//! Validation of user and mailbox names: nothing a client or peer sends may escape the user's
//! directory or confuse the index.

use crate::error::{Result, StoreError};

pub const SEPARATOR: char = '/';
const MAX_MAILBOX_NAME: usize = 1024;
const MAX_USER_NAME: usize = 255;

/// A user name becomes a directory name: no separators, no dot-names, no control characters.
pub fn validate_user(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.len() > MAX_USER_NAME
        || name == "."
        || name == ".."
        || name.starts_with('.')
        || name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control());
    if bad {
        return Err(StoreError::InvalidUser(name.to_string()));
    }
    Ok(())
}

/// The canonical spelling: "INBOX" (and an "INBOX/" prefix) in any case becomes "INBOX".
pub fn canonical(name: &str) -> String {
    if name.eq_ignore_ascii_case("INBOX") {
        return "INBOX".to_string();
    }
    if name.len() > 6 && name.is_char_boundary(6) && name[..6].eq_ignore_ascii_case("INBOX/") {
        return format!("INBOX/{}", &name[6..]);
    }
    name.to_string()
}

pub fn is_inbox(name: &str) -> bool {
    name.eq_ignore_ascii_case("INBOX")
}

/// Checks a mailbox name and returns its canonical form. A trailing separator (CREATE "a/") is
/// dropped, as RFC 9051 allows.
pub fn validate_mailbox(name: &str) -> Result<String> {
    let err = |reason: &'static str| StoreError::InvalidMailboxName {
        name: name.to_string(),
        reason,
    };
    let trimmed = name.strip_suffix(SEPARATOR).unwrap_or(name);
    if trimmed.is_empty() {
        return Err(err("empty name"));
    }
    if trimmed.len() > MAX_MAILBOX_NAME {
        return Err(err("name too long"));
    }
    if trimmed.starts_with(SEPARATOR) {
        return Err(err("leading hierarchy separator"));
    }
    if trimmed.chars().any(|c| c.is_control()) {
        return Err(err("control character"));
    }
    if trimmed.contains('*') || trimmed.contains('%') {
        return Err(err("wildcard character"));
    }
    for part in trimmed.split(SEPARATOR) {
        if part.is_empty() {
            return Err(err("empty hierarchy component"));
        }
        if part == "." || part == ".." {
            return Err(err("\".\" or \"..\" component"));
        }
    }
    Ok(canonical(trimmed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users() {
        for ok in ["demo", "alice@example.com", "a.b"] {
            validate_user(ok).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "../x", ".hidden", "a\nb", "a\\b"] {
            assert!(
                matches!(validate_user(bad), Err(StoreError::InvalidUser(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn mailboxes() {
        assert_eq!(validate_mailbox("inbox").unwrap(), "INBOX");
        assert_eq!(validate_mailbox("Inbox/Sub").unwrap(), "INBOX/Sub");
        assert_eq!(validate_mailbox("a/b/").unwrap(), "a/b");
        assert_eq!(validate_mailbox("Résumé").unwrap(), "Résumé");
        for bad in [
            "", "/", "/a", "a//b", "a/../b", "..", "a\u{7}b", "a\tb", "x*", "y%", "a/./b",
        ] {
            assert!(
                matches!(
                    validate_mailbox(bad),
                    Err(StoreError::InvalidMailboxName { .. })
                ),
                "{bad:?}"
            );
        }
    }
}
