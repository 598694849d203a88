//! FETCH and UID FETCH: every item of RFC 3501/9051 (FLAGS, UID, INTERNALDATE, RFC822.SIZE,
//! RFC822*, ENVELOPE, BODY, BODYSTRUCTURE, BODY[section]<partial>, BODY.PEEK, BINARY[],
//! BINARY.SIZE, MODSEQ), CHANGEDSINCE and VANISHED (RFC 7162). Rendering of the message parts is
//! the message module's; this file picks messages, sets \Seen, and says what to answer.

use crate::imap::args;
use crate::imap::message::{self, Partial, SectionSpec, SectionText};
use crate::imap::parse::ExtraItem;
use crate::imap::reply::{server_bug, Done, Reply};
use crate::imap::response::{Code, Encoder, FetchItem, SectionName, Untagged};
use crate::imap::session::{Session, FLUSH_AT};
use crate::mail::Reader;
use imap_codec::imap_types::command::FetchModifier;
use imap_codec::imap_types::fetch::{
    Macro, MacroOrMessageDataItemNames, MessageDataItemName, Section,
};
use imap_codec::imap_types::sequence::SequenceSet;
use std::borrow::Cow;
use std::sync::Arc;
use storage::mime::{header_block, parse_envelope, Envelope, MessageFacts};
use storage::{Flag, FlagMode, Flags, MessageMeta};

/// Messages rendered per blocking call when bodies are read: bounds memory, lets output flow.
const BATCH: usize = 32;
/// Same, when only index data (flags, sizes, dates) is fetched.
const META_BATCH: usize = 1024;
/// Same, when header fields are fetched (from the header cache, a few KiB a message).
const HEADER_BATCH: usize = 256;

#[derive(Clone, Debug)]
enum Item {
    Flags,
    Uid,
    InternalDate,
    Size,
    Envelope,
    Body {
        extended: bool,
    },
    ModSeq,
    /// BODY[...] and the RFC822 items: what to extract, and what the answer calls it.
    Section {
        spec: SectionSpec,
        name: SectionName,
    },
    Binary {
        part: Vec<u32>,
        partial: Option<Partial>,
    },
    BinarySize {
        part: Vec<u32>,
    },
    /// OBJECTID (RFC 8474): the message's GUID; THREADID is not kept (NIL, as the RFC allows).
    EmailId,
    ThreadId,
    /// PREVIEW (RFC 8970).
    Preview,
    /// SAVEDATE (RFC 8514): from the index, never NIL here.
    SaveDate,
}

impl Item {
    /// The message's own header or header fields: answered from the header cache.
    fn header_only(&self) -> bool {
        match self {
            Item::Envelope => true,
            Item::Section { spec, .. } => message::is_top_header(spec),
            _ => false,
        }
    }
    fn needs_raw(&self) -> bool {
        match self {
            Item::Section { spec, .. } => !message::is_top_header(spec),
            _ => matches!(
                self,
                Item::Binary { .. } | Item::BinarySize { .. } | Item::Preview
            ),
        }
    }
    fn needs_facts(&self) -> bool {
        match self {
            Item::Section { spec, .. } => !message::is_top_header(spec),
            _ => matches!(
                self,
                Item::Body { .. } | Item::Preview | Item::Binary { .. } | Item::BinarySize { .. }
            ),
        }
    }
}

/// The part numbers and text specifier of a BODY[section].
fn section_spec(section: Option<&Section<'_>>) -> (Vec<u32>, Option<SectionText>) {
    let names = |v: &[imap_codec::imap_types::core::AString<'_>]| -> Vec<Vec<u8>> {
        v.iter().map(|n| n.as_ref().to_vec()).collect()
    };
    let part_of = |p: Option<&imap_codec::imap_types::fetch::Part>| -> Vec<u32> {
        p.map(|p| p.0.as_ref().iter().map(|n| n.get()).collect())
            .unwrap_or_default()
    };
    match section {
        None => (Vec::new(), None),
        Some(Section::Part(p)) => (part_of(Some(p)), None),
        Some(Section::Header(p)) => (part_of(p.as_ref()), Some(SectionText::Header)),
        Some(Section::HeaderFields(p, v)) => (
            part_of(p.as_ref()),
            Some(SectionText::HeaderFields(names(v.as_ref()))),
        ),
        Some(Section::HeaderFieldsNot(p, v)) => (
            part_of(p.as_ref()),
            Some(SectionText::HeaderFieldsNot(names(v.as_ref()))),
        ),
        Some(Section::Text(p)) => (part_of(p.as_ref()), Some(SectionText::Text)),
        Some(Section::Mime(p)) => (part_of(Some(p)), Some(SectionText::Mime)),
    }
}

