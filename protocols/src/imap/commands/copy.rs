//! COPY and MOVE (and their UID forms), answering COPYUID (UIDPLUS).

use super::append::Prepared;
use crate::imap::acl::Rights;
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
    if s.shared.is_some() {
        return copy_shared(s, set, mailbox, uid, is_move).await;
    }
    let target = s.mailbox_arg(&mailbox)?;
    let sel = s.selected()?;
    if is_move && sel.read_only {
        return Err(Done::no(Code::ReadOnly, "Mailbox is read-only."));
    }
    let Some(uids) = named_uids(&sel.uids(), &set, uid)? else {
        return Ok(nothing_named(is_move));
    };
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

/// COPY/MOVE out of another user's mailbox (selected as `shared/OWNER/NAME`) into one of the
/// user's own, as Dovecot does: the messages are read from the owner's store and appended
/// to the user's as new messages (flags and internal dates kept). COPY needs `r` (SELECT
/// needed it already); MOVE also needs `t` and `e`, and then expunges the originals in the
/// owner's store.
/// The UIDs of the selected mailbox that `set` names; None when it names none.
fn named_uids(all: &[u32], set: &SequenceSet, uid: bool) -> Result<Option<Vec<u32>>, Done> {
    let idx = args::resolve(set, uid, all, "COPY").map_err(|e| Done::Bad(e.into()))?;
    if idx.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        idx.iter().filter_map(|&i| all.get(i).copied()).collect(),
    ))
}

fn nothing_named(is_move: bool) -> Done {
    let verb = if is_move { "Move" } else { "Copy" };
    Done::Ok(format!("No messages found. {verb} completed.").into())
}

async fn copy_shared(
    s: &mut Session,
    set: SequenceSet,
    mailbox: Mailbox<'static>,
    uid: bool,
    is_move: bool,
) -> Reply {
    let rights = s.shared_rights().unwrap_or(Rights::NONE);
    let target = s.mailbox_arg(&mailbox)?;
    let sel = s.selected()?;
    if is_move && sel.read_only {
        return Err(Done::no(Code::ReadOnly, "Mailbox is read-only."));
    }
    if !rights.has('r') || (is_move && !(rights.has('t') && rights.has('e'))) {
        return Err(Done::no(Code::NoPerm, "Permission denied."));
    }
    let Some(uids) = named_uids(&sel.uids(), &set, uid)? else {
        return Ok(nothing_named(is_move));
    };
    let from = sel.name.clone();
    let f = from.clone();
    // the session's store is the owner's while the shared mailbox is selected
    let messages: Vec<(u32, Prepared)> = s
        .store_call(move |r| {
            let metas = r.messages(&f)?;
            let mut out = Vec::with_capacity(uids.len());
            for uid in uids {
                // a message expunged meanwhile is left out, as COPY of the own mailbox does
                let Some(m) = metas.iter().find(|m| m.uid == uid) else {
                    continue;
                };
                out.push((
                    uid,
                    Prepared {
                        flags: m.flags.clone(),
                        internal_date: Some((m.internal_date, m.internal_date_tz_min)),
                        raw: r.read_message(&m.object)?,
                    },
                ));
            }
            Ok(out)
        })
        .await?;
    s.swap_home();
    let t = target.clone();
    let appended = s
        .store_write(move |st| {
            let mut pairs = Vec::with_capacity(messages.len());
            let mut uidvalidity = 0;
            for (src, p) in messages {
                match p.append_to(st, &t) {
                    Ok(o) => {
                        uidvalidity = o.uidvalidity;
                        pairs.push((src, o.uid));
                    }
                    Err(e) => {
                        // all or nothing, as COPY within one store
                        let done: Vec<u32> = pairs.iter().map(|p: &(u32, u32)| p.1).collect();
                        if !done.is_empty() {
                            if let Err(undo) = st.expunge(&t, &done) {
                                tracing::error!(
                                    "rollback of the copy of uids {done:?} to {t} failed: {undo}"
                                );
                            }
                        }
                        return Err(e);
                    }
                }
            }
            Ok((uidvalidity, pairs))
        })
        .await;
    s.swap_home();
    let (uidvalidity, pairs) = appended.map_err(trycreate(&target))?;
    let src: Vec<u32> = pairs.iter().map(|p| p.0).collect();
    let dst: Vec<u32> = pairs.iter().map(|p| p.1).collect();
    let code = (!src.is_empty()).then(|| Code::CopyUid {
        uidvalidity,
        src: src.clone(),
        dst,
    });
    if is_move {
        let expunge = src.clone();
        s.store_write(move |st| st.expunge(&from, &expunge)).await?;
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
