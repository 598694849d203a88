//! Recipient addresses: `user+detail@domain` split by `recipient_delimiter`, as Dovecot does.

/// A recipient address taken apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    /// The address without the detail: what the userdb is asked for (`user@domain` or `user`).
    pub lookup: String,
    /// The detail after the delimiter (`box` in `user+box@domain`), if any.
    pub detail: Option<String>,
}

/// Splits the detail off the local part at the first character found in `delimiters` (Dovecot:
/// each character of `recipient_delimiter` is a delimiter). Quoted local parts keep their quotes.
pub fn split_detail(address: &str, delimiters: &str) -> Recipient {
    let (local, domain) = match address.rfind('@') {
        Some(i) => (&address[..i], Some(&address[i + 1..])),
        None => (address, None),
    };
    let join = |local: &str| match domain {
        Some(d) => format!("{local}@{d}"),
        None => local.to_string(),
    };
    if !delimiters.is_empty() {
        if let Some(i) = local.find(|c| delimiters.contains(c)) {
            let delim_len = local[i..].chars().next().map_or(1, char::len_utf8);
            let detail = &local[i + delim_len..];
            if i > 0 {
                return Recipient {
                    lookup: join(&local[..i]),
                    detail: (!detail.is_empty()).then(|| detail.to_string()),
                };
            }
        }
    }
    Recipient {
        lookup: join(local),
        detail: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(lookup: &str, detail: Option<&str>) -> Recipient {
        Recipient {
            lookup: lookup.into(),
            detail: detail.map(str::to_string),
        }
    }

    #[test]
    fn details() {
        assert_eq!(
            split_detail("demo+box@x.org", "+"),
            r("demo@x.org", Some("box"))
        );
        assert_eq!(split_detail("demo+a+b", "+"), r("demo", Some("a+b")));
        assert_eq!(split_detail("demo-a@x", "+-"), r("demo@x", Some("a")));
        assert_eq!(split_detail("demo+@x", "+"), r("demo@x", None));
        assert_eq!(split_detail("demo@x", "+"), r("demo@x", None));
        assert_eq!(split_detail("demo+box@x", ""), r("demo+box@x", None));
        // A delimiter first is part of the name, not an empty user.
        assert_eq!(split_detail("+box@x", "+"), r("+box@x", None));
        // The domain never holds a detail.
        assert_eq!(split_detail("demo@a+b", "+"), r("demo@a+b", None));
    }
}
