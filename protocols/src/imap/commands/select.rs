//! SELECT, EXAMINE (with CONDSTORE and QRESYNC parameters), CLOSE and UNSELECT.

use crate::imap::format;
use crate::imap::recent;
use crate::imap::session::{Done, Msg, Reply, Selected, Session, State};
use imap_codec::imap_types::command::SelectParameter;
use imap_codec::imap_types::mailbox::Mailbox;
use std::collections::BTreeSet;
use storage::Flag;

pub(crate) async fn select(
    s: &mut Session,
    mailbox: Mailbox<'static>,
    params: Vec<SelectParameter>,
    read_only: bool,
) -> Reply {
    // A failed SELECT leaves no mailbox selected (RFC 9051 6.3.2).
    if s.sel.take().is_some() {
        s.state = State::Authenticated;
        // RFC 7162 3.2.11 and IMAP4rev2 (RFC 9051 7.1): say where one mailbox's responses end.
        if s.enabled.qresync || s.enabled.rev2 {
            s.untagged("OK [CLOSED] Previous mailbox closed.");
        }
    }
    let name = s.mailbox_in(&super::mailbox::raw_name(&mailbox))?;
    let mut qresync = None;
    for p in params {
        match p {
            SelectParameter::CondStore => s.enabled.condstore = true,
            SelectParameter::QResync {
                uid_validity,
                mod_sequence_value,
                known_uids,
                ..
            } => {
                if !s.enabled.qresync {
                    return Err(Done::Bad("QRESYNC is not enabled.".into()));
                }
                qresync = Some((uid_validity.get(), mod_sequence_value.get(), known_uids));
            }
        }
    }
    // Read before the snapshot is taken: a change during the load ticks it again.
    let version = s.watch.as_mut().map(|w| *w.borrow_and_update());
    let n = name.clone();
    let (info, metas) = s
        .store_call(move |st| {
            let info = st.mailbox(&n)?;
            let metas = st.messages(&n)?;
            Ok((info, metas))
        })
        .await?;
    let mut keywords: BTreeSet<String> = BTreeSet::new();
    for m in &metas {
        for f in &m.flags {
            if let Flag::Keyword(k) = f {
                keywords.insert(k.clone());
            }
        }
    }
    let mut kw = String::new();
    for k in &keywords {
        kw.push(' ');
        kw.push_str(k);
    }
    let exists = metas.len();
    // \Recent: what no session has claimed yet; SELECT claims it, EXAMINE only looks.
    let store = s.user_store()?;
    let max_uid = metas.last().map(|m| m.uid).unwrap_or(0);
    let recent_above = if read_only {
        recent::claimed(&store, info.id, info.uidvalidity)
    } else {
        recent::claim(&store, info.id, info.uidvalidity, max_uid)
    };
    let recent_count = metas.iter().filter(|m| m.uid > recent_above).count();
    let first_unseen = metas.iter().position(|m| !m.flags.contains(&Flag::Seen));
    s.untagged(&format!(
        "FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft{kw})"
    ));
    if read_only {
        s.untagged("OK [PERMANENTFLAGS ()] Read-only mailbox.");
    } else {
        s.untagged(&format!(
            "OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft{kw} \\*)] Flags permitted."
        ));
    }
    s.untagged(&format!("{exists} EXISTS"));
    if !s.enabled.rev2 {
        s.untagged(&format!("{recent_count} RECENT"));
        if let Some(i) = first_unseen {
            s.untagged(&format!("OK [UNSEEN {}] First unseen.", i + 1));
        }
    }
    s.untagged(&format!("OK [UIDVALIDITY {}] UIDs valid", info.uidvalidity));
    s.untagged(&format!("OK [UIDNEXT {}] Predicted next UID", info.uidnext));
    if s.enabled.condstore {
        s.untagged(&format!(
            "OK [HIGHESTMODSEQ {}] Highest",
            info.highestmodseq
        ));
    }
    let sel = Selected {
        name: info.name.clone(),
        read_only,
        id: info.id,
        uidvalidity: info.uidvalidity,
        msgs: metas
            .into_iter()
            .map(|meta| Msg {
                recent: meta.uid > recent_above,
                meta: std::sync::Arc::new(meta),
            })
            .collect(),
        modseq_seen: info.highestmodseq,
        pending_expunge: BTreeSet::new(),
        synced_version: version,
        share: crate::imap::changes::share(&store, info.id),
    };
    if let Some((uidvalidity, modseq, known)) = qresync {
        if uidvalidity == info.uidvalidity {
            let n = info.name.clone();
            let changes = s.store_call(move |st| st.changes_since(&n, modseq)).await?;
            let mut vanished: Vec<u32> = changes.expunged.clone();
            if let Some(known) = &known {
                let kept: Vec<u32> = vanished.clone();
                let idx = format::resolve_uid(known, &kept);
                vanished = idx.into_iter().map(|i| kept[i]).collect();
            }
            if !vanished.is_empty() {
                s.untagged(&format!(
                    "VANISHED (EARLIER) {}",
                    format::compact_set(&vanished)
                ));
            }
            for m in &changes.changed {
                if let Some(i) = sel.index_of_uid(m.uid) {
                    s.untagged(&format!(
                        "{} FETCH (UID {} FLAGS {} MODSEQ ({}))",
                        i + 1,
                        m.uid,
                        format::flag_list(&m.flags, false),
                        m.modseq
                    ));
                }
            }
        }
    }
    s.sel = Some(sel);
    s.state = State::Selected;
    let code = if read_only { "READ-ONLY" } else { "READ-WRITE" };
    let verb = if read_only { "Examine" } else { "Select" };
    Ok(Done::Ok(format!("[{code}] {verb} completed.")))
}

/// CLOSE (expunging \Deleted messages silently unless read-only) and UNSELECT.
pub(crate) async fn close(s: &mut Session, expunge: bool) -> Reply {
    let Some(sel) = s.sel.take() else {
        return Err(Done::Bad("No mailbox selected.".into()));
    };
    s.state = State::Authenticated;
    if expunge && !sel.read_only {
        let any_deleted = sel
            .msgs
            .iter()
            .any(|m| m.meta.flags.contains(&Flag::Deleted));
        if any_deleted {
            s.check_writable()?;
            let name = sel.name.clone();
            // The current flags decide, not this session's possibly older snapshot.
            s.store_call(move |st| {
                let deleted: Vec<u32> = st
                    .messages(&name)?
                    .into_iter()
                    .filter(|m| m.flags.contains(&Flag::Deleted))
                    .map(|m| m.uid)
                    .collect();
                st.expunge(&name, &deleted)
            })
            .await?;
            s.committed().await?;
        }
    }
    Ok(Done::Ok(
        if expunge {
            "Close completed."
        } else {
            "Unselect completed."
        }
        .into(),
    ))
}
