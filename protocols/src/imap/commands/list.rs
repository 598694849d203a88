//! LIST (CHILDREN, SPECIAL-USE, LIST-EXTENDED: SUBSCRIBED selection, RETURN (SUBSCRIBED
//! CHILDREN SPECIAL-USE STATUS)) and LSUB.

use crate::imap::parse::ListArgs;
use crate::imap::session::{Done, Reply, Session};
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

pub(crate) async fn list(s: &mut Session, args: ListArgs) -> Reply {
    let reference = pattern_in(s, &args.reference);
    let mut patterns = Vec::new();
    for p in &args.patterns {
        let p = pattern_in(s, p);
        patterns.push(if reference.is_empty() || p.starts_with('/') {
            p
        } else {
            format!("{reference}{p}")
        });
    }
    let verb = if args.lsub { "LSUB" } else { "LIST" };
    let sel_subscribed = args.selection.iter().any(|o| o == "SUBSCRIBED");
    let ret_subscribed = args.returns.iter().any(|o| o == "SUBSCRIBED") || sel_subscribed;
    let ret_status = args.returns.iter().any(|o| o == "STATUS");
    let only_special = args.selection.iter().any(|o| o == "SPECIAL-USE");
    for o in &args.selection {
        if !matches!(
            o.as_str(),
            "SUBSCRIBED" | "REMOTE" | "RECURSIVEMATCH" | "SPECIAL-USE"
        ) {
            return Err(Done::Bad(format!("Invalid LIST selection option {o}")));
        }
    }
    // RFC 5258 3: RECURSIVEMATCH only refines another selection option (REMOTE is not one).
    let recursive = args.selection.iter().any(|o| o == "RECURSIVEMATCH");
    if recursive && !(sel_subscribed || only_special) {
        return Err(Done::Bad(
            "Invalid LIST selection options: RECURSIVEMATCH must not be the only selection.".into(),
        ));
    }
    for o in &args.returns {
        if !matches!(
            o.as_str(),
            "SUBSCRIBED" | "CHILDREN" | "SPECIAL-USE" | "STATUS"
        ) {
            return Err(Done::Bad(format!("Invalid LIST return option {o}")));
        }
    }
    // LIST "" "": the hierarchy delimiter and root.
    if !args.lsub && patterns.iter().all(|p| p.is_empty()) {
        s.untagged("LIST (\\Noselect) \"/\" \"\"");
        return Ok(Done::Ok("List completed.".into()));
    }
    if ret_status {
        super::status::check_items(&args.status_items)?;
    }
    let (boxes, subs) = s
        .store_call(|st| Ok((st.list_mailboxes()?, st.subscriptions()?)))
        .await?;
    let mut all: BTreeMap<String, Entry> = BTreeMap::new();
    for b in &boxes {
        all.insert(
            b.name.clone(),
            Entry {
                exists: true,
                special_use: b.special_use,
                subscribed: false,
            },
        );
    }
    for name in &subs {
        all.entry(name.clone())
            .or_insert(Entry {
                exists: false,
                special_use: None,
                subscribed: true,
            })
            .subscribed = true;
    }
    let existing: BTreeSet<&str> = boxes.iter().map(|b| b.name.as_str()).collect();
    let has_children = |name: &str| {
        let prefix = format!("{name}/");
        existing
            .range(prefix.as_str()..)
            .next()
            .is_some_and(|n| n.starts_with(&prefix))
    };
    // RECURSIVEMATCH with SUBSCRIBED (RFC 5258 3.5): a name matching a pattern that has a
    // subscribed descendant the patterns do not match is listed with CHILDINFO, whether or not
    // it is subscribed itself.
    let mut childinfo: BTreeSet<String> = BTreeSet::new();
    if recursive && sel_subscribed {
        for sub in &subs {
            if patterns.iter().any(|p| name_matches(p, sub)) {
                continue;
            }
            let mut parts: Vec<&str> = sub.split('/').collect();
            while parts.len() > 1 {
                parts.pop();
                let parent = parts.join("/");
                if patterns.iter().any(|p| name_matches(p, &parent)) {
                    childinfo.insert(parent);
                }
            }
        }
    }
    let mut lines: Vec<(String, String)> = Vec::new();
    for (name, e) in &all {
        if !patterns.iter().any(|p| name_matches(p, name)) {
            continue;
        }
        let listed = if args.lsub || sel_subscribed {
            e.subscribed
        } else {
            e.exists
        };
        if !listed || (only_special && e.special_use.is_none()) {
            continue;
        }
        let mut attrs: Vec<&str> = Vec::new();
        if !e.exists {
            attrs.push(if args.lsub {
                "\\Noselect"
            } else {
                "\\NonExistent"
            });
        }
        if !args.lsub {
            if e.exists || sel_subscribed {
                attrs.push(if has_children(name) {
                    "\\HasChildren"
                } else {
                    "\\HasNoChildren"
                });
            }
            if ret_subscribed && e.subscribed {
                attrs.push("\\Subscribed");
            }
            if let Some(su) = e.special_use {
                attrs.push(su.to_imap());
            }
        }
        lines.push((name.clone(), attrs.join(" ")));
    }
    for name in &childinfo {
        if lines.iter().any(|(n, _)| n == name) {
            continue;
        }
        // As elsewhere in LIST: a name that is only a path to existing mailboxes is
        // \Noselect; one with nothing below it either is \NonExistent.
        let attrs = match (existing.contains(name.as_str()), has_children(name)) {
            (true, true) => "\\HasChildren",
            (true, false) => "\\HasNoChildren",
            (false, true) => "\\Noselect \\HasChildren",
            (false, false) => "\\NonExistent",
        };
        lines.push((name.clone(), attrs.into()));
    }
    if !childinfo.is_empty() {
        lines.sort();
    }
    // Parents that exist only as a path to a deeper name are shown, not selectable (RFC 3501
    // 6.3.8/6.3.9 for `%`; for `*` too, so clients can draw the tree): with LIST for
    // mailboxes, with LSUB for subscriptions.
    if !sel_subscribed && !only_special {
        let subscribed: BTreeSet<&str> = subs.iter().map(String::as_str).collect();
        let present = if args.lsub { &subscribed } else { &existing };
        let mut parents = BTreeSet::new();
        for b in present.iter() {
            let mut parts: Vec<&str> = b.split('/').collect();
            while parts.len() > 1 {
                parts.pop();
                let parent = parts.join("/");
                if !present.contains(parent.as_str())
                    && patterns.iter().any(|p| name_matches(p, &parent))
                {
                    parents.insert(parent);
                }
            }
        }
        for p in parents {
            let attrs = if args.lsub {
                "\\Noselect"
            } else {
                "\\Noselect \\HasChildren"
            };
            lines.push((p, attrs.into()));
        }
        lines.sort();
    }
    for (name, attrs) in lines {
        let mut out = format!("* {verb} ({attrs}) \"/\" ").into_bytes();
        s.mailbox_out(&mut out, &name);
        if childinfo.contains(&name) {
            out.extend_from_slice(b" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
        }
        out.extend_from_slice(b"\r\n");
        s.out.extend_from_slice(&out);
        if ret_status && existing.contains(name.as_str()) {
            match super::status::info_for(s, &name, &args.status_items).await {
                Ok((info, counts)) => {
                    super::status::write_status(s, &info, counts, &args.status_items)
                }
                Err(_) => continue,
            }
        }
    }
    Ok(Done::Ok(format!(
        "{} completed.",
        if args.lsub { "Lsub" } else { "List" }
    )))
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
