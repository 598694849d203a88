//! EXPUNGE and UID EXPUNGE (UIDPLUS).

use crate::imap::args;
use crate::imap::reply::{Done, Reply};
use crate::imap::response::Code;
use crate::imap::session::Session;
use imap_codec::imap_types::sequence::SequenceSet;
use storage::Flag;

pub(crate) async fn expunge(s: &mut Session, uids: Option<SequenceSet>) -> Reply {
    if s.shared_rights().is_some_and(|r| !r.has('e')) {
        return Err(Done::no(Code::NoPerm, "Permission denied."));
    }
    let sel = s.selected()?;
    if sel.read_only {
        return Err(Done::no(Code::ReadOnly, "Mailbox is read-only."));
    }
    let name = sel.name.clone();
    // UID EXPUNGE limits the expunge to these UIDs of the snapshot.
    let limit: Option<Vec<u32>> = uids.map(|set| {
        let all = sel.uids();
        args::resolve_uid(&set, &all)
            .into_iter()
            .filter_map(|i| all.get(i).copied())
            .collect()
    });
    let gone = s
        .store_write(move |st| {
            // The current flags decide, not this session's possibly older snapshot.
            let deleted: Vec<u32> = st
                .messages(&name)?
                .into_iter()
                .filter(|m| m.flags.contains(&Flag::Deleted))
                .map(|m| m.uid)
                .filter(|u| limit.as_ref().is_none_or(|l| l.binary_search(u).is_ok()))
                .collect();
            if deleted.is_empty() {
                return Ok(Vec::new());
            }
            st.expunge(&name, &deleted)
        })
        .await?;
    s.announce_expunged(&gone);
    Ok(Done::Ok("Expunge completed.".into()))
}
