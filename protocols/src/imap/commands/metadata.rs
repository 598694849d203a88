//! METADATA and METADATA-SERVER (RFC 5464): entries of a mailbox, or of the server (mailbox
//! `""`), kept in the user's store as change-log records (`storage::record::Op::Attribute`),
//! so they replicate and merge like the rest of the user's mail. Server entries are the
//! user's own (as Dovecot keeps them, with the user's mail). Limits: values up to
//! [`MAX_VALUE`] bytes, [`MAX_ENTRIES`] entries per mailbox or server.
//!
//! Another user's mailbox (`shared/OWNER/NAME`, ACL) takes `l` and one of `r s w i p`
//! (RFC 5464 4.2/4.3, as Dovecot) and shows only its `/shared` entries, kept in the owner's
//! store; its `/private` entries (the owner's, or per user) are neither shown nor set.

use super::acl::{self as acl_cmd, Target};
use crate::imap::acl::split_shared;
use crate::imap::parse::{Depth, GetMetadata, SetMetadata};
use crate::imap::reply::{Done, Reply};
use crate::imap::response::{Code, MetadataCode, Untagged};
use crate::imap::session::Session;
use std::collections::BTreeMap;
use storage::merge::attributes;

/// Largest value SETMETADATA takes.
pub(crate) const MAX_VALUE: usize = attributes::MAX_VALUE;
/// Most entries a mailbox (or the server) holds.
pub(crate) const MAX_ENTRIES: usize = 1000;

/// What GETMETADATA answers for `entries` at `depth` out of `all` (the mailbox's entries,
/// sorted): each entry found or below it as deep as asked, in name order, NIL for an entry
/// asked for at depth 0 that does not exist, and the size of the largest value left out for
/// MAXSIZE.
pub(crate) fn select<'a>(
    all: &'a [(String, Vec<u8>)],
    entries: &'a [String],
    depth: Depth,
    maxsize: Option<u64>,
) -> (BTreeMap<&'a str, Option<&'a [u8]>>, Option<u64>) {
    let mut out = BTreeMap::new();
    let mut longest: Option<u64> = None;
    let mut take = |k: &'a str, v: &'a [u8], out: &mut BTreeMap<&'a str, Option<&'a [u8]>>| {
        let len = v.len() as u64;
        if maxsize.is_some_and(|m| len > m) {
            longest = Some(longest.map_or(len, |l| l.max(len)));
        } else {
            out.insert(k, Some(v));
        }
    };
    for e in entries {
        let mut found = false;
        for (k, v) in all {
            let below = k
                .strip_prefix(e.as_str())
                .and_then(|rest| rest.strip_prefix('/'));
            let wanted = match (k == e, below, depth) {
                (true, _, _) => true,
                (false, Some(_), Depth::Infinity) => true,
                (false, Some(rest), Depth::One) => !rest.contains('/'),
                _ => false,
            };
            if wanted {
                found = true;
                take(k, v, &mut out);
            }
        }
        if !found && depth == Depth::Zero {
            out.insert(e.as_str(), None);
        }
    }
    (out, longest)
}

