//! `Op::AlignModseqs` (the merge resolver's modseq alignment): it only ever raises modseqs, keeps
//! the modseq-ordered keys in step (so CONDSTORE's CHANGEDSINCE sees the aligned messages), and
//! replays the same from the log and on a peer.
mod common;
use common::*;
use storage::record::Op;
use storage::*;

fn modseqs(u: &UserStore, mailbox: &str) -> Vec<(u32, u64)> {
    u.messages(mailbox)
        .unwrap()
        .iter()
        .map(|m| (m.uid, m.modseq))
        .collect()
}

fn changed_uids(u: &UserStore, mailbox: &str, since: u64) -> Vec<u32> {
    u.changes_since(mailbox, since)
        .unwrap()
        .changed
        .iter()
        .map(|m| m.uid)
        .collect()
}

#[test]
fn align_raises_listed_messages_and_highestmodseq_never_lowers() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let u = store.user("al").unwrap();
    let outs: Vec<_> = (0..3).map(|i| append(&u, "INBOX", &msg(i))).collect();
    let inbox = u.mailbox("INBOX").unwrap();
    let h0 = inbox.highestmodseq;
    assert_eq!(changed_uids(&u, "INBOX", h0), Vec::<u32>::new());

    // Asked for a modseq below HIGHESTMODSEQ: lands just above it instead.
    let got = u
        .align_modseqs(&inbox.id, 1, &[outs[0].guid, outs[1].guid])
        .unwrap();
    assert_eq!(got, Some(h0 + 1));
    let after = modseqs(&u, "INBOX");
    assert_eq!(after[0], (outs[0].uid, h0 + 1));
    assert_eq!(after[1], (outs[1].uid, h0 + 1));
    assert_eq!(
        after[2],
        (outs[2].uid, outs[2].modseq),
        "not listed: unchanged"
    );
    assert_eq!(u.mailbox("INBOX").unwrap().highestmodseq, h0 + 1);
    // A CONDSTORE client that saw h0 is told about exactly the aligned messages.
    assert_eq!(
        changed_uids(&u, "INBOX", h0),
        vec![outs[0].uid, outs[1].uid]
    );

    // Asked for a modseq above: taken as is.
    assert_eq!(
        u.align_modseqs(&inbox.id, 100, &[outs[2].guid]).unwrap(),
        Some(100)
    );
    assert_eq!(changed_uids(&u, "INBOX", h0 + 1), vec![outs[2].uid]);
    assert_eq!(changed_uids(&u, "INBOX", 100), Vec::<u32>::new());
    // HIGHESTMODSEQ alone (empty list), asked lower: still grows.
    assert_eq!(u.align_modseqs(&inbox.id, 50, &[]).unwrap(), Some(101));
    assert_eq!(modseqs(&u, "INBOX")[2].1, 100);

    // Unknown GUIDs and messages of other mailboxes are left alone.
    let sent = append(&u, "Sent", &msg(9));
    let sent_before = modseqs(&u, "Sent");
    u.align_modseqs(&inbox.id, 1, &[sent.guid, Guid([0xee; 16])])
        .unwrap();
    assert_eq!(modseqs(&u, "Sent"), sent_before);
    // An expunged message is not brought back.
    u.expunge("INBOX", &[outs[0].uid]).unwrap();
    u.align_modseqs(&inbox.id, 1, &[outs[0].guid]).unwrap();
    assert!(u
        .messages("INBOX")
        .unwrap()
        .iter()
        .all(|m| m.guid != outs[0].guid));

    // One modseq key per live message, matching its modseq ("c" + mailbox + modseq + uid).
    let keys: Vec<(u64, u32)> = u
        .dump_index()
        .unwrap()
        .into_iter()
        .filter(|(k, _)| k.first() == Some(&b'c') && k.get(1..17) == Some(&inbox.id.0[..]))
        .map(|(k, _)| {
            let ms = u64::from_be_bytes(k[17..25].try_into().unwrap());
            let uid = u32::from_be_bytes(k[25..29].try_into().unwrap());
            (ms, uid)
        })
        .collect();
    let mut want: Vec<(u64, u32)> = modseqs(&u, "INBOX")
        .into_iter()
        .map(|(uid, ms)| (ms, uid))
        .collect();
    want.sort();
    assert_eq!(keys, want);

    // The records replay to the same index (rebuild), and a deleted mailbox aligns nothing.
    let live = u.dump_index().unwrap();
    u.rebuild_index().unwrap();
    assert_eq!(u.dump_index().unwrap(), live);
    let work = u.create_mailbox("Work", None).unwrap();
    u.delete_mailbox("Work").unwrap();
    assert_eq!(u.align_modseqs(&work.id, 5, &[]).unwrap(), None);
}

#[test]
fn align_record_replicates_and_survives_reopen() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut ca = config(da.path());
    ca.node_id = 1;
    let mut cb = config(db.path());
    cb.node_id = 2;
    let (sa, sb) = (Store::open(ca).unwrap(), Store::open(cb).unwrap());
    let (ua, ub) = (sa.user("al").unwrap(), sb.user("al").unwrap());
    let o = append(&ua, "INBOX", &msg(1));
    let inbox = ua.mailbox("INBOX").unwrap();
    ua.align_modseqs(&inbox.id, 40, &[o.guid]).unwrap();
    let recs = ua.records_since(&VersionVector::new(), 1000).unwrap();
    let align = recs
        .iter()
        .find(|r| matches!(r.op, Op::AlignModseqs { .. }))
        .expect("an AlignModseqs record in the log");
    assert_eq!(align.op.kind(), "align-modseqs");
    ub.put_object(&msg(1)).unwrap();
    ub.apply_remote(&recs).unwrap();
    assert_eq!(modseqs(&ub, "INBOX"), vec![(o.uid, 40)]);
    assert_eq!(ub.mailbox("INBOX").unwrap().highestmodseq, 40);
    // Applied once: the same records again change nothing.
    assert_eq!(ub.apply_remote(&recs).unwrap().applied, 0);
    drop((ua, ub));
    drop(sa);
    let mut ca = config(da.path());
    ca.node_id = 1;
    let sa = Store::open(ca).unwrap();
    let ua = sa.user("al").unwrap();
    assert_eq!(modseqs(&ua, "INBOX"), vec![(o.uid, 40)]);
}
