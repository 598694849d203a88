//! A peer's records may bring a message without its object when the peer purged it after the
//! message was expunged: the store accepts that only if the same call removes the message.
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

#[test]
fn a_bodiless_message_is_accepted_only_with_its_removal_in_the_same_call() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (sa, sb) = (node(da.path(), 1), node(db.path(), 2));
    let (a, b) = (sa.user("u").unwrap(), sb.user("u").unwrap());
    let doomed = append(&a, "INBOX", &msg(1));
    let kept = append(&a, "INBOX", &msg(2));
    a.expunge("INBOX", &[doomed.uid]).unwrap();
    assert_eq!(a.purge().unwrap().objects_removed, 1);
    let recs = a
        .records_since(&b.version_vector().unwrap(), 10_000)
        .unwrap();
    let expunge_at = recs
        .iter()
        .position(|r| matches!(r.op, Op::Expunge { .. }))
        .unwrap();
    let kept_obj = a.messages("INBOX").unwrap()[0].object;
    let raw = a.read_message(&kept_obj).unwrap();

    // Without the expunge the doomed message would be visible with no body: refused whole.
    let before = b.dump_index().unwrap();
    let err = b
        .apply_remote_with_objects(&[&raw], &recs[..expunge_at])
        .unwrap_err();
    assert!(
        err.to_string().contains("does not remove its message"),
        "{err}"
    );
    assert_eq!(b.dump_index().unwrap(), before);
    assert!(!b.has_object(&kept_obj).unwrap());

    // With it: applied, the doomed message never listed, the kept one readable.
    let out = b.apply_remote_with_objects(&[&raw], &recs).unwrap();
    assert_eq!(out.applied, recs.len());
    let listed: Vec<Guid> = b
        .messages("INBOX")
        .unwrap()
        .iter()
        .map(|m| m.guid)
        .collect();
    assert_eq!(listed, vec![kept.guid]);
    assert_eq!(b.read_message(&kept_obj).unwrap(), raw);
    // The same state as a rebuild from B's log reaches.
    let live = b.dump_index().unwrap();
    b.rebuild_index().unwrap();
    assert_eq!(b.dump_index().unwrap(), live);
}
