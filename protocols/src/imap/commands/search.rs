//! SEARCH and UID SEARCH (every RFC 3501/9051 criterion, CHARSET UTF-8 / US-ASCII), with
//! ESEARCH RETURN (MIN MAX ALL COUNT) and MODSEQ (CONDSTORE). The criteria are evaluated by the
//! message module (see [`super::matching`]); this file picks the answer.

use super::matching::{check_charset, collect_matches, criteria_key, esearch, Returns};
use crate::imap::message::SearchKey;
use crate::imap::reply::{Done, Reply};
use crate::imap::response::Untagged;
use crate::imap::session::Session;
use imap_codec::imap_types::command::CommandBody;

pub(crate) async fn search(
    s: &mut Session,
    body: CommandBody<'static>,
    returns: Option<Returns>,
) -> Reply {
    let CommandBody::Search {
        charset,
        criteria,
        uid,
    } = body
    else {
        return Err(Done::Bad(
            "Error in IMAP command SEARCH: Invalid arguments.".into(),
        ));
    };
    let save = returns.as_ref().is_some_and(|r| r.save);
    if save {
        // A SEARCH with SAVE that fails leaves an empty result (RFC 5182 2.1).
        if let Some(sel) = s.sel.as_mut() {
            sel.saved.clear();
        }
    }
    if let Some(cs) = charset {
        check_charset(&cs)?;
    }
    let (key, uses_modseq) = criteria_key(s, criteria.as_ref());
    let hits = matches(s, key.clone()).await?;
    let nums: Vec<u32> = hits.iter().map(|h| if uid { h.1 } else { h.0 }).collect();
    // IMAP4rev2 has no SEARCH response: ESEARCH always (RFC 9051 7.3.4).
    if returns.is_some() || s.enabled.rev2 {
        let ret = returns.unwrap_or_default();
        let tag = s.current_tag.clone();
        if ret.save {
            save_result(s, &ret.options, &hits);
        }
        // SAVE alone asks for no answer (RFC 5182 2.1).
        let silent = ret.save && ret.options.is_empty() && ret.partial.is_none();
        if !silent {
            let modseq_of = uses_modseq.then_some(&hits[..]);
            let r = esearch(&tag, uid, &ret.options, ret.partial, &nums, modseq_of);
            s.send(&Untagged::ESearch(r));
        }
        if ret.update {
            let result = hits.iter().map(|h| h.1).collect();
            super::context::register(s, &tag, uid, key, None, result)?;
        }
    } else {
        let modseq = hits.iter().map(|h| h.2).max().filter(|_| uses_modseq);
        s.send(&Untagged::Search {
            nums: nums.into(),
            modseq,
        });
    }
    Ok(Done::Ok("Search completed.".into()))
}

/// The matches of `key` as (seq, uid, modseq), ascending; also what a SEARCH context
/// re-evaluates.
pub(super) fn matches(
    s: &Session,
    key: SearchKey,
) -> impl std::future::Future<Output = Result<Vec<(u32, u32, u64)>, Done>> + Send + 'static {
    collect_matches(s, key, "search", |seq, meta, _| {
        (seq, meta.uid, meta.modseq)
    })
}

/// SAVE with only MIN and/or MAX saves those; otherwise the whole result (RFC 5182 2.1).
fn save_result(s: &mut Session, options: &[String], hits: &[(u32, u32, u64)]) {
    let only_min_max = !options.is_empty() && options.iter().all(|o| o == "MIN" || o == "MAX");
    let saved: Vec<u32> = if only_min_max {
        let mut v = Vec::new();
        if options.iter().any(|o| o == "MIN") {
            v.extend(hits.first().map(|h| h.1));
        }
        if options.iter().any(|o| o == "MAX") {
            v.extend(hits.last().map(|h| h.1));
        }
        v
    } else {
        hits.iter().map(|h| h.1).collect()
    };
    if let Some(sel) = s.sel.as_mut() {
        sel.saved = saved;
    }
}
