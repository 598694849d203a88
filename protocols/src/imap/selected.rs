//! The session's snapshot of the selected mailbox: its messages by sequence number, and the
//! bookkeeping that decides what the client is told when they change.

use super::changes::{Changes, MailboxShare};
use super::response::{Code, RespText};
use super::response::{FetchItem, Untagged};
use std::collections::BTreeSet;
use std::sync::Arc;
use storage::{Flag, Flags, MessageMeta};

/// The system flags every mailbox has.
pub(crate) const SYSTEM_FLAGS: [&str; 5] =
    ["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"];

/// The keywords among `flags`.
pub(crate) fn keywords_of(flags: &Flags) -> impl Iterator<Item = &str> {
    flags.iter().filter_map(|f| match f {
        Flag::Keyword(k) => Some(k.as_str()),
        _ => None,
    })
}

/// `* FLAGS (...)` and `* OK [PERMANENTFLAGS (...)]` for a mailbox whose keywords are
/// `keywords` (RFC 9051 7.3.5): `\*` (new keywords may be made) only while fewer than
/// `max_keywords` exist, so a client at the limit is told before its STORE fails.
pub(crate) fn flags_announcement(
    keywords: &BTreeSet<String>,
    read_only: bool,
    max_keywords: usize,
) -> [Untagged<'static>; 2] {
    let mut flags: Vec<String> = SYSTEM_FLAGS.iter().map(|f| f.to_string()).collect();
    flags.extend(keywords.iter().cloned());
    let list = Untagged::Flags(flags.iter().map(|f| f.clone().into()).collect());
    let permanent = if read_only {
        RespText::coded(Code::PermanentFlags(Vec::new()), "Read-only mailbox.")
    } else {
        if keywords.len() < max_keywords {
            flags.push("\\*".into());
        }
        RespText::coded(Code::PermanentFlags(flags), "Flags permitted.")
    };
    [list, Untagged::Ok(permanent)]
}

/// One message of the session's snapshot of the selected mailbox.
#[derive(Clone, Debug)]
pub(crate) struct Msg {
    /// Shared with the other sessions that took the same change from one shared answer
    /// (imap::changes): thousands of sessions of one mailbox hold one copy of each new message's
    /// entry, not one each.
    pub meta: Arc<MessageMeta>,
    /// \Recent for this session: the message arrived while this session had the mailbox open.
    pub recent: bool,
}

#[derive(Debug)]
pub(crate) struct Selected {
    pub name: String,
    pub read_only: bool,
    pub id: storage::MailboxId,
    pub uidvalidity: u32,
    /// Sequence number n is `msgs[n - 1]`; UIDs ascend.
    pub msgs: Vec<Msg>,
    /// Changes up to this modseq have been taken into the snapshot.
    pub modseq_seen: u64,
    /// UIDs expunged by others, still in the snapshot until EXPUNGE may be announced.
    pub pending_expunge: BTreeSet<u32>,
    /// The user's change counter (`UserStore::watch`) when the snapshot was last brought up
    /// to date; None = unknown.
    pub synced_version: Option<u64>,
    /// Answers to "what changed since" shared with the other sessions of this mailbox.
    pub share: Arc<MailboxShare>,
    /// SEARCHRES (RFC 5182): the UIDs `SEARCH RETURN (SAVE)` saved, which `$` names.
    pub saved: Vec<u32>,
    /// Searches whose results are kept up to date (RFC 5267 UPDATE); they end with the
    /// selection.
    pub contexts: Vec<SearchContext>,
    /// (messages, last UID, highest message modseq) when the contexts were last evaluated.
    pub contexts_seen: (usize, u32, u64),
    /// The keywords this client was told of in FLAGS: every keyword any message of the
    /// snapshot has is here before a FETCH shows it (RFC 9051 7.3.5).
    pub keywords: BTreeSet<String>,
}

