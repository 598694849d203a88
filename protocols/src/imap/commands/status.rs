//! STATUS (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE HIGHESTMODSEQ), also used by
//! LIST ... RETURN (STATUS (...)).

use crate::imap::session::{Done, Reply, Session};
use imap_codec::imap_types::mailbox::Mailbox;
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
                | "SIZE"
                | "HIGHESTMODSEQ"
        ) {
            return Err(Done::Bad(format!("Invalid status item {i}")));
        }
    }
    Ok(())
}

/// Counts that need the message list.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counts {
    pub deleted: u32,
    pub recent: u32,
}

/// Gathers what the items need (counting \Deleted reads the message list) off the async threads.
pub(crate) fn info_for(
    s: &Session,
    name: &str,
    items: &[String],
) -> impl std::future::Future<Output = Result<(MailboxInfo, Counts), Done>> + Send + 'static {
    let n = name.to_string();
    let want_deleted = items.iter().any(|i| i == "DELETED");
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
                counts.deleted += u32::from(m.flags.contains(&Flag::Deleted));
                counts.recent += u32::from(m.uid > above);
            }
        }
        Ok((info, counts))
    })
}

/// Writes `* STATUS name (items)`.
pub(crate) fn write_status(s: &mut Session, info: &MailboxInfo, counts: Counts, items: &[String]) {
    let mut vals = Vec::new();
    for i in items {
        let v = match i.as_str() {
            "MESSAGES" => info.exists.to_string(),
            "RECENT" => counts.recent.to_string(),
            "UIDNEXT" => info.uidnext.to_string(),
            "UIDVALIDITY" => info.uidvalidity.to_string(),
            "UNSEEN" => info.unseen.to_string(),
            "DELETED" => counts.deleted.to_string(),
            "SIZE" => info.size.to_string(),
            "HIGHESTMODSEQ" => info.highestmodseq.to_string(),
            _ => continue,
        };
        vals.push(format!("{i} {v}"));
    }
    let mut out = b"* STATUS ".to_vec();
    s.mailbox_out(&mut out, &info.name);
    out.extend_from_slice(format!(" ({})\r\n", vals.join(" ")).as_bytes());
    s.out.extend_from_slice(&out);
}

pub(crate) async fn status(
    s: &mut Session,
    mailbox: Mailbox<'static>,
    items: &[StatusDataItemName],
) -> Reply {
    let name = s.mailbox_in(&super::mailbox::raw_name(&mailbox))?;
    let items: Vec<String> = items.iter().map(|i| item_name(i).to_string()).collect();
    check_items(&items)?;
    let (info, counts) = info_for(s, &name, &items).await?;
    write_status(s, &info, counts, &items);
    Ok(Done::Ok("Status completed.".into()))
}
