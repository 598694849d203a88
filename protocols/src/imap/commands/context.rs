//! Search contexts (RFC 5267 CONTEXT=SEARCH and CONTEXT=SORT): a `SEARCH`/`SORT RETURN
//! (UPDATE ...)` keeps its result, and after each command the client is told what entered
//! it (ADDTO) or left it (REMOVEFROM); CANCELUPDATE ends that. Results that lose expunged
//! messages are reported with the expunge itself (see `Selected::contexts_expunged`), so
//! the sequence numbers are still valid when they are sent.

use super::{search, sort};
use crate::imap::message::SearchKey;
use crate::imap::reply::{Done, Reply};
use crate::imap::response::{Code, ESearch, Untagged};
use crate::imap::selected::SearchContext;
use crate::imap::session::Session;
use imap_codec::imap_types::extensions::sort::SortCriterion;
use std::collections::HashSet;

/// Contexts one session may keep: each costs a search after every change.
const MAX_CONTEXTS: usize = 16;

/// Keeps the search tagged `tag` as a context with `result` (its UIDs, in order).
pub(super) fn register(
    s: &mut Session,
    tag: &str,
    uid: bool,
    key: SearchKey,
    sort: Option<Vec<SortCriterion>>,
    result: Vec<u32>,
) -> Result<(), Done> {
    let Some(sel) = s.sel.as_mut() else {
        return Err(Done::Bad("No mailbox selected.".into()));
    };
    if sel.contexts.len() >= MAX_CONTEXTS {
        return Err(Done::no(
            Code::Limit,
            format!("Too many search contexts (limit {MAX_CONTEXTS})."),
        ));
    }
    sel.contexts.retain(|c| c.tag != tag);
    sel.contexts.push(SearchContext {
        tag: tag.to_string(),
        uid,
        key,
        sort,
        result,
    });
    sel.contexts_seen = sel.signature();
    Ok(())
}

/// CANCELUPDATE: the named contexts end; a tag that names none is an error.
pub(super) fn cancel(s: &mut Session, tags: &[String]) -> Reply {
    let sel = s.selected()?;
    if let Some(t) = tags
        .iter()
        .find(|t| !sel.contexts.iter().any(|c| &c.tag == *t))
    {
        return Err(Done::Bad(format!("Unknown search context: {t}").into()));
    }
    if let Some(sel) = s.sel.as_mut() {
        sel.contexts.retain(|c| !tags.contains(&c.tag));
    }
    Ok(Done::Ok("Cancelupdate completed.".into()))
}

/// Re-evaluates every context after a command that changed the snapshot and reports the
/// differences: REMOVEFROM first (positions in the old result), then ADDTO (positions in the
/// new one; 0 for SEARCH, whose order is the UIDs').
pub(crate) async fn update(s: &mut Session) -> Result<(), Done> {
    let Some(sel) = s.sel.as_ref() else {
        return Ok(());
    };
    if sel.contexts.is_empty() || sel.signature() == sel.contexts_seen {
        return Ok(());
    }
    let jobs: Vec<(SearchKey, Option<Vec<SortCriterion>>)> = sel
        .contexts
        .iter()
        .map(|c| (c.key.clone(), c.sort.clone()))
        .collect();
    let mut fresh = Vec::with_capacity(jobs.len());
    for (key, criteria) in jobs {
        let hits = match criteria {
            Some(c) => sort::sorted(s, key, c).await?,
            None => search::matches(s, key).await?,
        };
        fresh.push(hits);
    }
    let enc = s.encoder();
    let Some(sel) = s.sel.as_mut() else {
        return Ok(());
    };
    sel.contexts_seen = sel.signature();
    let seq_of = |uid: u32, msgs: &[crate::imap::selected::Msg]| {
        msgs.binary_search_by_key(&uid, |m| m.meta.uid)
            .ok()
            .map(|i| i as u32 + 1)
    };
    let mut lines = Vec::new();
    for (c, hits) in sel.contexts.iter_mut().zip(fresh) {
        let new: Vec<u32> = hits.iter().map(|h| h.1).collect();
        let (removed, added) = diff(&c.result, &new, c.sort.is_some());
        let num = |u: u32| if c.uid { Some(u) } else { seq_of(u, &sel.msgs) };
        let to_pairs = |pairs: Vec<(u32, Vec<u32>)>| -> Vec<(u32, Vec<u32>)> {
            pairs
                .into_iter()
                .map(|(pos, uids)| (pos, uids.into_iter().filter_map(num).collect::<Vec<_>>()))
                .filter(|(_, n): &(u32, Vec<u32>)| !n.is_empty())
                .collect()
        };
        let (removed, added) = (to_pairs(removed), to_pairs(added));
        c.result = new;
        for (word, pairs) in [("REMOVEFROM", removed), ("ADDTO", added)] {
            if !pairs.is_empty() {
                lines.push((c.tag.clone(), c.uid, word, pairs));
            }
        }
    }
    for (tag, uid, word, pairs) in lines {
        let mut e = ESearch {
            tag: &tag,
            uid,
            ..ESearch::default()
        };
        if word == "ADDTO" {
            e.addto = pairs;
        } else {
            e.removefrom = pairs;
        }
        enc.untagged(&mut s.out, &Untagged::ESearch(e));
    }
    Ok(())
}

/// What left and what entered a result, as (position, UIDs) pairs. SEARCH: one pair each,
/// position 0, UIDs ascending. SORT: one pair per message; removals last position first
/// (positions in the old result), additions first position first (positions in the new
/// one), so that applying them in turn gives the new result.
type Pairs = Vec<(u32, Vec<u32>)>;

fn diff(old: &[u32], new: &[u32], sorted: bool) -> (Pairs, Pairs) {
    let old_set: HashSet<u32> = old.iter().copied().collect();
    let new_set: HashSet<u32> = new.iter().copied().collect();
    if !sorted {
        let removed: Vec<u32> = old
            .iter()
            .copied()
            .filter(|u| !new_set.contains(u))
            .collect();
        let added: Vec<u32> = new
            .iter()
            .copied()
            .filter(|u| !old_set.contains(u))
            .collect();
        let one = |v: Vec<u32>| {
            if v.is_empty() {
                Vec::new()
            } else {
                vec![(0, v)]
            }
        };
        return (one(removed), one(added));
    }
    let removed = old
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, u)| !new_set.contains(u))
        .map(|(i, &u)| (i as u32 + 1, vec![u]))
        .collect();
    let added = new
        .iter()
        .enumerate()
        .filter(|(_, u)| !old_set.contains(u))
        .map(|(i, &u)| (i as u32 + 1, vec![u]))
        .collect();
    (removed, added)
}

#[cfg(test)]
mod tests {
    use super::diff;

    #[test]
    fn search_diffs_are_one_pair_each() {
        let (r, a) = diff(&[1, 2, 5], &[2, 5, 7, 8], false);
        assert_eq!(r, vec![(0, vec![1])]);
        assert_eq!(a, vec![(0, vec![7, 8])]);
        assert_eq!(diff(&[1], &[1], false), (vec![], vec![]));
    }

    #[test]
    fn sort_diffs_apply_in_turn() {
        let old = [5, 3, 9, 1];
        let new = [7, 5, 9, 2];
        let (r, a) = diff(&old, &new, true);
        // Apply: removals at old positions, last first; then additions at new positions.
        let mut v = old.to_vec();
        for (pos, u) in &r {
            assert_eq!(v.remove(*pos as usize - 1), u[0]);
        }
        for (pos, u) in &a {
            v.insert(*pos as usize - 1, u[0]);
        }
        assert_eq!(v, new);
    }
}
