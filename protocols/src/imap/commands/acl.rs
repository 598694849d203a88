//! ACL (RFC 4314) and shared mailboxes: GETACL, SETACL, DELETEACL, LISTRIGHTS, MYRIGHTS on
//! the user's own mailboxes and on other users' (`shared/OWNER/NAME`), and what selecting,
//! appending to or asking the status of another user's mailbox takes. Rights follow
//! [`crate::imap::acl`]; entries are attributes in the owner's store, so they replicate.
//!
//! While another user's mailbox is selected, the session's store and change counter are the
//! owner's (so FETCH, STORE, SEARCH, EXPUNGE, IDLE and the mailbox synchronisation work on it
//! unchanged) and the user's own are kept in [`SharedView`]; every command that is not about
//! the selected mailbox runs with the user's own store put back ([`super::dispatch`]).
//! Rights are read at SELECT and again before every command on the selected mailbox
//! ([`refresh`]): a change the owner makes counts at once, and losing `r` closes it.

use crate::imap::acl::{self, Rights, KEY_PREFIX};
use crate::imap::reply::{Done, Reply};
use crate::imap::response::{Code, Untagged};
use crate::imap::session::Session;
use crate::mail::UserMail;
use tokio::sync::watch;

/// The user's own store while another user's mailbox is selected.
pub(crate) struct SharedView {
    home: UserMail,
    home_watch: Option<watch::Receiver<u64>>,
    /// Whether `home` is the session's store right now (a command not about the selected
    /// mailbox is running) and the owner's is kept here instead.
    swapped: bool,
    /// The rights on the selected mailbox.
    pub rights: Rights,
    /// The selected mailbox's owner.
    owner: String,
}

impl SharedView {
    /// Whether the user's own store is the session's right now.
    pub(crate) fn is_swapped(&self) -> bool {
        self.swapped
    }
}

impl Session {
    /// Swaps the user's own store in or out (see the module doc).
    pub(crate) fn swap_home(&mut self) {
        if let (Some(v), Some(store)) = (self.shared.as_mut(), self.store.as_mut()) {
            std::mem::swap(store, &mut v.home);
            std::mem::swap(&mut self.watch, &mut v.home_watch);
            v.swapped = !v.swapped;
        }
    }

    /// Ends the shared view: the user's own store is the session's again.
    pub(crate) fn leave_shared(&mut self) {
        if let Some(v) = self.shared.take() {
            if !v.swapped {
                self.store = Some(v.home);
                self.watch = v.home_watch;
            }
        }
    }

    /// The user's own change counter, wherever it is kept right now (NOTIFY watches the
    /// user's own mailboxes while another user's is selected).
    pub(crate) fn own_watch(&self) -> Option<watch::Receiver<u64>> {
        match &self.shared {
            Some(v) if !v.swapped => v.home_watch.clone(),
            _ => self.watch.clone(),
        }
    }

    /// The rights on the selected mailbox, when it is another user's.
    pub(crate) fn shared_rights(&self) -> Option<Rights> {
        self.shared.as_ref().map(|v| v.rights)
    }
}

/// A mailbox a command names: the user's own, or another user's through the shared
/// namespace, with the user's rights on it.
pub(crate) struct Target {
    /// The owner's store (None: the session's own).
    pub mail: Option<UserMail>,
    pub owner: String,
    /// The name in the owner's store.
    pub name: String,
    /// As the client names it.
    pub display: String,
    pub rights: Rights,
}

impl Target {
    fn need(&self, right: char) -> Result<(), Done> {
        if self.rights.has(right) {
            Ok(())
        } else if self.rights.has('l') {
            Err(Done::no(Code::NoPerm, "Permission denied."))
        } else {
            // Without `l` the mailbox's existence is not told (RFC 4314 4).
            Err(no_such(&self.display))
        }
    }
}

impl Target {
    /// METADATA on the mailbox (RFC 5464 4.2, 4.3, as Dovecot): `l` and any one of `r`,
    /// `s`, `w`, `i` or `p`, to read or to set entries.
    pub(crate) fn need_for_metadata(&self) -> Result<(), Done> {
        match ['r', 's', 'w', 'i', 'p']
            .into_iter()
            .find(|&c| self.rights.has(c))
        {
            Some(c) if self.rights.has('l') => self.need(c),
            _ => self
                .need('l')
                .and(Err(Done::no(Code::NoPerm, "Permission denied."))),
        }
    }
}

