//! ACL rights (RFC 4314) and how a user's rights on a mailbox follow from its entries, after
//! Dovecot's vfile ACLs: the owner has every right; anyone else has the rights of the entries
//! naming them, `authenticated` and `anyone` (every user here is authenticated), less those of
//! the negative entries (`-name`, `-authenticated`, `-anyone`). Entries live in the owner's
//! store (`acl:IDENTIFIER` attributes), so they replicate with the owner's mail.

/// Every right, in the order GETACL and MYRIGHTS write them.
pub const ALL: &str = "lrswipkxtea";

/// The namespace through which other users' mailboxes are reached: `shared/OWNER/NAME`.
pub const SHARED_PREFIX: &str = "shared/";

/// Attribute key prefix of ACL entries.
pub const KEY_PREFIX: &str = storage::merge::attributes::ACL_PREFIX;

/// A set of rights.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rights(u16);

impl Rights {
    pub const NONE: Rights = Rights(0);

    pub fn all() -> Rights {
        Rights((1 << ALL.len()) - 1)
    }

    fn bit(c: char) -> Option<u16> {
        ALL.find(c).map(|i| 1 << i)
    }

    /// Parses rights letters; the obsolete `c` and `d` (RFC 4314 2.1.1) stand for `kx` and
    /// `xte`. None for a letter that is no right.
    pub fn parse(s: &str) -> Option<Rights> {
        let mut r = 0u16;
        for c in s.chars() {
            r |= match c {
                'c' => Rights::parse("kx")?.0,
                'd' => Rights::parse("xte")?.0,
                c => Rights::bit(c)?,
            };
        }
        Some(Rights(r))
    }

    pub fn has(self, c: char) -> bool {
        Rights::bit(c).is_some_and(|b| self.0 & b != 0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn union(self, o: Rights) -> Rights {
        Rights(self.0 | o.0)
    }

    pub fn minus(self, o: Rights) -> Rights {
        Rights(self.0 & !o.0)
    }

    /// A SETACL's change (`+rights` adds, `-rights` removes, else replaces) applied to the
    /// current rights; None for a letter that is no right.
    pub fn modified(self, change: &str) -> Option<Rights> {
        if let Some(add) = change.strip_prefix('+') {
            Some(self.union(Rights::parse(add)?))
        } else if let Some(del) = change.strip_prefix('-') {
            Some(self.minus(Rights::parse(del)?))
        } else {
            Rights::parse(change)
        }
    }
}

impl std::fmt::Display for Rights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in ALL.chars().filter(|&c| self.has(c)) {
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

/// The rights `user` has on a mailbox of `owner` whose entries are `entries` (identifier,
/// rights).
pub fn effective(owner: &str, user: &str, entries: &[(String, Rights)]) -> Rights {
    if user == owner {
        return Rights::all();
    }
    let applies = |id: &str| id == user || id == "anyone" || id == "authenticated";
    let mut plus = Rights::NONE;
    let mut minus = Rights::NONE;
    for (id, r) in entries {
        match id.strip_prefix('-') {
            Some(neg) if applies(neg) => minus = minus.union(*r),
            None if applies(id) => plus = plus.union(*r),
            _ => {}
        }
    }
    plus.minus(minus)
}

/// The ACL entries of a mailbox from its attributes (`acl:IDENTIFIER` -> rights letters).
pub fn entries_of(attrs: &[(String, Vec<u8>)]) -> Vec<(String, Rights)> {
    attrs
        .iter()
        .filter_map(|(k, v)| {
            let id = k.strip_prefix(KEY_PREFIX)?;
            let r = Rights::parse(std::str::from_utf8(v).ok()?)?;
            Some((id.to_string(), r))
        })
        .collect()
}

/// A name in the shared namespace, split: `shared/OWNER/NAME` -> (OWNER, NAME). None for a
/// name outside it; `shared/OWNER` alone has no mailbox part and is None too.
pub fn split_shared(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix(SHARED_PREFIX)?;
    let (owner, mailbox) = rest.split_once('/')?;
    (!owner.is_empty() && !mailbox.is_empty()).then_some((owner, mailbox))
}

/// Whether an identifier may be given rights: not empty, no control characters, and not a
/// lone `-`.
pub fn valid_identifier(id: &str) -> bool {
    let bare = id.strip_prefix('-').unwrap_or(id);
    !bare.is_empty() && !id.chars().any(char::is_control) && id.len() <= 256
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Rights {
        Rights::parse(s).unwrap()
    }

    #[test]
    fn rights_parse_print_and_change() {
        assert_eq!(Rights::all().to_string(), ALL);
        assert_eq!(r("rl").to_string(), "lr");
        assert_eq!(r("c").to_string(), "kx");
        assert_eq!(r("d").to_string(), "xte");
        assert_eq!(Rights::parse("lz"), None);
        assert_eq!(r("lr").modified("+s"), Some(r("lrs")));
        assert_eq!(r("lrs").modified("-r"), Some(r("ls")));
        assert_eq!(r("lrs").modified("i"), Some(r("i")));
        assert_eq!(r("lrs").modified("+q"), None);
        assert!(r("").is_empty());
    }

    #[test]
    fn effective_rights_follow_dovecot() {
        let entries = vec![
            ("bob".to_string(), r("lrs")),
            ("anyone".to_string(), r("l")),
            ("authenticated".to_string(), r("w")),
            ("-bob".to_string(), r("s")),
            ("-anyone".to_string(), r("w")),
        ];
        assert_eq!(effective("alice", "alice", &entries), Rights::all());
        assert_eq!(effective("alice", "bob", &entries), r("lr"));
        assert_eq!(effective("alice", "carol", &entries), r("l"));
        assert_eq!(effective("alice", "carol", &[]), Rights::NONE);
    }

    #[test]
    fn shared_names_and_entries() {
        assert_eq!(
            split_shared("shared/alice/Lists/x"),
            Some(("alice", "Lists/x"))
        );
        assert_eq!(split_shared("shared/alice"), None);
        assert_eq!(split_shared("shared//x"), None);
        assert_eq!(split_shared("INBOX"), None);
        let attrs = vec![
            ("acl:bob".to_string(), b"lr".to_vec()),
            ("acl:bad".to_string(), b"lz".to_vec()),
        ];
        assert_eq!(entries_of(&attrs), [("bob".to_string(), r("lr"))]);
        assert!(valid_identifier("-anyone") && !valid_identifier("-") && !valid_identifier(""));
    }
}
