//! `Op::AlignExpunged` (the merge resolver's alignment of expunge modseqs): it only ever raises
//! tombstones' modseqs and HIGHESTMODSEQ, keeps the modseq-ordered expunge keys in step (so
//! QRESYNC's `VANISHED (EARLIER)`, `changes_since`, sees the aligned UIDs), stamps the record
//! with this node's next sequence number even when local writes interleave, and replays the
//! same from the log and on a peer.
mod common;
use common::*;
use storage::record::Op;
use storage::*;

fn tombs(u: &UserStore, mailbox: &MailboxId) -> Vec<(u32, u64)> {
    u.tombstones(mailbox)
        .unwrap()
        .unwrap()
        .iter()
        .map(|t| (t.uid, t.modseq))
        .collect()
}

fn vanished(u: &UserStore, since: u64) -> Vec<u32> {
    u.changes_since("INBOX", since).unwrap().expunged
}

#[test]
fn align_raises_listed_tombstones_and_highestmodseq_never_lowers() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let u = store.user("al").unwrap();
    let outs: Vec<_> = (0..4).map(|i| append(&u, "INBOX", &msg(i))).collect();
    let uids: Vec<u32> = outs.iter().map(|o| o.uid).collect();
    u.expunge("INBOX", &uids[..1]).unwrap();
    u.expunge("INBOX", &uids[1..2]).unwrap();
    u.expunge("INBOX", &uids[2..3]).unwrap();
    let inbox = u.mailbox("INBOX").unwrap();
    let h0 = inbox.highestmodseq;
    let t0 = tombs(&u, &inbox.id);
    assert_eq!(t0.len(), 3);
    assert_eq!(t0[2].1, h0);

    // Asked for a modseq below HIGHESTMODSEQ: lands just above it; unlisted tombstones stay.
    let got = u.align_expunged(&inbox.id, 1, &uids[..2]).unwrap();
    assert_eq!(got, Some(h0 + 1));
    assert_eq!(
        tombs(&u, &inbox.id),
        vec![(uids[0], h0 + 1), (uids[1], h0 + 1), t0[2]]
    );
    assert_eq!(u.mailbox("INBOX").unwrap().highestmodseq, h0 + 1);
    // A QRESYNC client that saw h0 is told of exactly the aligned UIDs.
    assert_eq!(vanished(&u, h0), uids[..2].to_vec());
    assert_eq!(vanished(&u, h0 + 1), Vec::<u32>::new());
    assert_eq!(vanished(&u, 0), uids[..3].to_vec());

    // Asked for a modseq above: taken as is. A live message's UID and a UID never used are
    // left alone (no tombstone made), HIGHESTMODSEQ still moves.
    assert_eq!(
        u.align_expunged(&inbox.id, 100, &[uids[2], uids[3], 999])
            .unwrap(),
        Some(100)
    );
    assert_eq!(
        tombs(&u, &inbox.id),
        vec![(uids[0], h0 + 1), (uids[1], h0 + 1), (uids[2], 100)]
    );
    assert_eq!(u.messages("INBOX").unwrap().len(), 1);
    assert_eq!(vanished(&u, h0 + 1), vec![uids[2]]);
    // HIGHESTMODSEQ alone (empty list), asked lower: still grows.
    assert_eq!(u.align_expunged(&inbox.id, 50, &[]).unwrap(), Some(101));

    // One expunge key per tombstone, matching its modseq ("x" + mailbox + modseq + uid).
    let keys: Vec<(u64, u32)> = u
        .dump_index()
        .unwrap()
        .into_iter()
        .filter(|(k, _)| k.first() == Some(&b'x') && k.get(1..17) == Some(&inbox.id.0[..]))
        .map(|(k, _)| {
            let ms = u64::from_be_bytes(k[17..25].try_into().unwrap());
            let uid = u32::from_be_bytes(k[25..29].try_into().unwrap());
            (ms, uid)
        })
        .collect();
    let mut want: Vec<(u64, u32)> = tombs(&u, &inbox.id)
        .into_iter()
        .map(|(uid, ms)| (ms, uid))
        .collect();
    want.sort();
    assert_eq!(keys, want);

    // The records replay to the same index (rebuild); a deleted mailbox aligns nothing.
    let live = u.dump_index().unwrap();
    u.rebuild_index().unwrap();
    assert_eq!(u.dump_index().unwrap(), live);
    let work = u.create_mailbox("Work", None).unwrap();
    u.delete_mailbox("Work").unwrap();
    assert_eq!(u.align_expunged(&work.id, 5, &[1]).unwrap(), None);
    assert_eq!(u.tombstones(&work.id).unwrap(), None);
}

