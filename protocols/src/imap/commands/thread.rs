//! THREAD and UID THREAD (RFC 5256): ORDEREDSUBJECT and REFERENCES over the messages the
//! search criteria match. The facts each algorithm needs (sent date, base subject,
//! Message-ID, References) are gathered on the blocking pool by the same walk SEARCH uses;
//! the threading itself works on an arena of containers with loops instead of recursion,
//! because References chains are written by whoever sends mail.

use super::matching::{check_charset, collect_matches, criteria_key};
use super::sort::{base_subject_reply, sent_date};
use crate::imap::message::{decode_header_value, MessageContent};
use crate::imap::reply::{Done, Reply};
use crate::imap::response::{ThreadNode, ThreadTree, Untagged};
use crate::imap::session::Session;
use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::extensions::thread::ThreadingAlgorithm;
use std::collections::HashMap;
use storage::MessageMeta;

/// What threading needs of one matched message.
#[derive(Clone, Debug, Default)]
pub(crate) struct ThreadMsg {
    /// The number reported: sequence number, or UID for UID THREAD.
    pub num: u32,
    /// Sequence number: ties of sent date are broken by it.
    pub seq: u32,
    /// Sent date (Date header, else internal date), seconds.
    pub date: i64,
    /// Base subject (RFC 5256 2.1) and whether the subject was a reply or forward.
    pub subject: String,
    pub reply: bool,
    pub id: Option<String>,
    /// References, or In-Reply-To's first id when there are no References.
    pub refs: Vec<String>,
}

pub(crate) async fn thread(s: &mut Session, body: CommandBody<'static>) -> Reply {
    let CommandBody::Thread {
        algorithm,
        charset,
        search_criteria,
        uid,
    } = body
    else {
        return Err(Done::Bad(
            "Error in IMAP command THREAD: Invalid arguments.".into(),
        ));
    };
    let references = match &algorithm {
        ThreadingAlgorithm::OrderedSubject => false,
        ThreadingAlgorithm::References => true,
        ThreadingAlgorithm::Other(_) => {
            return Err(Done::Bad("Unknown thread algorithm".into()));
        }
    };
    check_charset(&charset)?;
    let (key, _) = criteria_key(s, search_criteria.as_ref());
    let msgs = collect_matches(s, key, "thread", move |seq, meta, content| {
        thread_msg(seq, meta, content, uid, references)
    })
    .await?;
    let tree = if references {
        by_references(&msgs)
    } else {
        by_ordered_subject(&msgs)
    };
    s.send(&Untagged::Thread(&tree));
    Ok(Done::Ok("Thread completed.".into()))
}

fn thread_msg(
    seq: u32,
    meta: &MessageMeta,
    content: &dyn MessageContent,
    uid: bool,
    references: bool,
) -> ThreadMsg {
    let env = content.envelope();
    let date = env
        .and_then(|e| e.date.as_deref())
        .and_then(sent_date)
        .unwrap_or(meta.internal_date);
    let (subject, reply) = env
        .and_then(|e| e.subject.as_deref())
        .map(|s| base_subject_reply(&decode_header_value(s)))
        .unwrap_or_default();
    let mut m = ThreadMsg {
        num: if uid { meta.uid } else { seq },
        seq,
        date,
        subject,
        reply,
        ..ThreadMsg::default()
    };
    if references {
        m.id = env
            .and_then(|e| e.message_id.as_deref())
            .and_then(|v| msg_ids(v).into_iter().next());
        m.refs = content
            .header()
            .and_then(|h| header_value(h, b"references"))
            .map(|v| msg_ids(&v))
            .unwrap_or_default();
        if m.refs.is_empty() {
            m.refs = env
                .and_then(|e| e.in_reply_to.as_deref())
                .and_then(|v| msg_ids(v).into_iter().next())
                .into_iter()
                .collect();
        }
    }
    m
}

/// The `<...>` message ids in a header value, in order, whitespace removed.
pub(crate) fn msg_ids(v: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = v;
    while let Some(open) = rest.iter().position(|&b| b == b'<') {
        let after = rest.get(open + 1..).unwrap_or(&[]);
        let Some(close) = after.iter().position(|&b| b == b'>') else {
            break;
        };
        let inner = after.get(..close).unwrap_or(&[]);
        rest = after.get(close + 1..).unwrap_or(&[]);
        if inner.contains(&b'<') {
            // "<a <b>": the second opening starts the id.
            rest = after;
            continue;
        }
        let id: String = String::from_utf8_lossy(inner)
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if !id.is_empty() {
            out.push(id);
        }
    }
    out
}

