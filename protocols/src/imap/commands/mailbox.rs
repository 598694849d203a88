//! CREATE (with USE), DELETE, RENAME (INBOX rule in the store), SUBSCRIBE, UNSUBSCRIBE.

use crate::imap::reply::{Done, Reply};
use crate::imap::response::Code;
use crate::imap::session::Session;
use imap_codec::imap_types::mailbox::Mailbox;
use storage::SpecialUse;

/// A trailing separator only says the client means to create children (RFC 9051 6.3.4).
fn trim_separator(name: String) -> String {
    name.trim_end_matches('/').to_string()
}

/// Names under `shared/` are other users' mailboxes (ACL): none of the user's own may be
/// made there.
fn in_own_namespace(name: &str) -> Result<(), Done> {
    let prefix = crate::imap::acl::SHARED_PREFIX;
    if name.starts_with(prefix) || name == prefix.trim_end_matches('/') {
        return Err(Done::no(
            Code::Cannot,
            "Other users' mailboxes cannot be created or renamed into.",
        ));
    }
    Ok(())
}

pub(crate) async fn create(s: &mut Session, raw: &[u8], special_use: Option<SpecialUse>) -> Reply {
    let name = trim_separator(s.mailbox_in(raw)?);
    if name.is_empty() {
        return Err(Done::no(Code::Cannot, "Invalid mailbox name."));
    }
    if name == "INBOX" {
        return Err(Done::no(Code::AlreadyExists, "Mailbox already exists"));
    }
    in_own_namespace(&name)?;
    let info = s
        .store_write(move |st| st.create_mailbox(&name, special_use))
        .await?;
    // OBJECTID (RFC 8474): the new mailbox's id.
    let id = super::status_data::mailbox_id_of(&info.id);
    Ok(Done::ok_coded(Code::MailboxId(id), "Create completed."))
}

pub(crate) async fn delete(s: &mut Session, mailbox: Mailbox<'static>) -> Reply {
    let name = s.mailbox_arg(&mailbox)?;
    if name == "INBOX" {
        return Err(Done::no(Code::Cannot, "INBOX can't be deleted."));
    }
    let deleting_selected = s.sel.as_ref().is_some_and(|sel| sel.name == name);
    let n = name.clone();
    s.store_write(move |st| st.delete_mailbox(&n)).await?;
    if deleting_selected {
        // The selected mailbox is gone: as Dovecot, the session ends.
        s.selected_mailbox_deleted();
    }
    Ok(Done::Ok("Delete completed.".into()))
}

pub(crate) async fn rename(s: &mut Session, from: Mailbox<'static>, to: Mailbox<'static>) -> Reply {
    let from = s.mailbox_arg(&from)?;
    let to = trim_separator(s.mailbox_arg(&to)?);
    if to == "INBOX" {
        return Err(Done::no(Code::AlreadyExists, "Mailbox already exists"));
    }
    in_own_namespace(&to)?;
    let (f, t) = (from.clone(), to.clone());
    s.store_write(move |st| st.rename_mailbox(&f, &t)).await?;
    // The selected mailbox (or a parent of it) renamed by this session stays selected under
    // its new name. Renaming INBOX moves its messages out and INBOX stays: nothing to follow.
    if from != "INBOX" {
        if let Some(sel) = s.sel.as_mut() {
            if sel.name == from {
                sel.name = to.clone();
            } else if let Some(rest) = sel.name.strip_prefix(&format!("{from}/")) {
                sel.name = format!("{to}/{rest}");
            }
        }
    }
    Ok(Done::Ok("Rename completed.".into()))
}

pub(crate) async fn subscribe(s: &mut Session, mailbox: Mailbox<'static>, on: bool) -> Reply {
    let name = trim_separator(s.mailbox_arg(&mailbox)?);
    s.store_write(move |st| {
        if on {
            st.subscribe(&name)
        } else {
            st.unsubscribe(&name)
        }
    })
    .await?;
    Ok(Done::Ok(
        if on {
            "Subscribe completed."
        } else {
            "Unsubscribe completed."
        }
        .into(),
    ))
}
