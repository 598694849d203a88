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

/// Gathers what the items need (counting \Deleted reads the message list) off the async threads.
pub(crate) fn info_for(
    s: &Session,
    name: &str,
    items: &[String],
) -> impl std::future::Future<Output = Result<(MailboxInfo, u32), Done>> + Send + 'static {
    let n = name.to_string();
    let want_deleted = items.iter().any(|i| i == "DELETED");
    s.store_call(move |st| {
        let info = st.mailbox(&n)?;
        let deleted = if want_deleted {
            st.messages(&n)?
                .iter()
                .filter(|m| m.flags.contains(&Flag::Deleted))
                .count() as u32
        } else {
            0
        };
        Ok((info, deleted))
    })
}

/// Writes `* STATUS name (items)`.
pub(crate) fn write_status(s: &mut Session, info: &MailboxInfo, deleted: u32, items: &[String]) {
    let mut vals = Vec::new();
    for i in items {
        let v = match i.as_str() {
            "MESSAGES" => info.exists.to_string(),
            "RECENT" => "0".to_string(),
            "UIDNEXT" => info.uidnext.to_string(),
            "UIDVALIDITY" => info.uidvalidity.to_string(),
            "UNSEEN" => info.unseen.to_string(),
            "DELETED" => deleted.to_string(),
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
    let (info, deleted) = info_for(s, &name, &items).await?;
    write_status(s, &info, deleted, &items);
    Ok(Done::Ok("Status completed.".into()))
}
