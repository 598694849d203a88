//! Quotas as users see them: a delivery over quota gets LMTP's `552 5.2.2` (the sender
//! bounces or retries; nothing is dropped silently), an IMAP APPEND gets
//! `NO [OVERQUOTA]`, and expunging makes room again.

use std::time::Duration;
use tests::*;

#[test]
fn over_quota_is_552_on_lmtp_and_overquota_on_imap_append() {
    let server = Server::start(ServerSpec {
        wait_for: vec![Proto::Imap, Proto::Lmtp],
        extra_toml: "quota_rule = \"*:messages=3\"".into(),
        ..Default::default()
    })
    .expect("start node");
    let deliver = |i: usize| {
        lmtp_deliver(
            server.addr(Proto::Lmtp),
            "s@example.org",
            &["demo@example.org"],
            &sample_message(&format!("quota {i}"), "counts against the quota"),
        )
        .expect("LMTP session")
    };
    for i in 0..3 {
        let r = deliver(i);
        assert!(r[0].starts_with("250"), "delivery {i} within quota: {r:?}");
    }
    let r = deliver(3);
    assert!(
        r[0].starts_with("552") && r[0].contains("5.2.2"),
        "delivery over quota: {r:?}"
    );

    let mut c = LineConn::connect(server.addr(Proto::Imap)).expect("connect");
    c.line().expect("greeting");
    let r = c.imap("l", "LOGIN demo demo").expect("login");
    assert!(tagged(&r).starts_with("l OK"), "{r:?}");
    let msg = sample_message("appended", "over quota");
    c.send(&format!("a APPEND INBOX {{{}}}", msg.len()))
        .expect("append");
    let cont = c.line().expect("continuation or refusal");
    let r = if cont.starts_with('+') {
        c.send_raw(&msg).expect("literal");
        c.send("").expect("end");
        c.imap_until("a").expect("append reply")
    } else {
        vec![cont]
    };
    assert!(
        tagged(&r).starts_with("a NO") && tagged(&r).contains("OVERQUOTA"),
        "APPEND over quota: {r:?}"
    );

    // Room again after an expunge.
    let r = c.imap("s", "SELECT INBOX").expect("select");
    assert!(r.iter().any(|l| l == "* 3 EXISTS"), "{r:?}");
    let r = c
        .imap("d", "STORE 1 +FLAGS.SILENT (\\Deleted)")
        .expect("store");
    assert!(tagged(&r).starts_with("d OK"), "{r:?}");
    let r = c.imap("x", "EXPUNGE").expect("expunge");
    assert!(tagged(&r).starts_with("x OK"), "{r:?}");
    std::thread::sleep(Duration::from_millis(50));
    let r = deliver(4);
    assert!(
        r[0].starts_with("250"),
        "delivery after an expunge made room: {r:?}"
    );
}
