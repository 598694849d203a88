//! Attributes (METADATA and ACL entries, `Op::Attribute`) and save dates: both come from the
//! change log, so replicas that applied the same records hold the same values whatever order
//! they came in, and a rebuild of the index gives them back.

use std::sync::Arc;
use storage::hlc::ManualClock;
use storage::{Flags, NewMessage, Store, StoreConfig};

fn node(dir: &std::path::Path, id: u32, clock: Arc<ManualClock>) -> Arc<Store> {
    let mut c = StoreConfig::new(dir);
    c.node_id = id;
    Store::open_with_clock(c, clock).expect("open")
}

fn set(s: &Store, mailbox: Option<&str>, key: &str, value: Option<&str>) {
    s.user("alice")
        .unwrap()
        .set_attributes(
            mailbox,
            vec![(key.to_string(), value.map(|v| v.as_bytes().to_vec()))],
        )
        .unwrap();
}

fn all(s: &Store, mailbox: Option<&str>) -> Vec<(String, String)> {
    s.user("alice")
        .unwrap()
        .attributes(mailbox, "")
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v).unwrap()))
        .collect()
}

fn records(from: &Store, to: &Store) -> Vec<storage::record::Record> {
    let (f, t) = (from.user("alice").unwrap(), to.user("alice").unwrap());
    f.records_since(&t.version_vector().unwrap(), 100_000)
        .unwrap()
}

#[test]
fn attributes_converge_in_either_order_and_survive_a_rebuild() {
    let (da, db, dc) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let clock = ManualClock::new(1_000_000);
    let (a, b) = (
        node(da.path(), 1, clock.clone()),
        node(db.path(), 2, clock.clone()),
    );
    let c = node(dc.path(), 3, clock.clone());
    // One history of mailboxes on every node first.
    set(&a, None, "/shared/comment", Some("server note"));
    for to in [&b, &c] {
        to.user("alice")
            .unwrap()
            .apply_remote(&records(&a, to))
            .unwrap();
    }
    // Concurrent writes: the same key on both, a removal on A later than B's write of
    // another key... and B writes last on the shared key.
    clock.advance(10);
    set(&a, Some("INBOX"), "/private/comment", Some("from A"));
    set(&a, Some("INBOX"), "acl:bob", Some("lr"));
    clock.advance(10);
    set(&b, Some("INBOX"), "/private/comment", Some("from B"));
    set(&b, Some("INBOX"), "acl:bob", Some("lrs"));
    clock.advance(10);
    set(&a, Some("INBOX"), "acl:bob", None);
    let (from_a, from_b) = (records(&a, &c), records(&b, &c));
    // C gets B's records before A's; A and B exchange theirs.
    c.user("alice").unwrap().apply_remote(&from_b).unwrap();
    c.user("alice").unwrap().apply_remote(&from_a).unwrap();
    let (to_b, to_a) = (records(&a, &b), records(&b, &a));
    b.user("alice").unwrap().apply_remote(&to_b).unwrap();
    a.user("alice").unwrap().apply_remote(&to_a).unwrap();
    let want = vec![("/private/comment".to_string(), "from B".to_string())];
    for s in [&a, &b, &c] {
        assert_eq!(all(s, Some("inbox")), want);
        assert_eq!(
            all(s, None),
            vec![("/shared/comment".to_string(), "server note".to_string())]
        );
    }
    // A prefix scan finds only keys under it.
    let u = a.user("alice").unwrap();
    assert!(u.attributes(Some("INBOX"), "acl:").unwrap().is_empty());
    assert!(u.attributes(Some("Nope"), "").is_err());
    // Keys of no known kind and oversized values are refused before anything is written.
    assert!(u
        .set_attributes(None, vec![("comment".into(), Some(b"x".to_vec()))])
        .is_err());
    assert!(u
        .set_attributes(None, vec![("/shared/x".into(), Some(vec![b'x'; 70_000]))])
        .is_err());
    // A rename keeps the mailbox's attributes (they are keyed by its GUID).
    u.create_mailbox("Box", None).unwrap();
    set(&a, Some("Box"), "/shared/comment", Some("box"));
    u.rename_mailbox("Box", "Crate").unwrap();
    assert_eq!(
        all(&a, Some("Crate")),
        vec![("/shared/comment".to_string(), "box".to_string())]
    );
    let before = u.dump_index().unwrap();
    u.rebuild_index().unwrap();
    assert_eq!(u.dump_index().unwrap(), before);
}

#[test]
fn a_save_date_is_the_records_clock_time_on_every_node() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let clock = ManualClock::new(1_700_000_000_000);
    let a = node(da.path(), 1, clock.clone());
    let b = node(db.path(), 2, ManualClock::new(1_800_000_000_000));
    let u = a.user("alice").unwrap();
    u.append(
        "INBOX",
        NewMessage {
            raw: b"Subject: x\r\n\r\nbody\r\n",
            flags: Flags::new(),
            internal_date: Some((1_000_000_000, 0)),
            delivery_key: None,
        },
    )
    .unwrap();
    let saved = u.messages("INBOX").unwrap()[0].saved_ms;
    assert!(
        (1_700_000_000_000..1_700_000_001_000).contains(&saved),
        "{saved}"
    );
    // Read later, on a node whose clock is far ahead: the same date.
    clock.advance(86_400_000);
    let vb = b.user("alice").unwrap();
    let obj = u.messages("INBOX").unwrap()[0].object;
    vb.put_object(&u.read_message(&obj).unwrap()).unwrap();
    vb.apply_remote(&records(&a, &b)).unwrap();
    assert_eq!(vb.messages("INBOX").unwrap()[0].saved_ms, saved);
    assert_eq!(u.messages("INBOX").unwrap()[0].saved_ms, saved);
    u.rebuild_index().unwrap();
    assert_eq!(u.messages("INBOX").unwrap()[0].saved_ms, saved);
}
