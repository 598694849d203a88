//! SELECT, EXAMINE (with CONDSTORE and QRESYNC parameters), CLOSE and UNSELECT.

use crate::imap::args;
use crate::imap::recent;
use crate::imap::reply::{Done, Reply};
use crate::imap::response::{Code, FetchItem, RespText, Untagged};
use crate::imap::selected::{flags_announcement, keywords_of, Msg, Selected};
use crate::imap::session::{Session, State};
use imap_codec::imap_types::command::SelectParameter;
use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::imap_types::sequence::SequenceSet;
use std::collections::BTreeSet;
use std::sync::Arc;
use storage::{Flag, MailboxInfo, MessageMeta};

/// SELECT's QRESYNC parameter (RFC 7162 3.2.5): what the client knew.
struct QResync {
    uidvalidity: u32,
    modseq: u64,
    known_uids: Option<SequenceSet>,
}

pub(crate) async fn select(
    s: &mut Session,
    mailbox: Mailbox<'static>,
    params: Vec<SelectParameter>,
    read_only: bool,
) -> Reply {
    close_previous(s);
    let name = s.mailbox_arg(&mailbox)?;
    // Another user's mailbox: the owner's store becomes the session's (see `acl`).
    let (name, read_only) = if crate::imap::acl::split_shared(&name).is_some() {
        let (name, forced) = super::acl::enter(s, name).await?;
        (name, read_only || forced)
    } else {
        (name, read_only)
    };
    let qresync = parameters(s, params)?;
    // Read before the snapshot is taken: a change during the load ticks it again.
    let version = s.watch.as_mut().map(|w| *w.borrow_and_update());
    let (info, metas) = s
        .store_call(move |st| {
            let info = st.mailbox(&name)?;
            let metas = st.messages(&name)?;
            Ok((info, metas))
        })
        .await?;
    // \Recent: what no session has claimed yet; SELECT claims it, EXAMINE only looks.
    let store = s.user_store()?;
    let max_uid = metas.last().map(|m| m.uid).unwrap_or(0);
    let recent_above = if read_only {
        recent::claimed(&store, info.id, info.uidvalidity)
    } else {
        recent::claim(&store, info.id, info.uidvalidity, max_uid)
    };
    let keywords: BTreeSet<String> = metas
        .iter()
        .flat_map(|m| keywords_of(&m.flags))
        .map(str::to_string)
        .collect();
    report_mailbox(s, &info, &metas, &keywords, recent_above, read_only);
    let mut sel = Selected {
        name: info.name.clone(),
        read_only,
        id: info.id,
        uidvalidity: info.uidvalidity,
        msgs: metas
            .into_iter()
            .map(|meta| Msg {
                recent: meta.uid > recent_above,
                meta: Arc::new(meta),
            })
            .collect(),
        modseq_seen: info.highestmodseq,
        pending_expunge: BTreeSet::new(),
        synced_version: version,
        share: crate::imap::changes::share(&store, info.id),
        keywords,
        saved: Vec::new(),
        contexts: Vec::new(),
        contexts_seen: (0, 0, 0),
    };
    if let Some(q) = qresync.filter(|q| q.uidvalidity == info.uidvalidity) {
        resync(s, &mut sel, q).await?;
    }
    s.sel = Some(sel);
    s.state = State::Selected;
    let (code, verb) = if read_only {
        (Code::ReadOnly, "Examine completed.")
    } else {
        (Code::ReadWrite, "Select completed.")
    };
    Ok(Done::ok_coded(code, verb))
}

/// A failed SELECT leaves no mailbox selected (RFC 9051 6.3.2), so the previous one is closed
/// first.
fn close_previous(s: &mut Session) {
    s.leave_shared();
    if s.sel.take().is_some() {
        s.state = State::Authenticated;
        // RFC 7162 3.2.11 and IMAP4rev2 (RFC 9051 7.1): say where one mailbox's responses end.
        if s.enabled.qresync || s.enabled.rev2 {
            s.send(&Untagged::Ok(RespText::coded(
                Code::Closed,
                "Previous mailbox closed.",
            )));
        }
    }
}

/// CONDSTORE enables CONDSTORE; QRESYNC's parameter is kept (BAD unless QRESYNC is enabled).
fn parameters(s: &mut Session, params: Vec<SelectParameter>) -> Result<Option<QResync>, Done> {
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
                qresync = Some(QResync {
                    uidvalidity: uid_validity.get(),
                    modseq: mod_sequence_value.get(),
                    known_uids,
                });
            }
        }
    }
    Ok(qresync)
}

