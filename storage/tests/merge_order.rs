//! Mailbox merges are a function of the SET of records, not of their arrival order: two nodes
//! create, rename and delete mailboxes apart, and a third store that applies all their records
//! in different interleavings (each origin's records in their own order, after the shared
//! history) ends with the same mailboxes, names and messages every time.
mod common;
use common::*;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use storage::record::{Op, Record};
use storage::*;

fn node(root: &std::path::Path, id: NodeId) -> Arc<Store> {
    let mut c = config(root);
    c.node_id = id;
    Store::open(c).unwrap()
}

/// Objects the records need, from whichever source store holds them.
fn ship_objects(recs: &[Record], sources: &[&UserStore], to: &UserStore) {
    for r in recs {
        let objs: Vec<ObjectId> = match &r.op {
            Op::Append { entry, .. } => vec![entry.object],
            Op::Copy { entries, .. } | Op::Move { entries, .. } => {
                entries.iter().map(|(_, e)| e.object).collect()
            }
            _ => vec![],
        };
        for o in objs {
            if to.has_object(&o).unwrap() {
                continue;
            }
            let src = sources
                .iter()
                .find(|s| s.has_object(&o).unwrap())
                .expect("some source holds the object");
            let raw = src.read_message(&o).unwrap();
            assert_eq!(to.put_object(&raw).unwrap(), o);
        }
    }
}

type Dump = BTreeMap<MailboxId, (String, u32, u32, Vec<(u32, Guid, Flags)>)>;

/// Mailboxes (GUID, name, UIDVALIDITY, UIDNEXT) and their messages (UID, GUID, flags).
fn dump(u: &UserStore) -> Dump {
    let mut out = Dump::new();
    for mb in u.list_mailboxes().unwrap() {
        let msgs = u
            .messages(&mb.name)
            .unwrap()
            .into_iter()
            .map(|m| (m.uid, m.guid, m.flags))
            .collect();
        out.insert(mb.id, (mb.name, mb.uidvalidity, mb.uidnext, msgs));
    }
    out
}

#[derive(Clone, Debug)]
enum Action {
    Create(u8),
    Rename(u8, u8),
    Delete(u8),
    /// Appends only on node A while apart: concurrent appends are UID conflicts, settled by a
    /// Renumber, which is not what this test is about.
    Append(u8),
}

const BOXES: [&str; 5] = ["INBOX", "Sent", "Work", "Work/Old", "Archive"];

fn pick(n: u8) -> &'static str {
    BOXES[n as usize % BOXES.len()]
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        2 => any::<u8>().prop_map(Action::Create),
        3 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Action::Rename(a, b)),
        1 => any::<u8>().prop_map(Action::Delete),
        1 => any::<u8>().prop_map(Action::Append),
    ]
}

/// Refusals (no such mailbox, name taken, has children) are part of the game.
fn run(u: &UserStore, a: &Action, n: usize, appends: bool) {
    let _ = match a {
        Action::Create(m) => u.create_mailbox(pick(*m), None).map(|_| ()),
        Action::Rename(a, b) => u.rename_mailbox(pick(*a), pick(*b)),
        Action::Delete(m) => u.delete_mailbox(pick(*m)),
        Action::Append(m) if appends => u
            .append(
                pick(*m),
                NewMessage {
                    raw: &msg(n),
                    flags: Flags::new(),
                    internal_date: Some((1_700_000_000, 0)),
                    delivery_key: None,
                },
            )
            .map(|_| ()),
        Action::Append(_) => Ok(()),
    };
}

/// Shared history on A, copied to B; then each side alone. Returns the shared records, A's
/// records made apart, B's records made apart, and the two source stores' users.
struct Apart {
    _dirs: Vec<tempfile::TempDir>,
    a: Arc<UserStore>,
    b: Arc<UserStore>,
    shared: Vec<Record>,
    only_a: Vec<Record>,
    only_b: Vec<Record>,
}

fn apart(common: &[Action], ops_a: &[Action], ops_b: &[Action]) -> Apart {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (sa, sb) = (node(da.path(), 1), node(db.path(), 2));
    let (a, b) = (sa.user("u").unwrap(), sb.user("u").unwrap());
    for (i, op) in common.iter().enumerate() {
        run(&a, op, i, true);
    }
    let shared = a.records_since(&VersionVector::new(), 100_000).unwrap();
    ship_objects(&shared, &[&a], &b);
    b.apply_remote(&shared).unwrap();
    let vv_shared = a.version_vector().unwrap();
    for (i, op) in ops_a.iter().enumerate() {
        run(&a, op, 100 + i, true);
    }
    for (i, op) in ops_b.iter().enumerate() {
        run(&b, op, 200 + i, false);
    }
    let only_a = a.records_since(&vv_shared, 100_000).unwrap();
    let only_b = b
        .records_since(&a.version_vector().unwrap(), 100_000)
        .unwrap();
    assert!(only_b.iter().all(|r| r.origin == 2));
    Apart {
        _dirs: vec![da, db],
        a,
        b,
        shared,
        only_a,
        only_b,
    }
}