/// The items a macro stands for.
fn macro_items(m: Macro) -> Vec<MessageDataItemName<'static>> {
    use MessageDataItemName as N;
    match m {
        Macro::Fast => vec![N::Flags, N::InternalDate, N::Rfc822Size],
        Macro::All => vec![N::Flags, N::InternalDate, N::Rfc822Size, N::Envelope],
        // FULL, and any macro a later imap-types adds (it is non_exhaustive).
        _ => vec![
            N::Flags,
            N::InternalDate,
            N::Rfc822Size,
            N::Envelope,
            N::Body,
        ],
    }
}

/// Converts the parsed items; also says whether any of them sets \Seen.
fn items_of(names: MacroOrMessageDataItemNames<'static>) -> (Vec<Item>, bool) {
    let list = match names {
        MacroOrMessageDataItemNames::Macro(m) => macro_items(m),
        MacroOrMessageDataItemNames::MessageDataItemNames(v) => v,
    };
    let mut sets_seen = false;
    let items = list
        .into_iter()
        .map(|n| {
            let (item, seen) = item_of(n);
            sets_seen |= seen;
            item
        })
        .collect();
    (items, sets_seen)
}

/// One parsed item, and whether it sets \Seen (the non-PEEK forms of content items).
fn item_of(n: MessageDataItemName<'static>) -> (Item, bool) {
    use MessageDataItemName as N;
    let whole = |text, name| Item::Section {
        spec: SectionSpec {
            text,
            ..SectionSpec::default()
        },
        name,
    };
    let partial_of = |p: Option<(u32, std::num::NonZeroU32)>| {
        p.map(|(o, c)| Partial {
            origin: u64::from(o),
            count: u64::from(c.get()),
        })
    };
    let item = match n {
        N::Flags => Item::Flags,
        N::Uid => Item::Uid,
        N::InternalDate => Item::InternalDate,
        N::Rfc822Size => Item::Size,
        N::Envelope => Item::Envelope,
        N::Body => Item::Body { extended: false },
        N::BodyStructure => Item::Body { extended: true },
        N::ModSeq => Item::ModSeq,
        N::Rfc822 => return (whole(None, SectionName::Rfc822), true),
        N::Rfc822Header => whole(Some(SectionText::Header), SectionName::Rfc822Header),
        N::Rfc822Text => {
            return (
                whole(Some(SectionText::Text), SectionName::Rfc822Text),
                true,
            )
        }
        N::BodyExt {
            section,
            partial,
            peek,
        } => {
            let (part, text) = section_spec(section.as_ref());
            let partial = partial_of(partial);
            let name = SectionName::Body {
                part: part.clone(),
                text: text.clone(),
                origin: partial.map(|p| p.origin),
            };
            let spec = SectionSpec {
                part,
                text,
                partial,
            };
            return (Item::Section { spec, name }, !peek);
        }
        N::Binary {
            section,
            partial,
            peek,
        } => {
            let part = section.iter().map(|n| n.get()).collect();
            let partial = partial_of(partial);
            return (Item::Binary { part, partial }, !peek);
        }
        N::BinarySize { section } => Item::BinarySize {
            part: section.iter().map(|n| n.get()).collect(),
        },
    };
    (item, false)
}

/// FETCH's modifiers: CHANGEDSINCE's modseq, and whether VANISHED was asked (which needs UID
/// FETCH, CHANGEDSINCE and QRESYNC enabled).
fn modifiers(
    s: &Session,
    modifiers: &[FetchModifier],
    uid: bool,
) -> Result<(Option<u64>, bool), Done> {
    let mut changed_since = None;
    let mut vanished = false;
    for m in modifiers {
        match m {
            FetchModifier::ChangedSince(v) => changed_since = Some(v.get()),
            FetchModifier::Vanished => vanished = true,
        }
    }
    if vanished && (!uid || !s.enabled.qresync || changed_since.is_none()) {
        return Err(Done::Bad(
            "VANISHED requires UID FETCH with CHANGEDSINCE after ENABLE QRESYNC".into(),
        ));
    }
    Ok((changed_since, vanished))
}

pub(crate) async fn fetch(
    s: &mut Session,
    set: SequenceSet,
    names: MacroOrMessageDataItemNames<'static>,
    uid: bool,
    modifiers_given: Vec<FetchModifier>,
) -> Reply {
    fetch_with(s, set, names, uid, modifiers_given, &[], false).await
}

