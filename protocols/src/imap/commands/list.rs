//! LIST (CHILDREN, SPECIAL-USE, LIST-EXTENDED: SUBSCRIBED selection, RETURN (SUBSCRIBED
//! CHILDREN SPECIAL-USE STATUS)) and LSUB.

use super::status_data;
use crate::imap::parse::ListArgs;
use crate::imap::reply::{Done, Reply};
use crate::imap::response::Untagged;
use crate::imap::session::Session;
use std::collections::{BTreeMap, BTreeSet};

/// IMAP list wildcard matching: `*` matches anything, `%` anything but the separator.
/// Dynamic programming over name positions: linear in pattern x name, whatever the pattern.
pub(crate) fn matches(pattern: &[u8], name: &[u8]) -> bool {
    let n = name.len();
    let mut cur = vec![false; n + 1];
    cur[0] = true;
    for &pc in pattern {
        let mut next = vec![false; n + 1];
        match pc {
            b'*' => {
                let mut carry = false;
                for i in 0..=n {
                    carry |= cur[i];
                    next[i] = carry;
                }
            }
            b'%' => {
                let mut carry = false;
                for i in 0..=n {
                    carry |= cur[i];
                    next[i] = carry;
                    if i < n && name[i] == b'/' {
                        carry = false;
                    }
                }
            }
            c => {
                for i in 0..n {
                    if cur[i] && name[i] == c {
                        next[i + 1] = true;
                    }
                }
            }
        }
        cur = next;
    }
    cur[n]
}

/// Matches a mailbox name against a pattern, with INBOX matched case-insensitively.
fn name_matches(pattern: &str, name: &str) -> bool {
    let fold = |s: &str| -> String {
        let b = s.as_bytes();
        // Byte-wise: the first five bytes are ASCII when they match, so slicing at 5 is safe.
        if b.len() >= 5 && b[..5].eq_ignore_ascii_case(b"INBOX") && (b.len() == 5 || b[5] == b'/') {
            format!("INBOX{}", &s[5..])
        } else {
            s.to_string()
        }
    };
    matches(fold(pattern).as_bytes(), fold(name).as_bytes())
}

/// A reference or pattern from the client. Patterns are not mailbox names: one that is not
/// valid modified UTF-7 (`&` not starting a shift, say) is matched as its raw characters, so
/// it lists what it can rather than failing the command (as Dovecot does).
fn pattern_in(s: &Session, raw: &[u8]) -> String {
    s.mailbox_in(raw)
        .unwrap_or_else(|_| String::from_utf8_lossy(raw).into_owned())
}

struct Entry {
    exists: bool,
    special_use: Option<storage::SpecialUse>,
    subscribed: bool,
}

/// A LIST or LSUB command with its options checked.
struct Query {
    lsub: bool,
    /// The patterns, each with the reference prefixed.
    patterns: Vec<String>,
    /// Selection SUBSCRIBED: subscriptions are listed, not mailboxes.
    sel_subscribed: bool,
    /// Selection SPECIAL-USE: only mailboxes with a special use.
    only_special: bool,
    /// Selection RECURSIVEMATCH.
    recursive: bool,
    /// Return SUBSCRIBED (implied by the SUBSCRIBED selection).
    ret_subscribed: bool,
    /// Return STATUS: these items follow each listed mailbox.
    status_items: Option<Vec<String>>,
    /// Return MYRIGHTS (LIST-MYRIGHTS, RFC 8440): each listed mailbox's MYRIGHTS follows.
    ret_myrights: bool,
}

impl Query {
    fn matches(&self, name: &str) -> bool {
        self.patterns.iter().any(|p| name_matches(p, name))
    }
}

