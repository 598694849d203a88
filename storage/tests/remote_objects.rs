//! `apply_remote_with_objects`: a peer's records and the objects they need in one group commit.
//! One test function: `Store::fsyncs` counts for the whole process, so nothing may run beside it.
mod common;
use common::*;
use std::sync::Arc;
use storage::record::Op;
use storage::*;

fn node(root: &std::path::Path, id: NodeId) -> Arc<Store> {
    let mut c = config(root);
    c.node_id = id;
    Store::open(c).unwrap()
}

fn objects_of(recs: &[record::Record]) -> Vec<ObjectId> {
    let mut out = Vec::new();
    for r in recs {
        match &r.op {
            Op::Append { entry, .. } => out.push(entry.object),
            Op::Copy { entries, .. } | Op::Move { entries, .. } => {
                out.extend(entries.iter().map(|(_, e)| e.object))
            }
            _ => {}
        }
    }
    out
}

#[test]
fn records_with_objects_cost_one_fsync_are_idempotent_and_refuse_bad_objects() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (sa, sb) = (node(da.path(), 1), node(db.path(), 2));
    let (a, b) = (sa.user("u").unwrap(), sb.user("u").unwrap());
    for i in 0..20 {
        append(&a, "INBOX", &msg(i));
    }
    a.store_flags("INBOX", &[3], FlagMode::Add, &flags(&["\\Seen"]), None)
        .unwrap();
    let recs = a
        .records_since(&b.version_vector().unwrap(), 10_000)
        .unwrap();
    let ids = objects_of(&recs);
    assert_eq!(ids.len(), 20);
    let raws: Vec<Vec<u8>> = ids.iter().map(|o| a.read_message(o).unwrap()).collect();

    // A corrupted object is not the object its record names: the whole call is refused and
    // nothing of it (not even the good objects) is stored.
    let mut bad = raws.clone();
    bad[7].push(b'x');
    let before = b.dump_index().unwrap();
    let vv_before = b.version_vector().unwrap();
    let bad_refs: Vec<&[u8]> = bad.iter().map(|r| r.as_slice()).collect();
    assert!(b.apply_remote_with_objects(&bad_refs, &recs).is_err());
    assert_eq!(b.dump_index().unwrap(), before);
    assert_eq!(b.version_vector().unwrap(), vv_before);
    for o in &ids {
        assert!(
            !b.has_object(o).unwrap(),
            "object of a refused batch stored"
        );
    }

    // The good batch: exactly one fsync for 20 objects and 21 records.
    let refs: Vec<&[u8]> = raws.iter().map(|r| r.as_slice()).collect();
    let f0 = sb.fsyncs();
    let out = b.apply_remote_with_objects(&refs, &recs).unwrap();
    assert_eq!(sb.fsyncs() - f0, 1);
    assert_eq!(out.applied, recs.len());
    for (o, raw) in ids.iter().zip(&raws) {
        assert_eq!(&b.read_message(o).unwrap(), raw);
    }
    let msgs = |u: &UserStore| -> Vec<(u32, Guid, Flags)> {
        u.messages("INBOX")
            .unwrap()
            .into_iter()
            .map(|m| (m.uid, m.guid, m.flags))
            .collect()
    };
    assert_eq!(msgs(&a), msgs(&b));

    // Again: nothing applied, nothing written, no fsync.
    let after = b.dump_index().unwrap();
    let f1 = sb.fsyncs();
    assert_eq!(
        b.apply_remote_with_objects(&refs, &recs).unwrap().applied,
        0
    );
    assert_eq!(sb.fsyncs(), f1);
    assert_eq!(b.dump_index().unwrap(), after);

    // The objects are in B's log with the records: they survive a reopen and a rebuild.
    drop((a, b));
    drop(sb);
    let sb = node(db.path(), 2);
    let b = sb.user("u").unwrap();
    b.verify().unwrap();
    b.rebuild_index().unwrap();
    for (o, raw) in ids.iter().zip(&raws) {
        assert_eq!(&b.read_message(o).unwrap(), raw);
    }
    let vv_a = sa.user("u").unwrap().version_vector().unwrap();
    assert_eq!(b.version_vector().unwrap().get(&1), vv_a.get(&1));
}
