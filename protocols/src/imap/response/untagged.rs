//! Untagged responses (RFC 9051 7) and FETCH's data items (7.5.2).

use super::code::RespText;
use super::value::{number, set, Encoder, Value};
use std::borrow::Cow;
use storage::Flags;

/// One `* ...` response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Untagged<'a> {
    Ok(RespText),
    No(RespText),
    Bad(RespText),
    Bye(RespText),
    Capability(&'a [String]),
    /// The capabilities ENABLE turned on just now.
    Enabled(Vec<&'a str>),
    /// RFC 2971: field and value pairs; None is `ID NIL`.
    Id(Option<Vec<(&'a str, Option<&'a str>)>>),
    /// RFC 2342: (prefix, delimiter) per namespace; an empty list is NIL.
    Namespace {
        personal: Vec<(&'a str, char)>,
        other: Vec<(&'a str, char)>,
        shared: Vec<(&'a str, char)>,
    },
    /// The flags defined in the mailbox.
    Flags(Vec<Cow<'a, str>>),
    Exists(u32),
    Recent(u32),
    Expunge(u32),
    /// QRESYNC (RFC 7162 3.2.10); `earlier` for VANISHED (EARLIER).
    Vanished {
        earlier: bool,
        uids: Cow<'a, [u32]>,
    },
    Fetch {
        seq: u32,
        items: Vec<FetchItem<'a>>,
    },
    /// LIST or LSUB (`lsub`). `childinfo`: LIST-EXTENDED's CHILDINFO extended item (RFC 5258
    /// 3.5), the selection options a descendant matched.
    List {
        lsub: bool,
        attributes: Vec<&'a str>,
        delimiter: Option<char>,
        mailbox: &'a str,
        childinfo: Vec<&'a str>,
    },
    /// `STATUS mailbox (item value ...)`.
    Status {
        mailbox: &'a str,
        items: Vec<(&'a str, u64)>,
        /// OBJECTID (RFC 8474): `MAILBOXID (id)` at the end, when asked.
        mailbox_id: Option<&'a str>,
    },
    /// SEARCH; `modseq` is CONDSTORE's highest mod-sequence of the matches (RFC 7162 3.1.5).
    Search {
        nums: Cow<'a, [u32]>,
        modseq: Option<u64>,
    },
    /// SORT (RFC 5256), numbers in sort order.
    Sort {
        nums: Cow<'a, [u32]>,
        modseq: Option<u64>,
    },
    /// ESEARCH (RFC 4731), also ESORT's answer (RFC 5267).
    ESearch(ESearch<'a>),
    /// QUOTAROOT (RFC 9208): the quota roots of a mailbox.
    QuotaRoot {
        mailbox: &'a str,
        roots: Vec<&'a str>,
    },
    /// QUOTA (RFC 9208): a root's resources as (name, usage, limit).
    Quota {
        root: &'a str,
        resources: Vec<(&'a str, u64, u64)>,
    },
    /// THREAD (RFC 5256): the threads, oldest first.
    Thread(&'a ThreadTree),
    /// METADATA (RFC 5464 4.4.1): a mailbox's (None: the server's) entries; None is NIL.
    Metadata {
        mailbox: Option<&'a str>,
        entries: Vec<(&'a str, Option<&'a [u8]>)>,
    },
    /// `ACL mailbox (identifier rights)*` (RFC 4314 3.6).
    Acl {
        mailbox: &'a str,
        entries: Vec<(&'a str, &'a str)>,
    },
    /// `LISTRIGHTS mailbox identifier required optional...` (RFC 4314 3.7).
    ListRights {
        mailbox: &'a str,
        identifier: &'a str,
        required: &'a str,
        optional: Vec<&'a str>,
    },
    /// `GENURLAUTH url...` (RFC 4467 7.1).
    GenUrlAuth(Vec<&'a str>),
    /// `URLFETCH url data...` (RFC 4467 7.2, RFC 5524 3): each URL's data is NIL, a
    /// literal, or URLAUTH=BINARY's list.
    UrlFetch(Vec<(&'a str, Value<'a>)>),
    /// `MYRIGHTS mailbox rights` (RFC 4314 3.8).
    MyRights {
        mailbox: &'a str,
        rights: &'a str,
    },
}

/// A THREAD answer: nodes in one arena (so a deep thread is no deep recursion when built,
/// written or dropped) and the threads' roots in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ThreadTree {
    pub nodes: Vec<ThreadNode>,
    pub roots: Vec<usize>,
}

/// A message (its number), or a dummy (None) standing for a missing parent, with its
/// replies (indices into [`ThreadTree::nodes`]) in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ThreadNode {
    pub num: Option<u32>,
    pub children: Vec<usize>,
}

impl ThreadTree {
    /// The threads as RFC 5256 writes them: each in parentheses; a message followed by its
    /// one reply as a chain (`1 2 3`) or by its several replies each in parentheses
    /// (`1 (2)(3 4)`); a dummy has only the parenthesized replies.
    fn write(&self, out: &mut Vec<u8>) {
        enum Step {
            Node(usize),
            Byte(u8),
        }
        let mut stack: Vec<Step> = Vec::new();
        for &r in self.roots.iter().rev() {
            stack.push(Step::Byte(b')'));
            stack.push(Step::Node(r));
            stack.push(Step::Byte(b'('));
        }
        while let Some(step) = stack.pop() {
            let node = match step {
                Step::Byte(b) => {
                    out.push(b);
                    continue;
                }
                Step::Node(i) => match self.nodes.get(i) {
                    Some(n) => n,
                    None => continue,
                },
            };
            if let Some(n) = node.num {
                number(out, u64::from(n));
            }
            match node.children.as_slice() {
                [] => {}
                [only] if node.num.is_some() => {
                    out.push(b' ');
                    stack.push(Step::Node(*only));
                }
                many => {
                    if node.num.is_some() {
                        out.push(b' ');
                    }
                    for &c in many.iter().rev() {
                        stack.push(Step::Byte(b')'));
                        stack.push(Step::Node(c));
                        stack.push(Step::Byte(b'('));
                    }
                }
            }
        }
    }
}

/// The data of an ESEARCH response; absent parts are left out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ESearch<'a> {
    /// The tag of the command it answers.
    pub tag: &'a str,
    pub uid: bool,
    pub min: Option<u32>,
    pub max: Option<u32>,
    /// In the order given: ascending runs become ranges (ESORT keeps sort order).
    pub all: Option<Cow<'a, [u32]>>,
    pub count: Option<u64>,
    pub modseq: Option<u64>,
    /// PARTIAL (RFC 9394): the range asked for and the numbers in it (None = NIL).
    pub partial: Option<PartialResult<'a>>,
    /// Context updates (RFC 5267): (position, numbers) pairs; position 0 for SEARCH.
    pub addto: Vec<(u32, Vec<u32>)>,
    pub removefrom: Vec<(u32, Vec<u32>)>,
}

/// PARTIAL's answer: the range asked for and the numbers in it (None = NIL).
pub type PartialResult<'a> = ((i64, i64), Option<Cow<'a, [u32]>>);

/// One FETCH data item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchItem<'a> {
    Uid(u32),
    /// The message's flags, with `\Recent` when it is recent for this session.
    Flags {
        flags: &'a Flags,
        recent: bool,
    },
    ModSeq(u64),
    /// Seconds since the epoch and the zone's offset in minutes.
    InternalDate {
        secs: i64,
        tz_min: i32,
    },
    Rfc822Size(u64),
    Envelope(Value<'a>),
    Body(Value<'a>),
    BodyStructure(Value<'a>),
    /// BODY[...], RFC822, RFC822.HEADER, RFC822.TEXT: the content as a literal.
    Section {
        name: &'a SectionName,
        data: Cow<'a, [u8]>,
    },
    /// BINARY[part]<origin> (RFC 3516): a literal8 when the content holds NUL, else a literal.
    Binary {
        part: &'a [u32],
        origin: Option<u64>,
        data: Cow<'a, [u8]>,
    },
    /// OBJECTID (RFC 8474): `EMAILID (id)` and `THREADID NIL`.
    EmailId(String),
    ThreadId,
    /// PREVIEW (RFC 8970): up to 200 characters of the message's text.
    Preview(String),
    /// SAVEDATE (RFC 8514): seconds since the epoch, shown in UTC.
    SaveDate(i64),
    BinarySize {
        part: &'a [u32],
        size: u64,
    },
}

/// What a FETCH answer calls a body section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SectionName {
    Rfc822,
    Rfc822Header,
    Rfc822Text,
    /// `BODY[part.text]<origin>`.
    Body {
        part: Vec<u32>,
        text: Option<SectionText>,
        origin: Option<u64>,
    },
}

/// The text part of a section specifier (RFC 9051 `section-text`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SectionText {
    Header,
    /// HEADER.FIELDS (names as the client sent them; compared case-insensitively).
    HeaderFields(Vec<Vec<u8>>),
    HeaderFieldsNot(Vec<Vec<u8>>),
    Text,
    Mime,
}

impl Encoder {
    /// Appends `* ...\r\n`.
    pub fn untagged(&self, out: &mut Vec<u8>, r: &Untagged<'_>) {
        out.extend_from_slice(b"* ");
        self.untagged_body(out, r);
        out.extend_from_slice(b"\r\n");
    }

    fn untagged_body(&self, out: &mut Vec<u8>, r: &Untagged<'_>) {
        match r {
            Untagged::Ok(t) => self.condition(out, "OK", t),
            Untagged::No(t) => self.condition(out, "NO", t),
            Untagged::Bad(t) => self.condition(out, "BAD", t),
            Untagged::Bye(t) => self.condition(out, "BYE", t),
            Untagged::Capability(caps) => words(out, "CAPABILITY", caps.iter().map(|c| &**c)),
            Untagged::Enabled(caps) => words(out, "ENABLED", caps.iter().copied()),
            Untagged::Id(fields) => {
                out.extend_from_slice(b"ID ");
                let v = fields.as_ref().map_or(Value::Nil, |fields| {
                    Value::List(
                        fields
                            .iter()
                            .flat_map(|(k, v)| {
                                [
                                    Value::string(k.as_bytes()),
                                    Value::nstring(v.map(str::as_bytes)),
                                ]
                            })
                            .collect(),
                    )
                });
                self.value(out, &v);
            }
            Untagged::Namespace {
                personal,
                other,
                shared,
            } => {
                out.extend_from_slice(b"NAMESPACE");
                for ns in [personal, other, shared] {
                    out.push(b' ');
                    self.value(out, &namespace(ns));
                }
            }
            Untagged::Flags(flags) => {
                out.extend_from_slice(b"FLAGS ");
                self.value(out, &Value::atoms(flags.iter().map(|f| &**f)));
            }
            Untagged::Exists(n) => counted(out, *n, "EXISTS"),
            Untagged::Recent(n) => counted(out, *n, "RECENT"),
            Untagged::Expunge(n) => counted(out, *n, "EXPUNGE"),
            Untagged::Vanished { earlier, uids } => {
                out.extend_from_slice(if *earlier {
                    b"VANISHED (EARLIER) "
                } else {
                    b"VANISHED "
                });
                set(out, uids);
            }
            Untagged::Fetch { seq, items } => self.fetch(out, *seq, items),
            Untagged::List {
                lsub,
                attributes,
                delimiter,
                mailbox,
                childinfo,
            } => {
                out.extend_from_slice(if *lsub { b"LSUB " } else { b"LIST " });
                let mut v = vec![
                    Value::atoms(attributes.iter().copied()),
                    delimiter.map_or(Value::Nil, |d| {
                        Value::String(d.to_string().into_bytes().into())
                    }),
                    Value::Mailbox(Cow::Borrowed(mailbox)),
                ];
                if !childinfo.is_empty() {
                    let opts = childinfo.iter().map(|o| Value::string(o.as_bytes()));
                    v.push(Value::List(vec![
                        Value::string(&b"CHILDINFO"[..]),
                        Value::List(opts.collect()),
                    ]));
                }
                self.spaced(out, &v);
            }
            Untagged::Status {
                mailbox,
                items,
                mailbox_id,
            } => {
                out.extend_from_slice(b"STATUS ");
                self.value(out, &Value::Mailbox(Cow::Borrowed(mailbox)));
                out.push(b' ');
                let mut list: Vec<Value<'_>> = items
                    .iter()
                    .flat_map(|(name, n)| [Value::atom(*name), Value::Number(*n)])
                    .collect();
                if let Some(id) = mailbox_id {
                    list.push(Value::atom("MAILBOXID"));
                    list.push(Value::List(vec![Value::Atom(Cow::Borrowed(*id))]));
                }
                self.value(out, &Value::List(list));
            }
            Untagged::Search { nums, modseq } => numbers(out, "SEARCH", nums, *modseq),
            Untagged::Sort { nums, modseq } => numbers(out, "SORT", nums, *modseq),
            Untagged::ESearch(e) => self.esearch(out, e),
            Untagged::QuotaRoot { mailbox, roots } => {
                out.extend_from_slice(b"QUOTAROOT ");
                self.value(out, &Value::Mailbox(Cow::Borrowed(mailbox)));
                for r in roots {
                    out.push(b' ');
                    self.value(out, &Value::astring(r.as_bytes()));
                }
            }
            Untagged::Quota { root, resources } => {
                out.extend_from_slice(b"QUOTA ");
                self.value(out, &Value::astring(root.as_bytes()));
                out.extend_from_slice(b" (");
                for (i, (name, usage, limit)) in resources.iter().enumerate() {
                    if i > 0 {
                        out.push(b' ');
                    }
                    out.extend_from_slice(name.as_bytes());
                    out.push(b' ');
                    number(out, *usage);
                    out.push(b' ');
                    number(out, *limit);
                }
                out.push(b')');
            }
            Untagged::Thread(tree) => {
                out.extend_from_slice(b"THREAD");
                if !tree.roots.is_empty() {
                    out.push(b' ');
                }
                tree.write(out);
            }
            Untagged::Metadata { mailbox, entries } => {
                out.extend_from_slice(b"METADATA ");
                match mailbox {
                    Some(m) => self.value(out, &Value::Mailbox(Cow::Borrowed(m))),
                    None => out.extend_from_slice(b"\"\""),
                }
                let mut list = Vec::with_capacity(entries.len() * 2);
                for (name, value) in entries {
                    list.push(Value::astring(name.as_bytes()));
                    list.push(match value {
                        None => Value::Nil,
                        // NUL cannot be in a literal (RFC 9051 4.3): binary values go as
                        // literal8 (RFC 5464 5: value = nstring / literal8).
                        Some(v) if v.contains(&0) => Value::Literal8(Cow::Borrowed(v)),
                        Some(v) => Value::string(*v),
                    });
                }
                out.push(b' ');
                self.value(out, &Value::List(list));
            }
            Untagged::Acl { mailbox, entries } => {
                out.extend_from_slice(b"ACL ");
                self.value(out, &Value::Mailbox(Cow::Borrowed(mailbox)));
                for (id, rights) in entries {
                    out.push(b' ');
                    self.value(out, &Value::astring(id.as_bytes()));
                    out.push(b' ');
                    self.value(out, &Value::astring(rights.as_bytes()));
                }
            }
            Untagged::ListRights {
                mailbox,
                identifier,
                required,
                optional,
            } => {
                out.extend_from_slice(b"LISTRIGHTS ");
                self.value(out, &Value::Mailbox(Cow::Borrowed(mailbox)));
                out.push(b' ');
                self.value(out, &Value::astring(identifier.as_bytes()));
                out.push(b' ');
                self.value(out, &Value::astring(required.as_bytes()));
                for r in optional {
                    out.push(b' ');
                    self.value(out, &Value::astring(r.as_bytes()));
                }
            }
            Untagged::GenUrlAuth(urls) => {
                out.extend_from_slice(b"GENURLAUTH");
                for u in urls {
                    out.push(b' ');
                    self.value(out, &Value::string(u.as_bytes()));
                }
            }
            Untagged::UrlFetch(items) => {
                out.extend_from_slice(b"URLFETCH");
                for (u, data) in items {
                    out.push(b' ');
                    self.value(out, &Value::astring(u.as_bytes()));
                    out.push(b' ');
                    self.value(out, data);
                }
            }
            Untagged::MyRights { mailbox, rights } => {
                out.extend_from_slice(b"MYRIGHTS ");
                self.value(out, &Value::Mailbox(Cow::Borrowed(mailbox)));
                out.push(b' ');
                self.value(out, &Value::astring(rights.as_bytes()));
            }
        }
    }

    fn condition(&self, out: &mut Vec<u8>, word: &str, t: &RespText) {
        out.extend_from_slice(word.as_bytes());
        out.push(b' ');
        t.encode(self, out);
    }

    fn esearch(&self, out: &mut Vec<u8>, e: &ESearch<'_>) {
        out.extend_from_slice(b"ESEARCH (TAG ");
        self.value(out, &Value::string(e.tag.as_bytes()));
        out.push(b')');
        if e.uid {
            out.extend_from_slice(b" UID");
        }
        let numbered = [("MIN", e.min.map(u64::from)), ("MAX", e.max.map(u64::from))];
        for (word, n) in numbered {
            if let Some(n) = n {
                esearch_item(out, word);
                number(out, n);
            }
        }
        if let Some(all) = &e.all {
            esearch_item(out, "ALL");
            set(out, all);
        }
        for (word, n) in [("COUNT", e.count), ("MODSEQ", e.modseq)] {
            if let Some(n) = n {
                esearch_item(out, word);
                number(out, n);
            }
        }
        if let Some(((a, b), nums)) = &e.partial {
            esearch_item(out, "PARTIAL");
            out.extend_from_slice(format!("({a}:{b} ").as_bytes());
            match nums {
                Some(n) if !n.is_empty() => set(out, n),
                _ => out.extend_from_slice(b"NIL"),
            }
            out.push(b')');
        }
        for (word, pairs) in [("ADDTO", &e.addto), ("REMOVEFROM", &e.removefrom)] {
            if pairs.is_empty() {
                continue;
            }
            esearch_item(out, word);
            out.push(b'(');
            for (i, (pos, nums)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                number(out, u64::from(*pos));
                out.push(b' ');
                set(out, nums);
            }
            out.push(b')');
        }
    }
}

/// ` WORD ` before an ESEARCH return item's value.
fn esearch_item(out: &mut Vec<u8>, word: &str) {
    out.push(b' ');
    out.extend_from_slice(word.as_bytes());
    out.push(b' ');
}

fn words<'w>(out: &mut Vec<u8>, first: &str, rest: impl Iterator<Item = &'w str>) {
    out.extend_from_slice(first.as_bytes());
    for w in rest {
        out.push(b' ');
        out.extend_from_slice(w.as_bytes());
    }
}

fn counted(out: &mut Vec<u8>, n: u32, word: &str) {
    number(out, u64::from(n));
    out.push(b' ');
    out.extend_from_slice(word.as_bytes());
}

/// `SEARCH 1 2 3 (MODSEQ m)`: numbers one by one, as RFC 9051 7.3.5 has them.
fn numbers(out: &mut Vec<u8>, word: &str, nums: &[u32], modseq: Option<u64>) {
    out.extend_from_slice(word.as_bytes());
    for n in nums {
        out.push(b' ');
        number(out, u64::from(*n));
    }
    if let Some(m) = modseq {
        out.extend_from_slice(b" (MODSEQ ");
        number(out, m);
        out.push(b')');
    }
}

fn namespace<'a>(list: &[(&'a str, char)]) -> Value<'a> {
    if list.is_empty() {
        return Value::Nil;
    }
    Value::List(
        list.iter()
            .map(|(prefix, delim)| {
                Value::List(vec![
                    Value::string(prefix.as_bytes()),
                    Value::String(delim.to_string().into_bytes().into()),
                ])
            })
            .collect(),
    )
}

/// `(\Seen kw \Recent)`.
fn flag_list<'a>(flags: &'a Flags, recent: bool) -> Value<'a> {
    let words = flags.iter().map(|f| f.to_imap());
    Value::atoms(words.chain(recent.then_some("\\Recent")))
}

