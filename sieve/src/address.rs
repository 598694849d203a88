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
            // Each character of the separator setting is a separator (Dovecot's
            // recipient_delimiter); the first one found splits.
            Part::User => Some(match local.find(|c| separator.contains(c)) {
                Some(i) => local[..i].to_string(),
                None => local.clone(),
            }),
            Part::Detail => local
                .find(|c| separator.contains(c))
                .map(|i| local[i..].chars().skip(1).collect()),
        }
    }
}

/// An addr-spec (`local@domain`) fit for redirect or a reply's From (name-addr form allowed).
pub fn valid_mailbox(s: &str) -> bool {
    normalize(s).is_some()
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
        assert!(!valid_mailbox("a<b@c"));
        assert!(!valid_mailbox("nobody"));
        assert!(!valid_mailbox("a@"));
        assert!(valid_mailbox(" more  @  example.com  "));
        assert!(valid_mailbox("..japanese...localpart..@example.com"));
        assert!(!valid_mailbox(" more error @  example.com  "));
        assert!(!valid_mailbox("Stephan Bosch error@example.org"));
        assert!(!valid_mailbox("r\u{fc}diger@example.com"));
        assert!(!valid_mailbox(".@example.com"));
    }
}

fn atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

fn dot_atom(s: &str) -> bool {
    !s.is_empty() && s.split('.').all(|p| !p.is_empty() && p.chars().all(atext))
}

/// An unquoted local part as Pigeonhole accepts it: ASCII atext and dots, where leading,
/// trailing and repeated dots are let through (such addresses exist, e.g. at Japanese
/// mobile carriers); white space inside it or 8-bit text is not (no SMTPUTF8 here).
fn lenient_local(l: &str) -> bool {
    l.chars().all(|c| c == '.' || (c.is_ascii() && atext(c))) && l.chars().any(|c| c != '.')
}

fn valid_domain(d: &str) -> bool {
    if d.starts_with('[') && d.ends_with(']') {
        return d.len() > 2;
    }
    dot_atom(d)
        && d.chars()
            .all(|c| c.is_alphanumeric() || c == '.' || c == '-')
}

/// Splits `local@domain` (the local part may be a quoted string), white space around the
/// tokens removed; the local part unquoted when quoting is not needed (RFC 5321 4.1.2).
fn split_spec(s: &str) -> Option<(String, String)> {
    let s = s.trim();
    let (local, rest) = if let Some(q) = s.strip_prefix('"') {
        let mut esc = false;
        let mut end = None;
        for (i, c) in q.char_indices() {
            match (c, esc) {
                (_, true) => esc = false,
                ('\\', false) => esc = true,
                ('"', false) => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let end = end?;
        let inner = &q[..end];
        let local = if dot_atom(inner) {
            inner.to_string()
        } else {
            format!("\"{inner}\"")
        };
        (local, q[end + 1..].trim_start())
    } else {
        let at = s.rfind('@')?;
        let local = s[..at].trim().to_string();
        if !lenient_local(&local) {
            return None;
        }
        (local, &s[at..])
    };
    let domain: String = rest.strip_prefix('@')?.split_whitespace().collect();
    if local.is_empty() || !valid_domain(&domain) {
        return None;
    }
    Some((local, domain))
}

/// A redirect or :from address (addr-spec or name-addr) to its normalised addr-spec.
pub fn normalize(s: &str) -> Option<String> {
    let spec = match (s.find('<'), s.rfind('>')) {
        (Some(a), Some(b)) if a < b && s[b + 1..].trim().is_empty() => &s[a + 1..b],
        (None, None) => s,
        _ => return None,
    };
    let (l, d) = split_spec(spec)?;
    Some(format!("{l}@{d}"))
}

/// An SMTP path (RFC 5321 4.1.2) as the envelope test sees it: `<>` or "" is the null path,
/// whose parts are all empty; a malformed path has no parts at all.
pub fn parse_path(s: &str) -> Option<Parsed> {
    let t = s.trim();
    if t.is_empty() || t == "<>" {
        return Some(Parsed {
            all: String::new(),
            parts: Some((String::new(), String::new())),
        });
    }
    let inner = match t.strip_prefix('<') {
        Some(r) => r.strip_suffix('>')?,
        None => t,
    };
    if inner.contains(['<', '>']) {
        return None;
    }
    // A source route (@a,@b:) is obsolete and ignored, but must be well formed.
    let inner = match inner.strip_prefix('@') {
        Some(_) => {
            let (route, rest) = inner.split_once(':')?;
            let ok = route
                .split(',')
                .all(|hop| hop.strip_prefix('@').is_some_and(path_domain));
            if !ok {
                return None;
            }
            rest
        }
        None => inner,
    };
    if inner.is_empty() || inner.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    if inner.starts_with('"') {
        let (l, d) = split_spec(inner)?;
        return Some(Parsed {
            all: format!("{l}@{d}"),
            parts: Some((l, d)),
        });
    }
    let local_ok = |l: &str| !l.is_empty() && l.chars().all(|c| atext(c) || c == '.');
    match inner.rsplit_once('@') {
        // A local part alone (<MAILER-DAEMON>, <postmaster>).
        None if local_ok(inner) => Some(Parsed {
            all: inner.to_string(),
            parts: None,
        }),
        None => None,
        // Envelope local parts are taken as they come (dots anywhere: Japanese mobile
        // addresses), domains with underscores too.
        Some((l, d)) if local_ok(l) && path_domain(d) => Some(Parsed {
            all: format!("{l}@{d}"),
            parts: Some((l.to_string(), d.to_string())),
        }),
        Some(_) => None,
    }
}

/// A domain in an SMTP path, leniently: labels of letters, digits, '-' and '_'.
fn path_domain(d: &str) -> bool {
    !d.is_empty()
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.chars()
                    .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
        })
}

#[cfg(test)]
mod normalize_tests {
    use super::*;

    #[test]
    fn normalizes() {
        assert_eq!(
            normalize(" stephan @ example.org ").as_deref(),
            Some("stephan@example.org")
        );
        assert_eq!(
            normalize("\"Sirius\"@example.net").as_deref(),
            Some("Sirius@example.net")
        );
        assert_eq!(
            normalize("\"S[r]us\"@example.net").as_deref(),
            Some("\"S[r]us\"@example.net")
        );
        assert_eq!(
            normalize("\"Stephan Bosch\" <\"S.Bosch\"@example.net>").as_deref(),
            Some("S.Bosch@example.net")
        );
        assert_eq!(normalize("nobody"), None);
        assert_eq!(normalize("a@@b"), None);
    }

    #[test]
    fn paths() {
        assert_eq!(parse_path("<>").unwrap().all, "");
        assert_eq!(parse_path("<a@b.example>").unwrap().all, "a@b.example");
        assert!(parse_path("<<a@b.example>").is_none());
        assert!(parse_path("a@b.example>").is_none());
        assert!(parse_path("hutsefluts@").is_none());
        assert!(parse_path("<a b.example>").is_none());
        assert_eq!(
            parse_path("<@x.example,@y.example:a@b.example>")
                .unwrap()
                .all,
            "a@b.example"
        );
    }
}
