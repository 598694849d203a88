//! SORT and UID SORT (RFC 5256) with the DISPLAY keys of RFC 5957, and ESORT's
//! `RETURN (MIN MAX ALL COUNT)` (RFC 5267). The search criteria are evaluated as SEARCH does;
//! the matches are then ordered by the sort criteria, ties by sequence number. The sort keys
//! come from the envelope made from the message's cached header block, so sorting by header
//! reads no message.

use super::matching::{check_charset, collect_matches, criteria_key, esearch, Returns};
use crate::imap::message::decode_header_value;
use crate::imap::message::SearchKey;
use crate::imap::reply::{Done, Reply};
use crate::imap::response::Untagged;
use crate::imap::session::Session;
use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::extensions::sort::{SortCriterion, SortKey};
use std::cmp::Ordering;
use storage::mime::{Address, Envelope, MISSING_DOMAIN};
use storage::MessageMeta;

/// The values one message is sorted by; each is computed only if a criterion uses it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Keys {
    seq: u32,
    arrival: i64,
    size: u64,
    date: i64,
    subject: String,
    from: String,
    to: String,
    cc: String,
    display_from: String,
    display_to: String,
}

/// `returns` is ESORT's RETURN options (already checked to be MIN, MAX, ALL, COUNT).
pub(crate) async fn sort(
    s: &mut Session,
    body: CommandBody<'static>,
    returns: Option<Returns>,
) -> Reply {
    let CommandBody::Sort {
        sort_criteria,
        charset,
        search_criteria,
        uid,
    } = body
    else {
        return Err(Done::Bad(
            "Error in IMAP command SORT: Invalid arguments.".into(),
        ));
    };
    check_charset(&charset)?;
    let (key, uses_modseq) = criteria_key(s, search_criteria.as_ref());
    let criteria: Vec<SortCriterion> = sort_criteria.into_inner();
    // (seq, uid, modseq) in sort order: ESORT's MIN and MAX are the first and last sorted.
    let sorted = sorted(s, key.clone(), criteria.clone()).await?;
    let nums: Vec<u32> = sorted.iter().map(|h| if uid { h.1 } else { h.0 }).collect();
    let modseq_of = uses_modseq.then_some(&sorted[..]);
    match returns {
        Some(ret) => {
            let tag = s.current_tag.clone();
            s.send(&Untagged::ESearch(esearch(
                &tag,
                uid,
                &ret.options,
                ret.partial,
                &nums,
                modseq_of,
            )));
            if ret.update {
                let result = sorted.iter().map(|h| h.1).collect();
                super::context::register(s, &tag, uid, key, Some(criteria), result)?;
            }
        }
        None => {
            let modseq = modseq_of.and_then(|h| h.iter().map(|x| x.2).max());
            s.send(&Untagged::Sort {
                nums: nums.into(),
                modseq,
            });
        }
    }
    Ok(Done::Ok("Sort completed.".into()))
}

/// The matches of `key` as (seq, uid, modseq), in the order of `criteria` (ties by sequence
/// number); also what a SORT context re-evaluates.
pub(super) fn sorted(
    s: &Session,
    key: SearchKey,
    criteria: Vec<SortCriterion>,
) -> impl std::future::Future<Output = Result<Vec<(u32, u32, u64)>, Done>> + Send + 'static {
    let crit = criteria.clone();
    let wants_facts = crit.iter().any(|c| needs_facts(&c.key));
    let found = collect_matches(s, key, "sort", move |seq, meta, content| {
        let env = if wants_facts {
            content.envelope()
        } else {
            None
        };
        (keys_of(seq, meta, env, &crit), meta.uid, meta.modseq)
    });
    async move {
        let mut hits: Vec<(Keys, u32, u64)> = found.await?;
        hits.sort_by(|a, b| compare(&a.0, &b.0, &criteria));
        Ok(hits.iter().map(|h| (h.0.seq, h.1, h.2)).collect())
    }
}

fn needs_facts(k: &SortKey) -> bool {
    !matches!(k, SortKey::Arrival | SortKey::Size)
}

