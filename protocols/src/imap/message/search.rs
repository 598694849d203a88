//! SEARCH evaluation (RFC 3501 6.4.4 / RFC 9051 6.4.4, MODSEQ from RFC 7162): one message
//! against one key. Flag, size, date and set keys use only the message's metadata; header and
//! body keys load the message content lazily, once per message, through [`MessageContent`]:
//! header keys only the header block (the store's header cache), body keys the whole message.
//!
//! Strings match as case-insensitive substrings of decoded text: header values with RFC 2047
//! words decoded, address headers as "Name <mailbox@host>" (groups as "group: ...;"), body text
//! with transfer encodings and charsets removed, all as UTF-8.

use super::text::{body_text, decode_header_value, header_text};
use chrono::{DateTime, NaiveDate};
use std::cell::OnceCell;
use std::sync::Arc;
use storage::mime::{
    fields, header_block, parse_address_list, parse_envelope, parse_facts, unfold, Address,
    Envelope, MessageFacts, MISSING_DOMAIN, MISSING_MAILBOX,
};
use storage::{Flag, MessageMeta};

/// One end of a sequence-set range: a number or `*` (the largest number in use).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqBound {
    Num(u32),
    Star,
}

/// A sequence set or UID set: ranges, each inclusive and in either order.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SequenceSet(pub Vec<(SeqBound, SeqBound)>);

impl SequenceSet {
    /// Whether `n` is in the set when `*` stands for `max`. With an empty mailbox (`max` 0)
    /// `*` matches nothing.
    pub fn contains(&self, n: u32, max: u32) -> bool {
        let val = |b: SeqBound| match b {
            SeqBound::Num(v) => v,
            SeqBound::Star => max,
        };
        self.0.iter().any(|&(a, b)| {
            let (a, b) = (val(a), val(b));
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            lo <= n && n <= hi && n != 0
        })
    }
}

/// A SEARCH criterion. Several keys side by side are `And`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SearchKey {
    All,
    And(Vec<SearchKey>),
    Answered,
    Bcc(String),
    Before(NaiveDate),
    Body(String),
    Cc(String),
    Deleted,
    Draft,
    Flagged,
    From(String),
    Header(String, String),
    Keyword(String),
    Larger(u64),
    /// MODSEQ (RFC 7162): messages whose modseq is at least this.
    ModSeq(u64),
    New,
    Not(Box<SearchKey>),
    Old,
    On(NaiveDate),
    Or(Box<SearchKey>, Box<SearchKey>),
    Recent,
    /// SAVEDATE (RFC 8514): the day the message entered the mailbox, in UTC.
    SavedBefore(NaiveDate),
    SavedOn(NaiveDate),
    SavedSince(NaiveDate),
    Seen,
    SentBefore(NaiveDate),
    SentOn(NaiveDate),
    SentSince(NaiveDate),
    /// A sequence-number set.
    SequenceSet(SequenceSet),
    Since(NaiveDate),
    Smaller(u64),
    Subject(String),
    Text(String),
    To(String),
    Uid(SequenceSet),
    Unanswered,
    Undeleted,
    Undraft,
    Unflagged,
    Unkeyword(String),
    Unseen,
}

impl SearchKey {
    /// Whether evaluating this key may need the message's header or body.
    pub fn needs_content(&self) -> bool {
        match self {
            SearchKey::Bcc(_)
            | SearchKey::Body(_)
            | SearchKey::Cc(_)
            | SearchKey::From(_)
            | SearchKey::Header(..)
            | SearchKey::SentBefore(_)
            | SearchKey::SentOn(_)
            | SearchKey::SentSince(_)
            | SearchKey::Subject(_)
            | SearchKey::Text(_)
            | SearchKey::To(_) => true,
            SearchKey::And(keys) => keys.iter().any(SearchKey::needs_content),
            SearchKey::Not(k) => k.needs_content(),
            SearchKey::Or(a, b) => a.needs_content() || b.needs_content(),
            _ => false,
        }
    }
}