/// Dovecot's internal entries (`/private/vendor/vendor.dovecot/pvt/...`: Sieve scripts and
/// reply tracking) are the server's own: IMAP clients neither see nor set them.
fn internal(key: &str) -> bool {
    let prefix = crate::managesieve::attrs::PREFIX;
    key.get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

fn mailbox_of(s: &Session, raw: &[u8]) -> Result<Option<String>, Done> {
    if raw.is_empty() {
        Ok(None)
    } else {
        s.mailbox_in(raw).map(Some)
    }
}

/// Another user's mailbox that METADATA may use; None for the user's own (or the server).
async fn shared_target(s: &mut Session, mailbox: Option<&str>) -> Result<Option<Target>, Done> {
    let Some(m) = mailbox.filter(|m| split_shared(m).is_some()) else {
        return Ok(None);
    };
    let t = acl_cmd::resolve(s, m.to_string()).await?;
    t.need_for_metadata()?;
    Ok(Some(t))
}

fn shared_entry(key: &str) -> bool {
    key.starts_with("/shared/")
}

/// The `/shared` entries of another user's mailbox (which must exist).
async fn shared_entries(s: &mut Session, t: &Target) -> Result<Vec<(String, Vec<u8>)>, Done> {
    let n = t.name.clone();
    let all = acl_cmd::read(s, t, move |r| {
        r.mailbox(&n)?;
        r.attributes(Some(&n), "/shared/")
    })
    .await?;
    Ok(all.into_iter().filter(|(k, _)| shared_entry(k)).collect())
}

pub(crate) async fn getmetadata(s: &mut Session, g: GetMetadata) -> Reply {
    let mailbox = mailbox_of(s, &g.mailbox)?;
    let mb = mailbox.clone();
    let (name, all) = match shared_target(s, mailbox.as_deref()).await? {
        Some(t) => (Some(t.display.clone()), shared_entries(s, &t).await?),
        None => {
            s.store_call(move |st| {
                let name = match &mb {
                    Some(m) => Some(st.mailbox(m)?.name),
                    None => None,
                };
                Ok((name, st.attributes(mb.as_deref(), "/")?))
            })
            .await?
        }
    };
    let all: Vec<(String, Vec<u8>)> = all.into_iter().filter(|(k, _)| !internal(k)).collect();
    let (found, longest) = select(&all, &g.entries, g.depth, g.maxsize);
    let entries: Vec<(&str, Option<&[u8]>)> = found.into_iter().collect();
    if !entries.is_empty() {
        s.send(&Untagged::Metadata {
            mailbox: name.as_deref(),
            entries,
        });
    }
    match longest {
        Some(n) => Ok(Done::ok_coded(
            Code::Metadata(MetadataCode::LongEntries(n)),
            "Getmetadata completed.",
        )),
        None => Ok(Done::Ok("Getmetadata completed.".into())),
    }
}

pub(crate) async fn setmetadata(s: &mut Session, set: SetMetadata) -> Reply {
    let mailbox = mailbox_of(s, &set.mailbox)?;
    if set
        .entries
        .iter()
        .any(|(_, v)| v.as_ref().is_some_and(|v| v.len() > MAX_VALUE))
    {
        return Err(Done::no(
            Code::Metadata(MetadataCode::MaxSize(MAX_VALUE as u64)),
            "Metadata entry value too large",
        ));
    }
    if set.entries.iter().any(|(k, _)| internal(k)) {
        return Err(Done::No("Internal entries cannot be set".into()));
    }
    let shared = shared_target(s, mailbox.as_deref()).await?;
    let existing = match &shared {
        Some(t) => {
            if set.entries.iter().any(|(k, _)| !shared_entry(k)) {
                return Err(Done::no(
                    Code::NoPerm,
                    "Private entries of another user's mailbox cannot be set.",
                ));
            }
            shared_entries(s, t).await?
        }
        None => {
            let mb = mailbox.clone();
            s.store_call(move |st| st.attributes(mb.as_deref(), "/"))
                .await?
        }
    };
    let mut keys: std::collections::BTreeSet<&str> = existing
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| !internal(k))
        .collect();
    for (k, v) in &set.entries {
        match v {
            Some(_) => keys.insert(k),
            None => keys.remove(k.as_str()),
        };
    }
    if keys.len() > MAX_ENTRIES {
        return Err(Done::no(
            Code::Metadata(MetadataCode::TooMany),
            "Too many metadata entries",
        ));
    }
    let entries = set.entries;
    match &shared {
        Some(t) => {
            let n = t.name.clone();
            acl_cmd::write(s, t, move |st| st.set_attributes(Some(&n), entries)).await?;
        }
        None => {
            s.store_write(move |st| st.set_attributes(mailbox.as_deref(), entries))
                .await?;
        }
    }
    Ok(Done::Ok("Setmetadata completed.".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<(String, Vec<u8>)> {
        [
            ("/private/comment", "mine"),
            ("/shared/comment", "ours"),
            ("/shared/vendor/x/a", "1"),
            ("/shared/vendor/x/a/deep", "22"),
            ("/shared/vendorz", "333"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect()
    }

    fn keys(m: &BTreeMap<&str, Option<&[u8]>>) -> Vec<String> {
        m.keys().map(|k| k.to_string()).collect()
    }

    #[test]
    fn depth_and_maxsize_choose_entries() {
        let all = all();
        let e = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let asked = e(&["/shared/comment", "/private/x"]);
        let (m, long) = select(&all, &asked, Depth::Zero, None);
        assert_eq!(keys(&m), ["/private/x", "/shared/comment"]);
        assert_eq!((m.get("/private/x"), long), (Some(&None), None));
        let asked = e(&["/shared/vendor"]);
        let (m, _) = select(&all, &asked, Depth::One, None);
        assert!(m.is_empty(), "{m:?}");
        let asked = e(&["/shared/vendor/x"]);
        let (m, _) = select(&all, &asked, Depth::One, None);
        assert_eq!(keys(&m), ["/shared/vendor/x/a"]);
        let asked = e(&["/shared"]);
        let (m, _) = select(&all, &asked, Depth::Infinity, None);
        assert_eq!(
            keys(&m),
            [
                "/shared/comment",
                "/shared/vendor/x/a",
                "/shared/vendor/x/a/deep",
                "/shared/vendorz"
            ]
        );
        let (m, long) = select(&all, &asked, Depth::Infinity, Some(2));
        assert_eq!(keys(&m), ["/shared/vendor/x/a", "/shared/vendor/x/a/deep"]);
        assert_eq!(long, Some(4));
    }
}
