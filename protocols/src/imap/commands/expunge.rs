//! EXPUNGE and UID EXPUNGE (UIDPLUS).

use crate::imap::format;
use crate::imap::session::{Done, Reply, Session};
use imap_codec::imap_types::sequence::SequenceSet;
use storage::Flag;

pub(crate) async fn expunge(s: &mut Session, uids: Option<SequenceSet>) -> Reply {
    let sel = s.selected()?;
    if sel.read_only {
        return Err(Done::No("[READ-ONLY] Mailbox is read-only.".into()));
    }
    let name = sel.name.clone();
    // UID EXPUNGE limits the expunge to these UIDs of the snapshot.
    let limit: Option<Vec<u32>> = uids.map(|set| {
        let all = sel.uids();
        format::resolve_uid(&set, &all)
            .into_iter()
            .map(|i| all[i])
            .collect()
    });
    s.check_writable()?;
    let gone = s
        .store_call(move |st| {
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
    s.committed().await?;
    report_expunged(s, &gone);
    Ok(Done::Ok("Expunge completed.".into()))
}

/// Removes expunged UIDs from the snapshot and tells the client (EXPUNGE or VANISHED).
pub(crate) fn report_expunged(s: &mut Session, gone: &[u32]) {
    let qresync = s.enabled.qresync;
    let Some(sel) = s.sel.as_mut() else {
        return;
    };
    let mut lines = Vec::new();
    let present: Vec<u32> = gone
        .iter()
        .copied()
        .filter(|u| sel.index_of_uid(*u).is_some())
        .collect();
    for u in &present {
        sel.pending_expunge.remove(u);
    }
    if qresync {
        if !present.is_empty() {
            let mut sorted = present.clone();
            sorted.sort_unstable();
            lines.push(format!("VANISHED {}", format::compact_set(&sorted)));
            sel.msgs
                .retain(|m| sorted.binary_search(&m.meta.uid).is_err());
        }
    } else {
        let mut sorted = present;
        sorted.sort_unstable();
        for u in sorted.iter().rev() {
            if let Some(i) = sel.index_of_uid(*u) {
                sel.msgs.remove(i);
                lines.push(format!("{} EXPUNGE", i + 1));
            }
        }
    }
    for l in lines {
        s.untagged(&l);
    }
}