/// Applies the shared history, then A's and B's records interleaved as `take_a` says (true:
/// A's next record), to a fresh third store, one record per apply_remote call.
fn replay(x: &Apart, take_a: &[bool]) -> Dump {
    let dir = tempfile::tempdir().unwrap();
    let s = node(dir.path(), 3);
    let u = s.user("u").unwrap();
    let mut order: Vec<Record> = x.shared.clone();
    let (mut ia, mut ib) = (x.only_a.iter(), x.only_b.iter());
    for &pick_a in take_a.iter().chain(std::iter::repeat(&true)) {
        let next = if pick_a {
            ia.next().or_else(|| ib.next())
        } else {
            ib.next().or_else(|| ia.next())
        };
        match next {
            Some(r) => order.push(r.clone()),
            None => break,
        }
    }
    ship_objects(&order, &[&x.a, &x.b], &u);
    for r in &order {
        u.apply_remote(std::slice::from_ref(r)).unwrap();
    }
    let d = dump(&u);
    // The rebuilt index (log order) agrees with the live one.
    u.rebuild_index().unwrap();
    assert_eq!(dump(&u), d);
    d
}

fn check(common: &[Action], ops_a: &[Action], ops_b: &[Action], orders: &[Vec<bool>]) {
    let x = apart(common, ops_a, ops_b);
    let (na, nb) = (x.only_a.len(), x.only_b.len());
    // A's records first, B's first, and the given interleavings.
    let mut all = vec![vec![true; na + nb], vec![false; na + nb]];
    all.extend(orders.iter().cloned());
    let first = replay(&x, &all[0]);
    for o in &all[1..] {
        assert_eq!(replay(&x, o), first, "interleaving {o:?}");
    }
    // The two nodes themselves, each given the other's records, agree too.
    ship_objects(&x.only_b, &[&x.b], &x.a);
    x.a.apply_remote(&x.only_b).unwrap();
    ship_objects(&x.only_a, &[&x.a], &x.b);
    x.b.apply_remote(&x.only_a).unwrap();
    assert_eq!(dump(&x.a), first);
    assert_eq!(dump(&x.b), first);
}

/// Issue 6: A renames Sent to "Work/Old" while B renames it to "Work". Last writer (by HLC
/// time) wins on every node, whichever rename arrives last.
#[test]
fn concurrent_renames_of_one_mailbox_converge() {
    // Sent is a default mailbox: it exists on both nodes with one GUID.
    let common = [];
    let x = apart(
        &common,
        &[Action::Rename(1, 3)], // Sent -> Work/Old
        &[Action::Rename(1, 2)], // Sent -> Work
    );
    let n = x.only_a.len() + x.only_b.len();
    let a_first = replay(&x, &vec![true; n]);
    let b_first = replay(&x, &vec![false; n]);
    assert_eq!(a_first, b_first);
    // One of the two renames won (the later by HLC time), not a mix.
    let names: Vec<&str> = a_first.values().map(|v| v.0.as_str()).collect();
    let won = names
        .iter()
        .filter(|n| ["Work", "Work/Old"].contains(n))
        .count();
    assert_eq!(won, 1, "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("Sent")), "{names:?}");
}

/// A creates and deletes "Work/Old" while B creates its own: B's keeps the name everywhere.
#[test]
fn create_delete_vs_create_of_one_name_converge() {
    check(
        &[Action::Append(0)],
        &[Action::Create(3), Action::Delete(3)],
        &[Action::Create(3)],
        &[vec![true, false, true], vec![false, true, true]],
    );
}

/// A renames Sent to "Work" while B renames INBOX to "Work" (a new mailbox takes INBOX's
/// messages): one keeps "Work", the other a suffix, the same on every node.
#[test]
fn rename_vs_inbox_rename_to_one_name_converge() {
    check(
        &[Action::Create(1), Action::Append(0), Action::Append(0)],
        &[Action::Rename(1, 2)],
        &[Action::Rename(0, 2)],
        &[vec![true, false], vec![false, true, false, false]],
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, max_shrink_iters: 200, .. ProptestConfig::default() })]
    #[test]
    fn mailbox_merge_is_independent_of_arrival_order(
        common in proptest::collection::vec(action(), 0..8),
        ops_a in proptest::collection::vec(action(), 0..12),
        ops_b in proptest::collection::vec(action(), 0..12),
        orders in proptest::collection::vec(proptest::collection::vec(any::<bool>(), 0..40), 1..4),
    ) {
        check(&common, &ops_a, &ops_b, &orders);
    }
}