/// The untagged responses that describe the mailbox just selected (RFC 9051 6.3.2).
fn report_mailbox(
    s: &mut Session,
    info: &MailboxInfo,
    metas: &[MessageMeta],
    keywords: &BTreeSet<String>,
    recent_above: u32,
    read_only: bool,
) {
    for r in &flags_announcement(keywords, read_only, s.ctx.config.max_keywords) {
        s.send(r);
    }
    s.send(&Untagged::Exists(metas.len() as u32));
    if !s.enabled.rev2 {
        let recent = metas.iter().filter(|m| m.uid > recent_above).count();
        s.send(&Untagged::Recent(recent as u32));
        if let Some(i) = metas.iter().position(|m| !m.flags.contains(&Flag::Seen)) {
            let code = Code::Unseen(i as u32 + 1);
            s.send(&Untagged::Ok(RespText::coded(code, "First unseen.")));
        }
    }
    let ok = |code, text| Untagged::Ok(RespText::coded(code, text));
    s.send(&ok(Code::UidValidity(info.uidvalidity), "UIDs valid"));
    s.send(&ok(Code::UidNext(info.uidnext), "Predicted next UID"));
    let id = super::status_data::mailbox_id_of(&info.id);
    s.send(&ok(Code::MailboxId(id), "Ok"));
    if s.enabled.condstore {
        s.send(&ok(Code::HighestModSeq(info.highestmodseq), "Highest"));
    }
}

/// QRESYNC (RFC 7162 3.2.5): what the client missed since the modseq it knew: VANISHED
/// (EARLIER) for expunged UIDs (limited to the UIDs it knew, when it said), FETCH for changed
/// messages.
async fn resync(s: &mut Session, sel: &mut Selected, q: QResync) -> Result<(), Done> {
    let name = sel.name.clone();
    let changes = s
        .store_call(move |st| st.changes_since(&name, q.modseq))
        .await?;
    let mut vanished: Vec<u32> = changes.expunged;
    if let Some(known) = &q.known_uids {
        let idx = args::resolve_uid(known, &vanished);
        vanished = idx
            .into_iter()
            .filter_map(|i| vanished.get(i).copied())
            .collect();
    }
    if !vanished.is_empty() {
        s.send(&Untagged::Vanished {
            earlier: true,
            uids: vanished.into(),
        });
    }
    // The changes were read after the snapshot: a keyword new since then is announced first.
    let mut grew = false;
    for m in &changes.changed {
        grew |= sel.learn_keywords(&m.flags);
    }
    if grew {
        for r in &flags_announcement(&sel.keywords, sel.read_only, s.ctx.config.max_keywords) {
            s.send(r);
        }
    }
    for m in &changes.changed {
        if let Some(i) = sel.index_of_uid(m.uid) {
            s.send(&Untagged::Fetch {
                seq: i as u32 + 1,
                items: vec![
                    FetchItem::Uid(m.uid),
                    FetchItem::Flags {
                        flags: &m.flags,
                        recent: false,
                    },
                    FetchItem::ModSeq(m.modseq),
                ],
            });
        }
    }
    Ok(())
}

/// CLOSE (expunging \Deleted messages silently unless read-only) and UNSELECT.
pub(crate) async fn close(s: &mut Session, expunge: bool) -> Reply {
    let Some(sel) = s.sel.take() else {
        return Err(Done::Bad("No mailbox selected.".into()));
    };
    s.state = State::Authenticated;
    // In another user's mailbox, CLOSE expunges only with the `e` right (RFC 4314 4).
    let may_expunge = s.shared_rights().is_none_or(|r| r.has('e'));
    if expunge && !sel.read_only && may_expunge {
        let any_deleted = sel
            .msgs
            .iter()
            .any(|m| m.meta.flags.contains(&Flag::Deleted));
        if any_deleted {
            let name = sel.name.clone();
            // The current flags decide, not this session's possibly older snapshot.
            s.store_write(move |st| {
                let deleted: Vec<u32> = st
                    .messages(&name)?
                    .into_iter()
                    .filter(|m| m.flags.contains(&Flag::Deleted))
                    .map(|m| m.uid)
                    .collect();
                st.expunge(&name, &deleted)
            })
            .await?;
        }
    }
    s.leave_shared();
    Ok(Done::Ok(
        if expunge {
            "Close completed."
        } else {
            "Unselect completed."
        }
        .into(),
    ))
}
