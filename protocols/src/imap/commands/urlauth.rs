//! URLAUTH (RFC 4467): GENURLAUTH signs an IMAP URL of one of the user's own messages so
//! that whoever the URL's access identifier names can fetch it (URLFETCH) without the user's
//! password; RESETKEY makes every URL signed so far stop working. The signature
//! (mechanism INTERNAL) is a keyed blake3 of the URL up to its access identifier, keyed by
//! a random per-mailbox key kept in the owner's store (a mailbox attribute, so it replicates
//! and a URL works on every node). `;EXPIRE=` and URLAUTH=BINARY are not supported.

use super::catenate::{fetch_url, spec_of};
use crate::imap::reply::{Done, Reply};
use crate::imap::response::{Code, Untagged};
use crate::imap::session::Session;
use crate::imap::url::{self, split_urlauth};
use crate::mail::{Reader, UserMail};
use std::io::Read;
use storage::merge::attributes::URLAUTH_KEY;

type Key = [u8; 32];

fn bad_url(u: &str) -> Done {
    Done::no(Code::BadUrl(u.to_string()), "Bad IMAP URL.")
}

/// A fresh mailbox access key from the system's random source.
fn new_key() -> std::io::Result<Key> {
    let mut k = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut k)?;
    Ok(k)
}

fn token(key: &Key, rump: &str) -> String {
    blake3::keyed_hash(key, rump.as_bytes())
        .to_hex()
        .to_string()
}

/// Whether the access identifier is one this server grants (RFC 4467 3).
fn valid_access(access: &str) -> bool {
    let a = access.to_ascii_lowercase();
    a == "authuser"
        || a == "anonymous"
        || a.strip_prefix("user+").is_some_and(|n| !n.is_empty())
        || a.strip_prefix("submit+").is_some_and(|n| !n.is_empty())
}

/// Whether `user` (the session's, logged in) may fetch a URL with this access identifier.
fn access_allows(access: &str, user: &str) -> bool {
    let a = access.to_ascii_lowercase();
    match a.split_once('+') {
        Some(("user" | "submit", name)) => name == user.to_ascii_lowercase(),
        _ => a == "authuser" || a == "anonymous",
    }
}

fn key_of(r: &Reader, mailbox: &str) -> storage::Result<Option<Key>> {
    Ok(r.attributes(Some(mailbox), URLAUTH_KEY)?
        .into_iter()
        .find(|(k, _)| k == URLAUTH_KEY)
        .and_then(|(_, v)| Key::try_from(v.as_slice()).ok()))
}

/// The user's key for `mailbox`, made (and stored) when it has none.
async fn own_key(s: &mut Session, mailbox: &str) -> Result<Key, Done> {
    let m = mailbox.to_string();
    if let Some(k) = s.store_call(move |r| key_of(r, &m)).await? {
        return Ok(k);
    }
    let fresh = new_key().map_err(|e| {
        tracing::error!("no random source for a URLAUTH key: {e}");
        crate::imap::reply::server_bug()
    })?;
    let m = mailbox.to_string();
    s.store_write(move |st| {
        st.set_attributes(
            Some(&m),
            vec![(URLAUTH_KEY.to_string(), Some(fresh.to_vec()))],
        )
    })
    .await?;
    Ok(fresh)
}

pub(crate) async fn genurlauth(s: &mut Session, items: Vec<(String, String)>) -> Reply {
    let user = s.user.clone().unwrap_or_default();
    let mut out = Vec::with_capacity(items.len());
    for (u, mech) in items {
        if !mech.eq_ignore_ascii_case("INTERNAL") {
            return Err(Done::No(
                format!("Unsupported URLAUTH mechanism {mech}.").into(),
            ));
        }
        let a = split_urlauth(&u)
            .filter(|a| a.mech.is_none() && valid_access(a.access))
            .ok_or_else(|| bad_url(&u))?;
        let parsed = url::parse(a.base).ok_or_else(|| bad_url(&u))?;
        // Only the user's own messages can be signed.
        if parsed.user.as_deref() != Some(user.as_str()) {
            return Err(bad_url(&u));
        }
        let key = own_key(s, &parsed.mailbox).await.map_err(|_| bad_url(&u))?;
        out.push(format!("{}:internal:{}", a.rump, token(&key, a.rump)));
    }
    s.send(&Untagged::GenUrlAuth(
        out.iter().map(String::as_str).collect(),
    ));
    Ok(Done::Ok("Genurlauth completed.".into()))
}