/// RFC 9051 date-time: `"17-Jul-1996 02:44:25 -0700"`. Out-of-range values give the epoch
/// in UTC rather than failing a FETCH.
pub fn internal_date(secs: i64, tz_min: i32) -> Value<'static> {
    let offset = chrono::FixedOffset::east_opt(tz_min.clamp(-1439, 1439) * 60)
        .unwrap_or_else(|| chrono::FixedOffset::east_opt(0).expect("zero offset is valid"));
    let dt = chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .with_timezone(&offset);
    Value::String(
        dt.format("%d-%b-%Y %H:%M:%S %z")
            .to_string()
            .into_bytes()
            .into(),
    )
}

impl Encoder {
    fn fetch(&self, out: &mut Vec<u8>, seq: u32, items: &[FetchItem<'_>]) {
        number(out, u64::from(seq));
        out.extend_from_slice(b" FETCH (");
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            self.fetch_item(out, item);
        }
        out.push(b')');
    }

    fn fetch_item(&self, out: &mut Vec<u8>, item: &FetchItem<'_>) {
        let mut named = |name: &str, v: &Value<'_>| {
            out.extend_from_slice(name.as_bytes());
            out.push(b' ');
            self.value(out, v);
        };
        match item {
            FetchItem::Uid(u) => named("UID", &Value::Number(u64::from(*u))),
            FetchItem::Flags { flags, recent } => named("FLAGS", &flag_list(flags, *recent)),
            FetchItem::ModSeq(m) => named("MODSEQ", &Value::List(vec![Value::Number(*m)])),
            FetchItem::InternalDate { secs, tz_min } => {
                named("INTERNALDATE", &internal_date(*secs, *tz_min))
            }
            FetchItem::Rfc822Size(n) => named("RFC822.SIZE", &Value::Number(*n)),
            FetchItem::EmailId(id) => named(
                "EMAILID",
                &Value::List(vec![Value::Atom(Cow::Borrowed(id.as_str()))]),
            ),
            FetchItem::ThreadId => named("THREADID", &Value::Nil),
            FetchItem::Preview(text) => named("PREVIEW", &Value::string(text.as_bytes())),
            FetchItem::SaveDate(secs) => named("SAVEDATE", &internal_date(*secs, 0)),
            FetchItem::Envelope(v) => named("ENVELOPE", v),
            FetchItem::Body(v) => named("BODY", v),
            FetchItem::BodyStructure(v) => named("BODYSTRUCTURE", v),
            FetchItem::Section { name, data } => {
                self.section_name(out, name);
                out.push(b' ');
                self.value(out, &Value::Literal(Cow::Borrowed(data)));
            }
            FetchItem::Binary { part, origin, data } => {
                out.extend_from_slice(b"BINARY[");
                part_number(out, part);
                out.push(b']');
                origin_of(out, *origin);
                out.push(b' ');
                let data = Cow::Borrowed(&**data);
                let v = if data.contains(&0) {
                    Value::Literal8(data)
                } else {
                    Value::Literal(data)
                };
                self.value(out, &v);
            }
            FetchItem::BinarySize { part, size } => {
                out.extend_from_slice(b"BINARY.SIZE[");
                part_number(out, part);
                out.extend_from_slice(b"] ");
                number(out, *size);
            }
        }
    }

    fn section_name(&self, out: &mut Vec<u8>, name: &SectionName) {
        let (part, text, origin) = match name {
            SectionName::Rfc822 => return out.extend_from_slice(b"RFC822"),
            SectionName::Rfc822Header => return out.extend_from_slice(b"RFC822.HEADER"),
            SectionName::Rfc822Text => return out.extend_from_slice(b"RFC822.TEXT"),
            SectionName::Body { part, text, origin } => (part, text, origin),
        };
        out.extend_from_slice(b"BODY[");
        part_number(out, part);
        if let Some(text) = text {
            if !part.is_empty() {
                out.push(b'.');
            }
            let (word, names) = match text {
                SectionText::Header => ("HEADER", None),
                SectionText::HeaderFields(n) => ("HEADER.FIELDS", Some(n)),
                SectionText::HeaderFieldsNot(n) => ("HEADER.FIELDS.NOT", Some(n)),
                SectionText::Text => ("TEXT", None),
                SectionText::Mime => ("MIME", None),
            };
            out.extend_from_slice(word.as_bytes());
            if let Some(names) = names {
                // Upper case, as Dovecot echoes them; each an astring as the grammar has it.
                let names = names
                    .iter()
                    .map(|n| Value::AString(n.to_ascii_uppercase().into()));
                out.push(b' ');
                self.value(out, &Value::List(names.collect()));
            }
        }
        out.push(b']');
        origin_of(out, *origin);
    }
}

/// `1.2.3`.
fn part_number(out: &mut Vec<u8>, part: &[u32]) {
    for (i, n) in part.iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        number(out, u64::from(*n));
    }
}

/// `<origin>` of a partial fetch's answer.
fn origin_of(out: &mut Vec<u8>, origin: Option<u64>) {
    if let Some(o) = origin {
        out.push(b'<');
        number(out, o);
        out.push(b'>');
    }
}