fn keys_of(seq: u32, meta: &MessageMeta, env: Option<&Envelope>, crit: &[SortCriterion]) -> Keys {
    let mut k = Keys {
        seq,
        arrival: meta.internal_date,
        size: meta.size,
        ..Keys::default()
    };
    for c in crit {
        match c.key {
            SortKey::Arrival | SortKey::Size => {}
            SortKey::Date => {
                k.date = env
                    .and_then(|e| e.date.as_deref())
                    .and_then(sent_date)
                    .unwrap_or(meta.internal_date)
            }
            SortKey::Subject => {
                k.subject = env
                    .and_then(|e| e.subject.as_deref())
                    .map(|s| base_subject(&decode_header_value(s)))
                    .unwrap_or_default()
            }
            SortKey::From => k.from = env.map(|e| addr_mailbox(&e.from)).unwrap_or_default(),
            SortKey::To => k.to = env.map(|e| addr_mailbox(&e.to)).unwrap_or_default(),
            SortKey::Cc => k.cc = env.map(|e| addr_mailbox(&e.cc)).unwrap_or_default(),
            SortKey::DisplayFrom => {
                k.display_from = env.map(|e| display_name(&e.from)).unwrap_or_default()
            }
            SortKey::DisplayTo => {
                k.display_to = env.map(|e| display_name(&e.to)).unwrap_or_default()
            }
        }
    }
    k
}

