//! apply_remote semantics between two stores (two nodes of one user).
mod common;
use common::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use storage::*;

fn node(root: &std::path::Path, id: NodeId) -> Arc<Store> {
    let mut c = config(root);
    c.node_id = id;
    Store::open(c).unwrap()
}

/// Ships what `from` has and `to` lacks: objects first, then records.
fn ship(from: &UserStore, to: &UserStore) -> ApplyOutcome {
    let have = to.version_vector().unwrap();
    let recs = from.records_since(&have, 10_000).unwrap();
    for r in &recs {
        let objs: Vec<ObjectId> = match &r.op {
            storage::record::Op::Append { entry, .. } => vec![entry.object],
            storage::record::Op::Copy { entries, .. }
            | storage::record::Op::Move { entries, .. } => {
                entries.iter().map(|(_, e)| e.object).collect()
            }
            _ => vec![],
        };
        for o in objs {
            if !to.has_object(&o).unwrap() {
                let raw = from.read_message(&o).unwrap();
                assert_eq!(to.put_object(&raw).unwrap(), o);
            }
        }
    }
    to.apply_remote(&recs).unwrap()
}

/// (uid -> (guid, flags)) of a mailbox.
fn state(u: &UserStore, mb: &str) -> BTreeMap<u32, (Guid, Flags)> {
    u.messages(mb)
        .unwrap()
        .into_iter()
        .map(|m| (m.uid, (m.guid, m.flags)))
        .collect()
}

#[test]
fn records_replicate_idempotently_and_keep_uids() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (sa, sb) = (node(da.path(), 1), node(db.path(), 2));
    let (a, b) = (sa.user("u").unwrap(), sb.user("u").unwrap());
    for i in 0..5 {
        append(&a, "INBOX", &msg(i));
    }
    a.create_mailbox("Work", None).unwrap();
    a.move_messages("INBOX", &[2], "Work").unwrap();
    a.store_flags("INBOX", &[1], FlagMode::Add, &flags(&["\\Seen"]), None)
        .unwrap();
    let out = ship(&a, &b);
    assert!(out.applied > 0 && out.conflicts.is_empty());
    assert_eq!(state(&a, "INBOX"), state(&b, "INBOX"));
    assert_eq!(state(&a, "Work"), state(&b, "Work"));
    // Both INBOXes are one mailbox (same GUID) and agree on UIDVALIDITY.
    assert_eq!(
        a.mailbox("INBOX").unwrap().id,
        b.mailbox("INBOX").unwrap().id
    );
    assert_eq!(
        a.mailbox("INBOX").unwrap().uidvalidity,
        b.mailbox("INBOX").unwrap().uidvalidity
    );
    // Applying the same records again changes nothing.
    let recs = a.records_since(&VersionVector::new(), 10_000).unwrap();
    let before = b.dump_index().unwrap();
    assert_eq!(b.apply_remote(&recs).unwrap().applied, 0);
    assert_eq!(b.dump_index().unwrap(), before);
    // The remote records are in B's log: a rebuild keeps them.
    b.rebuild_index().unwrap();
    assert_eq!(b.dump_index().unwrap(), before);
    let vv = b.version_vector().unwrap();
    assert_eq!(vv.get(&1), a.version_vector().unwrap().get(&1));
    // A record out of sequence is refused, not applied.
    let mut gap = recs.last().unwrap().clone();
    gap.seq += 5;
    assert!(b.apply_remote(&[gap]).is_err());
    assert_eq!(b.dump_index().unwrap(), before);
}