/// FETCH with the items imap-codec does not parse (`extra`); `hide_uid`: UID stood in for
/// an item list that held only those, so it is not answered unless this is UID FETCH.
pub(crate) async fn fetch_with(
    s: &mut Session,
    set: SequenceSet,
    names: MacroOrMessageDataItemNames<'static>,
    uid: bool,
    modifiers_given: Vec<FetchModifier>,
    extra: &[ExtraItem],
    hide_uid: bool,
) -> Reply {
    let (mut items, sets_seen) = items_of(names);
    if hide_uid && !uid {
        items.retain(|i| !matches!(i, Item::Uid));
    }
    items.extend(extra.iter().map(|x| match x {
        ExtraItem::EmailId => Item::EmailId,
        ExtraItem::ThreadId => Item::ThreadId,
        ExtraItem::Preview => Item::Preview,
        ExtraItem::SaveDate => Item::SaveDate,
    }));
    let (changed_since, vanished) = modifiers(s, &modifiers_given, uid)?;
    // CHANGEDSINCE implies MODSEQ; either enables CONDSTORE (RFC 7162 3.1).
    if changed_since.is_some() && !items.iter().any(|i| matches!(i, Item::ModSeq)) {
        items.push(Item::ModSeq);
    }
    if items.iter().any(|i| matches!(i, Item::ModSeq)) {
        s.enable_condstore();
    }
    if uid && !items.iter().any(|i| matches!(i, Item::Uid)) {
        items.insert(0, Item::Uid);
    }
    let sel = s.selected()?;
    let all = sel.uids();
    let mut idx = args::resolve(&set, uid, &all, "FETCH").map_err(|e| Done::Bad(e.into()))?;
    if let Some(cs) = changed_since {
        idx.retain(|&i| sel.msgs.get(i).is_some_and(|m| m.meta.modseq > cs));
        if vanished {
            send_vanished_earlier(s, &set, cs).await?;
        }
    }
    let seen_now = if sets_seen {
        set_seen(s, &idx).await?
    } else {
        Vec::new()
    };
    send_fetches(s, &idx, items, &seen_now).await
}

/// VANISHED (EARLIER) for the UIDs of `set` expunged since modseq `since` (RFC 7162 3.2.6).
async fn send_vanished_earlier(s: &mut Session, set: &SequenceSet, since: u64) -> Result<(), Done> {
    let name = s.selected()?.name.clone();
    let gone = s
        .store_call(move |st| st.changes_since(&name, since))
        .await?
        .expunged;
    let in_set: Vec<u32> = gone.into_iter().filter(|u| set_has_uid(set, *u)).collect();
    if !in_set.is_empty() {
        s.send(&Untagged::Vanished {
            earlier: true,
            uids: in_set.into(),
        });
    }
    Ok(())
}

/// Implicit \Seen (RFC 9051 6.4.5) for the messages at `idx`, done before rendering so FLAGS
/// shows it; only when the mailbox is writable and the write gate open. Returns the UIDs that
/// were set now (their FETCH lines carry FLAGS even when not asked for).
async fn set_seen(s: &mut Session, idx: &[usize]) -> Result<Vec<u32>, Done> {
    let sel = s.selected()?;
    // In another user's mailbox \Seen needs the `s` right (RFC 4314 4).
    if sel.read_only || s.shared_rights().is_some_and(|r| !r.has('s')) {
        return Ok(Vec::new());
    }
    let unseen: Vec<u32> = idx
        .iter()
        .filter_map(|&i| sel.msgs.get(i))
        .map(|m| &m.meta)
        .filter(|m| !m.flags.contains(&Flag::Seen))
        .map(|m| m.uid)
        .collect();
    if unseen.is_empty() || !s.writable() {
        return Ok(Vec::new());
    }
    let name = sel.name.clone();
    let mut seen = Flags::new();
    seen.insert(Flag::Seen);
    let outcome = s
        .store_write(move |st| st.store_flags(&name, &unseen, FlagMode::Add, &seen, None))
        .await?;
    s.announce_keywords(outcome.updated.iter().map(|(_, f, _)| f));
    let mut seen_now = Vec::new();
    if let Some(sel) = s.sel.as_mut() {
        for (u, flags, modseq) in outcome.updated {
            if let Some(m) = sel.index_of_uid(u).and_then(|i| sel.msgs.get_mut(i)) {
                let meta = Arc::make_mut(&mut m.meta);
                meta.flags = flags;
                meta.modseq = modseq;
                seen_now.push(u);
            }
        }
    }
    Ok(seen_now)
}