/// The criteria in turn (each possibly reversed), then the sequence number.
fn compare(a: &Keys, b: &Keys, criteria: &[SortCriterion]) -> Ordering {
    for c in criteria {
        let o = match c.key {
            SortKey::Arrival => a.arrival.cmp(&b.arrival),
            SortKey::Size => a.size.cmp(&b.size),
            SortKey::Date => a.date.cmp(&b.date),
            SortKey::Subject => a.subject.cmp(&b.subject),
            SortKey::From => a.from.cmp(&b.from),
            SortKey::To => a.to.cmp(&b.to),
            SortKey::Cc => a.cc.cmp(&b.cc),
            SortKey::DisplayFrom => a.display_from.cmp(&b.display_from),
            SortKey::DisplayTo => a.display_to.cmp(&b.display_to),
        };
        let o = if c.reverse { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.seq.cmp(&b.seq)
}

/// The Date header as a UTC timestamp; None when it cannot be parsed (the internal date is
/// used then, RFC 5256 section 2.2).
pub(super) fn sent_date(v: &[u8]) -> Option<i64> {
    let d = mail_parser::DateTime::parse_rfc822(&decode_header_value(v))?;
    d.is_valid().then(|| d.to_timestamp())
}

/// The first address's addr-mailbox, case-folded (RFC 5256 section 3: FROM, TO, CC). A group
/// that comes first gives its name, as Dovecot does (imaptest sort-addresses).
fn addr_mailbox(list: &[Address]) -> String {
    list.first()
        .and_then(|a| a.mailbox.as_deref())
        .map(|m| fold(&decode_header_value(m)))
        .unwrap_or_default()
}

/// Case folding for comparison: to upper case, as Dovecot's titlecase folding sorts ("_" and
/// "[" after letters).
fn fold(s: &str) -> String {
    s.to_uppercase()
}

/// RFC 5957: the first address's decoded display name, else its addr-spec, case-folded; a
/// group that comes first gives its name.
fn display_name(list: &[Address]) -> String {
    let Some(a) = list.first() else {
        return String::new();
    };
    if let Some(n) = a.name.as_deref() {
        let n = decode_header_value(n);
        if !n.trim().is_empty() {
            return fold(&n);
        }
    }
    let mb = a.mailbox.as_deref().map(String::from_utf8_lossy);
    let host = a
        .host
        .as_deref()
        .filter(|h| *h != MISSING_DOMAIN)
        .map(String::from_utf8_lossy);
    match (mb, host) {
        (Some(m), Some(h)) => fold(&format!("{m}@{h}")),
        (Some(m), None) => fold(&m),
        _ => String::new(),
    }
}

/// RFC 5256 section 2.1: the base subject of a decoded subject, case-folded.
pub(crate) fn base_subject(decoded: &str) -> String {
    base_subject_reply(decoded).0
}

/// [`base_subject`], and whether the subject was a reply or forward: a subj-refwd leader,
/// a "(fwd)" trailer or a "[fwd: ...]" wrapper was removed (THREAD=REFERENCES step 5).
pub(crate) fn base_subject_reply(decoded: &str) -> (String, bool) {
    let mut reply = false;
    // (1) whitespace runs to one space.
    let mut s = String::with_capacity(decoded.len());
    for w in decoded.split_whitespace() {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(w);
    }
    let mut s = fold(&s);
    loop {
        // (2) trailing "(fwd)" and whitespace.
        loop {
            let t = s.trim_end();
            if let Some(x) = t.strip_suffix("(FWD)") {
                s = x.to_string();
                reply = true;
            } else {
                s = t.to_string();
                break;
            }
        }
        // (3)-(5) leaders and blobs, until nothing changes.
        loop {
            let before = s.len();
            let (rest, refwd) = strip_leader(&s);
            reply |= refwd;
            s = rest.to_string();
            if let Some(rest) = strip_blob(&s) {
                if !rest.is_empty() {
                    s = rest.to_string();
                }
            }
            if s.len() == before {
                break;
            }
        }
        // (6) "[fwd: ...]" wrapper.
        if let Some(inner) = s.strip_prefix("[FWD:").and_then(|r| r.strip_suffix(']')) {
            s = inner.to_string();
            reply = true;
            continue;
        }
        return (s, reply);
    }
}

/// One subj-blob at the start ("[" *BLOBCHAR "]" *WSP); returns what follows it.
fn strip_blob(s: &str) -> Option<&str> {
    let rest = s.strip_prefix('[')?;
    let end = rest.find([']', '['])?;
    let after = rest.get(end..)?.strip_prefix(']')?;
    Some(after.trim_start())
}

/// One subj-leader: leading whitespace, or *subj-blob subj-refwd ("re" / "fw" / "fwd", *WSP,
/// an optional blob, ":"). The flag says a subj-refwd was removed.
fn strip_leader(s: &str) -> (&str, bool) {
    if s.starts_with(' ') || s.starts_with('\t') {
        return (s.trim_start(), false);
    }
    let mut rest = s;
    while let Some(r) = strip_blob(rest) {
        rest = r;
    }
    let after = if let Some(r) = rest.strip_prefix("RE") {
        r
    } else if let Some(r) = rest.strip_prefix("FWD") {
        r
    } else if let Some(r) = rest.strip_prefix("FW") {
        r
    } else {
        return (s, false);
    };
    let mut after = after.trim_start();
    if let Some(r) = strip_blob(after) {
        after = r;
    }
    match after.strip_prefix(':') {
        Some(r) => (r, true),
        None => (s, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crit(key: SortKey, reverse: bool) -> SortCriterion {
        SortCriterion { reverse, key }
    }

    #[test]
    fn base_subject_follows_rfc5256() {
        assert_eq!(base_subject("Re: hello"), "HELLO");
        assert_eq!(base_subject("RE: Re: re:hello"), "HELLO");
        assert_eq!(base_subject("Fwd: hello (fwd)"), "HELLO");
        assert_eq!(base_subject("FW: hello (FWD)  (fwd) "), "HELLO");
        assert_eq!(base_subject("[list] Re: hello"), "HELLO");
        assert_eq!(base_subject("Re [list]: hello"), "HELLO");
        assert_eq!(base_subject("[Fwd: Re: hello]"), "HELLO");
        assert_eq!(base_subject("  hello \t  world  "), "HELLO WORLD");
        // A blob alone is the subject, not a leader to remove.
        assert_eq!(base_subject("[ONLY]"), "[ONLY]");
        assert_eq!(base_subject("Re: [only]"), "[ONLY]");
        // "re" that is not followed by a colon is a word.
        assert_eq!(base_subject("Reply needed"), "REPLY NEEDED");
        assert_eq!(base_subject(""), "");
        assert_eq!(base_subject_reply("Re: x"), ("X".into(), true));
        assert_eq!(base_subject_reply("x (fwd)"), ("X".into(), true));
        assert_eq!(base_subject_reply("[Fwd: x]"), ("X".into(), true));
        assert_eq!(base_subject_reply("[list] x"), ("X".into(), false));
        // Upper-case folding puts "_" and "[" after letters, as Dovecot sorts.
        assert!(base_subject("_") > base_subject("z"));
        assert!(base_subject("[xyz]") > base_subject("z"));
    }

    #[test]
    fn base_subject_of_encoded_words() {
        let d = decode_header_value(b"=?utf-8?q?Re=3A_Gr=C3=BC=C3=9Fe?=");
        assert_eq!(base_subject(&d), "GRÜSSE");
    }

    fn addr(name: Option<&str>, mailbox: &str, host: Option<&str>) -> Address {
        Address {
            name: name.map(|n| n.as_bytes().to_vec()),
            adl: None,
            mailbox: Some(mailbox.as_bytes().to_vec()),
            host: host.map(|h| h.as_bytes().to_vec()),
        }
    }

    #[test]
    fn addresses_use_the_first_mailbox() {
        let list = [
            addr(Some("Zed Person"), "Alice", Some("example.com")),
            addr(None, "bob", Some("example.com")),
        ];
        assert_eq!(addr_mailbox(&list), "ALICE");
        assert_eq!(display_name(&list), "ZED PERSON");
        let bare = [addr(None, "Carol", Some("Example.org"))];
        assert_eq!(display_name(&bare), "CAROL@EXAMPLE.ORG");
        let no_host = [addr(None, "d", Some("MISSING_DOMAIN"))];
        assert_eq!(display_name(&no_host), "D");
        // A group first gives its name (as Dovecot sorts; imaptest sort-addresses).
        let group = [
            addr(None, "user2", None),
            addr(None, "blah", Some("example.com")),
        ];
        assert_eq!(addr_mailbox(&group), "USER2");
        assert_eq!(display_name(&group), "USER2");
        assert_eq!(addr_mailbox(&[]), "");
    }

    #[test]
    fn esort_answers_keep_sort_order() {
        let o = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let line = |uid, opts: &[&str], nums: &[u32], hits: Option<&[(u32, u32, u64)]>| {
            let mut out = Vec::new();
            let r = Untagged::ESearch(esearch("t", uid, &o(opts), None, nums, hits));
            crate::imap::response::Encoder::default().untagged(&mut out, &r);
            String::from_utf8(out).unwrap()
        };
        let nums = [5, 2, 3, 4, 1];
        assert_eq!(
            line(false, &["MIN", "MAX", "ALL", "COUNT"], &nums, None),
            "* ESEARCH (TAG \"t\") MIN 5 MAX 1 ALL 5,2:4,1 COUNT 5\r\n"
        );
        assert_eq!(
            line(true, &[], &nums, None),
            "* ESEARCH (TAG \"t\") UID ALL 5,2:4,1\r\n"
        );
        assert_eq!(
            line(false, &["MIN", "COUNT"], &[], None),
            "* ESEARCH (TAG \"t\") COUNT 0\r\n"
        );
        let hits = [(2, 2, 9), (1, 1, 4)];
        assert_eq!(
            line(false, &["MIN"], &[2, 1], Some(&hits)),
            "* ESEARCH (TAG \"t\") MIN 2 MODSEQ 9\r\n"
        );
    }

    #[test]
    fn sent_date_parses_or_gives_none() {
        assert_eq!(sent_date(b"Thu, 1 Jan 1970 00:01:00 +0000"), Some(60));
        assert_eq!(sent_date(b"Thu, 1 Jan 1970 01:01:00 +0100"), Some(60));
        assert_eq!(sent_date(b"garbage"), None);
    }

    #[test]
    fn compare_uses_criteria_then_sequence() {
        let k = |seq, size, subject: &str| Keys {
            seq,
            size,
            subject: subject.into(),
            ..Keys::default()
        };
        let mut v = [k(1, 30, "b"), k(2, 10, "a"), k(3, 10, "b"), k(4, 20, "a")];
        v.sort_by(|a, b| {
            compare(
                a,
                b,
                &[crit(SortKey::Subject, false), crit(SortKey::Size, true)],
            )
        });
        assert_eq!(v.iter().map(|k| k.seq).collect::<Vec<_>>(), [4, 2, 1, 3]);
        v.sort_by(|a, b| compare(a, b, &[crit(SortKey::Size, false)]));
        assert_eq!(v.iter().map(|k| k.seq).collect::<Vec<_>>(), [2, 3, 4, 1]);
        // REVERSE applies to the criterion only: equal keys stay in sequence order.
        v.sort_by(|a, b| compare(a, b, &[crit(SortKey::Subject, true)]));
        assert_eq!(v.iter().map(|k| k.seq).collect::<Vec<_>>(), [1, 3, 2, 4]);
    }
}
