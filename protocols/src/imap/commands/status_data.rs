//! STATUS data, shared by STATUS and LIST ... RETURN (STATUS (...)): the item names, what they
//! need from the store, and the `* STATUS` response.

use crate::imap::reply::Done;
use crate::imap::response::Untagged;
use crate::imap::session::Session;
use imap_codec::imap_types::status::StatusDataItemName;
use storage::{Flag, MailboxInfo};

pub(crate) fn item_name(i: &StatusDataItemName) -> &'static str {
    match i {
        StatusDataItemName::Messages => "MESSAGES",
        StatusDataItemName::Recent => "RECENT",
        StatusDataItemName::UidNext => "UIDNEXT",
        StatusDataItemName::UidValidity => "UIDVALIDITY",
        StatusDataItemName::Unseen => "UNSEEN",
        StatusDataItemName::Deleted => "DELETED",
        StatusDataItemName::DeletedStorage => "DELETED-STORAGE",
        StatusDataItemName::Size => "SIZE",
        StatusDataItemName::HighestModSeq => "HIGHESTMODSEQ",
    }
}

/// Checks item names; BAD on an unknown one.
pub(crate) fn check_items(items: &[String]) -> Result<(), Done> {
    for i in items {
        if !matches!(
            i.as_str(),
            "MESSAGES"
                | "RECENT"
                | "UIDNEXT"
                | "UIDVALIDITY"
                | "UNSEEN"
                | "DELETED"
                | "DELETED-STORAGE"
                | "SIZE"
                | "HIGHESTMODSEQ"
        ) {
            return Err(Done::Bad(format!("Invalid status item {i}").into()));
        }
    }
    Ok(())
}

/// Counts that need the message list.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counts {
    pub deleted: u32,
    /// Bytes of the \Deleted messages (RFC 9208 DELETED-STORAGE).
    pub deleted_bytes: u64,
    pub recent: u32,
}

/// Gathers what the items need (counting \Deleted reads the message list) off the async threads.
pub(crate) fn info_for(
    s: &Session,
    name: &str,
    items: &[String],
) -> impl std::future::Future<Output = Result<(MailboxInfo, Counts), Done>> + Send + 'static {
    let n = name.to_string();
    let want_deleted = items
        .iter()
        .any(|i| i == "DELETED" || i == "DELETED-STORAGE");
    let want_recent = items.iter().any(|i| i == "RECENT");
    let store = s.user_store().ok();
    s.store_call(move |st| {
        let info = st.mailbox(&n)?;
        let mut counts = Counts::default();
        if want_deleted || want_recent {
            // Unclaimed messages are \Recent; STATUS does not claim them.
            let above = store
                .as_ref()
                .map(|store| crate::imap::recent::claimed(store, info.id, info.uidvalidity))
                .unwrap_or(0);
            for m in st.messages(&n)? {
                let deleted = m.flags.contains(&Flag::Deleted);
                counts.deleted += u32::from(deleted);
                counts.deleted_bytes += if deleted { m.size } else { 0 };
                counts.recent += u32::from(m.uid > above);
            }
        }
        Ok((info, counts))
    })
}

/// Sends `* STATUS name (item value ...)`, the items in the order asked.
pub(crate) fn send_status(s: &mut Session, info: &MailboxInfo, counts: Counts, items: &[String]) {
    send_status_id(s, info, counts, items, false)
}

/// [`send_status`], with `MAILBOXID` (RFC 8474) at the end when `mailbox_id`.
pub(crate) fn send_status_id(
    s: &mut Session,
    info: &MailboxInfo,
    counts: Counts,
    items: &[String],
    mailbox_id: bool,
) {
    let values = items.iter().filter_map(|i| {
        let v = match i.as_str() {
            "MESSAGES" => u64::from(info.exists),
            "RECENT" => u64::from(counts.recent),
            "UIDNEXT" => u64::from(info.uidnext),
            "UIDVALIDITY" => u64::from(info.uidvalidity),
            "UNSEEN" => u64::from(info.unseen),
            "DELETED" => u64::from(counts.deleted),
            // RFC 9208 counts storage in units of 1024 octets.
            "DELETED-STORAGE" => counts.deleted_bytes.div_ceil(1024),
            "SIZE" => info.size,
            "HIGHESTMODSEQ" => info.highestmodseq,
            _ => return None,
        };
        Some((i.as_str(), v))
    });
    let id = mailbox_id.then(|| mailbox_id_of(&info.id));
    s.send(&Untagged::Status {
        mailbox: &info.name,
        items: values.collect(),
        mailbox_id: id.as_deref(),
    });
}

/// RFC 8474 MAILBOXID: a letter naming the kind, then the mailbox GUID in hex (it survives
/// RENAME, as the RFC asks).
pub(crate) fn mailbox_id_of(id: &storage::MailboxId) -> String {
    format!("F{}", id.to_hex())
}