fn no_such(name: &str) -> Done {
    Done::no(Code::NonExistent, format!("Mailbox doesn't exist: {name}"))
}

/// Resolves a mailbox name (as the store spells names, decoded from the client's encoding).
pub(crate) async fn resolve(s: &mut Session, display: String) -> Result<Target, Done> {
    let user = s.user.clone().unwrap_or_default();
    let Some((owner, name)) = acl::split_shared(&display) else {
        return Ok(Target {
            mail: None,
            owner: user,
            name: display.clone(),
            display,
            rights: Rights::all(),
        });
    };
    let (owner, name) = (owner.to_string(), name.to_string());
    let backend = s.ctx.backend.clone();
    match backend.lookup_user(&owner).await {
        Ok(Some(_)) => {}
        Ok(None) => return Err(no_such(&display)),
        Err(e) => {
            tracing::warn!(owner, "user lookup for a shared mailbox failed: {e}");
            return Err(Done::no(
                Code::Unavailable,
                "Temporary user lookup failure.",
            ));
        }
    }
    let mail = UserMail::open(&backend, &owner).await.map_err(|e| {
        tracing::warn!(owner, "opening a shared mailbox's store failed: {e}");
        Done::no(Code::Unavailable, "Temporary failure opening the mailbox.")
    })?;
    let reader = mail.reader().clone();
    let n = name.clone();
    let attrs = crate::blocking::run(move || reader.attributes(Some(&n), KEY_PREFIX))
        .await
        .map_err(|_| crate::imap::reply::server_bug())?;
    // A mailbox that does not exist has no rights for anyone but its owner.
    let entries = attrs.map(|a| acl::entries_of(&a)).unwrap_or_default();
    let rights = acl::effective(&owner, &user, &entries);
    Ok(Target {
        mail: Some(mail),
        owner,
        name,
        display,
        rights,
    })
}

/// Reads the rights on the selected shared mailbox again, so a change the owner made since
/// SELECT counts for the next command; without `r` any more the mailbox is closed and the
/// command refused.
pub(crate) async fn refresh(s: &mut Session) -> Result<(), Done> {
    let (Some(v), Some(sel)) = (s.shared.as_ref(), s.sel.as_ref()) else {
        return Ok(());
    };
    let (owner, name) = (v.owner.clone(), sel.name.clone());
    let user = s.user.clone().unwrap_or_default();
    let rights = match s
        .store_call(move |r| r.attributes(Some(&name), KEY_PREFIX))
        .await
    {
        Ok(attrs) => acl::effective(&owner, &user, &acl::entries_of(&attrs)),
        Err(_) => Rights::NONE,
    };
    if let Some(v) = s.shared.as_mut() {
        v.rights = rights;
    }
    if rights.has('r') {
        return Ok(());
    }
    s.sel = None;
    s.state = crate::imap::session::State::Authenticated;
    s.leave_shared();
    Err(Done::no(
        Code::NoPerm,
        "Access to the mailbox was revoked; it is closed.",
    ))
}

/// Resolves `display`, requiring `right` on it.
pub(crate) async fn resolve_with(
    s: &mut Session,
    display: String,
    right: char,
) -> Result<Target, Done> {
    let t = resolve(s, display).await?;
    t.need(right)?;
    Ok(t)
}

/// Runs a read on the target's store.
pub(crate) async fn read<T, F>(s: &mut Session, t: &Target, f: F) -> Result<T, Done>
where
    F: FnOnce(&crate::mail::Reader) -> storage::Result<T> + Send + 'static,
    T: Send + 'static,
{
    match &t.mail {
        None => s.store_call(f).await,
        Some(m) => {
            let r = m.reader().clone();
            match crate::blocking::run(move || f(&r)).await {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => Err(crate::imap::reply::store_error(e)),
                Err(_) => Err(crate::imap::reply::server_bug()),
            }
        }
    }
}

/// Runs a write on the target's store (through its owner's write gate and commit wait).
pub(crate) async fn write<T, F>(s: &mut Session, t: &Target, f: F) -> Result<T, Done>
where
    F: FnOnce(&storage::UserStore) -> storage::Result<T> + Send + 'static,
    T: Send + 'static,
{
    match &t.mail {
        None => s.store_write(f).await,
        Some(m) => Session::write_result(m.write(f).await),
    }
}

