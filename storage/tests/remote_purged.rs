//! A peer's records may bring a message without its object when the peer purged it after the
//! message was expunged there. The store takes such an insertion as a ghost: its UID is taken,
//! modseqs move as on the peer, but no client sees it, until the record that removes it arrives
//! (in the same call or any later one) and leaves the same expunged entry as on the peer.
mod common;
use common::*;
use std::sync::Arc;
use storage::record::{NewEntry, Op, Record};
use storage::*;

fn node(root: &std::path::Path, id: NodeId) -> Arc<Store> {
    let mut c = config(root);
    c.node_id = id;
    Store::open(c).unwrap()
}

/// What clients can see of a user: mailboxes (with counts, UIDNEXT, HIGHESTMODSEQ), messages,
/// and every change since modseq 0 (expunged UIDs included).
fn visible(u: &UserStore) -> Vec<(MailboxInfo, Vec<MessageMeta>, MailboxChanges)> {
    u.list_mailboxes()
        .unwrap()
        .into_iter()
        .map(|mb| {
            let msgs = u.messages(&mb.name).unwrap();
            let ch = u.changes_since(&mb.name, 0).unwrap();
            (mb, msgs, ch)
        })
        .collect()
}

/// Applies `recs` with the raw objects `raws`, declaring `purged` objects the sender lacks.
fn apply(
    u: &UserStore,
    raws: &[&[u8]],
    recs: &[Record],
    purged: &[ObjectId],
) -> Result<ApplyOutcome> {
    let objects = raws
        .iter()
        .map(|r| {
            let p = pack::prepare(r).unwrap();
            pack::verify(p.id, p.raw_len, p.compressed, 1 << 30).unwrap()
        })
        .collect();
    u.apply_remote_purged(objects, recs, &purged.iter().copied().collect())
}

fn inbox(u: &UserStore) -> MailboxInfo {
    u.mailbox("INBOX").unwrap()
}

/// A: `doomed` and `kept` delivered, `doomed` flagged, expunged, purged. Returns A's records and
/// the raw body of `kept`, and where the expunge is.
fn purged_history(
    a: &UserStore,
) -> (
    Vec<Record>,
    usize,
    Vec<u8>,
    AppendOutcome,
    AppendOutcome,
    ObjectId,
) {
    let doomed = append(a, "INBOX", &msg(1));
    let doomed_object = a.messages("INBOX").unwrap()[0].object;
    let kept = append(a, "INBOX", &msg(2));
    a.store_flags(
        "INBOX",
        &[doomed.uid],
        FlagMode::Add,
        &flags(&["\\Flagged"]),
        None,
    )
    .unwrap();
    a.expunge("INBOX", &[doomed.uid]).unwrap();
    assert_eq!(a.purge().unwrap().objects_removed, 1);
    let recs = a.records_since(&VersionVector::new(), 10_000).unwrap();
    let expunge_at = recs
        .iter()
        .position(|r| matches!(r.op, Op::Expunge { .. }))
        .unwrap();
    let raw = msg(2);
    (recs, expunge_at, raw, doomed, kept, doomed_object)
}

#[test]
fn a_bodiless_message_is_a_ghost_until_a_later_call_removes_it() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (sa, sb) = (node(da.path(), 1), node(db.path(), 2));
    let a = sa.user("u").unwrap();
    let (recs, expunge_at, raw, doomed, kept, gone) = purged_history(&a);
    let b = sb.user("u").unwrap();

    // Not declared purged, a missing object is refused unless the call removes its message
    // (a corrupted or forgotten body must not make a ghost).
    let before = b.dump_index().unwrap();
    let err = b
        .apply_remote_with_objects(&[&raw], &recs[..expunge_at])
        .unwrap_err();
    assert!(
        err.to_string().contains("does not remove its message"),
        "{err}"
    );
    assert_eq!(b.dump_index().unwrap(), before);

    // Declared purged, everything up to the expunge: accepted; the doomed message is a ghost.
    let out = apply(&b, &[&raw], &recs[..expunge_at], &[gone]).unwrap();
    assert_eq!(out.applied, expunge_at);
    let listed: Vec<Guid> = b
        .messages("INBOX")
        .unwrap()
        .iter()
        .map(|m| m.guid)
        .collect();
    assert_eq!(listed, vec![kept.guid], "the ghost is not listed");
    let mb = inbox(&b);
    assert_eq!((mb.exists, mb.unseen), (1, 1), "nor counted: {mb:?}");
    assert_eq!(mb.uidnext, kept.uid + 1, "its UID is taken");
    let ch = b.changes_since("INBOX", 0).unwrap();
    assert_eq!(ch.changed.len(), 1);
    assert!(ch.expunged.is_empty());
    let ghosts = b.ghosts().unwrap();
    assert_eq!(ghosts.len(), 1);
    assert_eq!((ghosts[0].guid, ghosts[0].uid), (doomed.guid, doomed.uid));
    assert_eq!(
        b.version_vector().unwrap().get(&1),
        Some(&recs[expunge_at - 1].seq),
        "the version vector moves past it"
    );

    // It survives a restart and a rebuild from the log, still invisible.
    let seen = visible(&b);
    drop(b);
    drop(sb);
    let sb = node(db.path(), 2);
    let b = sb.user("u").unwrap();
    assert_eq!(visible(&b), seen);
    assert_eq!(b.ghosts().unwrap(), ghosts);
    let live = b.dump_index().unwrap();
    b.rebuild_index().unwrap();
    assert_eq!(b.dump_index().unwrap(), live);

    // The removal arrives in a later call: an ordinary expunged entry, exactly as on A.
    b.apply_remote(&recs[expunge_at..]).unwrap();
    assert!(b.ghosts().unwrap().is_empty());
    assert_eq!(visible(&b), visible(&a));
    assert_eq!(
        b.changes_since("INBOX", 0).unwrap().expunged,
        vec![doomed.uid]
    );
    let live = b.dump_index().unwrap();
    b.rebuild_index().unwrap();
    assert_eq!(b.dump_index().unwrap(), live);
}

