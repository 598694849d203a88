//! A user first seen on two nodes before they replicated: each made the default mailboxes (one
//! GUID everywhere) at its own time, with its own UIDVALIDITY, and took deliveries. Once the
//! records cross, both nodes hold the same UIDVALIDITY (the earliest creation's), whatever
//! order they arrive in, and no UID names two messages.

use std::sync::Arc;
use storage::hlc::ManualClock;
use storage::{Flags, NewMessage, Store, StoreConfig};

fn node(dir: &std::path::Path, id: u32, clock: Arc<ManualClock>) -> Arc<Store> {
    let mut c = StoreConfig::new(dir);
    c.node_id = id;
    Store::open_with_clock(c, clock).expect("open")
}

fn deliver(s: &Store, n: usize, tag: &str) {
    let u = s.user("alice").expect("user");
    for i in 0..n {
        let raw = format!("Subject: {tag} {i}\r\nMessage-ID: <{tag}{i}@x>\r\n\r\nbody\r\n");
        u.append(
            "INBOX",
            NewMessage {
                raw: raw.as_bytes(),
                flags: Flags::new(),
                internal_date: None,
                delivery_key: None,
            },
        )
        .expect("append");
    }
}

/// Every record and object `from` has that `to` lacks, applied on `to`.
fn ship(from: &Store, to: &Store) {
    let (f, t) = (from.user("alice").unwrap(), to.user("alice").unwrap());
    let recs = f
        .records_since(&t.version_vector().unwrap(), 100_000)
        .unwrap();
    // Visible messages and parked ones (a UID conflict hides both claimants until renumbered).
    let objects = f
        .messages("INBOX")
        .unwrap()
        .iter()
        .map(|m| m.object)
        .chain(
            f.pending_conflicts("INBOX")
                .unwrap()
                .iter()
                .map(|p| p.entry.object),
        )
        .collect::<Vec<_>>();
    for o in objects {
        if !t.has_object(&o).unwrap() {
            t.put_object(&f.read_message(&o).unwrap()).unwrap();
        }
    }
    t.apply_remote(&recs).unwrap();
}

fn inbox(s: &Store) -> (u32, Vec<(u32, storage::Guid)>) {
    let u = s.user("alice").unwrap();
    let info = u.mailbox("INBOX").unwrap();
    let msgs = u.messages("INBOX").unwrap();
    (
        info.uidvalidity,
        msgs.iter().map(|m| (m.uid, m.guid)).collect(),
    )
}

#[test]
fn the_same_mailbox_made_on_both_nodes_ends_with_one_uidvalidity_in_either_order() {
    for a_first in [true, false] {
        let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        // B made the user's mailboxes a minute earlier (its UIDVALIDITY is older too); A
        // took more deliveries.
        let (ca, cb) = (
            ManualClock::new(1_800_060_000),
            ManualClock::new(1_800_000_000),
        );
        let (a, b) = (
            node(da.path(), 1, ca.clone()),
            node(db.path(), 2, cb.clone()),
        );
        deliver(&b, 2, "b");
        deliver(&a, 3, "a");
        let (va, vb) = (inbox(&a).0, inbox(&b).0);
        assert_ne!(va, vb, "the test needs two UIDVALIDITYs");
        if a_first {
            ship(&a, &b);
            ship(&b, &a);
        } else {
            ship(&b, &a);
            ship(&a, &b);
        }
        // UIDs 1 and 2 are claimed by messages of both: the resolver (node 1) renumbers them,
        // and B applies its record.
        a.user("alice").unwrap().resolve_conflicts("INBOX").unwrap();
        ship(&a, &b);
        let (ia, ib) = (inbox(&a), inbox(&b));
        assert_eq!(ia.0, vb, "the earliest creation's UIDVALIDITY ({a_first})");
        assert_eq!(ia, ib, "both nodes hold the same INBOX ({a_first})");
        assert_eq!(ia.1.len(), 5, "every message kept: {:?}", ia.1);
        let mut uids: Vec<u32> = ia.1.iter().map(|m| m.0).collect();
        uids.dedup();
        assert_eq!(uids.len(), 5, "no UID names two messages: {:?}", ia.1);
    }
}
