//! COPY and MOVE (and their UID forms), answering COPYUID (UIDPLUS).

use crate::imap::args;
use crate::imap::reply::{trycreate, Done, Reply};
use crate::imap::response::{Code, RespText, Untagged};
use crate::imap::session::Session;
use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::imap_types::sequence::SequenceSet;

pub(crate) async fn copy(
    s: &mut Session,
    set: SequenceSet,
    mailbox: Mailbox<'static>,
    uid: bool,
    is_move: bool,
) -> Reply {
    let target = s.mailbox_arg(&mailbox)?;
    let sel = s.selected()?;
    if is_move && sel.read_only {
        return Err(Done::no(Code::ReadOnly, "Mailbox is read-only."));
    }
    let all = sel.uids();
    let idx = args::resolve(&set, uid, &all, "COPY").map_err(|e| Done::Bad(e.into()))?;
    let verb = if is_move { "Move" } else { "Copy" };
    if idx.is_empty() {
        return Ok(Done::Ok(
            format!("No messages found. {verb} completed.").into(),
        ));
    }
    let uids: Vec<u32> = idx.iter().filter_map(|&i| all.get(i).copied()).collect();
    let from = sel.name.clone();
    let t = target.clone();
    let outcome = s
        .store_write(move |st| {
            if is_move {
                st.move_messages(&from, &uids, &t)
            } else {
                st.copy(&from, &uids, &t)
            }
        })
        .await
        .map_err(trycreate(&target))?;
    let src: Vec<u32> = outcome.pairs.iter().map(|p| p.0).collect();
    let dst: Vec<u32> = outcome.pairs.iter().map(|p| p.1).collect();
    let code = (!src.is_empty()).then(|| Code::CopyUid {
        uidvalidity: outcome.dst_uidvalidity,
        src: src.clone(),
        dst,
    });
    if is_move {
        // RFC 6851: COPYUID comes untagged before the expunges, then a plain tagged OK.
        if let Some(code) = code {
            s.send(&Untagged::Ok(RespText::coded(code, "Moved UIDs.")));
        }
        s.announce_expunged(&src);
        return Ok(Done::Ok("Move completed.".into()));
    }
    Ok(Done::Ok(RespText {
        code,
        text: "Copy completed.".into(),
    }))
}