/// What one URL of URLFETCH yields; None (NIL) for anything wrong with it, as RFC 4467 7.2
/// wants (the command itself succeeds).
async fn fetch_one(s: &mut Session, u: &str) -> Option<Vec<u8>> {
    let user = s.user.clone()?;
    let a = split_urlauth(u)?;
    if !a.mech?.eq_ignore_ascii_case("internal") || !access_allows(a.access, &user) {
        return None;
    }
    let given = a.token?.to_ascii_lowercase();
    let parsed = url::parse(a.base)?;
    let spec = spec_of(&parsed)?;
    let owner = parsed.user.clone()?;
    let reader = if owner == user {
        s.user_store().ok()?
    } else {
        let backend = s.ctx.backend.clone();
        backend.lookup_user(&owner).await.ok()??;
        UserMail::open(&backend, &owner)
            .await
            .ok()?
            .reader()
            .clone()
    };
    let rump = a.rump.to_string();
    crate::blocking::run(move || {
        let key = key_of(&reader, &parsed.mailbox).ok()??;
        // Compared in full whatever the bytes: no early exit on the first difference.
        let want = token(&key, &rump);
        let same = want.len() == given.len()
            && want
                .bytes()
                .zip(given.bytes())
                .fold(0u8, |d, (x, y)| d | (x ^ y))
                == 0;
        if !same {
            return None;
        }
        fetch_url(&reader, &parsed.mailbox, &parsed, &spec)
    })
    .await
    .ok()?
}

pub(crate) async fn urlfetch(s: &mut Session, urls: Vec<String>) -> Reply {
    let mut got = Vec::with_capacity(urls.len());
    for u in &urls {
        got.push(fetch_one(s, u).await);
    }
    s.send(&Untagged::UrlFetch(
        urls.iter()
            .zip(&got)
            .map(|(u, d)| (u.as_str(), d.as_deref()))
            .collect(),
    ));
    Ok(Done::Ok("Urlfetch completed.".into()))
}

/// RESETKEY: a new key for the mailbox named, or no key for any (every URL signed so far
/// stops working; the next GENURLAUTH makes a new one).
pub(crate) async fn resetkey(s: &mut Session, mailbox: Option<Vec<u8>>) -> Reply {
    match mailbox {
        Some(raw) => {
            let name = s.mailbox_in(&raw)?;
            let fresh = new_key().map_err(|_| crate::imap::reply::server_bug())?;
            s.store_write(move |st| {
                st.set_attributes(
                    Some(&name),
                    vec![(URLAUTH_KEY.to_string(), Some(fresh.to_vec()))],
                )
            })
            .await?;
        }
        None => {
            s.store_write(|st| {
                for mb in st.list_mailboxes()? {
                    if !st.attributes(Some(&mb.name), URLAUTH_KEY)?.is_empty() {
                        st.set_attributes(Some(&mb.name), vec![(URLAUTH_KEY.to_string(), None)])?;
                    }
                }
                Ok(())
            })
            .await?;
        }
    }
    Ok(Done::Ok("Resetkey completed.".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_identifiers() {
        for ok in ["authuser", "anonymous", "user+fred", "SUBMIT+fred"] {
            assert!(valid_access(ok), "{ok}");
        }
        for bad in ["user+", "fred", "owner"] {
            assert!(!valid_access(bad), "{bad}");
        }
        assert!(access_allows("user+Fred", "fred") && !access_allows("user+fred", "bob"));
        assert!(access_allows("authuser", "bob") && access_allows("anonymous", "bob"));
        let k = [7u8; 32];
        assert_eq!(token(&k, "a"), token(&k, "a"));
        assert_ne!(token(&k, "a"), token(&[8u8; 32], "a"));
    }
}