/// One line of the answer: a name and its attributes.
type Line = (String, Vec<&'static str>);

pub(crate) async fn list(s: &mut Session, args: ListArgs) -> Reply {
    let q = query(s, args)?;
    let done = Done::Ok(
        if q.lsub {
            "Lsub completed."
        } else {
            "List completed."
        }
        .into(),
    );
    // LIST "" "": the hierarchy delimiter and root.
    if !q.lsub && q.patterns.iter().all(|p| p.is_empty()) {
        s.send(&Untagged::List {
            lsub: false,
            attributes: vec!["\\Noselect"],
            delimiter: Some('/'),
            mailbox: "",
            childinfo: vec![],
        });
        return Ok(done);
    }
    if let Some(items) = &q.status_items {
        status_data::check_items(items)?;
    }
    let (mut boxes, subs) = s
        .store_call(|st| Ok((st.list_mailboxes()?, st.subscriptions()?)))
        .await?;
    // Other users' mailboxes shared with this user (ACL), under `shared/OWNER/`.
    if !q.lsub && !q.sel_subscribed && !q.only_special {
        boxes.extend(super::acl::shared_boxes(s).await);
        boxes.sort_by(|a, b| a.name.cmp(&b.name));
    }
    let existing: BTreeSet<&str> = boxes.iter().map(|b| b.name.as_str()).collect();
    let childinfo = childinfo_names(&q, &subs);
    let mut lines = matching_lines(&q, &entries(&boxes, &subs), &existing);
    lines.extend(childinfo_lines(&childinfo, &lines, &existing));
    if !childinfo.is_empty() {
        lines.sort();
    }
    // Parents that exist only as a path to a deeper name are shown, not selectable (RFC 3501
    // 6.3.8/6.3.9 for `%`; for `*` too, so clients can draw the tree): with LIST for
    // mailboxes, with LSUB for subscriptions.
    if !q.sel_subscribed && !q.only_special {
        let subscribed: BTreeSet<&str> = subs.iter().map(String::as_str).collect();
        let present = if q.lsub { &subscribed } else { &existing };
        lines.extend(parent_lines(&q, present));
        lines.sort();
    }
    for (name, attributes) in &lines {
        s.send(&Untagged::List {
            lsub: q.lsub,
            attributes: attributes.clone(),
            delimiter: Some('/'),
            mailbox: name,
            childinfo: if childinfo.contains(name) {
                vec!["SUBSCRIBED"]
            } else {
                vec![]
            },
        });
        if q.ret_myrights && existing.contains(name.as_str()) {
            // Own mailboxes: every right; shared ones: as the owner's ACL says.
            if let Ok(t) = super::acl::resolve(s, name.clone()).await {
                let rights = t.rights.to_string();
                s.send(&Untagged::MyRights {
                    mailbox: name,
                    rights: &rights,
                });
            }
        }
        if let Some(items) = q.status_items.as_deref() {
            if existing.contains(name.as_str()) {
                // A mailbox that cannot be read now is listed without its STATUS.
                if let Ok((info, counts)) = status_data::info_for(s, name, items).await {
                    status_data::send_status(s, &info, counts, items);
                }
            }
        }
    }
    Ok(done)
}

/// Checks the selection and return options (BAD for unknown ones, RFC 5258 3) and joins the
/// reference to each pattern.
fn query(s: &Session, args: ListArgs) -> Result<Query, Done> {
    let reference = pattern_in(s, &args.reference);
    let patterns = args
        .patterns
        .iter()
        .map(|p| {
            let p = pattern_in(s, p);
            if reference.is_empty() || p.starts_with('/') {
                p
            } else {
                format!("{reference}{p}")
            }
        })
        .collect();
    let selected = |o: &str| args.selection.iter().any(|x| x == o);
    let returned = |o: &str| args.returns.iter().any(|x| x == o);
    for o in &args.selection {
        if !matches!(
            o.as_str(),
            "SUBSCRIBED" | "REMOTE" | "RECURSIVEMATCH" | "SPECIAL-USE"
        ) {
            return Err(Done::Bad(
                format!("Invalid LIST selection option {o}").into(),
            ));
        }
    }
    let q = Query {
        lsub: args.lsub,
        patterns,
        sel_subscribed: selected("SUBSCRIBED"),
        only_special: selected("SPECIAL-USE"),
        recursive: selected("RECURSIVEMATCH"),
        ret_subscribed: returned("SUBSCRIBED") || selected("SUBSCRIBED"),
        status_items: returned("STATUS").then(|| args.status_items.clone()),
        ret_myrights: returned("MYRIGHTS"),
    };
    // RFC 5258 3: RECURSIVEMATCH only refines another selection option (REMOTE is not one).
    if q.recursive && !(q.sel_subscribed || q.only_special) {
        return Err(Done::Bad(
            "Invalid LIST selection options: RECURSIVEMATCH must not be the only selection.".into(),
        ));
    }
    for o in &args.returns {
        if !matches!(
            o.as_str(),
            "SUBSCRIBED" | "CHILDREN" | "SPECIAL-USE" | "STATUS" | "MYRIGHTS"
        ) {
            return Err(Done::Bad(format!("Invalid LIST return option {o}").into()));
        }
    }
    Ok(q)
}

/// Every mailbox and every subscription, by name.
fn entries(boxes: &[storage::MailboxInfo], subs: &[String]) -> BTreeMap<String, Entry> {
    let mut all: BTreeMap<String, Entry> = BTreeMap::new();
    for b in boxes {
        all.insert(
            b.name.clone(),
            Entry {
                exists: true,
                special_use: b.special_use,
                subscribed: false,
            },
        );
    }
    for name in subs {
        all.entry(name.clone())
            .or_insert(Entry {
                exists: false,
                special_use: None,
                subscribed: true,
            })
            .subscribed = true;
    }
    all
}

/// Whether `name` has a child among `existing`.
fn has_children(existing: &BTreeSet<&str>, name: &str) -> bool {
    let prefix = format!("{name}/");
    existing
        .range(prefix.as_str()..)
        .next()
        .is_some_and(|n| n.starts_with(&prefix))
}

/// The ancestors of `name`, nearest first: `a/b/c` gives `a/b`, `a`.
fn ancestors(name: &str) -> impl Iterator<Item = &str> {
    name.char_indices()
        .rev()
        .filter(|&(_, c)| c == '/')
        .filter_map(move |(i, _)| name.get(..i))
}

/// RECURSIVEMATCH with SUBSCRIBED (RFC 5258 3.5): a name matching a pattern that has a
/// subscribed descendant the patterns do not match is listed with CHILDINFO, whether or not
/// it is subscribed itself.
fn childinfo_names(q: &Query, subs: &[String]) -> BTreeSet<String> {
    if !(q.recursive && q.sel_subscribed) {
        return BTreeSet::new();
    }
    subs.iter()
        .filter(|sub| !q.matches(sub))
        .flat_map(|sub| ancestors(sub))
        .filter(|parent| q.matches(parent))
        .map(str::to_string)
        .collect()
}

/// The names the patterns and the selection options pick, with their attributes.
fn matching_lines(
    q: &Query,
    all: &BTreeMap<String, Entry>,
    existing: &BTreeSet<&str>,
) -> Vec<Line> {
    let mut lines = Vec::new();
    for (name, e) in all {
        if !q.matches(name) {
            continue;
        }
        let listed = if q.lsub || q.sel_subscribed {
            e.subscribed
        } else {
            e.exists
        };
        if !listed || (q.only_special && e.special_use.is_none()) {
            continue;
        }
        let mut attrs: Vec<&'static str> = Vec::new();
        if !e.exists {
            attrs.push(if q.lsub {
                "\\Noselect"
            } else {
                "\\NonExistent"
            });
        }
        if !q.lsub {
            if e.exists || q.sel_subscribed {
                attrs.push(if has_children(existing, name) {
                    "\\HasChildren"
                } else {
                    "\\HasNoChildren"
                });
            }
            if q.ret_subscribed && e.subscribed {
                attrs.push("\\Subscribed");
            }
            if let Some(su) = e.special_use {
                attrs.push(su.to_imap());
            }
        }
        lines.push((name.clone(), attrs));
    }
    lines
}

/// The CHILDINFO names not already listed. As elsewhere in LIST: a name that is only a path
/// to existing mailboxes is \Noselect; one with nothing below it either is \NonExistent.
fn childinfo_lines(
    childinfo: &BTreeSet<String>,
    listed: &[Line],
    existing: &BTreeSet<&str>,
) -> Vec<Line> {
    childinfo
        .iter()
        .filter(|name| !listed.iter().any(|(n, _)| n == *name))
        .map(|name| {
            let attrs = match (
                existing.contains(name.as_str()),
                has_children(existing, name),
            ) {
                (true, true) => vec!["\\HasChildren"],
                (true, false) => vec!["\\HasNoChildren"],
                (false, true) => vec!["\\Noselect", "\\HasChildren"],
                (false, false) => vec!["\\NonExistent"],
            };
            (name.clone(), attrs)
        })
        .collect()
}

/// Parents of `present` names that are not themselves present and match a pattern.
fn parent_lines(q: &Query, present: &BTreeSet<&str>) -> Vec<Line> {
    let parents: BTreeSet<&str> = present
        .iter()
        .flat_map(|name| ancestors(name))
        .filter(|parent| !present.contains(parent) && q.matches(parent))
        .collect();
    let attrs = if q.lsub {
        vec!["\\Noselect"]
    } else {
        vec!["\\Noselect", "\\HasChildren"]
    };
    parents
        .into_iter()
        .map(|p| (p.to_string(), attrs.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(matches(b"*", b"a/b/c"));
        assert!(matches(b"%", b"abc"));
        assert!(!matches(b"%", b"a/b"));
        assert!(matches(b"a/%", b"a/b"));
        assert!(matches(b"T%h", b"Trash"));
        assert!(!matches(b"Tr", b"Trash"));
        assert!(name_matches("inbox", "INBOX"));
        assert!(name_matches("Inbox/%", "INBOX/x"));
        assert!(!name_matches("inbox", "Inboxes"));
    }
}
