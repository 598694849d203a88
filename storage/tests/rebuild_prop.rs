//! After a random workload, rebuilding the index from the log gives exactly the live index, and
//! so does reopening (catch-up from the checkpoint).
mod common;
use common::*;
use proptest::prelude::*;
use storage::*;

#[derive(Clone, Debug)]
enum Act {
    Create(usize),
    Rename(usize, usize),
    Delete(usize),
    Append(usize, u8, bool),
    Copy(usize, Vec<u32>, usize),
    Move(usize, Vec<u32>, usize),
    Flags(usize, Vec<u32>, u8, u8),
    Expunge(usize, Vec<u32>),
    Subscribe(usize, bool),
    Purge,
    /// A merge resolver's modseq alignment of some messages, `min_modseq` HIGHESTMODSEQ + n.
    Align(usize, Vec<u32>, u8),
}

const NAMES: [&str; 7] = [
    "INBOX",
    "Trash",
    "Work",
    "Work/A",
    "Lists",
    "Lists/rust",
    "Old",
];
const FLAGS: [&str; 5] = ["\\Seen", "\\Flagged", "\\Deleted", "$Work", "\\Answered"];

fn act() -> impl Strategy<Value = Act> {
    let mb = 0..NAMES.len();
    let uids = prop::collection::vec(1u32..12, 0..4);
    prop_oneof![
        mb.clone().prop_map(Act::Create),
        (mb.clone(), mb.clone()).prop_map(|(a, b)| Act::Rename(a, b)),
        mb.clone().prop_map(Act::Delete),
        (mb.clone(), any::<u8>(), any::<bool>()).prop_map(|(m, b, k)| Act::Append(m, b, k)),
        (mb.clone(), uids.clone(), mb.clone()).prop_map(|(a, u, b)| Act::Copy(a, u, b)),
        (mb.clone(), uids.clone(), mb.clone()).prop_map(|(a, u, b)| Act::Move(a, u, b)),
        (mb.clone(), uids.clone(), 0u8..3, any::<u8>())
            .prop_map(|(m, u, mode, f)| Act::Flags(m, u, mode, f)),
        (mb.clone(), uids).prop_map(|(m, u)| Act::Expunge(m, u)),
        (mb.clone(), any::<bool>()).prop_map(|(m, on)| Act::Subscribe(m, on)),
        Just(Act::Purge),
        (mb, prop::collection::vec(1u32..12, 0..4), 0u8..3)
            .prop_map(|(m, u, n)| Act::Align(m, u, n)),
    ]
}

fn run(u: &UserStore, a: &Act) {
    // Errors (no such mailbox, exists, ...) are part of the workload; they must leave no trace.
    let _ = match a {
        Act::Create(m) => u.create_mailbox(NAMES[*m], None).map(|_| ()),
        Act::Rename(a, b) => u.rename_mailbox(NAMES[*a], NAMES[*b]),
        Act::Delete(m) => u.delete_mailbox(NAMES[*m]),
        Act::Append(m, b, key) => u
            .append(
                NAMES[*m],
                NewMessage {
                    raw: &msg(*b as usize % 16),
                    flags: flags(&[FLAGS[*b as usize % FLAGS.len()]]),
                    internal_date: Some((1_700_000_000 + *b as i64, 60)),
                    delivery_key: key.then_some([*b % 4; 32]),
                },
            )
            .map(|_| ()),
        Act::Copy(a, uids, b) => u.copy(NAMES[*a], uids, NAMES[*b]).map(|_| ()),
        Act::Move(a, uids, b) => u.move_messages(NAMES[*a], uids, NAMES[*b]).map(|_| ()),
        Act::Flags(m, uids, mode, f) => {
            let mode = [FlagMode::Add, FlagMode::Remove, FlagMode::Replace][*mode as usize];
            let fl: Flags = FLAGS
                .iter()
                .enumerate()
                .filter(|(i, _)| f & (1 << i) != 0)
                .map(|(_, n)| Flag::from_imap(n))
                .collect();
            u.store_flags(NAMES[*m], uids, mode, &fl, None).map(|_| ())
        }
        Act::Expunge(m, uids) => u.expunge(NAMES[*m], uids).map(|_| ()),
        Act::Purge => u.purge().map(|_| ()),
        Act::Align(m, uids, n) => u.mailbox(NAMES[*m]).and_then(|mb| {
            let msgs = u.messages(NAMES[*m])?;
            let guids: Vec<Guid> = msgs
                .iter()
                .filter(|x| uids.contains(&x.uid))
                .map(|x| x.guid)
                .collect();
            u.align_modseqs(&mb.id, mb.highestmodseq + *n as u64, &guids)
                .map(|_| ())
        }),
        Act::Subscribe(m, on) => {
            if *on {
                u.subscribe(NAMES[*m])
            } else {
                u.unsubscribe(NAMES[*m])
            }
        }
    };
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 80, max_shrink_iters: 200, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn rebuild_equals_live_index(acts in prop::collection::vec(act(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let u = store.user("prop").unwrap();
        for a in &acts {
            run(&u, a);
        }
        let live = u.dump_index().unwrap();
        let mailboxes = u.list_mailboxes().unwrap();
        u.rebuild_index().unwrap();
        prop_assert_eq!(&u.dump_index().unwrap(), &live);
        prop_assert_eq!(&u.list_mailboxes().unwrap(), &mailboxes);
        // Every message's object is readable; changes_since agrees with a full scan.
        for mb in &mailboxes {
            let msgs = u.messages(&mb.name).unwrap();
            for m in &msgs {
                prop_assert_eq!(u.read_message(&m.object).unwrap().len() as u64, m.size);
            }
            for since in [0, 1, mb.highestmodseq / 2, mb.highestmodseq] {
                let want: Vec<_> = msgs.iter().filter(|m| m.modseq > since).cloned().collect();
                let got = u.changes_since(&mb.name, since).unwrap();
                prop_assert_eq!(&got.changed, &want);
                prop_assert_eq!(got.highestmodseq, mb.highestmodseq);
                prop_assert!(got.expunged.iter().all(|uid| msgs.iter().all(|m| m.uid != *uid)));
            }
        }
        // Reopening (the catch-up path) agrees too.
        drop(u);
        drop(store);
        let store = open(dir.path());
        let u = store.user("prop").unwrap();
        prop_assert_eq!(&u.dump_index().unwrap(), &live);
    }
}
