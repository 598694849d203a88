//! Mailbox and server attributes: METADATA entries (RFC 5464) and ACL entries (RFC 4314),
//! one value per (mailbox or server, key). The later write by HLC time wins, a removal
//! included (it is kept as a dated tombstone), so two nodes that applied the same records
//! in any order hold the same attributes.

use crate::types::HlcTime;

/// Longest attribute key (an entry name or an ACL key) in bytes.
pub const MAX_KEY: usize = 1024;
/// Largest attribute value in bytes: METADATA's MAXSIZE.
pub const MAX_VALUE: usize = 64 * 1024;
/// Prefix of ACL keys; METADATA keys start with `/`, so the two never meet.
pub const ACL_PREFIX: &str = "acl:";
/// Prefix of the server attributes that remember who shared mailboxes with the user
/// (`shared:OWNER`), so LIST finds them without a directory of all users.
pub const SHARED_PREFIX: &str = "shared:";
/// A mailbox's URLAUTH key (RFC 4467 "mailbox access key").
pub const URLAUTH_KEY: &str = "urlauth:key";

/// Whether a write at `incoming` replaces the value last written at `current`.
pub fn later_wins(current: Option<HlcTime>, incoming: HlcTime) -> bool {
    current.is_none_or(|c| incoming > c)
}

/// The checks a key and a value pass, from a client or a peer.
pub fn check(key: &str, value: Option<&[u8]>) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(format!("attribute key of {} bytes", key.len()));
    }
    if key.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err("attribute key with a control character".into());
    }
    let known = [ACL_PREFIX, SHARED_PREFIX, URLAUTH_KEY];
    if !key.starts_with('/') && !known.iter().any(|p| key.starts_with(p)) {
        return Err(format!("attribute key {key:?} of no known kind"));
    }
    match value {
        Some(v) if v.len() > MAX_VALUE => Err(format!("attribute value of {} bytes", v.len())),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(wall_ms: u64, node: u32) -> HlcTime {
        HlcTime {
            wall_ms,
            logical: 0,
            node,
        }
    }

    #[test]
    fn the_later_write_wins_in_either_order() {
        assert!(later_wins(None, t(1, 1)));
        assert!(later_wins(Some(t(1, 1)), t(2, 1)));
        assert!(!later_wins(Some(t(2, 1)), t(1, 1)));
        // Same wall time: the node id orders them, the same way on every node.
        assert!(later_wins(Some(t(5, 1)), t(5, 2)));
        assert!(!later_wins(Some(t(5, 2)), t(5, 1)));
        assert!(!later_wins(Some(t(5, 2)), t(5, 2)));
    }

    #[test]
    fn keys_and_values_are_bounded() {
        assert!(check("/private/comment", Some(b"x")).is_ok());
        assert!(check("acl:bob", Some(b"lr")).is_ok());
        assert!(check("shared:alice", Some(b"")).is_ok());
        assert!(check("comment", None).is_err());
        assert!(check("/private/a\nb", None).is_err());
        assert!(check(&"/".repeat(MAX_KEY + 1), None).is_err());
        assert!(check("/shared/x", Some(&vec![0; MAX_VALUE + 1])).is_err());
    }
}
