//! The store's IMAP semantics through its public API.
mod common;
use common::*;
use storage::*;

#[test]
fn defaults_append_read_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let u = store.user("alice").unwrap();
    let names: Vec<String> = u
        .list_mailboxes()
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(
        names,
        ["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"]
    );
    assert_eq!(
        u.mailbox("Trash").unwrap().special_use,
        Some(SpecialUse::Trash)
    );
    assert_eq!(u.mailbox("inbox").unwrap().name, "INBOX");
    let a = append(&u, "INBOX", &msg(1));
    let b = append(&u, "inbox", &msg(2));
    assert_eq!((a.uid, b.uid), (1, 2));
    assert!(b.modseq > a.modseq);
    assert_ne!(a.guid, b.guid);
    let msgs = u.messages("INBOX").unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(u.read_message(&msgs[1].object).unwrap(), msg(2));
    let info = u.mailbox("INBOX").unwrap();
    assert_eq!((info.exists, info.unseen, info.uidnext), (2, 2, 3));
    let uv = info.uidvalidity;
    drop(u);
    drop(store);
    let store = open(dir.path());
    let u = store.user("alice").unwrap();
    let info = u.mailbox("INBOX").unwrap();
    assert_eq!((info.exists, info.uidnext, info.uidvalidity), (2, 3, uv));
    assert_eq!(
        u.read_message(&u.messages("INBOX").unwrap()[0].object)
            .unwrap(),
        msg(1)
    );
    assert_eq!(store.list_users().unwrap(), ["alice"]);
}

#[test]
fn invalid_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert!(matches!(
        store.user("../etc"),
        Err(StoreError::InvalidUser(_))
    ));
    let u = store.user("bob").unwrap();
    for bad in ["", "/x", "a//b", "a/../b", "x\u{1}"] {
        assert!(
            matches!(
                u.create_mailbox(bad, None),
                Err(StoreError::InvalidMailboxName { .. })
            ),
            "{bad:?}"
        );
    }
    assert!(matches!(
        u.create_mailbox("inbox", None),
        Err(StoreError::MailboxExists(_))
    ));
    assert!(matches!(
        u.delete_mailbox("INBOX"),
        Err(StoreError::MailboxProtected(_))
    ));
    assert!(matches!(
        u.messages("Nope"),
        Err(StoreError::NoSuchMailbox(_))
    ));
}

#[test]
fn mailbox_ops_copy_move_flags_expunge_changes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let u = store.user("carol").unwrap();
    let w = u.create_mailbox("Work", None).unwrap();
    let w2 = u.create_mailbox("Work/2024", None).unwrap();
    assert!(w2.uidvalidity > w.uidvalidity);
    for i in 0..5 {
        append(&u, "INBOX", &msg(i));
    }
    let c = u.copy("INBOX", &[1, 2, 99], "Work").unwrap();
    assert_eq!(c.pairs, vec![(1, 1), (2, 2)]);
    assert_eq!(c.dst_uidvalidity, w.uidvalidity);
    let m = u.move_messages("INBOX", &[3], "Work").unwrap();
    assert_eq!(m.pairs, vec![(3, 3)]);
    assert_eq!(
        u.messages("INBOX")
            .unwrap()
            .iter()
            .map(|m| m.uid)
            .collect::<Vec<_>>(),
        [1, 2, 4, 5]
    );
    let hm = u.mailbox("INBOX").unwrap().highestmodseq;
    let s = u
        .store_flags(
            "INBOX",
            &[1, 2],
            FlagMode::Add,
            &flags(&["\\Seen", "$Work"]),
            None,
        )
        .unwrap();
    assert_eq!(s.updated.len(), 2);
    assert!(s
        .updated
        .iter()
        .all(|(_, f, ms)| f.contains(&Flag::Seen) && *ms == hm + 1));
    assert_eq!(u.mailbox("INBOX").unwrap().unseen, 2);
    // UNCHANGEDSINCE below the current modseq fails for that message.
    let s = u
        .store_flags(
            "INBOX",
            &[1, 4],
            FlagMode::Replace,
            &flags(&["\\Flagged"]),
            Some(hm),
        )
        .unwrap();
    assert_eq!(s.modified, vec![1]);
    assert_eq!(s.updated.len(), 1);
    let ch = u.changes_since("INBOX", hm).unwrap();
    assert_eq!(
        ch.changed.iter().map(|m| m.uid).collect::<Vec<_>>(),
        [1, 2, 4]
    );
    assert_eq!(ch.expunged, Vec::<u32>::new());
    let gone = u.expunge("INBOX", &[2, 4, 42]).unwrap();
    assert_eq!(gone, [2, 4]);
    let ch = u.changes_since("INBOX", hm).unwrap();
    assert_eq!(ch.expunged, [2, 4]);
    assert_eq!(u.changes_since("INBOX", 0).unwrap().expunged, [2, 3, 4]);
    // Rename with children; delete refuses a parent with children.
    assert!(matches!(
        u.delete_mailbox("Work"),
        Err(StoreError::HasChildren(_))
    ));
    u.rename_mailbox("Work", "Projects").unwrap();
    assert_eq!(u.mailbox("Projects/2024").unwrap().id, w2.id);
    assert_eq!(u.mailbox("Projects").unwrap().exists, 3);
    u.delete_mailbox("Projects/2024").unwrap();
    assert!(u.mailbox("Projects/2024").is_err());
    // INBOX rename moves the messages.
    u.rename_mailbox("INBOX", "Old").unwrap();
    assert_eq!(u.mailbox("INBOX").unwrap().exists, 0);
    assert_eq!(u.mailbox("Old").unwrap().exists, 2);
    // Subscriptions.
    u.subscribe("Nonexistent").unwrap();
    assert!(u
        .subscriptions()
        .unwrap()
        .contains(&"Nonexistent".to_string()));
    u.unsubscribe("Nonexistent").unwrap();
    assert!(!u
        .subscriptions()
        .unwrap()
        .contains(&"Nonexistent".to_string()));
}

