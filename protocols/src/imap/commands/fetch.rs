//! FETCH and UID FETCH: every item of RFC 3501/9051 (FLAGS, UID, INTERNALDATE, RFC822.SIZE,
//! RFC822*, ENVELOPE, BODY, BODYSTRUCTURE, BODY[section]<partial>, BODY.PEEK, BINARY[],
//! BINARY.SIZE, MODSEQ), CHANGEDSINCE and VANISHED (RFC 7162). Rendering of the message parts is
//! the message module's; this file picks messages, sets \Seen, and writes the responses.

use crate::imap::format;
use crate::imap::message::{self, Partial, SectionSpec, SectionText};
use crate::imap::session::{Done, Reply, Session, FLUSH_AT};
use imap_codec::imap_types::command::FetchModifier;
use imap_codec::imap_types::fetch::{
    Macro, MacroOrMessageDataItemNames, MessageDataItemName, Section,
};
use imap_codec::imap_types::sequence::SequenceSet;
use std::sync::Arc;
use storage::{Flag, FlagMode, Flags, MessageMeta, UserStore};

/// Messages rendered per blocking call when bodies are read: bounds memory, lets output flow.
const BATCH: usize = 32;
/// Same, when only index data (flags, sizes, dates) is fetched.
const META_BATCH: usize = 1024;

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
    Section {
        spec: SectionSpec,
        label: String,
    },
    Binary {
        part: Vec<u32>,
        partial: Option<Partial>,
        label: String,
    },
    BinarySize {
        part: Vec<u32>,
    },
}

impl Item {
    fn needs_raw(&self) -> bool {
        matches!(
            self,
            Item::Section { .. } | Item::Binary { .. } | Item::BinarySize { .. }
        )
    }
    fn needs_facts(&self) -> bool {
        matches!(
            self,
            Item::Envelope
                | Item::Body { .. }
                | Item::Section { .. }
                | Item::Binary { .. }
                | Item::BinarySize { .. }
        )
    }
}