#[test]
fn align_record_is_this_nodes_next_and_replicates() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut ca = config(da.path());
    ca.node_id = 1;
    let mut cb = config(db.path());
    cb.node_id = 2;
    let (sa, sb) = (Store::open(ca).unwrap(), Store::open(cb).unwrap());
    let (ua, ub) = (sa.user("al").unwrap(), sb.user("al").unwrap());
    let o = append(&ua, "INBOX", &msg(1));
    ua.expunge("INBOX", &[o.uid]).unwrap();
    let inbox = ua.mailbox("INBOX").unwrap();
    let seq_before = ua.version_vector().unwrap()[&1];
    ua.align_expunged(&inbox.id, 40, &[o.uid]).unwrap();
    let recs = ua.records_since(&VersionVector::new(), 1000).unwrap();
    let align = recs.last().unwrap();
    assert!(matches!(align.op, Op::AlignExpunged { .. }), "{align:?}");
    assert_eq!(align.op.kind(), "align-expunged");
    assert_eq!((align.origin, align.seq), (1, seq_before + 1));
    assert_eq!(align.time.node, 1);
    assert_eq!(ua.version_vector().unwrap()[&1], seq_before + 1);
    // A local write after it takes the next number.
    append(&ua, "INBOX", &msg(2));
    assert_eq!(ua.version_vector().unwrap()[&1], seq_before + 2);

    let recs = ua.records_since(&VersionVector::new(), 1000).unwrap();
    ub.put_object(&msg(1)).unwrap();
    ub.put_object(&msg(2)).unwrap();
    ub.apply_remote(&recs).unwrap();
    assert_eq!(tombs(&ub, &inbox.id), vec![(o.uid, 40)]);
    assert_eq!(
        ub.mailbox("INBOX").unwrap().highestmodseq,
        ua.mailbox("INBOX").unwrap().highestmodseq
    );
    assert_eq!(ub.apply_remote(&recs).unwrap().applied, 0, "applied once");
    drop((ua, ub));
    drop(sa);
    let mut ca = config(da.path());
    ca.node_id = 1;
    let sa = Store::open(ca).unwrap();
    let ua = sa.user("al").unwrap();
    assert_eq!(tombs(&ua, &inbox.id), vec![(o.uid, 40)]);
}

/// Local writes racing the alignment: every record keeps a distinct, gapless sequence number
/// and the alignment lands.
#[test]
fn align_amid_local_writes_keeps_the_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let u = store.user("al").unwrap();
    let o = append(&u, "INBOX", &msg(0));
    u.expunge("INBOX", &[o.uid]).unwrap();
    let inbox = u.mailbox("INBOX").unwrap();
    let writer = {
        let u = u.clone();
        std::thread::spawn(move || {
            for i in 1..200 {
                append(&u, "INBOX", &msg(i));
            }
        })
    };
    for k in 0..50u64 {
        assert!(u
            .align_expunged(&inbox.id, 1000 + k, &[o.uid])
            .unwrap()
            .is_some());
    }
    writer.join().unwrap();
    let recs = u.records_since(&VersionVector::new(), 100_000).unwrap();
    let seqs: Vec<u64> = recs.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=recs.len() as u64).collect::<Vec<_>>());
    assert_eq!(
        recs.iter()
            .filter(|r| matches!(r.op, Op::AlignExpunged { .. }))
            .count(),
        50
    );
    let live = u.dump_index().unwrap();
    u.rebuild_index().unwrap();
    assert_eq!(u.dump_index().unwrap(), live);
}
