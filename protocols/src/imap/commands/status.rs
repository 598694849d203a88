//! STATUS (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE HIGHESTMODSEQ).

use super::status_data::{check_items, info_for, item_name, send_status_id};
use crate::imap::reply::{Done, Reply};
use crate::imap::session::Session;
use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::imap_types::status::StatusDataItemName;

pub(crate) async fn status(
    s: &mut Session,
    mailbox: Mailbox<'static>,
    items: &[StatusDataItemName],
) -> Reply {
    status_with(s, mailbox, items, false, false).await
}

/// STATUS, with MAILBOXID (RFC 8474) when `mailbox_id`; `only`: MESSAGES stood in for an
/// item list that held only MAILBOXID.
pub(crate) async fn status_with(
    s: &mut Session,
    mailbox: Mailbox<'static>,
    items: &[StatusDataItemName],
    mailbox_id: bool,
    only: bool,
) -> Reply {
    let name = s.mailbox_arg(&mailbox)?;
    let mut items: Vec<String> = items.iter().map(|i| item_name(i).to_string()).collect();
    if only {
        items.clear();
    }
    check_items(&items)?;
    let (info, counts) = if crate::imap::acl::split_shared(&name).is_some() {
        // Another user's mailbox: needs `r`; read from the owner's store, shown by the name
        // the client used.
        let t = super::acl::resolve_with(s, name.clone(), 'r').await?;
        let own = std::mem::replace(&mut s.store, t.mail);
        let read = info_for(s, &t.name, &items);
        s.store = own;
        let (mut info, counts) = read.await?;
        info.name = name;
        (info, counts)
    } else {
        info_for(s, &name, &items).await?
    };
    send_status_id(s, &info, counts, &items, mailbox_id);
    Ok(Done::Ok("Status completed.".into()))
}
