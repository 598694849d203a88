//! NOTIFY (RFC 5465): the client names the mailboxes it wants to hear about and the events;
//! for mailboxes other than the selected one the server then sends STATUS (new messages,
//! expunges, flag changes) and LIST (mailboxes created, deleted, subscribed or not) on its
//! own, after each command and while idling, instead of the client polling. The selected
//! mailbox is reported as always (EXISTS, EXPUNGE, FETCH). `NOTIFY SET STATUS` first sends
//! the current STATUS of each mailbox named.
//!
//! Changes are found by comparing each mailbox's counters (messages, UIDNEXT, UIDVALIDITY,
//! HIGHESTMODSEQ, subscription) with what was last told, and only when the user's change
//! counter moved: no change log is read and nothing is stored.

use crate::imap::parse::{NotifyFilter, NotifySpec};
use crate::imap::reply::{Done, Reply};
use crate::imap::response::Untagged;
use crate::imap::session::Session;
use std::collections::HashMap;
use storage::MailboxInfo;

/// What was last told of one mailbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seen {
    exists: u32,
    uidnext: u32,
    uidvalidity: u32,
    highestmodseq: u64,
    subscribed: bool,
}

impl Seen {
    fn of(m: &MailboxInfo) -> Seen {
        Seen {
            exists: m.exists,
            uidnext: m.uidnext,
            uidvalidity: m.uidvalidity,
            highestmodseq: m.highestmodseq,
            subscribed: m.subscribed,
        }
    }
}

/// A filter with its mailbox names decoded.
#[derive(Debug)]
enum Filter {
    Selected,
    Personal,
    Inboxes,
    Subscribed,
    Subtree(Vec<String>),
    Mailboxes(Vec<String>),
}

/// The session's NOTIFY settings and what it has told.
#[derive(Debug)]
pub(crate) struct NotifyState {
    groups: Vec<(Filter, Vec<String>)>,
    seen: HashMap<String, Seen>,
    /// The user's change counter when the mailboxes were last compared.
    version: Option<u64>,
}

impl NotifyState {
    /// The events asked for `m` (not the selected mailbox): the first group that names it.
    fn events_for(&self, m: &MailboxInfo) -> Option<&[String]> {
        self.groups.iter().find_map(|(f, ev)| {
            let hit = match f {
                Filter::Selected => false,
                Filter::Personal => true,
                Filter::Inboxes => m.name == "INBOX",
                Filter::Subscribed => m.subscribed,
                Filter::Subtree(names) => names.iter().any(|n| {
                    m.name == *n
                        || m.name
                            .strip_prefix(n.as_str())
                            .is_some_and(|r| r.starts_with('/'))
                }),
                Filter::Mailboxes(names) => names.contains(&m.name),
            };
            hit.then_some(ev.as_slice())
        })
    }
}

fn has(events: &[String], e: &str) -> bool {
    events.iter().any(|x| x == e)
}

pub(crate) async fn notify(s: &mut Session, spec: Option<NotifySpec>) -> Reply {
    let Some(spec) = spec else {
        s.notify = None;
        return Ok(Done::Ok("NOTIFY completed.".into()));
    };
    let mut groups = Vec::with_capacity(spec.groups.len());
    for g in spec.groups {
        let decode = |names: &[Vec<u8>]| -> Result<Vec<String>, Done> {
            names.iter().map(|n| s.mailbox_in(n)).collect()
        };
        let filter = match &g.filter {
            NotifyFilter::Selected | NotifyFilter::SelectedDelayed => Filter::Selected,
            NotifyFilter::Personal => Filter::Personal,
            NotifyFilter::Inboxes => Filter::Inboxes,
            NotifyFilter::Subscribed => Filter::Subscribed,
            NotifyFilter::Subtree(n) => Filter::Subtree(decode(n)?),
            NotifyFilter::Mailboxes(n) => Filter::Mailboxes(decode(n)?),
        };
        groups.push((filter, g.events));
    }
    let version = s.watch.as_mut().map(|w| *w.borrow_and_update());
    let boxes = s.store_call(|st| st.list_mailboxes()).await?;
    let state = NotifyState {
        groups,
        seen: boxes
            .iter()
            .map(|m| (m.name.clone(), Seen::of(m)))
            .collect(),
        version,
    };
    if spec.status {
        let selected = own_selected(s);
        for m in &boxes {
            if Some(&m.name) == selected.as_ref() {
                continue;
            }
            let Some(ev) = state.events_for(m) else {
                continue;
            };
            let mut items: Vec<(&str, u64)> = Vec::new();
            if has(ev, "MESSAGENEW") || has(ev, "MESSAGEEXPUNGE") {
                items.push(("MESSAGES", u64::from(m.exists)));
            }
            if has(ev, "MESSAGENEW") {
                items.push(("UIDNEXT", u64::from(m.uidnext)));
            }
            if has(ev, "MESSAGENEW") || has(ev, "FLAGCHANGE") {
                items.push(("UIDVALIDITY", u64::from(m.uidvalidity)));
            }
            if has(ev, "FLAGCHANGE") {
                items.push(("HIGHESTMODSEQ", m.highestmodseq));
            }
            if !items.is_empty() {
                s.send(&Untagged::Status {
                    mailbox: &m.name,
                    items,
                    mailbox_id: None,
                });
            }
        }
    }
    s.notify = Some(state);
    Ok(Done::Ok("NOTIFY completed.".into()))
}