async fn entries(s: &mut Session, t: &Target) -> Result<Vec<(String, Rights)>, Done> {
    let name = t.name.clone();
    let attrs = read(s, t, move |r| r.attributes(Some(&name), KEY_PREFIX)).await?;
    Ok(acl::entries_of(&attrs))
}

pub(crate) async fn getacl(s: &mut Session, mailbox: Vec<u8>) -> Reply {
    let t = resolve_with(s, s.mailbox_in(&mailbox)?, 'a').await?;
    let list = entries(s, &t).await?;
    let all = Rights::all().to_string();
    let texts: Vec<(String, String)> = list
        .iter()
        .filter(|(id, _)| *id != t.owner)
        .map(|(id, r)| (id.clone(), r.to_string()))
        .collect();
    let mut shown: Vec<(&str, &str)> = vec![(t.owner.as_str(), all.as_str())];
    shown.extend(texts.iter().map(|(a, b)| (a.as_str(), b.as_str())));
    s.send(&Untagged::Acl {
        mailbox: &t.display,
        entries: shown,
    });
    Ok(Done::Ok("Getacl completed.".into()))
}

pub(crate) async fn setacl(
    s: &mut Session,
    mailbox: Vec<u8>,
    identifier: String,
    change: Option<String>,
) -> Reply {
    let t = resolve_with(s, s.mailbox_in(&mailbox)?, 'a').await?;
    if !acl::valid_identifier(&identifier) {
        return Err(Done::Bad("Invalid identifier.".into()));
    }
    if identifier == t.owner {
        return Err(Done::no(
            Code::Cannot,
            "The owner has every right; they cannot be changed.",
        ));
    }
    let current = entries(s, &t)
        .await?
        .into_iter()
        .find(|(id, _)| *id == identifier)
        .map(|(_, r)| r)
        .unwrap_or_default();
    let new = match &change {
        None => Rights::NONE,
        Some(c) => current
            .modified(c)
            .ok_or_else(|| Done::Bad("Invalid rights.".into()))?,
    };
    let value = (!new.is_empty()).then(|| new.to_string().into_bytes());
    let (name, key) = (t.name.clone(), format!("{KEY_PREFIX}{identifier}"));
    let granted = value.is_some();
    write(s, &t, move |st| {
        st.set_attributes(Some(&name), vec![(key, value)])
    })
    .await?;
    if granted {
        remember_share(s, &t.owner, &identifier).await;
    }
    Ok(Done::Ok(
        if change.is_some() {
            "Setacl completed."
        } else {
            "Deleteacl completed."
        }
        .into(),
    ))
}

/// Notes in `identifier`'s own store that `owner` shares with them (a `shared:OWNER`
/// server attribute), so their LIST finds the owner's mailboxes. Only for a user name of the
/// userdb; `anyone` and `authenticated` grants are reached by name, not listed. Best effort:
/// the grant is made whatever happens here.
async fn remember_share(s: &mut Session, owner: &str, identifier: &str) {
    if identifier.starts_with('-') || identifier == "anyone" || identifier == "authenticated" {
        return;
    }
    let backend = s.ctx.backend.clone();
    if !matches!(backend.lookup_user(identifier).await, Ok(Some(_))) {
        return;
    }
    let Ok(mail) = UserMail::open(&backend, identifier).await else {
        return;
    };
    let key = format!("{}{owner}", storage::merge::attributes::SHARED_PREFIX);
    let done = mail
        .write(move |st| {
            if st.attributes(None, &key)?.iter().any(|(k, _)| *k == key) {
                return Ok(());
            }
            st.set_attributes(None, vec![(key, Some(Vec::new()))])
        })
        .await;
    if !matches!(done, Ok(Ok(()))) {
        tracing::warn!(
            owner,
            identifier,
            "could not note a shared mailbox for LIST"
        );
    }
}

