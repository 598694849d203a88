//! COPY and MOVE (and their UID forms), answering COPYUID (UIDPLUS).

use crate::imap::format;
use crate::imap::session::{Done, Reply, Session};
use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::imap_types::sequence::SequenceSet;

pub(crate) async fn copy(
    s: &mut Session,
    set: SequenceSet,
    mailbox: Mailbox<'static>,
    uid: bool,
    is_move: bool,
) -> Reply {
    let target = s.mailbox_in(&super::mailbox::raw_name(&mailbox))?;
    let sel = s.selected()?;
    if is_move && sel.read_only {
        return Err(Done::No("[READ-ONLY] Mailbox is read-only.".into()));
    }
    let all = sel.uids();
    let idx = format::resolve(&set, uid, &all, "COPY").map_err(Done::Bad)?;
    let verb = if is_move { "Move" } else { "Copy" };
    if idx.is_empty() {
        return Ok(Done::Ok(format!("No messages found. {verb} completed.")));
    }
    let uids: Vec<u32> = idx.iter().map(|&i| all[i]).collect();
    let from = sel.name.clone();
    s.check_writable()?;
    let t = target.clone();
    let outcome = s
        .store_call(move |st| {
            if is_move {
                st.move_messages(&from, &uids, &t)
            } else {
                st.copy(&from, &uids, &t)
            }
        })
        .await
        .map_err(|d| match d {
            Done::No(t) if t.starts_with("[NONEXISTENT]") => {
                Done::No(format!("[TRYCREATE] Mailbox doesn't exist: {target}"))
            }
            other => other,
        })?;
    // Durable: the store call returned after its fsync.
    s.committed().await?;
    let src: Vec<u32> = outcome.pairs.iter().map(|p| p.0).collect();
    let dst: Vec<u32> = outcome.pairs.iter().map(|p| p.1).collect();
    let code = if src.is_empty() {
        String::new()
    } else {
        // Not compacted: COPYUID pairs the two sets element by element.
        let join = |v: &[u32]| v.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        format!(
            "[COPYUID {} {} {}] ",
            outcome.dst_uidvalidity,
            join(&src),
            join(&dst)
        )
    };
    if is_move {
        // RFC 6851: COPYUID comes untagged before the expunges, then a plain tagged OK.
        if !code.is_empty() {
            s.untagged(&format!("OK {}Moved UIDs.", code));
        }
        super::expunge::report_expunged(s, &src);
        return Ok(Done::Ok("Move completed.".into()));
    }
    Ok(Done::Ok(format!("{code}Copy completed.")))
}