fn part_label(part: &[u32]) -> String {
    part.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

fn section_spec(section: Option<&Section<'_>>) -> (Vec<u32>, Option<SectionText>, String) {
    let names = |v: &[imap_codec::imap_types::core::AString<'_>]| -> (Vec<Vec<u8>>, String) {
        let raw: Vec<Vec<u8>> = v.iter().map(|n| n.as_ref().to_vec()).collect();
        let label = raw
            .iter()
            .map(|n| String::from_utf8_lossy(n).to_ascii_uppercase())
            .collect::<Vec<_>>()
            .join(" ");
        (raw, label)
    };
    let part_of = |p: Option<&imap_codec::imap_types::fetch::Part>| -> Vec<u32> {
        p.map(|p| p.0.as_ref().iter().map(|n| n.get()).collect())
            .unwrap_or_default()
    };
    let with_prefix = |part: &[u32], text: &str| {
        if part.is_empty() {
            text.to_string()
        } else if text.is_empty() {
            part_label(part)
        } else {
            format!("{}.{text}", part_label(part))
        }
    };
    match section {
        None => (Vec::new(), None, String::new()),
        Some(Section::Part(p)) => {
            let part = part_of(Some(p));
            let l = part_label(&part);
            (part, None, l)
        }
        Some(Section::Header(p)) => {
            let part = part_of(p.as_ref());
            let l = with_prefix(&part, "HEADER");
            (part, Some(SectionText::Header), l)
        }
        Some(Section::HeaderFields(p, v)) => {
            let part = part_of(p.as_ref());
            let (raw, names) = names(v.as_ref());
            let l = with_prefix(&part, &format!("HEADER.FIELDS ({names})"));
            (part, Some(SectionText::HeaderFields(raw)), l)
        }
        Some(Section::HeaderFieldsNot(p, v)) => {
            let part = part_of(p.as_ref());
            let (raw, names) = names(v.as_ref());
            let l = with_prefix(&part, &format!("HEADER.FIELDS.NOT ({names})"));
            (part, Some(SectionText::HeaderFieldsNot(raw)), l)
        }
        Some(Section::Text(p)) => {
            let part = part_of(p.as_ref());
            let l = with_prefix(&part, "TEXT");
            (part, Some(SectionText::Text), l)
        }
        Some(Section::Mime(p)) => {
            let part = part_of(Some(p));
            let l = with_prefix(&part, "MIME");
            (part, Some(SectionText::Mime), l)
        }
    }
}

/// Converts the parsed items; also says whether any of them sets \Seen.
fn items_of(names: MacroOrMessageDataItemNames<'static>) -> (Vec<Item>, bool) {
    let list = match names {
        MacroOrMessageDataItemNames::Macro(m) => match m {
            Macro::Fast => vec![
                MessageDataItemName::Flags,
                MessageDataItemName::InternalDate,
                MessageDataItemName::Rfc822Size,
            ],
            Macro::All => vec![
                MessageDataItemName::Flags,
                MessageDataItemName::InternalDate,
                MessageDataItemName::Rfc822Size,
                MessageDataItemName::Envelope,
            ],
            // FULL, and any macro a later imap-types adds (it is non_exhaustive).
            _ => vec![
                MessageDataItemName::Flags,
                MessageDataItemName::InternalDate,
                MessageDataItemName::Rfc822Size,
                MessageDataItemName::Envelope,
                MessageDataItemName::Body,
            ],
        },
        MacroOrMessageDataItemNames::MessageDataItemNames(v) => v,
    };
    let mut sets_seen = false;
    let mut out = Vec::new();
    for n in list {
        use MessageDataItemName as N;
        let item = match n {
            N::Flags => Item::Flags,
            N::Uid => Item::Uid,
            N::InternalDate => Item::InternalDate,
            N::Rfc822Size => Item::Size,
            N::Envelope => Item::Envelope,
            N::Body => Item::Body { extended: false },
            N::BodyStructure => Item::Body { extended: true },
            N::ModSeq => Item::ModSeq,
            N::Rfc822 => {
                sets_seen = true;
                Item::Section {
                    spec: SectionSpec::default(),
                    label: "RFC822".into(),
                }
            }
            N::Rfc822Header => Item::Section {
                spec: SectionSpec {
                    text: Some(SectionText::Header),
                    ..SectionSpec::default()
                },
                label: "RFC822.HEADER".into(),
            },
            N::Rfc822Text => {
                sets_seen = true;
                Item::Section {
                    spec: SectionSpec {
                        text: Some(SectionText::Text),
                        ..SectionSpec::default()
                    },
                    label: "RFC822.TEXT".into(),
                }
            }
            N::BodyExt {
                section,
                partial,
                peek,
            } => {
                sets_seen |= !peek;
                let (part, text, label) = section_spec(section.as_ref());
                let partial = partial.map(|(o, c)| Partial {
                    origin: u64::from(o),
                    count: u64::from(c.get()),
                });
                let label = match partial {
                    Some(p) => format!("BODY[{label}]<{}>", p.origin),
                    None => format!("BODY[{label}]"),
                };
                Item::Section {
                    spec: SectionSpec {
                        part,
                        text,
                        partial,
                    },
                    label,
                }
            }
            N::Binary {
                section,
                partial,
                peek,
            } => {
                sets_seen |= !peek;
                let part: Vec<u32> = section.iter().map(|n| n.get()).collect();
                let partial = partial.map(|(o, c)| Partial {
                    origin: u64::from(o),
                    count: u64::from(c.get()),
                });
                let label = match partial {
                    Some(p) => format!("BINARY[{}]<{}>", part_label(&part), p.origin),
                    None => format!("BINARY[{}]", part_label(&part)),
                };
                Item::Binary {
                    part,
                    partial,
                    label,
                }
            }
            N::BinarySize { section } => Item::BinarySize {
                part: section.iter().map(|n| n.get()).collect(),
            },
        };
        out.push(item);
    }
    (out, sets_seen)
}

pub(crate) async fn fetch(
    s: &mut Session,
    set: SequenceSet,
    names: MacroOrMessageDataItemNames<'static>,
    uid: bool,
    modifiers: Vec<FetchModifier>,
) -> Reply {
    let (mut items, sets_seen) = items_of(names);
    let mut changed_since = None;
    let mut vanished = false;
    for m in &modifiers {
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
    if changed_since.is_some() {
        s.enable_condstore();
        if !items.iter().any(|i| matches!(i, Item::ModSeq)) {
            items.push(Item::ModSeq);
        }
    }
    if items.iter().any(|i| matches!(i, Item::ModSeq)) {
        s.enable_condstore();
    }
    if uid && !items.iter().any(|i| matches!(i, Item::Uid)) {
        items.insert(0, Item::Uid);
    }
    let sel = s.selected()?;
    let all = sel.uids();
    let mut idx = format::resolve(&set, uid, &all, "FETCH").map_err(Done::Bad)?;
    if let Some(cs) = changed_since {
        idx.retain(|&i| sel.msgs[i].meta.modseq > cs);
        if vanished {
            let name = sel.name.clone();
            let gone = s
                .store_call(move |st| st.changes_since(&name, cs))
                .await?
                .expunged;
            let in_set: Vec<u32> = gone.into_iter().filter(|u| set_has_uid(&set, *u)).collect();
            if !in_set.is_empty() {
                s.untagged(&format!(
                    "VANISHED (EARLIER) {}",
                    format::compact_set(&in_set)
                ));
            }
        }
    }
    let sel = s.selected()?;
    // Implicit \Seen (RFC 9051 6.4.5), done before rendering so FLAGS shows it.
    let mut seen_now: Vec<u32> = Vec::new();
    if sets_seen && !sel.read_only {
        let unseen: Vec<u32> = idx
            .iter()
            .map(|&i| &sel.msgs[i].meta)
            .filter(|m| !m.flags.contains(&Flag::Seen))
            .map(|m| m.uid)
            .collect();
        if !unseen.is_empty() && s.check_writable().is_ok() {
            let name = sel.name.clone();
            let mut seen = Flags::new();
            seen.insert(Flag::Seen);
            let outcome = s
                .store_call(move |st| st.store_flags(&name, &unseen, FlagMode::Add, &seen, None))
                .await?;
            s.committed().await?;
            if let Some(sel) = s.sel.as_mut() {
                for (u, flags, modseq) in outcome.updated {
                    if let Some(i) = sel.index_of_uid(u) {
                        let meta = Arc::make_mut(&mut sel.msgs[i].meta);
                        meta.flags = flags;
                        meta.modseq = modseq;
                        seen_now.push(u);
                    }
                }
            }
        }
    }
    let store = s.user_store()?;
    let items = Arc::new(items);
    let batch = if items.iter().any(|i| i.needs_raw() || i.needs_facts()) {
        BATCH
    } else {
        META_BATCH
    };
    let mut unknown_cte = false;
    for chunk in idx.chunks(batch) {
        let sel = s.selected()?;
        let batch: Vec<(usize, Arc<MessageMeta>, bool, bool)> = chunk
            .iter()
            .map(|&i| {
                let m = &sel.msgs[i];
                (
                    i + 1,
                    m.meta.clone(),
                    m.recent,
                    seen_now.contains(&m.meta.uid),
                )
            })
            .collect();
        let st = store.clone();
        let it = items.clone();
        let (out, cte) = crate::blocking::run(move || render_batch(&st, &batch, &it))
            .await
            .map_err(|e| {
                tracing::error!("fetch failed: {e}");
                Done::No(crate::imap::session::SERVERBUG.into())
            })?;
        s.out.extend_from_slice(&out);
        unknown_cte |= cte;
        if s.out.len() >= FLUSH_AT && s.flush().await.is_err() {
            return Err(Done::Close);
        }
    }
    if unknown_cte {
        return Err(Done::No(
            "[UNKNOWN-CTE] Unknown Content-Transfer-Encoding in a requested part.".into(),
        ));
    }
    Ok(Done::Ok("Fetch completed.".into()))
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

/// Renders `* n FETCH (...)` for a batch of messages. A message that vanished from the store
/// since the snapshot (expunged by another session, not yet announced) is left out.
/// Also says whether a BINARY item met a Content-Transfer-Encoding it cannot decode: that
/// message's FETCH line is left out and the command ends `NO [UNKNOWN-CTE]` (RFC 3516 4.3).
fn render_batch(
    st: &UserStore,
    batch: &[(usize, Arc<MessageMeta>, bool, bool)],
    items: &[Item],
) -> (Vec<u8>, bool) {
    let needs_raw = items.iter().any(Item::needs_raw);
    let needs_facts = items.iter().any(Item::needs_facts);
    let mut out = Vec::new();
    let mut unknown_cte = false;
    'messages: for (seq, meta, recent, seen_now) in batch {
        let raw = if needs_raw {
            match st.read_message(&meta.object) {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::debug!("fetch: message uid {} unreadable: {e}", meta.uid);
                    continue;
                }
            }
        } else {
            None
        };
        let facts = if needs_facts {
            match st.facts(&meta.object) {
                Ok(f) => Some(f),
                Err(e) => {
                    tracing::debug!("fetch: facts of uid {} unreadable: {e}", meta.uid);
                    continue;
                }
            }
        } else {
            None
        };
        let raw = raw.as_deref().unwrap_or(&[]);
        let mut parts: Vec<Vec<u8>> = Vec::new();
        let mut has_flags = false;
        for item in items {
            let mut p = Vec::new();
            match item {
                Item::Flags => {
                    has_flags = true;
                    p.extend_from_slice(
                        format!("FLAGS {}", format::flag_list(&meta.flags, *recent)).as_bytes(),
                    );
                }
                Item::Uid => p.extend_from_slice(format!("UID {}", meta.uid).as_bytes()),
                Item::InternalDate => p.extend_from_slice(
                    format!(
                        "INTERNALDATE {}",
                        format::internal_date(meta.internal_date, meta.internal_date_tz_min)
                    )
                    .as_bytes(),
                ),
                Item::Size => p.extend_from_slice(format!("RFC822.SIZE {}", meta.size).as_bytes()),
                Item::ModSeq => p.extend_from_slice(format!("MODSEQ ({})", meta.modseq).as_bytes()),
                Item::Envelope => {
                    p.extend_from_slice(b"ENVELOPE ");
                    if let Some(f) = &facts {
                        message::render_envelope(&f.envelope, &mut p);
                    }
                }
                Item::Body { extended } => {
                    p.extend_from_slice(if *extended {
                        b"BODYSTRUCTURE "
                    } else {
                        b"BODY "
                    });
                    if let Some(f) = &facts {
                        message::render_body(&f.body, *extended, &mut p);
                    }
                }
                Item::Section { spec, label } => {
                    let mut data = match &facts {
                        Some(f) => message::extract(raw, f, spec),
                        None => Vec::new(),
                    };
                    // A literal may not carry NUL (RFC 9051 4.3); content stored from a
                    // BINARY APPEND can. As Dovecot, NUL goes out as 0x80; BINARY[] sends it.
                    for b in data.iter_mut().filter(|b| **b == 0) {
                        *b = 0x80;
                    }
                    p.extend_from_slice(label.as_bytes());
                    p.push(b' ');
                    format::literal(&mut p, &data);
                }
                Item::Binary {
                    part,
                    partial,
                    label,
                } => {
                    let Some(f) = &facts else { continue };
                    match message::decode_binary(raw, f, part, *partial) {
                        Ok(data) => {
                            p.extend_from_slice(label.as_bytes());
                            p.push(b' ');
                            // literal8 for binary content (RFC 3516).
                            if data.contains(&0) {
                                p.push(b'~');
                            }
                            format::literal(&mut p, &data);
                        }
                        Err(message::BinaryError::UnknownCte) => {
                            unknown_cte = true;
                            continue 'messages;
                        }
                    }
                }
                Item::BinarySize { part } => {
                    let Some(f) = &facts else { continue };
                    match message::binary_size(raw, f, part) {
                        Ok(n) => p.extend_from_slice(
                            format!("BINARY.SIZE[{}] {n}", part_label(part)).as_bytes(),
                        ),
                        Err(message::BinaryError::UnknownCte) => {
                            unknown_cte = true;
                            continue 'messages;
                        }
                    }
                }
            }
            if !p.is_empty() {
                parts.push(p);
            }
        }
        if *seen_now && !has_flags {
            parts.push(format!("FLAGS {}", format::flag_list(&meta.flags, *recent)).into_bytes());
        }
        out.extend_from_slice(format!("* {seq} FETCH (").as_bytes());
        out.extend_from_slice(&parts.join(&b' '));
        out.extend_from_slice(b")\r\n");
    }
    (out, unknown_cte)
}
