//! The stored form of a just-committed object is served from memory for shipping: it must be
//! exactly what the disk holds, and a purge must stop serving what it dropped.

use storage::{Flags, NewMessage, Store, StoreConfig};

fn open(dir: &std::path::Path) -> std::sync::Arc<Store> {
    Store::open(StoreConfig::new(dir)).unwrap()
}

fn append(store: &Store, subject: &str) -> storage::AppendOutcome {
    let raw = format!("From: a@example.org\r\nSubject: {subject}\r\n\r\nbody of {subject}\r\n");
    store
        .user("alice")
        .unwrap()
        .append(
            "INBOX",
            NewMessage {
                raw: raw.as_bytes(),
                flags: Flags::new(),
                internal_date: None,
                delivery_key: None,
            },
        )
        .unwrap()
}

#[test]
fn recent_object_is_byte_for_byte_what_the_disk_holds() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let out = append(&s, "one");
    let u = s.user("alice").unwrap();
    let object = u.messages("INBOX").unwrap()[0].object;
    let from_memory = u.read_object_stored(&object).unwrap();
    drop((u, s));
    // Reopened: nothing in memory, read from the log.
    let s = open(dir.path());
    let u = s.user("alice").unwrap();
    let from_disk = u.read_object_stored(&object).unwrap();
    assert_eq!(from_memory.id, from_disk.id);
    assert_eq!(from_memory.raw_len, from_disk.raw_len);
    assert_eq!(from_memory.compressed, from_disk.compressed);
    assert_eq!(out.uid, 1);
}

#[test]
fn purged_object_is_no_longer_served() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    append(&s, "doomed");
    append(&s, "kept");
    let u = s.user("alice").unwrap();
    let msgs = u.messages("INBOX").unwrap();
    let (doomed, kept) = (msgs[0].clone(), msgs[1].clone());
    // Served (from memory) before the purge.
    u.read_object_stored(&doomed.object).unwrap();
    u.expunge("INBOX", &[doomed.uid]).unwrap();
    let report = u.purge().unwrap();
    assert_eq!(report.objects_removed, 1, "{report:?}");
    assert!(u.read_object_stored(&doomed.object).is_err());
    let k = u.read_object_stored(&kept.object).unwrap();
    assert_eq!(k.id, kept.object);
}