/// A search or sort whose result the client is kept told of (RFC 5267 CONTEXT=SEARCH,
/// CONTEXT=SORT).
#[derive(Debug)]
pub(crate) struct SearchContext {
    /// The tag of the command that made it: its ESEARCH updates carry it.
    pub tag: String,
    pub uid: bool,
    pub key: crate::imap::message::SearchKey,
    /// SORT's criteria; None for SEARCH.
    pub sort: Option<Vec<imap_codec::imap_types::extensions::sort::SortCriterion>>,
    /// The result's UIDs: ascending for SEARCH, in sort order for SORT.
    pub result: Vec<u32>,
}

/// A context's REMOVEFROM: its tag, whether it reports UIDs, and (position, numbers) pairs.
pub(crate) type ContextRemoval = (String, bool, Vec<(u32, Vec<u32>)>);

/// What [`Selected::take_in`] found: how many messages are new, and which UIDs' flags (or
/// modseqs) changed.
pub(crate) struct TakenIn {
    pub added: usize,
    pub flag_changed: BTreeSet<u32>,
    /// Keywords the client was not told of yet came in: FLAGS must go out first.
    pub new_keywords: bool,
}

impl Selected {
    pub fn uids(&self) -> Vec<u32> {
        self.msgs.iter().map(|m| m.meta.uid).collect()
    }

    pub fn index_of_uid(&self, uid: u32) -> Option<usize> {
        self.msgs.binary_search_by_key(&uid, |m| m.meta.uid).ok()
    }

    pub fn last_uid(&self) -> u32 {
        self.msgs.last().map_or(0, |m| m.meta.uid)
    }

    /// Adds the keywords of `flags` the client has not been told of; true when any was new
    /// (the caller then sends [`flags_announcement`] before showing them).
    pub fn learn_keywords(&mut self, flags: &Flags) -> bool {
        let mut grew = false;
        for k in keywords_of(flags) {
            if !self.keywords.contains(k) {
                self.keywords.insert(k.to_string());
                grew = true;
            }
        }
        grew
    }

    /// Takes other sessions' changes into the snapshot: new entries for changed messages, new
    /// messages appended (recent when their UID is above `recent_above`), expunges held back
    /// in `pending_expunge` until they may be announced. With `condstore` a modseq change
    /// alone counts as a flag change (the client is told the new MODSEQ).
    pub fn take_in(&mut self, changes: &Changes, recent_above: u32, condstore: bool) -> TakenIn {
        let last_uid = self.last_uid();
        let mut taken = TakenIn {
            added: 0,
            flag_changed: BTreeSet::new(),
            new_keywords: false,
        };
        for meta in &changes.changed {
            taken.new_keywords |= self.learn_keywords(&meta.flags);
            if let Some(m) = self
                .index_of_uid(meta.uid)
                .and_then(|i| self.msgs.get_mut(i))
            {
                if m.meta.flags != meta.flags || (condstore && m.meta.modseq != meta.modseq) {
                    taken.flag_changed.insert(meta.uid);
                }
                m.meta = meta.clone();
            } else if meta.uid > last_uid && self.last_uid() < meta.uid {
                self.msgs.push(Msg {
                    recent: meta.uid > recent_above,
                    meta: meta.clone(),
                });
                taken.added += 1;
            }
        }
        for &uid in &changes.expunged {
            if self.index_of_uid(uid).is_some() {
                self.pending_expunge.insert(uid);
            }
        }
        self.modseq_seen = self.modseq_seen.max(changes.highestmodseq);
        taken
    }

    /// The (messages, last UID, highest modseq) signature of the snapshot: when it is unchanged
    /// no context result can have changed.
    pub fn signature(&self) -> (usize, u32, u64) {
        let modseq = self.msgs.iter().map(|m| m.meta.modseq).max().unwrap_or(0);
        (self.msgs.len(), self.last_uid(), modseq)
    }