/// One message to render: its sequence number, entry, \Recent, and whether \Seen was set now.
struct ToRender {
    seq: u32,
    meta: Arc<MessageMeta>,
    recent: bool,
    seen_now: bool,
}

/// Renders the FETCH responses in batches on the blocking pool, flushing as output grows.
async fn send_fetches(s: &mut Session, idx: &[usize], items: Vec<Item>, seen_now: &[u32]) -> Reply {
    let store = s.user_store()?;
    let items = Arc::new(items);
    let batch = if items.iter().any(|i| i.needs_raw() || i.needs_facts()) {
        BATCH
    } else if items.iter().any(Item::header_only) {
        HEADER_BATCH
    } else {
        META_BATCH
    };
    let enc = s.encoder();
    let mut unknown_cte = false;
    for chunk in idx.chunks(batch) {
        let sel = s.selected()?;
        let batch: Vec<ToRender> = chunk
            .iter()
            .filter_map(|&i| {
                let m = sel.msgs.get(i)?;
                Some(ToRender {
                    seq: i as u32 + 1,
                    meta: m.meta.clone(),
                    recent: m.recent,
                    seen_now: seen_now.contains(&m.meta.uid),
                })
            })
            .collect();
        let st = store.clone();
        let it = items.clone();
        let (out, cte) = crate::blocking::run(move || render_batch(&st, &batch, &it, enc))
            .await
            .map_err(|e| {
                tracing::error!("fetch failed: {e}");
                server_bug()
            })?;
        s.out.extend_from_slice(&out);
        unknown_cte |= cte;
        if s.out.len() >= FLUSH_AT && s.flush().await.is_err() {
            return Err(Done::Close);
        }
    }
    if unknown_cte {
        return Err(Done::no(
            Code::UnknownCte,
            "Unknown Content-Transfer-Encoding in a requested part.",
        ));
    }
    Ok(Done::Ok("Fetch completed.".into()))
}

/// RFC 8474 object ids are 1..255 characters of base64url's alphabet: a letter naming the
/// kind, then the GUID in hex.
pub(crate) fn email_id(guid: &storage::Guid) -> String {
    format!("M{}", guid.to_hex())
}

fn set_has_uid(set: &SequenceSet, uid: u32) -> bool {
    use imap_codec::imap_types::sequence::{SeqOrUid, Sequence};
    set.0.as_ref().iter().any(|s| match s {
        Sequence::Single(SeqOrUid::Value(v)) => v.get() == uid,
        Sequence::Single(SeqOrUid::Asterisk) => false,
        Sequence::Range(a, b) => {
            let v = |x: &SeqOrUid| match x {
                SeqOrUid::Value(v) => v.get(),
                SeqOrUid::Asterisk => u32::MAX,
            };
            let (lo, hi) = (v(a).min(v(b)), v(a).max(v(b)));
            (lo..=hi).contains(&uid)
        }
    })
}

/// A BINARY item met a Content-Transfer-Encoding it cannot decode.
struct UnknownCte;

/// Encodes `* n FETCH (...)` for a batch of messages. A message that vanished from the store
/// since the snapshot (expunged by another session, not yet announced) is left out.
/// Also says whether a BINARY item met a Content-Transfer-Encoding it cannot decode: that
/// message's FETCH line is left out and the command ends `NO [UNKNOWN-CTE]` (RFC 3516 4.3).
fn render_batch(st: &Reader, batch: &[ToRender], items: &[Item], enc: Encoder) -> (Vec<u8>, bool) {
    let needs = Needs {
        raw: items.iter().any(Item::needs_raw),
        facts: items.iter().any(Item::needs_facts),
        header: items.iter().any(Item::header_only),
        envelope: items.iter().any(|i| matches!(i, Item::Envelope)),
    };
    let mut out = Vec::new();
    let mut unknown_cte = false;
    for m in batch {
        let Some(loaded) = load(st, &m.meta, needs) else {
            continue;
        };
        match fetch_items(m, items, &loaded) {
            Ok(fetched) => enc.untagged(
                &mut out,
                &Untagged::Fetch {
                    seq: m.seq,
                    items: fetched,
                },
            ),
            Err(UnknownCte) => unknown_cte = true,
        }
    }
    (out, unknown_cte)
}

/// What the items of a FETCH need of each message.
#[derive(Clone, Copy)]
struct Needs {
    raw: bool,
    facts: bool,
    header: bool,
    envelope: bool,
}

