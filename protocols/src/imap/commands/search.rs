//! SEARCH and UID SEARCH (every RFC 3501/9051 criterion, CHARSET UTF-8 / US-ASCII), with
//! ESEARCH RETURN (MIN MAX ALL COUNT) and MODSEQ (CONDSTORE). The criteria are evaluated by the
//! message module (see [`super::matching`]); this file picks the answer.

use super::matching::{check_charset, collect_matches, criteria_key, esearch};
use crate::imap::reply::{Done, Reply};
use crate::imap::response::Untagged;
use crate::imap::session::Session;
use imap_codec::imap_types::command::CommandBody;

pub(crate) async fn search(
    s: &mut Session,
    body: CommandBody<'static>,
    returns: Option<Vec<String>>,
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
    let hits: Vec<(u32, u32, u64)> = collect_matches(s, key, "search", |seq, meta, _| {
        (seq, meta.uid, meta.modseq)
    })
    .await?;
    let nums: Vec<u32> = hits.iter().map(|h| if uid { h.1 } else { h.0 }).collect();
    // IMAP4rev2 has no SEARCH response: ESEARCH always (RFC 9051 7.3.4).
    if returns.is_some() || s.enabled.rev2 {
        let opts = returns.unwrap_or_default();
        let tag = s.current_tag.clone();
        let r = esearch(&tag, uid, &opts, &nums, uses_modseq.then_some(&hits[..]));
        s.send(&Untagged::ESearch(r));
    } else {
        let modseq = hits.iter().map(|h| h.2).max().filter(|_| uses_modseq);
        s.send(&Untagged::Search {
            nums: nums.into(),
            modseq,
        });
    }
    Ok(Done::Ok("Search completed.".into()))
}