#[test]
fn uid_conflicts_are_pending_then_renumbered_on_both_nodes() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (sa, sb) = (node(da.path(), 1), node(db.path(), 2));
    let (a, b) = (sa.user("u").unwrap(), sb.user("u").unwrap());
    // Split brain: both nodes give UID 1 (and 2 on A) to different messages.
    let a1 = append(&a, "INBOX", &msg(1));
    let a2 = append(&a, "INBOX", &msg(2));
    let b1 = append(&b, "INBOX", &msg(3));
    assert_eq!((a1.uid, b1.uid), (1, 1));
    let at_a = ship(&b, &a);
    assert_eq!(at_a.conflicts.len(), 1);
    assert_eq!(
        (
            at_a.conflicts[0].uid,
            at_a.conflicts[0].local,
            at_a.conflicts[0].remote
        ),
        (1, a1.guid, b1.guid)
    );
    let at_b = ship(&a, &b);
    assert_eq!(at_b.conflicts.len(), 1);
    // Nothing was overwritten, and neither node shows UID 1 any more: each node's clients
    // would otherwise read it as a different message. Both messages wait, parked, for the
    // renumbering; the UID is expunged for clients at once.
    for (u, own) in [(&a, a1.guid), (&b, b1.guid)] {
        let pending: Vec<Guid> = u
            .pending_conflicts("INBOX")
            .unwrap()
            .iter()
            .map(|p| p.entry.guid)
            .collect();
        assert_eq!(pending.len(), 2);
        assert!(pending.contains(&a1.guid) && pending.contains(&b1.guid));
        assert!(!state(u, "INBOX").contains_key(&1));
        assert_eq!(state(u, "INBOX")[&2].0, a2.guid, "{own:?}");
    }
    let before_hide = 2; // A's HIGHESTMODSEQ after its own two appends
    assert_eq!(
        a.changes_since("INBOX", before_hide).unwrap().expunged,
        [1],
        "UID 1 vanishes for QRESYNC clients before the renumbering"
    );
    let hm = a.mailbox("INBOX").unwrap().highestmodseq;
    let rec = a
        .resolve_conflicts("INBOX")
        .unwrap()
        .expect("a renumber record");
    assert!(matches!(rec.op, storage::record::Op::Renumber { .. }));
    assert!(a.resolve_conflicts("INBOX").unwrap().is_none());
    ship(&a, &b);
    let sa_ = state(&a, "INBOX");
    assert_eq!(sa_, state(&b, "INBOX"));
    // Both conflicting messages got new UIDs above the old UIDNEXT; UID 1 is expunged for
    // clients (with a modseq above the old HIGHESTMODSEQ); A's UID 2 kept its UID.
    assert!(!sa_.contains_key(&1));
    assert_eq!(sa_[&2].0, a2.guid);
    let guids: Vec<Guid> = sa_.values().map(|(g, _)| *g).collect();
    assert!(guids.contains(&a1.guid) && guids.contains(&b1.guid));
    assert!(sa_.keys().all(|u| *u == 2 || *u >= 3));
    let ch = a.changes_since("INBOX", before_hide).unwrap();
    assert_eq!(ch.expunged, [1]);
    assert!(a.mailbox("INBOX").unwrap().highestmodseq > hm);
    assert!(a.pending_conflicts("INBOX").unwrap().is_empty());
    assert!(b.pending_conflicts("INBOX").unwrap().is_empty());
    // Rebuilds agree with the live indexes.
    for u in [&a, &b] {
        let live = u.dump_index().unwrap();
        u.rebuild_index().unwrap();
        assert_eq!(u.dump_index().unwrap(), live);
    }
}

#[test]
fn flags_merge_last_writer_wins_and_expunge_beats_flags() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (sa, sb) = (node(da.path(), 1), node(db.path(), 2));
    let (a, b) = (sa.user("u").unwrap(), sb.user("u").unwrap());
    append(&a, "INBOX", &msg(1));
    append(&a, "INBOX", &msg(2));
    ship(&a, &b);
    // Concurrent, in this real-time order (HLC times follow it): A sets \Flagged; B, not yet
    // seeing that, sets and then clears \Flagged (the later clear wins everywhere); B clears
    // \Seen on 1 before A sets it (A's later set wins); A expunges 2 while B flags it.
    let pause = || std::thread::sleep(std::time::Duration::from_millis(3));
    a.store_flags("INBOX", &[1], FlagMode::Add, &flags(&["\\Flagged"]), None)
        .unwrap();
    pause();
    b.store_flags(
        "INBOX",
        &[1],
        FlagMode::Add,
        &flags(&["\\Flagged", "\\Seen"]),
        None,
    )
    .unwrap();
    pause();
    b.store_flags(
        "INBOX",
        &[1],
        FlagMode::Remove,
        &flags(&["\\Flagged", "\\Seen"]),
        None,
    )
    .unwrap();
    pause();
    a.store_flags("INBOX", &[1], FlagMode::Add, &flags(&["\\Seen"]), None)
        .unwrap();
    b.store_flags("INBOX", &[2], FlagMode::Add, &flags(&["\\Answered"]), None)
        .unwrap();
    a.expunge("INBOX", &[2]).unwrap();
    // Opposite delivery orders on the two nodes.
    ship(&a, &b);
    ship(&b, &a);
    let (x, y) = (state(&a, "INBOX"), state(&b, "INBOX"));
    assert_eq!(x, y);
    assert_eq!(x.len(), 1, "the expunge beat the flag change");
    assert_eq!(x[&1].1, flags(&["\\Seen"]));
}