/// The first `name:` field of the message's header, unfolded; `name` in lower case.
pub(crate) fn header_value(raw: &[u8], name: &[u8]) -> Option<Vec<u8>> {
    let mut value: Option<Vec<u8>> = None;
    for line in raw.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let folded = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        match (&mut value, folded) {
            (Some(v), true) => {
                v.push(b' ');
                v.extend_from_slice(line);
            }
            (Some(_), false) => break,
            (None, false) => {
                if let Some(colon) = line.iter().position(|&b| b == b':') {
                    let field = line.get(..colon).unwrap_or(&[]);
                    if field.trim_ascii().eq_ignore_ascii_case(name) {
                        value = Some(line.get(colon + 1..).unwrap_or(&[]).to_vec());
                    }
                }
            }
            (None, true) => {}
        }
    }
    value
}

/// ORDEREDSUBJECT (RFC 5256 2.1): messages grouped by base subject; in each group the
/// oldest is the parent of all the others (in date order); groups ordered by their first
/// message's date.
pub(crate) fn by_ordered_subject(msgs: &[ThreadMsg]) -> ThreadTree {
    let mut order: Vec<&ThreadMsg> = msgs.iter().collect();
    order.sort_by(|a, b| {
        (a.subject.as_str(), a.date, a.seq).cmp(&(b.subject.as_str(), b.date, b.seq))
    });
    let mut tree = ThreadTree::default();
    let mut keys = Vec::with_capacity(order.len());
    let mut current: Option<(&str, usize)> = None;
    for m in order {
        let i = tree.nodes.len();
        keys.push((m.date, m.seq));
        tree.nodes.push(ThreadNode {
            num: Some(m.num),
            children: Vec::new(),
        });
        match current {
            Some((subject, root)) if subject == m.subject => {
                if let Some(r) = tree.nodes.get_mut(root) {
                    r.children.push(i);
                }
            }
            _ => {
                tree.roots.push(i);
                current = Some((m.subject.as_str(), i));
            }
        }
    }
    // Within a group the order is already by date; the groups go by their first message.
    tree.roots
        .sort_by_key(|&i| keys.get(i).copied().unwrap_or((i64::MAX, u32::MAX)));
    tree
}

/// A container of the REFERENCES algorithm: maybe a message (index into the input), its
/// parent and children.
#[derive(Clone, Debug, Default)]
struct Cont {
    msg: Option<usize>,
    parent: Option<usize>,
    children: Vec<usize>,
}

struct Arena {
    c: Vec<Cont>,
}

impl Arena {
    fn new_cont(&mut self) -> usize {
        self.c.push(Cont::default());
        self.c.len() - 1
    }

    fn parent(&self, i: usize) -> Option<usize> {
        self.c.get(i).and_then(|c| c.parent)
    }

    /// Whether `a` is `b` or one of `b`'s ancestors.
    fn is_ancestor(&self, a: usize, b: usize) -> bool {
        // Without children `a` is nobody's ancestor: the common case costs no walk.
        if self.c.get(a).is_none_or(|c| c.children.is_empty()) {
            return a == b;
        }
        let mut cur = Some(b);
        let mut steps = 0;
        while let Some(x) = cur {
            if x == a {
                return true;
            }
            steps += 1;
            if steps > self.c.len() {
                // Cannot happen (links never make loops); a bound instead of trust.
                return true;
            }
            cur = self.parent(x);
        }
        false
    }

    fn unlink(&mut self, child: usize) {
        if let Some(p) = self.parent(child) {
            if let Some(pc) = self.c.get_mut(p) {
                pc.children.retain(|&x| x != child);
            }
        }
        if let Some(c) = self.c.get_mut(child) {
            c.parent = None;
        }
    }

    fn link(&mut self, parent: usize, child: usize) {
        self.unlink(child);
        if let Some(c) = self.c.get_mut(child) {
            c.parent = Some(parent);
        }
        if let Some(p) = self.c.get_mut(parent) {
            p.children.push(child);
        }
    }

    fn children(&self, i: usize) -> Vec<usize> {
        self.c
            .get(i)
            .map(|c| c.children.clone())
            .unwrap_or_default()
    }

    fn msg(&self, i: usize) -> Option<usize> {
        self.c.get(i).and_then(|c| c.msg)
    }
}

