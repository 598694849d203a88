//! Keywords per RFC 9051 7.3.5: every session with the mailbox selected is told of a new
//! keyword in FLAGS (and PERMANENTFLAGS) before a FETCH shows it, and a mailbox holds at
//! most the configured number of keywords.

use super::tests::{append, context, Client, MSG};
use super::ImapConfig;
use crate::testing::TestBackend;

const FLAGS_NEW: &str = "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $new)\r\n";

#[tokio::test]
async fn a_new_keyword_is_announced_before_any_fetch_shows_it() {
    let ctx = context(TestBackend::demo(), ImapConfig::default());
    let mut a = Client::selected(ctx.clone(), &[MSG]).await;
    let mut b = Client::selected(ctx.clone(), &[]).await;
    let r = a.cmd("s1", "STORE 1 +FLAGS ($new)").await;
    assert_eq!(r[0], FLAGS_NEW, "{r:?}");
    assert!(
        r[1].starts_with(
            "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $new \\*)]"
        ),
        "{r:?}"
    );
    assert!(r[2].starts_with("* 1 FETCH (FLAGS ($new"), "{r:?}");
    // The other session learns it at its next command, FLAGS first.
    let r = b.cmd("n1", "NOOP").await;
    let flags = r.iter().position(|l| l == FLAGS_NEW);
    let fetch = r.iter().position(|l| l.contains("FETCH"));
    assert!(
        matches!((flags, fetch), (Some(f), Some(x)) if f < x),
        "FLAGS must come before the FETCH: {r:?}"
    );
    // Known now: no second announcement.
    let r = a.cmd("s2", "STORE 1 -FLAGS ($new)").await;
    assert!(!r.iter().any(|l| l.starts_with("* FLAGS")), "{r:?}");
    let r = a.cmd("s3", "STORE 1 +FLAGS ($new)").await;
    assert!(!r.iter().any(|l| l.starts_with("* FLAGS")), "{r:?}");
    // A message appended with a keyword: FLAGS comes before its FETCH and with its EXISTS.
    append(&mut a, "ap", "INBOX", &MSG.replace("hello", "second")).await;
    let r = a.cmd("s4", "STORE 2 +FLAGS ($other)").await;
    assert!(
        r[0].starts_with("* FLAGS (") && r[0].contains("$other"),
        "{r:?}"
    );
    let r = b.cmd("n2", "FETCH 1:* (FLAGS)").await;
    let flags = r
        .iter()
        .position(|l| l.starts_with("* FLAGS") && l.contains("$other"));
    let Some(f) = flags else {
        panic!("no FLAGS with $other: {r:?}")
    };
    assert!(!r[..f].iter().any(|l| l.contains("$other")), "{r:?}");
    let r = b.cmd("n3", "FETCH 2 (FLAGS)").await;
    assert!(
        r[0].starts_with("* 2 FETCH (FLAGS (") && r[0].contains("$other"),
        "{r:?}"
    );
}

#[tokio::test]
async fn the_keyword_limit_is_a_clear_no() {
    let config = ImapConfig {
        max_keywords: 2,
        ..ImapConfig::default()
    };
    let ctx = context(TestBackend::demo(), config);
    let mut c = Client::selected(ctx, &[MSG]).await;
    let r = c.cmd("s1", "STORE 1 +FLAGS (k1 k2)").await;
    assert!(r.last().unwrap().starts_with("s1 OK"), "{r:?}");
    // At the limit PERMANENTFLAGS no longer offers \*.
    assert!(r[1].starts_with("* OK [PERMANENTFLAGS ("), "{r:?}");
    assert!(!r[1].contains("\\*"), "{r:?}");
    let r = c.cmd("s2", "STORE 1 +FLAGS (k3)").await;
    assert_eq!(
        r,
        vec!["s2 NO [LIMIT] Too many keywords in mailbox (limit 2).\r\n"]
    );
    // Keywords already there are fine, and removing is always allowed.
    let r = c.cmd("s3", "STORE 1 FLAGS (k1 \\Seen)").await;
    assert!(r.last().unwrap().starts_with("s3 OK"), "{r:?}");
    let r = c.cmd("s4", "STORE 1 -FLAGS (k3)").await;
    assert!(r.last().unwrap().starts_with("s4 OK"), "{r:?}");
    c.send("a1 APPEND INBOX (k4) {5+}\r\nHi!\r\n\r\n").await;
    let r = c.until_tag("a1").await;
    assert_eq!(
        r,
        vec!["a1 NO [LIMIT] Too many keywords in mailbox (limit 2).\r\n"]
    );
}