#[test]
fn insertion_and_removal_in_one_call_leave_no_ghost() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (sa, sb) = (node(da.path(), 1), node(db.path(), 2));
    let a = sa.user("u").unwrap();
    let (recs, _, raw, _, kept, _) = purged_history(&a);
    let b = sb.user("u").unwrap();
    let out = b.apply_remote_with_objects(&[&raw], &recs).unwrap();
    assert_eq!(out.applied, recs.len());
    assert!(b.ghosts().unwrap().is_empty());
    assert_eq!(visible(&b), visible(&a));
    let kept_obj = b.messages("INBOX").unwrap()[0].object;
    assert_eq!(b.read_message(&kept_obj).unwrap(), raw);
    assert_eq!(b.messages("INBOX").unwrap()[0].guid, kept.guid);
}

fn bodiless_append(origin: NodeId, seq: u64, mailbox: MailboxId, guid: Guid, uid: u32) -> Record {
    Record {
        origin,
        seq,
        time: HlcTime {
            wall_ms: 1_000,
            logical: seq as u32,
            node: origin,
        },
        op: Op::Append {
            mailbox,
            entry: NewEntry {
                guid,
                uid,
                object: ObjectId::of(b"a body nobody has"),
                size: 17,
                internal_date: 0,
                internal_date_tz_min: 0,
                flags: Flags::new(),
            },
            modseq: 1,
            delivery_key: None,
        },
    }
}

#[test]
fn a_bodiless_record_naming_a_visible_message_is_refused_whole() {
    let d = tempfile::tempdir().unwrap();
    let s = node(d.path(), 1);
    let u = s.user("u").unwrap();
    let live = append(&u, "INBOX", &msg(1));
    let before = u.dump_index().unwrap();
    let mb = inbox(&u).id;
    // Origin 2 claims the visible message's GUID without any object.
    let recs = vec![
        bodiless_append(2, 1, mb, Guid([9; 16]), 50),
        bodiless_append(2, 2, mb, live.guid, 51),
    ];
    let nobody = ObjectId::of(b"a body nobody has");
    let err = apply(&u, &[], &recs, &[nobody]).unwrap_err().to_string();
    assert!(err.contains("visible here"), "{err}");
    assert_eq!(u.dump_index().unwrap(), before, "nothing applied");
    // Alone, the first is a ghost.
    apply(&u, &[], &recs[..1], &[nobody]).unwrap();
    assert_eq!(u.ghosts().unwrap().len(), 1);
    assert_eq!(u.messages("INBOX").unwrap().len(), 1);
}

