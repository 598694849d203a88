//! `UserStore::import`: the source's UIDs and UIDVALIDITY kept, a resumed import stores
//! nothing twice, UIDs below UIDNEXT never reused, and the records replicate.
mod common;
use common::*;
use std::sync::Arc;
use storage::*;

fn node(root: &std::path::Path, id: NodeId) -> Arc<Store> {
    let mut c = config(root);
    c.node_id = id;
    Store::open(c).unwrap()
}

fn im<'a>(uid: u32, raw: &'a [u8], fl: &[&str], date: i64) -> ImportMessage<'a> {
    ImportMessage {
        uid,
        raw,
        flags: flags(fl),
        internal_date: (date, 60),
    }
}

fn view(u: &UserStore, mb: &str) -> Vec<(u32, Flags, i64, i32, Vec<u8>)> {
    u.messages(mb)
        .unwrap()
        .into_iter()
        .map(|m| {
            let raw = u.read_message(&m.object).unwrap();
            (m.uid, m.flags, m.internal_date, m.internal_date_tz_min, raw)
        })
        .collect()
}

#[test]
fn import_keeps_uids_uidvalidity_flags_dates_and_resumes() {
    let d = tempfile::tempdir().unwrap();
    let s = node(d.path(), 1);
    let u = s.user("u").unwrap();
    let (m3, m7, m9) = (msg(3), msg(7), msg(9));
    // A new mailbox takes the source's UIDVALIDITY.
    let out = u
        .import(
            "Archive/2020",
            1234,
            &[
                im(7, &m7, &["\\Seen", "$Label1"], 1_500_000_000),
                im(3, &m3, &["\\Flagged"], 1_400_000_000),
            ],
        )
        .unwrap();
    assert_eq!((out.imported, out.present, out.refused.len()), (2, 0, 0));
    assert_eq!((out.uidvalidity, out.uidnext), (1234, 8));
    let mb = u.mailbox("Archive/2020").unwrap();
    assert_eq!((mb.uidvalidity, mb.uidnext, mb.exists), (1234, 8, 2));
    let v = view(&u, "Archive/2020");
    assert_eq!(v[0].0, 3);
    assert_eq!(v[0].1, flags(&["\\Flagged"]));
    assert_eq!((v[0].2, v[0].3), (1_400_000_000, 60));
    assert_eq!(v[0].4, m3);
    assert_eq!(v[1].0, 7);
    assert_eq!(v[1].1, flags(&["\\Seen", "$Label1"]));

    // Run again with one more: the two present are left alone, the new one is stored.
    let out = u
        .import(
            "Archive/2020",
            1234,
            &[
                im(3, &m3, &["\\Flagged"], 1_400_000_000),
                im(7, &m7, &["\\Seen", "$Label1"], 1_500_000_000),
                im(9, &m9, &[], 1_600_000_000),
            ],
        )
        .unwrap();
    assert_eq!((out.imported, out.present, out.refused.len()), (1, 2, 0));
    assert_eq!(u.messages("Archive/2020").unwrap().len(), 3);

    // A UID below UIDNEXT that no message (or another message) holds is refused, never reused.
    let other = msg(100);
    let out = u
        .import(
            "Archive/2020",
            1234,
            &[im(5, &other, &[], 0), im(7, &other, &[], 0)],
        )
        .unwrap();
    assert_eq!(out.refused, vec![5, 7]);
    assert_eq!(u.messages("Archive/2020").unwrap().len(), 3);

    // Another UIDVALIDITY for a mailbox that held messages: refused, nothing written.
    let e = u.import("Archive/2020", 999, &[im(20, &other, &[], 0)]);
    assert!(e.is_err(), "{e:?}");
    assert_eq!(u.mailbox("Archive/2020").unwrap().uidvalidity, 1234);

    // INBOX exists (a default mailbox) but never held a message: it takes the source's.
    let out = u.import("INBOX", 77, &[im(2, &m3, &[], 5)]).unwrap();
    assert_eq!((out.uidvalidity, out.uidnext, out.imported), (77, 3, 1));

    // The index rebuilt from the log says the same.
    let before = view(&u, "Archive/2020");
    u.rebuild_index().unwrap();
    assert_eq!(view(&u, "Archive/2020"), before);
    assert_eq!(u.mailbox("INBOX").unwrap().uidvalidity, 77);
}

#[test]
fn imported_records_replicate_with_their_uids() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (sa, sb) = (node(da.path(), 1), node(db.path(), 2));
    let (a, b) = (sa.user("u").unwrap(), sb.user("u").unwrap());
    let (m1, m5) = (msg(1), msg(5));
    a.import(
        "Old",
        4242,
        &[im(1, &m1, &["\\Answered"], 10), im(5, &m5, &["kw"], 20)],
    )
    .unwrap();
    a.import("INBOX", 31, &[im(4, &m5, &["\\Seen"], 30)])
        .unwrap();
    let have = b.version_vector().unwrap();
    let recs = a.records_since(&have, 10_000).unwrap();
    for r in &recs {
        if let storage::record::Op::Append { entry, .. } = &r.op {
            if !b.has_object(&entry.object).unwrap() {
                b.put_object(&a.read_message(&entry.object).unwrap())
                    .unwrap();
            }
        }
    }
    b.apply_remote(&recs).unwrap();
    for mb in ["Old", "INBOX"] {
        assert_eq!(view(&a, mb), view(&b, mb), "{mb}");
        let (x, y) = (a.mailbox(mb).unwrap(), b.mailbox(mb).unwrap());
        assert_eq!(
            (x.uidvalidity, x.uidnext),
            (y.uidvalidity, y.uidnext),
            "{mb}"
        );
    }
    assert_eq!(b.mailbox("Old").unwrap().uidvalidity, 4242);
    assert_eq!(b.mailbox("INBOX").unwrap().uidvalidity, 31);
}
