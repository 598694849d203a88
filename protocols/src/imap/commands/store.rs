//! STORE and UID STORE (+FLAGS, -FLAGS, FLAGS, .SILENT, UNCHANGEDSINCE).

use crate::imap::args;
use crate::imap::reply::{Done, Reply};
use crate::imap::response::{Code, FetchItem, Untagged};
use crate::imap::session::Session;
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
    let flags = args::store_flags(flags.iter()).map_err(|e| Done::Bad(e.into()))?;
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
        return Err(Done::no(Code::ReadOnly, "Mailbox is read-only."));
    }
    if let Some(rights) = s.shared_rights() {
        // Another user's mailbox: each flag needs its right; replacing may clear any.
        let needed_all =
            kind == StoreType::Replace && !['s', 't', 'w'].iter().all(|&c| rights.has(c));
        if needed_all || super::acl::allowed_flags(rights, &flags) != flags {
            return Err(Done::no(Code::NoPerm, "Permission denied."));
        }
    }
    let all = sel.uids();
    let idx = args::resolve(&set, uid, &all, "STORE").map_err(|e| Done::Bad(e.into()))?;
    if idx.is_empty() {
        return Ok(Done::Ok("Store completed.".into()));
    }
    if kind != StoreType::Remove {
        s.check_keyword_limit(&flags)?;
    }
    let uids: Vec<u32> = idx.iter().filter_map(|&i| all.get(i).copied()).collect();
    let mode = match kind {
        StoreType::Add => FlagMode::Add,
        StoreType::Remove => FlagMode::Remove,
        StoreType::Replace => FlagMode::Replace,
    };
    let name = sel.name.clone();
    let outcome = s
        .store_write(move |st| st.store_flags(&name, &uids, mode, &flags, unchanged_since))
        .await?;
    // The store answers with each message's whole flag set, which may hold keywords other
    // sessions added since this one last looked.
    s.announce_keywords(outcome.updated.iter().map(|(_, f, _)| f));
    let silent = response == StoreResponse::Silent;
    let condstore = s.enabled.condstore;
    let enc = s.encoder();
    if let Some(sel) = s.sel.as_mut() {
        for (u, flags, modseq) in outcome.updated {
            let Some(i) = sel.index_of_uid(u) else {
                continue;
            };
            let Some(m) = sel.msgs.get_mut(i) else {
                continue;
            };
            let meta = std::sync::Arc::make_mut(&mut m.meta);
            meta.flags = flags;
            meta.modseq = modseq;
            // .SILENT still reports MODSEQ to CONDSTORE clients (RFC 7162 3.1.3).
            if silent && !condstore {
                continue;
            }
            let mut items = Vec::new();
            if uid {
                items.push(FetchItem::Uid(u));
            }
            if !silent {
                items.push(FetchItem::Flags {
                    flags: &m.meta.flags,
                    recent: m.recent,
                });
            }
            if condstore {
                items.push(FetchItem::ModSeq(modseq));
            }
            let seq = i as u32 + 1;
            enc.untagged(&mut s.out, &Untagged::Fetch { seq, items });
        }
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
        return Ok(Done::ok_coded(
            Code::Modified(listed),
            "Conditional STORE failed",
        ));
    }
    Ok(Done::Ok("Store completed.".into()))
}