/// The mailboxes other users share with this one that it may see (`l`), as
/// `shared/OWNER/NAME`, for LIST.
pub(crate) async fn shared_boxes(s: &mut Session) -> Vec<storage::MailboxInfo> {
    let user = s.user.clone().unwrap_or_default();
    let prefix = storage::merge::attributes::SHARED_PREFIX;
    let Ok(hints) = s.store_call(move |st| st.attributes(None, prefix)).await else {
        return Vec::new();
    };
    let backend = s.ctx.backend.clone();
    let mut out = Vec::new();
    for (key, _) in hints {
        let Some(owner) = key.strip_prefix(prefix) else {
            continue;
        };
        let Ok(mail) = UserMail::open(&backend, owner).await else {
            continue;
        };
        let (r, owner, user) = (mail.reader().clone(), owner.to_string(), user.clone());
        let listed = crate::blocking::run(move || -> storage::Result<Vec<storage::MailboxInfo>> {
            let mut v = Vec::new();
            for mut b in r.list_mailboxes()? {
                let entries = acl::entries_of(&r.attributes(Some(&b.name), KEY_PREFIX)?);
                if acl::effective(&owner, &user, &entries).has('l') {
                    b.name = format!("{}{owner}/{}", acl::SHARED_PREFIX, b.name);
                    b.special_use = None;
                    b.subscribed = false;
                    v.push(b);
                }
            }
            Ok(v)
        })
        .await;
        if let Ok(Ok(v)) = listed {
            out.extend(v);
        }
    }
    out
}

pub(crate) async fn listrights(s: &mut Session, mailbox: Vec<u8>, identifier: String) -> Reply {
    let t = resolve_with(s, s.mailbox_in(&mailbox)?, 'a').await?;
    let all = Rights::all().to_string();
    let letters: Vec<String> = acl::ALL.chars().map(String::from).collect();
    let (required, optional): (&str, Vec<&str>) = if identifier == t.owner {
        (&all, Vec::new())
    } else {
        ("", letters.iter().map(String::as_str).collect())
    };
    s.send(&Untagged::ListRights {
        mailbox: &t.display,
        identifier: &identifier,
        required,
        optional,
    });
    Ok(Done::Ok("Listrights completed.".into()))
}

pub(crate) async fn myrights(s: &mut Session, mailbox: Vec<u8>) -> Reply {
    let t = resolve(s, s.mailbox_in(&mailbox)?).await?;
    if t.rights.is_empty() {
        return Err(no_such(&t.display));
    }
    // The mailbox must exist (for the owner too).
    let name = t.name.clone();
    read(s, &t, move |r| r.mailbox(&name)).await?;
    let rights = t.rights.to_string();
    s.send(&Untagged::MyRights {
        mailbox: &t.display,
        rights: &rights,
    });
    Ok(Done::Ok("Myrights completed.".into()))
}

/// SELECT or EXAMINE of another user's mailbox: needs `r`; read-only without any of `s`,
/// `w`, `t`, `e` (nothing it could change). Makes the owner's store the session's.
pub(crate) async fn enter(s: &mut Session, display: String) -> Result<(String, bool), Done> {
    let t = resolve_with(s, display, 'r').await?;
    let Some(mail) = t.mail else {
        return Ok((t.name, false));
    };
    let writable = ['s', 'w', 't', 'e'].iter().any(|&c| t.rights.has(c));
    s.leave_shared();
    let home_watch = s.watch.replace(mail.reader().watch());
    let Some(home) = s.store.replace(mail) else {
        return Err(Done::Bad("Not authenticated.".into()));
    };
    s.shared = Some(SharedView {
        home,
        home_watch,
        swapped: false,
        rights: t.rights,
        owner: t.owner,
    });
    Ok((t.name, !writable))
}

/// The flags of a STORE or APPEND that the rights allow: `\Seen` needs `s`, `\Deleted`
/// needs `t`, any other flag or keyword `w` (RFC 4314 4).
pub(crate) fn allowed_flags(rights: Rights, flags: &storage::Flags) -> storage::Flags {
    flags
        .iter()
        .filter(|f| match f {
            storage::Flag::Seen => rights.has('s'),
            storage::Flag::Deleted => rights.has('t'),
            _ => rights.has('w'),
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::Flag;

    #[test]
    fn flags_need_their_rights() {
        let flags: storage::Flags = [
            Flag::Seen,
            Flag::Deleted,
            Flag::Flagged,
            Flag::Keyword("$x".into()),
        ]
        .into_iter()
        .collect();
        let r = |s: &str| Rights::parse(s).unwrap();
        assert_eq!(
            allowed_flags(r("s"), &flags),
            [Flag::Seen].into_iter().collect()
        );
        assert_eq!(
            allowed_flags(r("tw"), &flags),
            [Flag::Deleted, Flag::Flagged, Flag::Keyword("$x".into())]
                .into_iter()
                .collect()
        );
        assert!(allowed_flags(r("lr"), &flags).is_empty());
    }
}
