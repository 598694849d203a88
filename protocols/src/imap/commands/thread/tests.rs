use super::*;
use crate::imap::response::Encoder;

fn msg(seq: u32, date: i64, subject: &str, id: &str, refs: &[&str]) -> ThreadMsg {
    let (subject, reply) = base_subject_reply(subject);
    ThreadMsg {
        num: seq,
        seq,
        date,
        subject,
        reply,
        id: (!id.is_empty()).then(|| id.to_string()),
        refs: refs.iter().map(|r| r.to_string()).collect(),
    }
}

fn text(tree: &ThreadTree) -> String {
    let mut out = Vec::new();
    Encoder::default().untagged(&mut out, &Untagged::Thread(tree));
    String::from_utf8(out).unwrap()
}

#[test]
fn ordered_subject_groups_by_base_subject_then_date() {
    let msgs = [
        msg(1, 10, "A", "", &[]),
        msg(2, 20, "B", "", &[]),
        msg(3, 30, "Re: A", "", &[]),
        msg(4, 5, "c", "", &[]),
        msg(5, 40, "a", "", &[]),
    ];
    assert_eq!(
        text(&by_ordered_subject(&msgs)),
        "* THREAD (4)(1 (3)(5))(2)\r\n"
    );
    assert_eq!(text(&by_ordered_subject(&[])), "* THREAD\r\n");
}

#[test]
fn references_build_parents_and_siblings() {
    let msgs = [
        msg(1, 1, "x", "1", &[]),
        msg(2, 2, "re: x", "2", &["1"]),
        msg(3, 3, "re: x", "3", &["1"]),
        msg(4, 4, "re: x", "4", &["1", "2"]),
        msg(5, 5, "other", "5", &[]),
    ];
    assert_eq!(text(&by_references(&msgs)), "* THREAD (1 (2 4)(3))(5)\r\n");
}

#[test]
fn references_a_loop_makes_the_later_message_a_root() {
    // imaptest's "thread": 3 names 2 as parent, but 2 is already below 3 (via 2's
    // References): 3 leaves its guessed parent 1 and heads its own thread.
    let msgs = [
        msg(1, 30, "", "a@b", &[]),
        msg(2, 10, "", "b@b", &["a@b", "c@b"]),
        msg(3, 20, "", "c@b", &["b@b"]),
    ];
    assert_eq!(text(&by_references(&msgs)), "* THREAD (3 2)(1)\r\n");
}

#[test]
fn references_keep_a_dummy_root_for_a_missing_parent() {
    let msgs = [
        msg(1, 1, "a", "2", &["1"]),
        msg(2, 2, "b", "3", &["1"]),
        // a missing parent below another message is dropped, its child moves up
        msg(3, 3, "c", "5", &["9", "4"]),
        msg(4, 4, "d", "6", &["5"]),
    ];
    assert_eq!(text(&by_references(&msgs)), "* THREAD ((1)(2))(3 4)\r\n");
}

#[test]
fn references_merge_threads_by_subject() {
    // no references at all: a reply joins the original's thread; two originals get a dummy
    let msgs = [
        msg(1, 1, "x", "a", &[]),
        msg(2, 2, "Re: x", "b", &[]),
        msg(3, 3, "y", "c", &[]),
        msg(4, 4, "y", "d", &[]),
    ];
    assert_eq!(text(&by_references(&msgs)), "* THREAD (1 2)((3)(4))\r\n");
}

#[test]
fn references_survive_loops_duplicates_and_deep_chains() {
    let looped = [
        msg(1, 1, "a", "a", &["b"]),
        msg(2, 2, "b", "b", &["a"]),
        msg(3, 3, "c", "a", &[]),
    ];
    let t = text(&by_references(&looped));
    for n in ["1", "2", "3"] {
        assert!(t.contains(n), "{t}");
    }
    // 200000 messages each replying to the one before: no recursion to overflow
    let n = 200_000u32;
    let ids: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
    let chain: Vec<ThreadMsg> = (0..n)
        .map(|i| {
            let mut m = msg(i + 1, i64::from(i), "s", &ids[i as usize], &[]);
            if i > 0 {
                m.refs = vec![ids[i as usize - 1].clone()];
            }
            m
        })
        .collect();
    let t = text(&by_references(&chain));
    assert!(t.starts_with("* THREAD (1 2 3 "), "{}", &t[..40]);
    assert!(t.ends_with(" 200000)\r\n"));
}

#[test]
fn message_ids_and_header_fields() {
    assert_eq!(msg_ids(b" <a@b> <c\r\n @d>x<e"), ["a@b", "c@d"]);
    assert_eq!(msg_ids(b"<a <b@c>"), ["b@c"]);
    assert!(msg_ids(b"<>").is_empty());
    let raw = b"Subject: x\r\nReferences: <1@x>\r\n <2@x>\r\nX: y\r\n\r\nReferences: <no>\r\n";
    assert_eq!(
        header_value(raw, b"references").as_deref(),
        Some(&b" <1@x>  <2@x>"[..])
    );
    assert_eq!(header_value(raw, b"in-reply-to"), None);
}
