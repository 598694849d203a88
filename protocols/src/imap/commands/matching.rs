//! What SEARCH and SORT share: imap-types' search keys in the message module's terms, the
//! walk over the snapshot that finds the matches, and the ESEARCH answer (RFC 4731, and
//! ESORT's, RFC 5267).

use crate::imap::message::{self, LazyContent, MessageContent, MessageCtx, SearchKey, SeqBound};
use crate::imap::reply::{server_bug, Done};
use crate::imap::response::{Code, ESearch};
use crate::imap::savedate::{self, Saved};
use crate::imap::session::Session;
use crate::mail::Reader;
use imap_codec::imap_types::core::Charset;
use imap_codec::imap_types::search::SearchKey as K;
use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};
use std::sync::Arc;
use storage::MessageMeta;

fn text(a: &impl AsRef<[u8]>) -> String {
    String::from_utf8_lossy(a.as_ref()).into_owned()
}

fn set(s: &SequenceSet) -> message::SequenceSet {
    let b = |x: &SeqOrUid| match x {
        SeqOrUid::Value(v) => SeqBound::Num(v.get()),
        SeqOrUid::Asterisk => SeqBound::Star,
    };
    message::SequenceSet(
        s.0.as_ref()
            .iter()
            .map(|q| match q {
                Sequence::Single(x) => (b(x), b(x)),
                Sequence::Range(x, y) => (b(x), b(y)),
            })
            .collect(),
    )
}

/// imap-types' key to the message module's; also notes whether MODSEQ was used.
fn convert(k: &K<'_>, uses_modseq: &mut bool) -> SearchKey {
    use SearchKey as S;
    match k {
        K::And(v) => S::And(v.as_ref().iter().map(|k| convert(k, uses_modseq)).collect()),
        K::SequenceSet(s) => S::SequenceSet(set(s)),
        K::All => S::All,
        K::Answered => S::Answered,
        K::Bcc(a) => S::Bcc(text(a)),
        K::Before(d) => S::Before(*d.as_ref()),
        K::Body(a) => S::Body(text(a)),
        K::Cc(a) => S::Cc(text(a)),
        K::Deleted => S::Deleted,
        K::Draft => S::Draft,
        K::Flagged => S::Flagged,
        K::From(a) => S::From(text(a)),
        K::Header(h, v) => S::Header(text(h), text(v)),
        K::Keyword(a) => match savedate::decode(a.inner()) {
            Some(Saved::Before(d)) => S::SavedBefore(d),
            Some(Saved::On(d)) => S::SavedOn(d),
            Some(Saved::Since(d)) => S::SavedSince(d),
            None => S::Keyword(a.inner().to_string()),
        },
        K::Larger(n) => S::Larger(u64::from(*n)),
        K::New => S::New,
        K::Not(k) => S::Not(Box::new(convert(k, uses_modseq))),
        K::Old => S::Old,
        K::On(d) => S::On(*d.as_ref()),
        K::Or(a, b) => S::Or(
            Box::new(convert(a, uses_modseq)),
            Box::new(convert(b, uses_modseq)),
        ),
        K::Recent => S::Recent,
        K::Seen => S::Seen,
        K::SentBefore(d) => S::SentBefore(*d.as_ref()),
        K::SentOn(d) => S::SentOn(*d.as_ref()),
        K::SentSince(d) => S::SentSince(*d.as_ref()),
        K::Since(d) => S::Since(*d.as_ref()),
        K::Smaller(n) => S::Smaller(u64::from(*n)),
        K::Subject(a) => S::Subject(text(a)),
        K::Text(a) => S::Text(text(a)),
        K::To(a) => S::To(text(a)),
        K::Uid(s) => S::Uid(set(s)),
        K::Unanswered => S::Unanswered,
        K::Undeleted => S::Undeleted,
        K::Undraft => S::Undraft,
        K::Unflagged => S::Unflagged,
        K::Unkeyword(a) => S::Unkeyword(a.inner().to_string()),
        K::Unseen => S::Unseen,
        K::ModSequence { modseq, .. } => {
            *uses_modseq = true;
            S::ModSeq(*modseq)
        }
    }
}

/// SEARCH and SORT accept the charsets every string is decoded to anyway.
pub(super) fn check_charset(cs: &Charset<'_>) -> Result<(), Done> {
    let name = match cs {
        Charset::Atom(a) => a.inner().to_string(),
        Charset::Quoted(q) => q.inner().to_string(),
    };
    if name.eq_ignore_ascii_case("UTF-8") || name.eq_ignore_ascii_case("US-ASCII") {
        Ok(())
    } else {
        Err(Done::no(
            Code::BadCharset(vec!["US-ASCII", "UTF-8"]),
            "Unsupported charset",
        ))
    }
}