/// What was read of one message.
struct Loaded {
    /// Empty unless an item needs the raw message.
    raw: Vec<u8>,
    facts: Option<Arc<MessageFacts>>,
    /// The header block, from the cache, when header items are asked and the raw message is
    /// not read anyway (then it is cut from that).
    header: Option<Vec<u8>>,
    /// The envelope made from the header block, once per message.
    envelope: Option<Envelope>,
}

impl Loaded {
    fn header(&self) -> &[u8] {
        match &self.header {
            Some(h) => h,
            None => header_block(&self.raw),
        }
    }
}

/// The message's raw bytes, parsed facts and header block, each read only when an item needs
/// it. None when the message cannot be read (it vanished since the snapshot).
fn load(st: &Reader, meta: &MessageMeta, needs: Needs) -> Option<Loaded> {
    let unreadable = |what: &str, e: storage::StoreError| {
        tracing::debug!("fetch: {what} of uid {} unreadable: {e}", meta.uid)
    };
    let raw = if needs.raw {
        st.read_message(&meta.object)
            .map_err(|e| unreadable("message", e))
            .ok()?
    } else {
        Vec::new()
    };
    let facts = if needs.facts {
        Some(
            st.facts(&meta.object)
                .map_err(|e| unreadable("facts", e))
                .ok()?,
        )
    } else {
        None
    };
    let header = if needs.header && !needs.raw {
        Some(
            st.header(&meta.object)
                .map_err(|e| unreadable("header", e))
                .ok()?,
        )
    } else {
        None
    };
    let mut loaded = Loaded {
        raw,
        facts,
        header,
        envelope: None,
    };
    if needs.envelope {
        loaded.envelope = Some(parse_envelope(loaded.header()));
    }
    Some(loaded)
}

/// What one message's FETCH response holds: the items asked for in order, and FLAGS when the
/// fetch itself set \Seen (RFC 9051 6.4.5).
fn fetch_items<'a>(
    m: &'a ToRender,
    items: &'a [Item],
    loaded: &'a Loaded,
) -> Result<Vec<FetchItem<'a>>, UnknownCte> {
    let meta = &m.meta;
    let raw = &loaded.raw[..];
    let facts = loaded.facts.as_deref();
    let flags = || FetchItem::Flags {
        flags: &meta.flags,
        recent: m.recent,
    };
    let mut out = Vec::with_capacity(items.len() + 1);
    for item in items {
        let fetched = match item {
            Item::Flags => flags(),
            Item::Uid => FetchItem::Uid(meta.uid),
            Item::InternalDate => FetchItem::InternalDate {
                secs: meta.internal_date,
                tz_min: meta.internal_date_tz_min,
            },
            Item::Size => FetchItem::Rfc822Size(meta.size),
            Item::ModSeq => FetchItem::ModSeq(meta.modseq),
            // Items that need the facts are left out if they could not be read; `load` makes
            // that not happen.
            Item::Envelope => match &loaded.envelope {
                Some(e) => FetchItem::Envelope(message::envelope(e)),
                None => continue,
            },
            Item::Body { extended } => match facts {
                Some(f) if *extended => FetchItem::BodyStructure(message::body(&f.body, true)),
                Some(f) => FetchItem::Body(message::body(&f.body, false)),
                None => continue,
            },
            Item::Section { spec, name } => FetchItem::Section {
                name,
                data: match facts {
                    _ if message::is_top_header(spec) => {
                        message::extract_header(loaded.header(), spec)
                    }
                    Some(f) => message::extract_ref(raw, f, spec),
                    None => Cow::Borrowed(&[][..]),
                },
            },
            Item::Binary { part, partial } => {
                let Some(f) = facts else { continue };
                let data =
                    message::decode_binary(raw, f, part, *partial).map_err(|_| UnknownCte)?;
                FetchItem::Binary {
                    part,
                    origin: partial.map(|p| p.origin),
                    data: data.into(),
                }
            }
            Item::BinarySize { part } => {
                let Some(f) = facts else { continue };
                let size = message::binary_size(raw, f, part).map_err(|_| UnknownCte)?;
                FetchItem::BinarySize { part, size }
            }
            Item::EmailId => FetchItem::EmailId(email_id(&meta.guid)),
            Item::ThreadId => FetchItem::ThreadId,
            Item::SaveDate => {
                FetchItem::SaveDate(i64::try_from(meta.saved_ms / 1000).unwrap_or(i64::MAX))
            }
            Item::Preview => FetchItem::Preview(match facts {
                Some(f) => message::preview(raw, f),
                None => String::new(),
            }),
        };
        out.push(fetched);
    }
    if m.seen_now && !items.iter().any(|i| matches!(i, Item::Flags)) {
        out.push(flags());
    }
    Ok(out)
}