/// REFERENCES (RFC 5256 2.2, after Zawinski): link messages by Message-ID and References,
/// drop empty placeholders, group the threads whose roots share a base subject, and order
/// every set of siblings by sent date.
pub(crate) fn by_references(msgs: &[ThreadMsg]) -> ThreadTree {
    let mut a = Arena { c: Vec::new() };
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    // (1) containers and links.
    for (mi, m) in msgs.iter().enumerate() {
        // A message without an id, or whose id another message already has, stands alone.
        let this = match m.id.as_deref().map(|id| (id, by_id.get(id).copied())) {
            Some((_, Some(c))) if a.msg(c).is_none() => c,
            Some((id, None)) => {
                let c = a.new_cont();
                by_id.insert(id, c);
                c
            }
            _ => a.new_cont(),
        };
        if let Some(c) = a.c.get_mut(this) {
            c.msg = Some(mi);
        }
        let mut prev: Option<usize> = None;
        for r in &m.refs {
            let c = match by_id.get(r.as_str()) {
                Some(&c) => c,
                None => {
                    let c = a.new_cont();
                    by_id.insert(r.as_str(), c);
                    c
                }
            };
            if let Some(p) = prev {
                if a.parent(c).is_none() && !a.is_ancestor(c, p) {
                    a.link(p, c);
                }
            }
            prev = Some(c);
        }
        // The message's own references decide its parent over any guessed before; when the
        // parent they name is below it (a loop), it has none (as Dovecot threads).
        match prev {
            Some(p) if !a.is_ancestor(this, p) => a.link(p, this),
            _ => a.unlink(this),
        }
    }
    let msg_key = |a: &Arena, i: usize| -> (i64, u32) {
        a.msg(i)
            .and_then(|mi| msgs.get(mi))
            .map_or((i64::MAX, u32::MAX), |m| (m.date, m.seq))
    };
    // (2) the roots; (3) prune dummies, children before parents.
    let mut roots: Vec<usize> = (0..a.c.len()).filter(|&i| a.parent(i).is_none()).collect();
    for i in post_order(&a, &roots) {
        let mut kept = Vec::new();
        for ch in a.children(i) {
            if a.msg(ch).is_some() {
                kept.push(ch);
            } else {
                // A dummy below the root: its children take its place.
                kept.extend(a.children(ch));
            }
        }
        for &ch in &kept {
            if let Some(c) = a.c.get_mut(ch) {
                c.parent = Some(i);
            }
        }
        if let Some(c) = a.c.get_mut(i) {
            c.children = kept;
        }
    }
    let mut top = Vec::new();
    for r in roots.drain(..) {
        let kids = a.children(r);
        match (a.msg(r), kids.len()) {
            (Some(_), _) => top.push(r),
            (None, 0) => {}
            (None, 1) => {
                // A dummy root with one child: the child is the root.
                top.extend(kids);
                for k in a.children(r) {
                    if let Some(c) = a.c.get_mut(k) {
                        c.parent = None;
                    }
                }
            }
            (None, _) => top.push(r),
        }
    }
    // (4) order the roots (a dummy by its first child, once its children are ordered).
    let sort_children = |a: &mut Arena, i: usize| {
        let mut kids = a.children(i);
        kids.sort_by_key(|&k| first_key(a, k, &msg_key));
        if let Some(c) = a.c.get_mut(i) {
            c.children = kids;
        }
    };
    for &r in &top {
        if a.msg(r).is_none() {
            sort_children(&mut a, r);
        }
    }
    top.sort_by_key(|&r| first_key(&a, r, &msg_key));
    // (5) threads whose subjects match become one.
    let subject_of = |a: &Arena, r: usize| -> Option<(String, bool)> {
        let m = match a.msg(r) {
            Some(mi) => msgs.get(mi),
            None => a
                .children(r)
                .first()
                .and_then(|&k| a.msg(k))
                .and_then(|mi| msgs.get(mi)),
        }?;
        (!m.subject.is_empty()).then(|| (m.subject.clone(), m.reply))
    };
    let mut table: HashMap<String, usize> = HashMap::new();
    for &r in &top {
        let Some((subj, reply)) = subject_of(&a, r) else {
            continue;
        };
        match table.get(&subj).copied() {
            None => {
                table.insert(subj, r);
            }
            Some(t) => {
                let t_dummy = a.msg(t).is_none();
                let r_dummy = a.msg(r).is_none();
                let t_reply = subject_of(&a, t).is_some_and(|x| x.1);
                if !t_dummy && (r_dummy || (t_reply && !reply)) {
                    table.insert(subj, r);
                }
            }
        }
    }
    let mut merged_top = Vec::new();
    for &r in &top {
        let Some((subj, reply)) = subject_of(&a, r) else {
            merged_top.push(r);
            continue;
        };
        let Some(t) = table.get(&subj).copied() else {
            merged_top.push(r);
            continue;
        };
        if t == r {
            merged_top.push(r);
            continue;
        }
        let t_dummy = a.msg(t).is_none();
        let r_dummy = a.msg(r).is_none();
        let t_reply = subject_of(&a, t).is_some_and(|x| x.1);
        if t_dummy && r_dummy {
            // All of r's children at once: one by one would cost a scan of r's list each.
            let kids =
                a.c.get_mut(r)
                    .map(|c| std::mem::take(&mut c.children))
                    .unwrap_or_default();
            for &k in &kids {
                if let Some(c) = a.c.get_mut(k) {
                    c.parent = Some(t);
                }
            }
            if let Some(tc) = a.c.get_mut(t) {
                tc.children.extend(kids);
            }
        } else if t_dummy || (reply && !t_reply) {
            a.link(t, r);
        } else {
            let d = a.new_cont();
            a.link(d, t);
            a.link(d, r);
            table.insert(subj, d);
            // The dummy takes the table thread's place among the roots.
            if let Some(pos) = merged_top.iter().position(|&x| x == t) {
                if let Some(slot) = merged_top.get_mut(pos) {
                    *slot = d;
                }
            } else {
                merged_top.push(d);
            }
        }
    }
    // Roots merged away are those now having a parent (or dummies emptied).
    let mut top: Vec<usize> = merged_top
        .into_iter()
        .filter(|&r| a.parent(r).is_none())
        .filter(|&r| a.msg(r).is_some() || !a.children(r).is_empty())
        .collect();
    // (6) every set of siblings by date, deepest first; then the roots.
    for i in post_order(&a, &top) {
        sort_children(&mut a, i);
    }
    top.sort_by_key(|&r| first_key(&a, r, &msg_key));
    emit(&a, &top, msgs)
}

