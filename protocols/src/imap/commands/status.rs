//! STATUS (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE HIGHESTMODSEQ).

use super::status_data::{check_items, info_for, item_name, send_status};
use crate::imap::reply::{Done, Reply};
use crate::imap::session::Session;
use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::imap_types::status::StatusDataItemName;

pub(crate) async fn status(
    s: &mut Session,
    mailbox: Mailbox<'static>,
    items: &[StatusDataItemName],
) -> Reply {
    let name = s.mailbox_arg(&mailbox)?;
    let items: Vec<String> = items.iter().map(|i| item_name(i).to_string()).collect();
    check_items(&items)?;
    let (info, counts) = info_for(s, &name, &items).await?;
    send_status(s, &info, counts, &items);
    Ok(Done::Ok("Status completed.".into()))
}