    /// ESEARCH REMOVEFROM for the context results that hold UIDs of `gone`, with the
    /// sequence numbers as they stand before the EXPUNGE responses that must follow
    /// (RFC 5267 4.3); the UIDs leave the results.
    pub fn contexts_expunged(&mut self, gone: &[u32]) -> Vec<ContextRemoval> {
        let mut out = Vec::new();
        if self.contexts.is_empty() {
            return out;
        }
        let gone: BTreeSet<u32> = gone.iter().copied().collect();
        for c in &mut self.contexts {
            let mut pairs = Vec::new();
            if c.sort.is_none() {
                let nums: Vec<u32> = c
                    .result
                    .iter()
                    .filter(|u| gone.contains(u))
                    .filter_map(|&u| {
                        if c.uid {
                            Some(u)
                        } else {
                            self.msgs
                                .binary_search_by_key(&u, |m| m.meta.uid)
                                .ok()
                                .map(|i| i as u32 + 1)
                        }
                    })
                    .collect();
                if !nums.is_empty() {
                    pairs.push((0, nums));
                }
            } else {
                // One pair per message, last position first, so each applies in turn.
                for (pos, &u) in c.result.iter().enumerate().rev() {
                    if !gone.contains(&u) {
                        continue;
                    }
                    let num = if c.uid {
                        Some(u)
                    } else {
                        self.msgs
                            .binary_search_by_key(&u, |m| m.meta.uid)
                            .ok()
                            .map(|i| i as u32 + 1)
                    };
                    if let Some(n) = num {
                        pairs.push((pos as u32 + 1, vec![n]));
                    }
                }
            }
            c.result.retain(|u| !gone.contains(u));
            if !pairs.is_empty() {
                out.push((c.tag.clone(), c.uid, pairs));
            }
        }
        out
    }

    /// Removes the expunged UIDs `gone` from the snapshot and says so: one VANISHED for a
    /// QRESYNC client, else one EXPUNGE each, highest sequence number first so each number is
    /// valid when it is sent. UIDs not in the snapshot are ignored.
    pub fn expunge(&mut self, gone: &[u32], qresync: bool) -> Vec<Untagged<'static>> {
        let mut present: Vec<u32> = gone
            .iter()
            .copied()
            .filter(|u| self.index_of_uid(*u).is_some())
            .collect();
        present.sort_unstable();
        present.dedup();
        for u in &present {
            self.pending_expunge.remove(u);
        }
        if present.is_empty() {
            return Vec::new();
        }
        if qresync {
            self.msgs
                .retain(|m| present.binary_search(&m.meta.uid).is_err());
            return vec![Untagged::Vanished {
                earlier: false,
                uids: present.into(),
            }];
        }
        let mut lines = Vec::new();
        for u in present.iter().rev() {
            if let Some(i) = self.index_of_uid(*u) {
                self.msgs.remove(i);
                lines.push(Untagged::Expunge(i as u32 + 1));
            }
        }
        lines
    }

    /// Announces every expunge held back so far (see [`Selected::expunge`]).
    pub fn expunge_pending(&mut self, qresync: bool) -> Vec<Untagged<'static>> {
        let gone: Vec<u32> = std::mem::take(&mut self.pending_expunge)
            .into_iter()
            .collect();
        self.expunge(&gone, qresync)
    }

    /// `* n FETCH (UID u FLAGS (...) [MODSEQ (m)])` for each UID of `uids` still in the
    /// snapshot, with the sequence numbers as they stand now. A message expunged by another
    /// session but not yet announced gets none: the client will be told it is gone instead.
    pub fn flag_fetches<'a>(
        &'a self,
        uids: impl IntoIterator<Item = u32> + 'a,
        condstore: bool,
    ) -> impl Iterator<Item = Untagged<'a>> + 'a {
        uids.into_iter()
            .filter(|uid| !self.pending_expunge.contains(uid))
            .filter_map(move |uid| {
                let i = self.index_of_uid(uid)?;
                let m = self.msgs.get(i)?;
                let mut items = vec![
                    FetchItem::Uid(uid),
                    FetchItem::Flags {
                        flags: &m.meta.flags,
                        recent: m.recent,
                    },
                ];
                if condstore {
                    items.push(FetchItem::ModSeq(m.meta.modseq));
                }
                Some(Untagged::Fetch {
                    seq: i as u32 + 1,
                    items,
                })
            })
    }
}