/// The criteria as one key, and whether it has a MODSEQ criterion, which enables CONDSTORE
/// (RFC 7162 3.1) and adds the MODSEQ of the result.
pub(super) fn criteria_key(s: &mut Session, criteria: &[K<'_>]) -> (SearchKey, bool) {
    let mut uses_modseq = false;
    let mut keys: Vec<SearchKey> = criteria
        .iter()
        .map(|k| convert(k, &mut uses_modseq))
        .collect();
    if uses_modseq {
        s.enable_condstore();
    }
    let key = if keys.len() == 1 {
        keys.pop().unwrap_or(SearchKey::All)
    } else {
        SearchKey::And(keys)
    };
    (key, uses_modseq)
}

/// (sequence number, index entry, \Recent) of every message of the selected mailbox, for the
/// blocking pool to search without holding the session.
pub(super) fn snapshot(s: &Session) -> Result<Vec<(u32, Arc<MessageMeta>, bool)>, Done> {
    let sel = s.selected()?;
    Ok(sel
        .msgs
        .iter()
        .enumerate()
        .map(|(i, m)| (i as u32 + 1, m.meta.clone(), m.recent))
        .collect())
}

/// Calls `f` for every message of `snapshot` that matches `key`, in sequence order, with the
/// message's content loaded lazily (a key on flags alone reads no message). SEARCH and SORT
/// share this walk; it blocks on the store, so it runs on the blocking pool.
pub(super) fn for_each_match(
    snapshot: &[(u32, Arc<MessageMeta>, bool)],
    store: &Reader,
    key: &SearchKey,
    mut f: impl FnMut(u32, &MessageMeta, &dyn MessageContent),
) {
    let max_seq = snapshot.len() as u32;
    let max_uid = snapshot.last().map(|m| m.1.uid).unwrap_or(0);
    for (seq, meta, recent) in snapshot {
        let object = meta.object;
        let (st, st2, st3) = (store.clone(), store.clone(), store.clone());
        let content = LazyContent::new(
            move || st.read_message(&object).ok(),
            move || st2.facts(&object).ok(),
        )
        .with_header(Box::new(move || st3.header(&object).ok()));
        let ctx = MessageCtx::new(*seq, meta, *recent, max_seq, max_uid, &content);
        if message::matches(key, &ctx) {
            f(*seq, meta, &content);
        }
    }
}

/// [`for_each_match`] over the selected mailbox's snapshot on the blocking pool, collecting
/// what `f` makes of each match. `command` names the command in the error log. The future
/// owns what it needs (no borrow of the session is held across the await).
pub(super) fn collect_matches<T: Send + 'static>(
    s: &Session,
    key: SearchKey,
    command: &'static str,
    mut f: impl FnMut(u32, &MessageMeta, &dyn MessageContent) -> T + Send + 'static,
) -> impl std::future::Future<Output = Result<Vec<T>, Done>> + Send + 'static {
    let taken = snapshot(s).and_then(|snap| Ok((snap, s.user_store()?)));
    async move {
        let (snapshot, store) = taken?;
        crate::blocking::run(move || {
            let mut out = Vec::new();
            for_each_match(&snapshot, &store, &key, |seq, meta, content| {
                out.push(f(seq, meta, content))
            });
            out
        })
        .await
        .map_err(|e| {
            tracing::error!("{command} failed: {e}");
            server_bug()
        })
    }
}

/// What `RETURN (...)` asked of a SEARCH or SORT: the result options (MIN MAX ALL COUNT),
/// PARTIAL's range and UPDATE (the search becomes a context, RFC 5267).
#[derive(Clone, Debug, Default)]
pub(crate) struct Returns {
    pub options: Vec<String>,
    pub partial: Option<(i64, i64)>,
    pub update: bool,
    /// SEARCHRES (RFC 5182): the result is saved for `$`.
    pub save: bool,
}

impl Returns {
    pub fn new(mut options: Vec<String>, partial: Option<(i64, i64)>) -> Returns {
        let update = options.iter().any(|o| o == "UPDATE");
        let save = options.iter().any(|o| o == "SAVE");
        options.retain(|o| o != "UPDATE" && o != "SAVE");
        Returns {
            options,
            partial,
            update,
            save,
        }
    }
}