/// Access to a message's content, loaded only when a key needs it.
pub trait MessageContent {
    /// The message's facts; None when the message cannot be read (it then matches no
    /// content key).
    fn facts(&self) -> Option<&MessageFacts>;
    fn raw(&self) -> Option<&[u8]>;
    /// The top-level header block (blank line included): from the store's header cache when
    /// there is one, so header keys, SORT and THREAD read no message.
    fn header(&self) -> Option<&[u8]>;
    /// The ENVELOPE, made from [`Self::header`] (the same as the facts' envelope).
    fn envelope(&self) -> Option<&Envelope>;
}

/// Loads a message's header block (the store's header cache).
pub type HeaderLoader = Box<dyn Fn() -> Option<Vec<u8>> + Send>;

/// A [`MessageContent`] that calls its loaders at most once each, on first use. When facts
/// cannot be loaded but the raw message can, they are parsed from it; without a header loader
/// (or when it fails) the header is cut from the raw message.
pub struct LazyContent<R, F>
where
    R: Fn() -> Option<Vec<u8>>,
    F: Fn() -> Option<Arc<MessageFacts>>,
{
    load_raw: R,
    load_facts: F,
    load_header: Option<HeaderLoader>,
    raw: OnceCell<Option<Vec<u8>>>,
    facts: OnceCell<Option<Arc<MessageFacts>>>,
    header: OnceCell<Option<Vec<u8>>>,
    envelope: OnceCell<Option<Envelope>>,
}

impl<R, F> LazyContent<R, F>
where
    R: Fn() -> Option<Vec<u8>>,
    F: Fn() -> Option<Arc<MessageFacts>>,
{
    pub fn new(load_raw: R, load_facts: F) -> Self {
        LazyContent {
            load_raw,
            load_facts,
            load_header: None,
            raw: OnceCell::new(),
            facts: OnceCell::new(),
            header: OnceCell::new(),
            envelope: OnceCell::new(),
        }
    }

    /// Where the header block comes from when a key needs only the header.
    pub fn with_header(mut self, load_header: HeaderLoader) -> Self {
        self.load_header = Some(load_header);
        self
    }

    /// Whether anything was loaded (for tests and metrics: a flags-only search loads nothing).
    pub fn loaded(&self) -> bool {
        self.raw.get().is_some() || self.facts.get().is_some() || self.header.get().is_some()
    }

    /// Whether the raw message was read (for tests: a header key must not read it).
    pub fn raw_loaded(&self) -> bool {
        self.raw.get().is_some()
    }
}

impl<R, F> MessageContent for LazyContent<R, F>
where
    R: Fn() -> Option<Vec<u8>>,
    F: Fn() -> Option<Arc<MessageFacts>>,
{
    fn facts(&self) -> Option<&MessageFacts> {
        self.facts
            .get_or_init(|| {
                (self.load_facts)().or_else(|| self.raw().map(|r| Arc::new(parse_facts(r))))
            })
            .as_deref()
    }

    fn raw(&self) -> Option<&[u8]> {
        self.raw.get_or_init(|| (self.load_raw)()).as_deref()
    }

    fn header(&self) -> Option<&[u8]> {
        self.header
            .get_or_init(|| {
                let cached = match (&self.load_header, self.raw.get()) {
                    // Already read whole: cut it out rather than ask the cache.
                    (_, Some(_)) | (None, _) => None,
                    (Some(load), None) => load(),
                };
                cached.or_else(|| self.raw().map(|r| header_block(r).to_vec()))
            })
            .as_deref()
    }

    fn envelope(&self) -> Option<&Envelope> {
        self.envelope
            .get_or_init(|| self.header().map(parse_envelope))
            .as_ref()
    }
}

/// What SEARCH knows of one message.
pub struct MessageCtx<'a> {
    pub seq: u32,
    pub meta: &'a MessageMeta,
    /// \Recent in this session.
    pub recent: bool,
    /// What `*` stands for in sequence sets and UID sets.
    pub max_seq: u32,
    pub max_uid: u32,
    content: &'a dyn MessageContent,
    /// Decoded (lower-cased) searchable texts, made once per message however many keys use them.
    headers: OnceCell<Vec<(String, String)>>,
    header_all: OnceCell<String>,
    body: OnceCell<String>,
}

