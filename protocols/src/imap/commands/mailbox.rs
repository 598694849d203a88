//! CREATE (with USE), DELETE, RENAME (INBOX rule in the store), SUBSCRIBE, UNSUBSCRIBE.

use crate::imap::session::{Done, Reply, Session, State};
use imap_codec::imap_types::mailbox::Mailbox;
use storage::SpecialUse;

/// The mailbox name's bytes as the client sent them ("INBOX" for the INBOX form).
pub(crate) fn raw_name(m: &Mailbox<'_>) -> Vec<u8> {
    match m {
        Mailbox::Inbox => b"INBOX".to_vec(),
        Mailbox::Other(o) => o.as_ref().to_vec(),
    }
}

/// A trailing separator only says the client means to create children (RFC 9051 6.3.4).
fn trim_separator(name: String) -> String {
    name.trim_end_matches('/').to_string()
}

pub(crate) async fn create(s: &mut Session, raw: &[u8], special_use: Option<SpecialUse>) -> Reply {
    let name = trim_separator(s.mailbox_in(raw)?);
    if name.is_empty() {
        return Err(Done::No("[CANNOT] Invalid mailbox name.".into()));
    }
    if name == "INBOX" {
        return Err(Done::No("[ALREADYEXISTS] Mailbox already exists".into()));
    }
    s.check_writable()?;
    s.store_call(move |st| st.create_mailbox(&name, special_use))
        .await?;
    s.committed().await?;
    Ok(Done::Ok("Create completed.".into()))
}

pub(crate) async fn delete(s: &mut Session, mailbox: Mailbox<'static>) -> Reply {
    let name = s.mailbox_in(&raw_name(&mailbox))?;
    if name == "INBOX" {
        return Err(Done::No("[CANNOT] INBOX can't be deleted.".into()));
    }
    s.check_writable()?;
    let deleting_selected = s.sel.as_ref().is_some_and(|sel| sel.name == name);
    let n = name.clone();
    s.store_call(move |st| st.delete_mailbox(&n)).await?;
    s.committed().await?;
    if deleting_selected {
        // The selected mailbox is gone: leave Selected state, as Dovecot does.
        s.sel = None;
        s.state = State::Authenticated;
        s.untagged("BYE Selected mailbox was deleted, have to disconnect.");
        s.pending_close = true;
    }
    Ok(Done::Ok("Delete completed.".into()))
}

pub(crate) async fn rename(s: &mut Session, from: Mailbox<'static>, to: Mailbox<'static>) -> Reply {
    let from = s.mailbox_in(&raw_name(&from))?;
    let to = trim_separator(s.mailbox_in(&raw_name(&to))?);
    if to == "INBOX" {
        return Err(Done::No("[ALREADYEXISTS] Mailbox already exists".into()));
    }
    s.check_writable()?;
    let (f, t) = (from.clone(), to.clone());
    s.store_call(move |st| st.rename_mailbox(&f, &t)).await?;
    s.committed().await?;
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
    let name = trim_separator(s.mailbox_in(&raw_name(&mailbox))?);
    s.check_writable()?;
    s.store_call(move |st| {
        if on {
            st.subscribe(&name)
        } else {
            st.unsubscribe(&name)
        }
    })
    .await?;
    s.committed().await?;
    Ok(Done::Ok(
        if on {
            "Subscribe completed."
        } else {
            "Unsubscribe completed."
        }
        .into(),
    ))
}
