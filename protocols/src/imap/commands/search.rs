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
        let modseq_of = uses_modseq.then_some(&hits[..]);
        let r = esearch(&tag, uid, &ret.options, ret.partial, &nums, modseq_of);
        s.send(&Untagged::ESearch(r));
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