impl<'a> MessageCtx<'a> {
    pub fn new(
        seq: u32,
        meta: &'a MessageMeta,
        recent: bool,
        max_seq: u32,
        max_uid: u32,
        content: &'a dyn MessageContent,
    ) -> Self {
        MessageCtx {
            seq,
            meta,
            recent,
            max_seq,
            max_uid,
            content,
            headers: OnceCell::new(),
            header_all: OnceCell::new(),
            body: OnceCell::new(),
        }
    }

    fn header_block(&self) -> Option<&[u8]> {
        self.content.header()
    }

    /// (lower-cased name, raw value) of every top-level header field.
    fn headers(&self) -> &[(String, String)] {
        self.headers.get_or_init(|| {
            let Some(h) = self.header_block() else {
                return Vec::new();
            };
            fields(h)
                .map(|f| {
                    (
                        String::from_utf8_lossy(f.name).to_ascii_lowercase(),
                        String::from_utf8_lossy(f.value).into_owned(),
                    )
                })
                .collect()
        })
    }

    fn header_values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s str> + 's {
        let name = name.to_ascii_lowercase();
        self.headers()
            .iter()
            .filter(move |(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    fn header_all(&self) -> &str {
        self.header_all.get_or_init(|| {
            let mut s = String::new();
            if let Some(h) = self.header_block() {
                header_text(h, &mut s);
            }
            fold_case(&s)
        })
    }

    fn body(&self) -> &str {
        self.body
            .get_or_init(|| match (self.content.raw(), self.content.facts()) {
                (Some(raw), Some(facts)) => fold_case(&body_text(raw, facts)),
                _ => String::new(),
            })
    }

    /// HEADER name string: some field `name` whose decoded value contains `needle`; an empty
    /// needle asks only that the field exists.
    fn header_contains(&self, name: &str, needle: &str) -> bool {
        let needle = fold_case(needle);
        self.header_values(name).any(|v| {
            needle.is_empty() || fold_case(&decode_header_value(v.as_bytes())).contains(&needle)
        })
    }

    /// FROM/TO/CC/BCC: matched against "Name <mailbox@host>" of each address.
    fn address_contains(&self, name: &str, needle: &str) -> bool {
        let needle = fold_case(needle);
        self.header_values(name).any(|v| {
            needle.is_empty()
                || fold_case(&address_text(&parse_address_list(&unfold(v.as_bytes()))))
                    .contains(&needle)
        })
    }

    /// The Date header's calendar day in the sender's zone; the internal date's when the header
    /// is missing or unparsable.
    fn sent_day(&self) -> Option<NaiveDate> {
        let date = self
            .header_values("date")
            .next()
            .map(|v| mail_parser::DateTime::parse_rfc822(&decode_header_value(v.as_bytes())));
        match date.flatten() {
            Some(d) if d.is_valid() => {
                NaiveDate::from_ymd_opt(d.year as i32, d.month as u32, d.day as u32)
            }
            _ => internal_day(self.meta),
        }
    }
}

/// Unicode lower-casing, the case-insensitive comparison SEARCH asks for.
fn fold_case(s: &str) -> String {
    s.to_lowercase()
}

/// The internal date's calendar day in its own zone.
fn internal_day(meta: &MessageMeta) -> Option<NaiveDate> {
    let local = meta
        .internal_date
        .checked_add(i64::from(meta.internal_date_tz_min) * 60)?;
    DateTime::from_timestamp(local, 0).map(|d| d.date_naive())
}

/// The day (UTC) the message was saved into its mailbox.
fn saved_day(meta: &MessageMeta) -> Option<NaiveDate> {
    let secs = i64::try_from(meta.saved_ms / 1000).ok()?;
    DateTime::from_timestamp(secs, 0).map(|d| d.date_naive())
}

fn address_text(list: &[Address]) -> String {
    let mut s = String::new();
    for a in list {
        if !s.is_empty() {
            s.push_str(", ");
        }
        let mailbox = a.mailbox.as_deref().map(String::from_utf8_lossy);
        match (&mailbox, &a.host) {
            (Some(group), None) => {
                s.push_str(group);
                s.push(':');
            }
            (None, _) => s.push(';'),
            (Some(mb), Some(host)) => {
                if let Some(name) = &a.name {
                    s.push_str(&decode_header_value(name));
                    s.push(' ');
                }
                s.push('<');
                if mb.as_bytes() != MISSING_MAILBOX {
                    s.push_str(mb);
                }
                if !host.is_empty() && host.as_slice() != MISSING_DOMAIN {
                    s.push('@');
                    s.push_str(&String::from_utf8_lossy(host));
                }
                s.push('>');
            }
        }
    }
    s
}

fn has_flag(meta: &MessageMeta, flag: &Flag) -> bool {
    meta.flags.contains(flag)
}

fn has_keyword(meta: &MessageMeta, kw: &str) -> bool {
    match Flag::from_imap(kw) {
        Flag::Keyword(k) => meta
            .flags
            .iter()
            .any(|f| matches!(f, Flag::Keyword(x) if x.eq_ignore_ascii_case(&k))),
        system => meta.flags.contains(&system),
    }
}

/// Whether the message matches the key.
pub fn matches(key: &SearchKey, m: &MessageCtx<'_>) -> bool {
    use SearchKey as K;
    let meta = m.meta;
    match key {
        K::All => true,
        K::And(keys) => {
            // Metadata keys first, so a failing flag test spares the message's content.
            keys.iter()
                .filter(|k| !k.needs_content())
                .all(|k| matches(k, m))
                && keys
                    .iter()
                    .filter(|k| k.needs_content())
                    .all(|k| matches(k, m))
        }
        K::Or(a, b) => {
            let (first, second) = if a.needs_content() && !b.needs_content() {
                (b, a)
            } else {
                (a, b)
            };
            matches(first, m) || matches(second, m)
        }
        K::Not(k) => !matches(k, m),
        K::Answered => has_flag(meta, &Flag::Answered),
        K::Deleted => has_flag(meta, &Flag::Deleted),
        K::Draft => has_flag(meta, &Flag::Draft),
        K::Flagged => has_flag(meta, &Flag::Flagged),
        K::Seen => has_flag(meta, &Flag::Seen),
        K::Unanswered => !has_flag(meta, &Flag::Answered),
        K::Undeleted => !has_flag(meta, &Flag::Deleted),
        K::Undraft => !has_flag(meta, &Flag::Draft),
        K::Unflagged => !has_flag(meta, &Flag::Flagged),
        K::Unseen => !has_flag(meta, &Flag::Seen),
        K::Keyword(kw) => has_keyword(meta, kw),
        K::Unkeyword(kw) => !has_keyword(meta, kw),
        K::Recent => m.recent,
        K::New => m.recent && !has_flag(meta, &Flag::Seen),
        K::Old => !m.recent,
        K::Larger(n) => meta.size > *n,
        K::Smaller(n) => meta.size < *n,
        K::ModSeq(n) => meta.modseq >= *n,
        K::Uid(set) => set.contains(meta.uid, m.max_uid),
        K::SequenceSet(set) => set.contains(m.seq, m.max_seq),
        K::Before(d) => internal_day(meta).is_some_and(|x| x < *d),
        K::On(d) => internal_day(meta).is_some_and(|x| x == *d),
        K::Since(d) => internal_day(meta).is_some_and(|x| x >= *d),
        K::SavedBefore(d) => saved_day(meta).is_some_and(|x| x < *d),
        K::SavedOn(d) => saved_day(meta).is_some_and(|x| x == *d),
        K::SavedSince(d) => saved_day(meta).is_some_and(|x| x >= *d),
        K::SentBefore(d) => m.sent_day().is_some_and(|x| x < *d),
        K::SentOn(d) => m.sent_day().is_some_and(|x| x == *d),
        K::SentSince(d) => m.sent_day().is_some_and(|x| x >= *d),
        K::Subject(s) => m.header_contains("subject", s),
        K::Header(name, s) => m.header_contains(name, s),
        K::From(s) => m.address_contains("from", s),
        K::To(s) => m.address_contains("to", s),
        K::Cc(s) => m.address_contains("cc", s),
        K::Bcc(s) => m.address_contains("bcc", s),
        K::Body(s) => m.body().contains(&fold_case(s)),
        K::Text(s) => {
            let s = fold_case(s);
            m.header_all().contains(&s) || m.body().contains(&s)
        }
    }
}

#[cfg(test)]
mod tests;