#[test]
fn quota_and_delivery_dedupe() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let u = store.user("dave").unwrap();
    u.set_quota_limits(QuotaLimits {
        max_bytes: None,
        max_messages: Some(2),
    });
    append(&u, "INBOX", &msg(1));
    append(&u, "INBOX", &msg(2));
    let r = u.append(
        "INBOX",
        NewMessage {
            raw: &msg(3),
            flags: Flags::new(),
            internal_date: None,
            delivery_key: None,
        },
    );
    assert!(matches!(r, Err(StoreError::OverQuota(_))));
    assert!(matches!(
        u.copy("INBOX", &[1], "Trash"),
        Err(StoreError::OverQuota(_))
    ));
    assert_eq!(u.quota().unwrap().messages, 2);
    u.set_quota_limits(QuotaLimits::default());
    let key = [7u8; 32];
    let nm = NewMessage {
        raw: &msg(4),
        flags: Flags::new(),
        internal_date: None,
        delivery_key: Some(key),
    };
    let first = u.append("INBOX", nm.clone()).unwrap();
    let again = u.append("INBOX", nm).unwrap();
    assert!(!first.duplicate && again.duplicate);
    assert_eq!((first.uid, first.guid), (again.uid, again.guid));
    assert_eq!(u.mailbox("INBOX").unwrap().exists, 3);
}

#[test]
fn concurrent_first_open_creates_inbox_once_and_writers_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let s = store.clone();
            std::thread::spawn(move || s.user("erin").unwrap())
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let u = store.user("erin").unwrap();
    assert_eq!(u.list_mailboxes().unwrap().len(), 6);
    let before = store
        .counters()
        .commits
        .load(std::sync::atomic::Ordering::Relaxed);
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let u = u.clone();
            std::thread::spawn(move || {
                (0..20)
                    .map(|i| append(&u, "INBOX", &msg(t * 100 + i)).uid)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut uids: Vec<u32> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    uids.sort();
    assert_eq!(uids, (1..=320).collect::<Vec<_>>());
    let commits = store
        .counters()
        .commits
        .load(std::sync::atomic::Ordering::Relaxed)
        - before;
    assert!(
        commits < 320,
        "group commit batched nothing: {commits} commits for 320 appends"
    );
}

#[test]
fn large_changes_are_split_and_large_objects_go_to_a_pack() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let u = store.user("frank").unwrap();
    // An incompressible 3 MiB message goes to a pack (beyond the log's inline limit).
    let mut big = b"Subject: big\r\n\r\n".to_vec();
    let mut x = 0x1234_5678_9abc_def0u64;
    while big.len() < 3 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        big.extend_from_slice(&x.to_le_bytes());
    }
    let o = append(&u, "INBOX", &big);
    // 2,500 messages copied, flagged and expunged at once: two records each.
    // Many writers, so group commit keeps the number of fsyncs (and the test's time) low.
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let u = u.clone();
            std::thread::spawn(move || {
                for i in 0..156 {
                    append(
                        &u,
                        "INBOX",
                        format!("Subject: {t}-{i}\r\n\r\nx\r\n").as_bytes(),
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let all: Vec<u32> = (2..=2_497).collect();
    let seq = |u: &UserStore| u.version_vector().unwrap()[&1];
    let before = seq(&u);
    let c = u.copy("INBOX", &all, "Archive").unwrap();
    assert_eq!(c.pairs.len(), 2_496);
    assert_eq!(seq(&u) - before, 2, "one record per 2,000 messages");
    let s = u
        .store_flags(
            "Archive",
            &(1..=2_496).collect::<Vec<_>>(),
            FlagMode::Add,
            &flags(&["\\Seen"]),
            None,
        )
        .unwrap();
    assert_eq!(s.updated.len(), 2_496);
    assert_eq!(
        u.expunge("Archive", &(1..=2_496).collect::<Vec<_>>())
            .unwrap()
            .len(),
        2_496
    );
    assert_eq!(u.mailbox("Archive").unwrap().exists, 0);
    drop(u);
    drop(store);
    let store = open(dir.path());
    let u = store.user("frank").unwrap();
    let packs = std::fs::read_dir(u.dir().join("packs")).unwrap().count();
    assert!(packs >= 1);
    assert_eq!(
        u.read_message(&u.messages("INBOX").unwrap()[0].object)
            .unwrap(),
        big
    );
    assert_eq!(o.uid, 1);
    let live = u.dump_index().unwrap();
    u.rebuild_index().unwrap();
    assert_eq!(u.dump_index().unwrap(), live);
    u.purge().unwrap();
    assert_eq!(
        u.read_message(&u.messages("INBOX").unwrap()[0].object)
            .unwrap(),
        big
    );
    assert_eq!(u.messages("INBOX").unwrap().len(), 2_497);
}

#[test]
fn messages_from_a_uid_are_the_tail_of_the_mailbox() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let u = store.user("alice").unwrap();
    for i in 1..=5 {
        append(&u, "INBOX", &msg(i));
    }
    u.expunge("INBOX", &[4]).unwrap();
    let uids = |first| -> Vec<u32> {
        u.messages_from("INBOX", first)
            .unwrap()
            .iter()
            .map(|m| m.uid)
            .collect()
    };
    assert_eq!(uids(3), [3, 5]);
    assert_eq!(uids(1), [1, 2, 3, 5]);
    assert!(uids(6).is_empty());
    // the other mailboxes' messages are not in the range
    append(&u, "Archive", &msg(9));
    assert_eq!(uids(5), [5]);
}
