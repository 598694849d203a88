//! STORE and UID STORE (+FLAGS, -FLAGS, FLAGS, .SILENT, UNCHANGEDSINCE).

use crate::imap::format;
use crate::imap::session::{Done, Reply, Session};
use imap_codec::imap_types::command::StoreModifier;
use imap_codec::imap_types::flag::{Flag, StoreResponse, StoreType};
use imap_codec::imap_types::sequence::SequenceSet;
use storage::FlagMode;

pub(crate) async fn store(
    s: &mut Session,
    set: SequenceSet,
    kind: StoreType,
    response: StoreResponse,
    flags: Vec<Flag<'static>>,
    uid: bool,
    modifiers: Vec<StoreModifier>,
) -> Reply {
    let flags = format::store_flags(flags.iter()).map_err(Done::Bad)?;
    let unchanged_since = modifiers
        .iter()
        .map(|m| match m {
            StoreModifier::UnchangedSince(v) => *v,
        })
        .next();
    if unchanged_since.is_some() {
        s.enable_condstore();
    }
    let sel = s.selected()?;
    if sel.read_only {
        return Err(Done::No("[READ-ONLY] Mailbox is read-only.".into()));
    }
    let all = sel.uids();
    let idx = format::resolve(&set, uid, &all, "STORE").map_err(Done::Bad)?;
    if idx.is_empty() {
        return Ok(Done::Ok("Store completed.".into()));
    }
    let uids: Vec<u32> = idx.iter().map(|&i| all[i]).collect();
    let mode = match kind {
        StoreType::Add => FlagMode::Add,
        StoreType::Remove => FlagMode::Remove,
        StoreType::Replace => FlagMode::Replace,
    };
    let name = sel.name.clone();
    s.check_writable()?;
    let outcome = s
        .store_call(move |st| st.store_flags(&name, &uids, mode, &flags, unchanged_since))
        .await?;
    // Durable: store_flags returned after the change-log fsync.
    s.committed().await?;
    let silent = response == StoreResponse::Silent;
    let condstore = s.enabled.condstore;
    let mut lines = Vec::new();
    if let Some(sel) = s.sel.as_mut() {
        for (u, flags, modseq) in outcome.updated {
            let Some(i) = sel.index_of_uid(u) else {
                continue;
            };
            let m = &mut sel.msgs[i];
            let meta = std::sync::Arc::make_mut(&mut m.meta);
            meta.flags = flags;
            meta.modseq = modseq;
            // .SILENT still reports MODSEQ to CONDSTORE clients (RFC 7162 3.1.3).
            if silent && !condstore {
                continue;
            }
            let mut items = Vec::new();
            if uid {
                items.push(format!("UID {u}"));
            }
            if !silent {
                items.push(format!(
                    "FLAGS {}",
                    format::flag_list(&m.meta.flags, m.recent)
                ));
            }
            if condstore {
                items.push(format!("MODSEQ ({modseq})"));
            }
            lines.push(format!("{} FETCH ({})", i + 1, items.join(" ")));
        }
    }
    for l in lines {
        s.untagged(&l);
    }
    if !outcome.modified.is_empty() {
        let mut modified = outcome.modified;
        modified.sort_unstable();
        let listed: Vec<u32> = if uid {
            modified
        } else {
            let sel = s.selected()?;
            modified
                .iter()
                .filter_map(|u| sel.index_of_uid(*u).map(|i| i as u32 + 1))
                .collect()
        };
        return Ok(Done::Ok(format!(
            "[MODIFIED {}] Conditional STORE failed",
            format::compact_set(&listed)
        )));
    }
    Ok(Done::Ok("Store completed.".into()))
}
