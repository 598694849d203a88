//! IMAP URLs (RFC 5092) as CATENATE (RFC 4469) uses them: a message, or a section or range of
//! it, in one of the user's own mailboxes. `imap://user@host/mailbox;UIDVALIDITY=n/;UID=n
//! /;SECTION=s/;PARTIAL=o.l`, or the same from the path on (`/mailbox...`). Other parameters
//! are refused by [`parse`]; URLAUTH's (RFC 4467) are cut off first by [`split_urlauth`].

/// What a URL names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImapUrl {
    /// The user of an absolute URL, if it names one.
    pub user: Option<String>,
    pub mailbox: String,
    pub uidvalidity: Option<u32>,
    pub uid: u32,
    pub section: Option<String>,
    /// PARTIAL: offset and optional length.
    pub partial: Option<(u64, Option<u64>)>,
}

/// Percent-decoding (RFC 3986); None for a malformed escape.
fn unescape(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    Some(out)
}

fn number<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `NAME=value` with NAME compared case-insensitively; the value when the name matches.
fn param<'a>(seg: &'a str, name: &str) -> Option<&'a str> {
    let (n, v) = seg.split_once('=')?;
    n.eq_ignore_ascii_case(name).then_some(v)
}

/// An URLAUTH-authorized URL (RFC 4467) cut into its parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlAuth<'a> {
    /// The URL without `;URLAUTH=...`: what [`parse`] reads.
    pub base: &'a str,
    /// The URL up to and including the access identifier: what the token signs.
    pub rump: &'a str,
    pub access: &'a str,
    /// `:mechanism:token`, when present (GENURLAUTH takes a URL without them).
    pub mech: Option<&'a str>,
    pub token: Option<&'a str>,
}

/// Cuts `;URLAUTH=access[:mech:token]` off an IMAP URL; None without one, or with
/// `;EXPIRE=` (not supported here), or a malformed access part.
pub fn split_urlauth(url: &str) -> Option<UrlAuth<'_>> {
    let lower = url.to_ascii_lowercase();
    let at = lower.rfind(";urlauth=")?;
    if lower.contains(";expire=") {
        return None;
    }
    let base = url.get(..at)?;
    let rest = url.get(at + ";urlauth=".len()..)?;
    let (access, mech, token) = match rest.split_once(':') {
        None => (rest, None, None),
        Some((a, mt)) => {
            let (m, t) = mt.split_once(':')?;
            (a, Some(m), Some(t))
        }
    };
    if access.is_empty() || access.contains('/') {
        return None;
    }
    let rump = url.get(..at + ";urlauth=".len() + access.len())?;
    Some(UrlAuth {
        base,
        rump,
        access,
        mech,
        token,
    })
}

pub fn parse(url: &str) -> Option<ImapUrl> {
    let (user, path) = match url.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("imap://") => {
            let rest = url.get(7..)?;
            let slash = rest.find('/')?;
            let authority = rest.get(..slash)?;
            let user = match authority.rsplit_once('@') {
                Some((u, _)) => {
                    let u = u.split(';').next().unwrap_or_default();
                    Some(String::from_utf8(unescape(u)?).ok()?)
                }
                None => None,
            };
            (user, rest.get(slash + 1..)?)
        }
        _ => (None, url.strip_prefix('/')?),
    };
    let mut segs = path.split("/;");
    let first = segs.next()?;
    let (enc_mailbox, mut mb_params) = match first.split_once(';') {
        Some((m, p)) => (m, Some(p)),
        None => (first, None),
    };
    let mailbox = String::from_utf8(unescape(enc_mailbox)?).ok()?;
    if mailbox.is_empty() {
        return None;
    }
    let mut out = ImapUrl {
        user,
        mailbox,
        uidvalidity: None,
        uid: 0,
        section: None,
        partial: None,
    };
    if let Some(p) = mb_params.take() {
        out.uidvalidity = Some(number(param(p, "UIDVALIDITY")?).filter(|&v: &u32| v > 0)?);
    }
    let uid = segs.next().and_then(|s| param(s, "UID"))?;
    out.uid = number(uid).filter(|&u: &u32| u > 0)?;
    for seg in segs {
        if let Some(v) = param(seg, "SECTION") {
            if out.section.is_some() || out.partial.is_some() {
                return None;
            }
            out.section = Some(String::from_utf8(unescape(v)?).ok()?);
        } else if let Some(v) = param(seg, "PARTIAL") {
            if out.partial.is_some() {
                return None;
            }
            out.partial = Some(match v.split_once('.') {
                Some((o, l)) => (number(o)?, Some(number(l).filter(|&l: &u64| l > 0)?)),
                None => (number(v)?, None),
            });
        } else {
            return None;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_and_absolute_urls() {
        let u = parse("/INBOX;UIDVALIDITY=785799047/;UID=113330/;section=1.5.9").unwrap();
        assert_eq!(u.mailbox, "INBOX");
        assert_eq!((u.uidvalidity, u.uid), (Some(785799047), 113330));
        assert_eq!(u.section.as_deref(), Some("1.5.9"));
        let u = parse("imap://fred@example.com/my%20box/;uid=20/;section=HEADER.FIELDS%20(FROM)/;partial=0.1024").unwrap();
        assert_eq!(u.user.as_deref(), Some("fred"));
        assert_eq!(u.mailbox, "my box");
        assert_eq!(u.section.as_deref(), Some("HEADER.FIELDS (FROM)"));
        assert_eq!(u.partial, Some((0, Some(1024))));
        let u = parse("/a/b/;uid=7/;partial=100000.1").unwrap();
        assert_eq!(
            (u.mailbox.as_str(), u.partial),
            ("a/b", Some((100000, Some(1))))
        );
        for bad in [
            "",
            "INBOX/;uid=1",
            "/INBOX",
            "/INBOX/;uid=0",
            "/INBOX/;uid=x",
            "/INBOX;uidvalidity=/;uid=1",
            "/INBOX/;uid=1/;urlauth=anonymous:internal:abc",
            "/INBOX/;uid=1/;section=1/;section=2",
            "/INBOX/;uid=1/;partial=1.0",
            "/%zz/;uid=1",
            "imap://host",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn urlauth_parts() {
        let u = "imap://joe@example.com/INBOX/;uid=20/;section=1.2;urlauth=user+fred:internal:91354a473744909de610943775f92038";
        let a = split_urlauth(u).unwrap();
        assert_eq!(a.base, "imap://joe@example.com/INBOX/;uid=20/;section=1.2");
        assert_eq!(
            a.rump,
            "imap://joe@example.com/INBOX/;uid=20/;section=1.2;urlauth=user+fred"
        );
        assert_eq!(
            (a.access, a.mech, a.token),
            (
                "user+fred",
                Some("internal"),
                Some("91354a473744909de610943775f92038")
            )
        );
        assert_eq!(parse(a.base).unwrap().section.as_deref(), Some("1.2"));
        let a = split_urlauth("imap://joe@h/INBOX/;uid=2;URLAUTH=authuser").unwrap();
        assert_eq!((a.access, a.mech, a.token), ("authuser", None, None));
        assert_eq!(parse(a.base).unwrap().uid, 2);
        assert_eq!(split_urlauth("imap://joe@h/INBOX/;uid=2"), None);
        assert_eq!(
            split_urlauth(
                "imap://joe@h/INBOX/;uid=2;expire=2030-01-01T00:00:00Z;urlauth=anonymous"
            ),
            None
        );
        assert_eq!(split_urlauth("imap://joe@h/INBOX/;uid=2;urlauth=a:b"), None);
    }
}