#[test]
fn a_ghost_whose_object_comes_back_with_another_message_becomes_visible() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (sa, sb) = (node(da.path(), 1), node(db.path(), 2));
    let a = sa.user("u").unwrap();
    let (recs, expunge_at, raw, doomed, _, gone) = purged_history(&a);
    let b = sb.user("u").unwrap();
    apply(&b, &[&raw], &recs[..expunge_at], &[gone]).unwrap();
    assert_eq!(b.ghosts().unwrap().len(), 1);
    let hms = inbox(&b).highestmodseq;
    // The same bytes delivered on B: the object is here again, and so is the ghost's body.
    let again = append(&b, "INBOX", &msg(1));
    assert!(b.ghosts().unwrap().is_empty());
    let listed = b.messages("INBOX").unwrap();
    let woken = listed.iter().find(|m| m.guid == doomed.guid).unwrap();
    assert_eq!(woken.uid, doomed.uid);
    assert!(woken.flags.contains(&Flag::Flagged));
    assert!(
        woken.modseq <= hms,
        "it keeps the modseq its changes gave it"
    );
    assert_eq!(b.read_message(&woken.object).unwrap(), msg(1));
    assert_eq!(inbox(&b).exists, 3);
    assert!(listed.iter().any(|m| m.guid == again.guid));
    // What a rebuild from the log makes of it (the object is found at the replay).
    b.purge().unwrap();
    let live = b.dump_index().unwrap();
    b.rebuild_index().unwrap();
    assert_eq!(b.dump_index().unwrap(), live);
    // Its removal still arrives and expunges it.
    b.apply_remote(&recs[expunge_at..]).unwrap();
    assert!(!b
        .messages("INBOX")
        .unwrap()
        .iter()
        .any(|m| m.guid == doomed.guid));
    assert_eq!(inbox(&b).exists, 2);
}

#[test]
fn a_ghost_that_claims_a_taken_uid_is_renumbered_and_stays_a_ghost() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (sa, sb) = (node(da.path(), 1), node(db.path(), 2));
    let (a, b) = (sa.user("u").unwrap(), sb.user("u").unwrap());
    // Apart, both take UID 1; A's is then expunged and purged.
    let mine = append(&b, "INBOX", &msg(9));
    let (recs, expunge_at, raw, doomed, kept, gone) = purged_history(&a);
    assert_eq!((mine.uid, doomed.uid), (1, 1));
    let out = apply(&b, &[&raw], &recs[..expunge_at], &[gone]).unwrap();
    assert_eq!(out.conflicts.len(), 1, "A's message is pending: {out:?}");
    assert!(b.ghosts().unwrap().is_empty());
    // The resolver renumbers both; A's message lands as a ghost at its new UID.
    b.resolve_conflicts("INBOX").unwrap().unwrap();
    let ghosts = b.ghosts().unwrap();
    assert_eq!(ghosts.len(), 1);
    assert_eq!(ghosts[0].guid, doomed.guid);
    let listed: Vec<(Guid, u32)> = b
        .messages("INBOX")
        .unwrap()
        .iter()
        .map(|m| (m.guid, m.uid))
        .collect();
    assert!(listed.contains(&(kept.guid, kept.uid)), "{listed:?}");
    let moved = listed.iter().find(|(g, _)| *g == mine.guid).unwrap().1;
    assert!(moved > kept.uid && ghosts[0].uid > kept.uid && moved != ghosts[0].uid);
    assert_eq!(inbox(&b).exists, 2);
    let live = b.dump_index().unwrap();
    b.rebuild_index().unwrap();
    assert_eq!(b.dump_index().unwrap(), live);
    // Its expunge finds it at the new UID.
    b.apply_remote(&recs[expunge_at..]).unwrap();
    assert!(b.ghosts().unwrap().is_empty());
    assert_eq!(
        b.changes_since("INBOX", 0).unwrap().expunged,
        vec![1, ghosts[0].uid]
    );
}

#[test]
fn deleting_its_mailbox_removes_a_ghost() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (sa, sb) = (node(da.path(), 1), node(db.path(), 2));
    let (a, b) = (sa.user("u").unwrap(), sb.user("u").unwrap());
    a.create_mailbox("Box", None).unwrap();
    let doomed = append(&a, "Box", &msg(1));
    let gone = a.messages("Box").unwrap()[0].object;
    a.delete_mailbox("Box").unwrap();
    assert_eq!(a.purge().unwrap().objects_removed, 1);
    let recs = a.records_since(&VersionVector::new(), 10_000).unwrap();
    let del = recs
        .iter()
        .position(|r| matches!(r.op, Op::MailboxDelete { .. }))
        .unwrap();
    apply(&b, &[], &recs[..del], &[gone]).unwrap();
    assert_eq!(b.ghosts().unwrap()[0].guid, doomed.guid);
    assert!(b.messages("Box").unwrap().is_empty());
    b.apply_remote(&recs[del..]).unwrap();
    assert!(b.ghosts().unwrap().is_empty());
    assert!(b.mailbox("Box").is_err());
    let live = b.dump_index().unwrap();
    b.rebuild_index().unwrap();
    assert_eq!(b.dump_index().unwrap(), live);
}