/// The numbers of `nums` at the PARTIAL positions `range` (RFC 9394): 1-based from the
/// start, or from the end when negative.
pub(super) fn partial_of(nums: &[u32], range: (i64, i64)) -> Vec<u32> {
    let len = nums.len() as i64;
    let (a, b) = range;
    let (lo, hi) = if a > 0 {
        (a - 1, b - 1)
    } else {
        (len + b, len + a)
    };
    let lo = lo.max(0);
    let hi = hi.min(len - 1);
    if lo > hi {
        return Vec::new();
    }
    nums.get(lo as usize..=hi as usize)
        .map(<[u32]>::to_vec)
        .unwrap_or_default()
}

/// The ESEARCH answer to the command tagged `tag`: `nums` in the order reported (MIN and MAX
/// are the first and last: SEARCH's are ascending, ESORT's in sort order), `opts` the RETURN
/// options (none, without PARTIAL, means ALL), `modseq_of` the matches as (seq, uid, modseq)
/// in the same order when a MODSEQ criterion was used.
pub(super) fn esearch<'a>(
    tag: &'a str,
    uid: bool,
    opts: &[String],
    partial: Option<(i64, i64)>,
    nums: &'a [u32],
    modseq_of: Option<&[(u32, u32, u64)]>,
) -> ESearch<'a> {
    let all = ["ALL".to_string()];
    let opts = if opts.is_empty() && partial.is_none() {
        &all[..]
    } else {
        opts
    };
    let has = |o: &str| opts.iter().any(|x| x == o);
    let found = !nums.is_empty();
    ESearch {
        tag,
        uid,
        min: nums.first().copied().filter(|_| has("MIN")),
        max: nums.last().copied().filter(|_| has("MAX")),
        all: (found && has("ALL")).then_some(nums.into()),
        count: has("COUNT").then_some(nums.len() as u64),
        modseq: modseq_of.and_then(|hits| esearch_modseq(opts, hits)),
        partial: partial.map(|r| {
            let part = partial_of(nums, r);
            (r, (!part.is_empty()).then(|| part.into()))
        }),
        ..ESearch::default()
    }
}

/// The MODSEQ of an ESEARCH reply (RFC 7162 3.1.5): with only MIN or only MAX, that
/// message's; with only MIN and MAX, the higher of those two; otherwise the highest of every
/// match. `hits` are (seq, uid, modseq) in ascending order; None when nothing matched.
pub(super) fn esearch_modseq(opts: &[String], hits: &[(u32, u32, u64)]) -> Option<u64> {
    let has = |o: &str| opts.iter().any(|x| x == o);
    let only_min_max = opts.iter().all(|o| o == "MIN" || o == "MAX");
    let first = hits.first()?.2;
    let last = hits.last()?.2;
    Some(match (has("MIN"), has("MAX"), only_min_max) {
        (true, false, true) => first,
        (false, true, true) => last,
        (true, true, true) => first.max(last),
        _ => hits.iter().map(|h| h.2).max()?,
    })
}

#[cfg(test)]
mod tests {
    use super::{esearch_modseq, partial_of};

    #[test]
    fn partial_positions_from_either_end() {
        let n = [1, 2, 4, 5];
        assert_eq!(partial_of(&n, (1, 3)), [1, 2, 4]);
        assert_eq!(partial_of(&n, (2, 10)), [2, 4, 5]);
        assert_eq!(partial_of(&n, (5, 6)), Vec::<u32>::new());
        assert_eq!(partial_of(&n, (-1, -2)), [4, 5]);
        assert_eq!(partial_of(&n, (-3, -9)), [1, 2]);
        assert_eq!(partial_of(&[], (1, 1)), Vec::<u32>::new());
    }

    #[test]
    fn esearch_modseq_follows_the_return_options() {
        let o = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // Messages 1..3 with modseqs 6, 8, 7 (as imaptest esearch-condstore stores them).
        let hits = [(1, 10, 6), (2, 11, 8), (3, 12, 7)];
        assert_eq!(esearch_modseq(&o(&["MIN"]), &hits), Some(6));
        assert_eq!(esearch_modseq(&o(&["MAX"]), &hits), Some(7));
        assert_eq!(esearch_modseq(&o(&["ALL"]), &hits), Some(8));
        assert_eq!(esearch_modseq(&o(&["MIN", "MAX"]), &hits[2..]), Some(7));
        assert_eq!(esearch_modseq(&o(&["MIN", "MAX"]), &hits), Some(7));
        assert_eq!(esearch_modseq(&o(&["MIN", "COUNT"]), &hits), Some(8));
        assert_eq!(esearch_modseq(&o(&["MIN"]), &[]), None);
    }
}
