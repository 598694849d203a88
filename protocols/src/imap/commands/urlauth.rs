//! URLAUTH (RFC 4467): GENURLAUTH signs an IMAP URL of one of the user's own messages so
//! that whoever the URL's access identifier names can fetch it (URLFETCH) without the user's
//! password; RESETKEY makes every URL signed so far stop working. The signature
//! (mechanism INTERNAL) is a keyed blake3 of the URL up to its access identifier, keyed by
//! a random per-mailbox key kept in the owner's store (a mailbox attribute, so it replicates
//! and a URL works on every node). URLAUTH=BINARY (RFC 5524) adds URLFETCH's
//! `(url BINARY/BODY/BODYPARTSTRUCTURE)` form. `;EXPIRE=` is not supported.

use super::catenate::{fetch_url, spec_of};
use crate::imap::message::section::{apply_partial, resolve};
use crate::imap::message::{binary_body, binary_entity, body, SectionSpec};
use crate::imap::parse::{UrlFetchArg, UrlFetchItems};
use crate::imap::reply::{Done, Reply};
use crate::imap::response::Value;
use crate::imap::response::{Code, Untagged};
use crate::imap::session::Session;
use crate::imap::url::{self, split_urlauth};
use crate::mail::{Reader, UserMail};
use std::io::Read;
use storage::merge::attributes::URLAUTH_KEY;
use storage::mime::{BodyPart, MessageFacts};

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

/// What one URL of URLFETCH yields; NIL for anything wrong with it, as RFC 4467 7.2 wants
/// (the command itself succeeds). The bare form is the URL's bytes; the list form
/// (URLAUTH=BINARY, RFC 5524) is `(BODYPARTSTRUCTURE ... BODY/BINARY data)`.
async fn fetch_one(s: &mut Session, arg: &UrlFetchArg) -> Value<'static> {
    let items = arg.items;
    let got = authorized(s, &arg.url, move |reader, parsed, spec| match items {
        None => fetch_url(reader, &parsed.mailbox, parsed, spec).map(|b| Value::Literal(b.into())),
        Some(items) => fetch_items(reader, parsed, spec, items),
    })
    .await;
    got.unwrap_or(Value::Nil)
}

/// The list form's answer: the part the URL names (a part number, or the whole message)
/// decoded for BINARY, and its structure. None (NIL) for a URL naming a header or text
/// section (no MIME part), or a part whose encoding is unknown.
fn fetch_items(
    reader: &Reader,
    parsed: &url::ImapUrl,
    spec: &SectionSpec,
    items: UrlFetchItems,
) -> Option<Value<'static>> {
    let mut out = Vec::with_capacity(4);
    if items.body {
        if items.bodypartstructure && spec.text.is_some() {
            return None;
        }
        let bytes = fetch_url(reader, &parsed.mailbox, parsed, spec)?;
        if items.bodypartstructure {
            let (_, facts) = load(reader, parsed)?;
            let part = named_part(&facts, spec)?;
            out.push(Value::atom("BODYPARTSTRUCTURE"));
            out.push(body(part, true).into_owned());
        }
        out.push(Value::atom("BODY"));
        out.push(Value::Literal(bytes.into()));
        return Some(Value::List(out));
    }
    if spec.text.is_some() {
        return None;
    }
    let (raw, facts) = load(reader, parsed)?;
    let part = named_part(&facts, spec)?;
    if !items.binary {
        out.push(Value::atom("BODYPARTSTRUCTURE"));
        out.push(body(part, true).into_owned());
        return Some(Value::List(out));
    }
    let (bytes, sized) = if spec.part.is_empty() {
        binary_entity(&raw, part)
    } else {
        binary_body(&raw, part)
    }
    .ok()?;
    if items.bodypartstructure {
        // beside BINARY, Dovecot describes the bytes sent: their sizes and line counts
        out.push(Value::atom("BODYPARTSTRUCTURE"));
        out.push(body(&sized, true).into_owned());
    }
    let bytes = match spec.partial {
        Some(p) => apply_partial(&bytes, p).to_vec(),
        None => bytes,
    };
    out.push(Value::atom("BINARY"));
    out.push(if bytes.contains(&0) {
        Value::Literal8(bytes.into())
    } else {
        Value::Literal(bytes.into())
    });
    Some(Value::List(out))
}

/// The message a URL names, raw and parsed.
fn load(reader: &Reader, u: &url::ImapUrl) -> Option<(Vec<u8>, std::sync::Arc<MessageFacts>)> {
    let info = reader.mailbox(&u.mailbox).ok()?;
    if u.uidvalidity.is_some_and(|v| v != info.uidvalidity) {
        return None;
    }
    let metas = reader.messages(&u.mailbox).ok()?;
    let meta = metas.iter().find(|m| m.uid == u.uid)?;
    Some((
        reader.read_message(&meta.object).ok()?,
        reader.facts(&meta.object).ok()?,
    ))
}

fn named_part<'a>(facts: &'a MessageFacts, spec: &SectionSpec) -> Option<&'a BodyPart> {
    if spec.part.is_empty() {
        Some(&facts.body)
    } else {
        resolve(&facts.body, &spec.part)
    }
}

/// Runs `f` on the store of the URL's owner when the URL is signed for this session's
/// user with the owner's current key; None otherwise or when `f` finds nothing.
async fn authorized<T: Send + 'static>(
    s: &mut Session,
    u: &str,
    f: impl FnOnce(&Reader, &url::ImapUrl, &SectionSpec) -> Option<T> + Send + 'static,
) -> Option<T> {
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
        f(&reader, &parsed, &spec)
    })
    .await
    .ok()?
}

pub(crate) async fn urlfetch(s: &mut Session, urls: Vec<UrlFetchArg>) -> Reply {
    let mut got = Vec::with_capacity(urls.len());
    for u in &urls {
        got.push(fetch_one(s, u).await);
    }
    s.send(&Untagged::UrlFetch(
        urls.iter()
            .zip(got)
            .map(|(u, d)| (u.url.as_str(), d))
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