/// The selected mailbox when it is one of the user's own (NOTIFY reports it as always, not
/// by STATUS); None while another user's is selected (none of the user's own is).
fn own_selected(s: &Session) -> Option<String> {
    match s.shared {
        Some(_) => None,
        None => s.sel.as_ref().map(|sel| sel.name.clone()),
    }
}

/// Tells the client what changed in the mailboxes it asked about since it was last told.
pub(crate) async fn check(s: &mut Session) -> Result<(), Done> {
    if s.notify.is_none() {
        return Ok(());
    }
    // While another user's mailbox is selected the session's store and change counter are
    // the owner's; what NOTIFY watches (this user's own mailboxes) is looked at with the
    // user's own put back for the check.
    if s.shared.as_ref().is_some_and(|v| !v.is_swapped()) {
        s.swap_home();
        let r = check_own(s).await;
        s.swap_home();
        return r;
    }
    check_own(s).await
}

async fn check_own(s: &mut Session) -> Result<(), Done> {
    let Some(state) = s.notify.as_ref() else {
        return Ok(());
    };
    let version = s.watch.as_mut().map(|w| *w.borrow_and_update());
    if version.is_some() && version == state.version {
        return Ok(());
    }
    let boxes = s.store_call(|st| st.list_mailboxes()).await?;
    let selected = own_selected(s);
    let enc = s.encoder();
    let Some(state) = s.notify.as_mut() else {
        return Ok(());
    };
    state.version = version;
    let mut out = Vec::new();
    for m in &boxes {
        let now = Seen::of(m);
        let before = state.seen.get(&m.name).copied();
        if before == Some(now) || Some(&m.name) == selected.as_ref() {
            continue;
        }
        let Some(ev) = state.events_for(m) else {
            continue;
        };
        let Some(b) = before else {
            if has(ev, "MAILBOXNAME") {
                out.push(list(
                    &m.name,
                    if m.subscribed { &["\\Subscribed"] } else { &[] },
                ));
            }
            continue;
        };
        let mut items: Vec<(&str, u64)> = Vec::new();
        let new = now.uidnext != b.uidnext || now.uidvalidity != b.uidvalidity;
        let fewer = now.exists < b.exists;
        if (new && has(ev, "MESSAGENEW")) || (fewer && has(ev, "MESSAGEEXPUNGE")) {
            items.push(("MESSAGES", u64::from(now.exists)));
        }
        if new && has(ev, "MESSAGENEW") {
            items.push(("UIDNEXT", u64::from(now.uidnext)));
        }
        if now.uidvalidity != b.uidvalidity && has(ev, "MESSAGENEW") {
            items.push(("UIDVALIDITY", u64::from(now.uidvalidity)));
        }
        // A modseq that moved with no message added or removed is a flag change.
        if now.highestmodseq != b.highestmodseq && !new && !fewer && has(ev, "FLAGCHANGE") {
            items.push(("HIGHESTMODSEQ", now.highestmodseq));
        }
        if !items.is_empty() {
            let mut buf = Vec::new();
            enc.untagged(
                &mut buf,
                &Untagged::Status {
                    mailbox: &m.name,
                    items,
                    mailbox_id: None,
                },
            );
            out.push(Line::Raw(buf));
        }
        if now.subscribed != b.subscribed && has(ev, "SUBSCRIPTIONCHANGE") {
            out.push(list(
                &m.name,
                if now.subscribed {
                    &["\\Subscribed"]
                } else {
                    &[]
                },
            ));
        }
    }
    // Mailboxes gone (deleted, or renamed away) are \NonExistent.
    for name in state.seen.keys() {
        if boxes.iter().any(|m| &m.name == name) {
            continue;
        }
        if state
            .events_for(&placeholder(name))
            .is_some_and(|ev| has(ev, "MAILBOXNAME"))
        {
            out.push(list(name, &["\\NonExistent"]));
        }
    }
    state.seen = boxes
        .iter()
        .map(|m| (m.name.clone(), Seen::of(m)))
        .collect();
    for line in out {
        match line {
            Line::Raw(bytes) => s.out.extend_from_slice(&bytes),
            Line::List { name, attrs } => s.send(&Untagged::List {
                lsub: false,
                attributes: attrs.to_vec(),
                delimiter: Some('/'),
                mailbox: &name,
                childinfo: Vec::new(),
            }),
        }
    }
    Ok(())
}

/// A response to send once the borrow of the state ends.
enum Line {
    Raw(Vec<u8>),
    List {
        name: String,
        attrs: &'static [&'static str],
    },
}

fn list(name: &str, attrs: &'static [&'static str]) -> Line {
    Line::List {
        name: name.to_string(),
        attrs,
    }
}

/// A mailbox that is gone, for matching filters by its name.
fn placeholder(name: &str) -> MailboxInfo {
    MailboxInfo {
        id: storage::Guid([0; 16]),
        name: name.to_string(),
        uidvalidity: 0,
        uidnext: 0,
        highestmodseq: 0,
        subscribed: false,
        special_use: None,
        exists: 0,
        unseen: 0,
        size: 0,
    }
}