#[test]
fn records_since_from_memory_equals_records_since_from_the_log() {
    let d = tempfile::tempdir().unwrap();
    let s = node(d.path(), 1);
    let u = s.user("u").unwrap();
    for i in 0..30 {
        append(&u, "INBOX", &msg(i));
    }
    u.expunge("INBOX", &[3, 4]).unwrap();
    let all = u.records_since(&VersionVector::new(), 100_000).unwrap();
    let mut half = VersionVector::new();
    half.insert(1, 20);
    let tail = u.records_since(&half, 100_000).unwrap();
    let limited = u.records_since(&VersionVector::new(), 7).unwrap();
    drop(u);
    drop(s);
    // After a restart nothing is in memory: the same answers come from the log.
    let s = node(d.path(), 1);
    let u = s.user("u").unwrap();
    assert_eq!(
        u.records_since(&VersionVector::new(), 100_000).unwrap(),
        all
    );
    assert_eq!(u.records_since(&half, 100_000).unwrap(), tail);
    assert_eq!(u.records_since(&VersionVector::new(), 7).unwrap(), limited);
    assert_eq!(tail.first().map(|r| r.seq), Some(21));
    assert_eq!(limited.len(), 7);
    assert_eq!(all.len() as u64, u.version_vector().unwrap()[&1]);
}

#[test]
fn records_since_pages_through_several_segments() {
    let d = tempfile::tempdir().unwrap();
    let s = node(d.path(), 1);
    let u = s.user("u").unwrap();
    // ~80 MB of incompressible messages carried in the log: more than one 64 MiB segment.
    let mut x = 0x0123_4567_89ab_cdefu64;
    for i in 0..80 {
        let mut raw = format!("Subject: {i}\r\n\r\n").into_bytes();
        while raw.len() < 1000 << 10 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            raw.extend_from_slice(&x.to_le_bytes());
        }
        append(&u, "INBOX", &raw);
        u.store_flags("INBOX", &[i + 1], FlagMode::Add, &flags(&["\\Seen"]), None)
            .unwrap();
    }
    let segments = std::fs::read_dir(u.dir().join("log")).unwrap().count();
    assert!(segments >= 2, "{segments} segment(s)");
    let all = u.records_since(&VersionVector::new(), 100_000).unwrap();
    drop(u);
    drop(s);
    // From the log (nothing in memory after a restart), page by page, twice (the second time
    // with the closed segments' summaries known).
    let s = node(d.path(), 1);
    let u = s.user("u").unwrap();
    for _ in 0..2 {
        let mut have = VersionVector::new();
        let mut paged = Vec::new();
        loop {
            let page = u.records_since(&have, 10).unwrap();
            if page.is_empty() {
                break;
            }
            assert!(page.len() <= 10);
            for r in &page {
                have.insert(r.origin, r.seq);
            }
            paged.extend(page);
        }
        assert_eq!(paged, all);
    }
}

#[test]
fn bad_records_from_a_peer_are_refused_whole() {
    let d = tempfile::tempdir().unwrap();
    let s = node(d.path(), 1);
    let u = s.user("u").unwrap();
    let before = u.dump_index().unwrap();
    let rec = |seq, op| storage::record::Record {
        origin: 9,
        seq,
        time: storage::HlcTime {
            node: 9,
            ..s.clock().now()
        },
        op,
    };
    let good = rec(
        1,
        storage::record::Op::Subscribe {
            name: "Fine".into(),
        },
    );
    for bad in ["../../etc", "a//b", "", "x\u{0}y", "inbox"] {
        let r = rec(
            2,
            storage::record::Op::MailboxCreate {
                mailbox: Guid([7; 16]),
                name: bad.into(),
                uidvalidity: 5,
                special_use: None,
            },
        );
        assert!(u.apply_remote(&[good.clone(), r]).is_err(), "{bad:?}");
        assert_eq!(u.dump_index().unwrap(), before);
    }
    assert_eq!(u.apply_remote(&[good]).unwrap().applied, 1);
}

/// A peer catching up pages through the log; each page resumes where the last stopped. A purge
/// in between rewrites the log's segments (objects move to packs), so every remembered offset
/// is wrong: the pages must still be exactly the log's records, once each, in order.
#[test]
fn records_since_pages_resume_and_survive_a_purge_in_between() {
    let d = tempfile::tempdir().unwrap();
    let s = node(d.path(), 1);
    let u = s.user("u").unwrap();
    for i in 0..60 {
        append(&u, "INBOX", &msg(i));
    }
    drop(u);
    drop(s);
    let s = node(d.path(), 1);
    let u = s.user("u").unwrap();
    let mut have = VersionVector::new();
    let mut paged = Vec::new();
    let mut page_no = 0;
    loop {
        if page_no == 3 {
            u.expunge("INBOX", &[1, 2, 3]).unwrap();
            let report = u.purge().unwrap();
            assert!(report.objects_removed >= 3, "{report:?}");
        }
        let page = u.records_since(&have, 10).unwrap();
        if page.is_empty() {
            break;
        }
        for r in &page {
            have.insert(r.origin, r.seq);
        }
        paged.extend(page);
        page_no += 1;
    }
    let all = u.records_since(&VersionVector::new(), 100_000).unwrap();
    assert_eq!(paged, all);
    assert_eq!(all.len() as u64, u.version_vector().unwrap()[&1]);
}