/// The sort key of a node: its message's, or for a dummy its first child's.
fn first_key(a: &Arena, i: usize, msg_key: &impl Fn(&Arena, usize) -> (i64, u32)) -> (i64, u32) {
    if a.msg(i).is_some() {
        return msg_key(a, i);
    }
    a.children(i)
        .first()
        .map_or((i64::MAX, u32::MAX), |&k| msg_key(a, k))
}

/// Every node under `roots` (roots included), children before their parents.
fn post_order(a: &Arena, roots: &[usize]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut stack: Vec<(usize, bool)> = roots.iter().map(|&r| (r, false)).collect();
    let mut seen = vec![false; a.c.len()];
    while let Some((i, expanded)) = stack.pop() {
        if expanded {
            out.push(i);
            continue;
        }
        match seen.get_mut(i) {
            Some(s) if !*s => *s = true,
            _ => continue,
        }
        stack.push((i, true));
        for ch in a.children(i) {
            stack.push((ch, false));
        }
    }
    out
}

/// The arena's threads under `top` as the answer's tree.
fn emit(a: &Arena, top: &[usize], msgs: &[ThreadMsg]) -> ThreadTree {
    let mut tree = ThreadTree::default();
    let mut index: HashMap<usize, usize> = HashMap::new();
    // Pre-order with an explicit stack: each node's index is known before its children.
    let mut stack: Vec<(usize, Option<usize>)> = top.iter().rev().map(|&r| (r, None)).collect();
    while let Some((c, parent)) = stack.pop() {
        if index.contains_key(&c) {
            continue;
        }
        let i = tree.nodes.len();
        index.insert(c, i);
        tree.nodes.push(ThreadNode {
            num: a.msg(c).and_then(|mi| msgs.get(mi)).map(|m| m.num),
            children: Vec::new(),
        });
        match parent.and_then(|p| tree.nodes.get_mut(p)) {
            Some(p) => p.children.push(i),
            None => tree.roots.push(i),
        }
        for &ch in a.children(c).iter().rev() {
            stack.push((ch, Some(i)));
        }
    }
    tree
}

#[cfg(test)]
mod tests;
