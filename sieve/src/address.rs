//! Addresses in headers and envelopes, and address parts (RFC 5228 2.7.4, RFC 5233).

use mail_parser::parsers::MessageStream;
use mail_parser::{Address, HeaderValue};

/// One address found in a header: the addr-spec, split into local part and domain when it is
/// well formed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub all: String,
    pub parts: Option<(String, String)>,
}

impl Parsed {
    pub fn from_spec(spec: &str) -> Parsed {
        let spec = spec.trim();
        let parts = spec
            .rsplit_once('@')
            .filter(|(l, d)| !l.is_empty() && !d.is_empty())
            .map(|(l, d)| (l.to_string(), d.to_string()));
        Parsed {
            all: spec.to_string(),
            parts,
        }
    }
}

/// The addresses of an address header's (unfolded) value; groups are flattened.
pub fn parse_header(value: &str) -> Vec<Parsed> {
    let mut raw = value.as_bytes().to_vec();
    raw.extend_from_slice(b"\n");
    let mut out = Vec::new();
    let push = |out: &mut Vec<Parsed>, a: &mail_parser::Addr<'_>| {
        if let Some(addr) = a.address.as_deref() {
            out.push(Parsed::from_spec(addr));
        }
    };
    match MessageStream::new(&raw).parse_address() {
        HeaderValue::Address(Address::List(l)) => l.iter().for_each(|a| push(&mut out, a)),
        HeaderValue::Address(Address::Group(g)) => g
            .iter()
            .flat_map(|g| g.addresses.iter())
            .for_each(|a| push(&mut out, a)),
        _ => {}
    }
    out
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    All,
    Local,
    Domain,
    User,
    Detail,
}

impl Part {
    pub fn from_tags(has: impl Fn(&str) -> bool) -> Part {
        if has("localpart") {
            Part::Local
        } else if has("domain") {
            Part::Domain
        } else if has("user") {
            Part::User
        } else if has("detail") {
            Part::Detail
        } else {
            Part::All
        }
    }

    /// The part of an address, `None` when it has none (no detail, or not an address).
    pub fn extract(self, a: &Parsed, separator: &str) -> Option<String> {
        if self == Part::All {
            return Some(a.all.clone());
        }
        let (local, domain) = a.parts.as_ref()?;
        match self {
            Part::All => None,
            Part::Local => Some(local.clone()),
            Part::Domain => Some(domain.clone()),
            Part::User => Some(
                local
                    .split_once(separator)
                    .map_or(local.as_str(), |(u, _)| u)
                    .to_string(),
            ),
            Part::Detail => local.split_once(separator).map(|(_, d)| d.to_string()),
        }
    }
}

/// An addr-spec (`local@domain`) fit for redirect or a reply's From (name-addr form allowed).
pub fn valid_mailbox(s: &str) -> bool {
    let spec = match (s.find('<'), s.rfind('>')) {
        (Some(a), Some(b)) if a < b => &s[a + 1..b],
        (None, None) => s,
        _ => return false,
    };
    let spec = spec.trim();
    match spec.rsplit_once('@') {
        Some((l, d)) => {
            !l.is_empty()
                && !d.is_empty()
                && !d.starts_with('.')
                && !d.ends_with('.')
                && !spec.chars().any(|c| c.is_whitespace() || c.is_control())
                && d.chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'))
        }
        None => false,
    }
}

/// The bare addr-spec of `a` (strips a display name and angle brackets).
pub fn bare(s: &str) -> String {
    match (s.find('<'), s.rfind('>')) {
        (Some(a), Some(b)) if a < b => s[a + 1..b].trim().to_string(),
        _ => s.trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_addresses_and_parts() {
        let a = parse_header(" \"Ann\" <ann+lists@Example.org>, bob@b.example, grp: c@c.example;");
        assert_eq!(a[0].all, "ann+lists@Example.org");
        assert_eq!(Part::Detail.extract(&a[0], "+").as_deref(), Some("lists"));
        assert_eq!(Part::User.extract(&a[0], "+").as_deref(), Some("ann"));
        assert_eq!(Part::Detail.extract(&a[1], "+"), None);
        assert_eq!(
            Part::Domain.extract(&a[1], "+").as_deref(),
            Some("b.example")
        );
        assert!(a.len() >= 2);
    }

    #[test]
    fn mailbox_validity() {
        assert!(valid_mailbox("a@b.example"));
        assert!(valid_mailbox("Name <a@b.example>"));
        assert!(!valid_mailbox("a b@c"));
        assert!(!valid_mailbox("nobody"));
        assert!(!valid_mailbox("a@"));
    }
}
