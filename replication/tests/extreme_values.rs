//! A peer's extreme UIDs and modseqs against a real store: values no real change can have are
//! refused at the frame, and a change that would leave the merge resolver no UID to renumber
//! into is refused whole by the store, while the user's store keeps serving.

mod common;

use common::store_node::Node;
use common::{free_addr, rec, Ca};
use replication::conn::Conn;
use replication::wire::{Message, WireRecord};
use replication::*;
use std::time::Duration;
use storage::merge::uids::MAX_UID;
use storage::record::{NewEntry, Op};
use storage::{Flags, Guid, HlcTime, NewMessage, ObjectId};

const USER: &str = "alice";

fn append(inbox: Guid, guid: u8, uid: u32, raw: &[u8]) -> Op {
    Op::Append {
        mailbox: inbox,
        entry: NewEntry {
            guid: Guid([guid; 16]),
            uid,
            object: ObjectId::of(raw),
            size: raw.len() as u64,
            internal_date: 0,
            internal_date_tz_min: 0,
            flags: Flags::new(),
        },
        modseq: 1,
        delivery_key: None,
    }
}

/// The object and the Records frame that appends it, as node 2 sends them.
fn frame(seq: u64, op: Op, raw: &[u8]) -> Vec<Message> {
    vec![
        Message::Object {
            user: USER.into(),
            id: ObjectId::of(raw),
            body: storage::pack::prepare(raw).unwrap().into(),
        },
        records(seq, op),
    ]
}

fn records(seq: u64, op: Op) -> Message {
    Message::Records {
        user: USER.into(),
        records: vec![WireRecord::encode(USER, &rec(seq, op)).unwrap()],
    }
}

async fn exchange(c: &mut Conn, msgs: &[Message]) -> Result<Message, ReplError> {
    for m in msgs {
        c.send(m).await?;
    }
    c.recv_timeout(Duration::from_secs(10), "answer").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extreme_uids_and_modseqs_from_a_peer_are_refused_and_the_store_keeps_serving() {
    let ca = Ca::new();
    let mut a = Node::new(1).await;
    let peer_addr = free_addr().await;
    a.start_with(&ca, &[(2, peer_addr)], Duration::from_secs(5), |_| {})
        .await;
    let u = a.store().user(USER).unwrap();
    let inbox = u.mailbox("INBOX").unwrap().id;
    let tls2 = ca.tls(2);
    let connect = || Conn::connect(&tls2, 2, HlcTime::default(), 1, &a.addr);

    // The highest UID there is: accepted, and INBOX is full (UIDNEXT = 2^32 - 1).
    let mut c = connect().await.unwrap();
    let first = b"Subject: highest\r\n\r\nfirst\r\n";
    let r = exchange(
        &mut c,
        &frame(1, append(inbox, 0xa1, MAX_UID, first), first),
    )
    .await;
    assert!(matches!(r, Ok(Message::Ack { .. })), "{r:?}");
    assert_eq!(u.mailbox("INBOX").unwrap().uidnext, u32::MAX);

    // Another message at that UID: renumbering it would need UIDs past 2^32 - 1. The store
    // refuses the frame with its reason; nothing of it is applied.
    let second = b"Subject: conflicting\r\n\r\nsecond\r\n";
    let before = common::dump(&u);
    let r = exchange(
        &mut c,
        &frame(2, append(inbox, 0xb2, MAX_UID, second), second),
    )
    .await;
    match r {
        Ok(Message::Error { message }) => {
            assert!(message.contains("UID"), "the reason names UIDs: {message}");
        }
        other => panic!("the conflicting append must be refused, got {other:?}"),
    }
    assert_eq!(
        common::dump(&u),
        before,
        "nothing of the refused frame applied"
    );

    // Values no real change can have: refused at the frame, the peer disconnected.
    let cases: Vec<(&str, Vec<Message>)> = vec![
        ("UID 0", frame(2, append(inbox, 0xc3, 0, second), second)),
        (
            "UID 2^32-1",
            frame(2, append(inbox, 0xc3, u32::MAX, second), second),
        ),
        (
            "renumber to 2^32-1",
            vec![records(
                2,
                Op::Renumber {
                    mailbox: inbox,
                    moves: vec![(Guid([0xa1; 16]), u32::MAX)],
                    modseq: 5,
                },
            )],
        ),
        (
            "modseq 2^64-1",
            vec![records(
                2,
                Op::AlignModseqs {
                    mailbox: inbox,
                    modseq: u64::MAX,
                    messages: vec![Guid([0xa1; 16])],
                },
            )],
        ),
        (
            "modseq 2^63",
            vec![records(
                2,
                Op::AlignExpunged {
                    mailbox: inbox,
                    modseq: 1 << 63,
                    uids: vec![MAX_UID],
                },
            )],
        ),
        ("append modseq 0", {
            let mut op = append(inbox, 0xc3, 7, second);
            if let Op::Append { modseq, .. } = &mut op {
                *modseq = 0;
            }
            frame(2, op, second)
        }),
    ];
    let refused_before = a.handle.as_ref().unwrap().status().await.refused_frames;
    for (what, msgs) in &cases {
        let mut c = connect().await.unwrap();
        let r = exchange(&mut c, msgs).await;
        assert!(
            r.is_err(),
            "{what}: the peer must be disconnected, got {r:?}"
        );
    }
    let st = a.handle.as_ref().unwrap().status().await;
    assert_eq!(
        st.refused_frames,
        refused_before + cases.len() as u64,
        "each refusal counted"
    );
    assert_eq!(common::dump(&u), before, "nothing applied");

    // The user's store keeps serving: reads, writes elsewhere, and a clear error (not a panic)
    // for a delivery to the full INBOX.
    let msgs = u.messages("INBOX").unwrap();
    assert_eq!(msgs.iter().map(|m| m.uid).collect::<Vec<_>>(), [MAX_UID]);
    let new = |raw: &'static [u8]| NewMessage {
        raw,
        flags: Flags::new(),
        internal_date: None,
        delivery_key: None,
    };
    let e = u
        .append("INBOX", new(b"Subject: x\r\n\r\nx\r\n"))
        .unwrap_err();
    assert!(e.to_string().contains("no UIDs left"), "{e}");
    let ok = u
        .append("Archive", new(b"Subject: y\r\n\r\ny\r\n"))
        .unwrap();
    assert_eq!(ok.uid, 1);
    // And the peer's next well-formed record is taken.
    let mut c = connect().await.unwrap();
    let r = exchange(
        &mut c,
        &[records(
            2,
            Op::Subscribe {
                name: "Later".into(),
            },
        )],
    )
    .await;
    assert!(matches!(r, Ok(Message::Ack { .. })), "{r:?}");
    a.stop().await;
}
