//! Session-level tests of the smaller extensions: SEARCHRES (RFC 5182: SAVE, then `$` in
//! FETCH, STORE and SEARCH), UNAUTHENTICATE (RFC 8437), OBJECTID (RFC 8474), PREVIEW
//! (RFC 8970) and REPLACE (RFC 8508).

use super::tests::{context, Client, MSG};
use super::ImapConfig;
use crate::testing::TestBackend;

#[tokio::test]
async fn saved_results_are_used_by_later_commands() {
    let ctx = context(TestBackend::demo(), ImapConfig::default());
    let m2 = MSG.replace("hello", "second");
    let m3 = MSG.replace("hello", "third");
    let mut c = Client::selected(ctx, &[MSG, &m2, &m3]).await;
    let r = c.cmd("s1", "STORE 1,3 +FLAGS (\\Flagged)").await;
    assert!(r.last().unwrap().starts_with("s1 OK"), "{r:?}");
    // SAVE alone answers nothing but OK.
    let r = c.cmd("s2", "SEARCH RETURN (SAVE) FLAGGED").await;
    assert_eq!(r, vec!["s2 OK Search completed.\r\n"]);
    let r = c.cmd("f1", "FETCH $ (UID)").await;
    assert_eq!(
        r[..2],
        ["* 1 FETCH (UID 1)\r\n", "* 3 FETCH (UID 3)\r\n"],
        "{r:?}"
    );
    let r = c.cmd("f2", "UID SEARCH UID $ SUBJECT third").await;
    assert_eq!(r[0], "* SEARCH 3\r\n");
    // SAVE MIN saves the first match only.
    let r = c.cmd("s3", "SEARCH RETURN (SAVE MIN) FLAGGED").await;
    assert_eq!(r[0], "* ESEARCH (TAG \"s3\") MIN 1\r\n");
    let r = c.cmd("s4", "STORE $ +FLAGS.SILENT (\\Seen)").await;
    assert_eq!(r, vec!["s4 OK Store completed.\r\n"]);
    let r = c.cmd("f3", "SEARCH SEEN").await;
    assert_eq!(r[0], "* SEARCH 1\r\n");
    // An empty saved result matches nothing and is no error.
    c.cmd("s5", "SEARCH RETURN (SAVE) DRAFT").await;
    let r = c.cmd("f4", "FETCH $ (UID)").await;
    assert_eq!(r, vec!["f4 OK Fetch completed.\r\n"]);
    let r = c.cmd("f5", "SEARCH $").await;
    assert_eq!(r[0], "* SEARCH\r\n");
    let r = c.cmd("c", "CAPABILITY").await;
    assert!(r[0].contains(" SEARCHRES "), "{r:?}");
}

/// UNAUTHENTICATE (RFC 8437) returns to the state of a new connection; a second login works.
#[tokio::test]
async fn unauthenticate_then_log_in_again() {
    let ctx = context(TestBackend::demo(), ImapConfig::default());
    let mut c = Client::selected(ctx, &[MSG]).await;
    let r = c.cmd("e", "ENABLE CONDSTORE").await;
    assert!(r.last().unwrap().starts_with("e OK"), "{r:?}");
    assert_eq!(
        c.cmd("u", "UNAUTHENTICATE").await,
        vec!["u OK Unauthenticate completed.\r\n"]
    );
    assert_eq!(
        c.cmd("f", "FETCH 1 FLAGS").await,
        vec!["f BAD Please log in first.\r\n"]
    );
    let r = c.cmd("c", "CAPABILITY").await;
    assert!(
        r[0].contains("AUTH=PLAIN") && !r[0].contains("UNAUTHENTICATE"),
        "{r:?}"
    );
    let r = c.cmd("l", "LOGIN demo demo").await;
    assert!(r.last().unwrap().starts_with("l OK"), "{r:?}");
    let r = c.cmd("s", "SELECT INBOX").await;
    // CONDSTORE is off again: no HIGHESTMODSEQ in the SELECT answer.
    assert!(!r.iter().any(|l| l.contains("HIGHESTMODSEQ")), "{r:?}");
    assert_eq!(
        c.cmd("u2", "UNAUTHENTICATE x").await,
        vec!["u2 BAD Error in IMAP command UNAUTHENTICATE: Invalid arguments.\r\n"]
    );
}

/// OBJECTID (RFC 8474) and PREVIEW (RFC 8970): ids in FETCH, STATUS, SELECT and CREATE; a
/// mailbox keeps its id through RENAME; the preview is the text, whitespace folded.
#[tokio::test]
async fn object_ids_and_previews() {
    let ctx = context(TestBackend::demo(), ImapConfig::default());
    let body = MSG.replace("Hello there.", "Hello   there,\r\n\r\nsecond   line.");
    let mut c = Client::selected(ctx, &[&body]).await;
    let r = c
        .cmd("f", "FETCH 1 (EMAILID THREADID PREVIEW (LAZY))")
        .await;
    let line = &r[0];
    assert!(line.starts_with("* 1 FETCH (EMAILID (M"), "{r:?}");
    assert!(
        line.ends_with(" THREADID NIL PREVIEW \"Hello there, second line.\")\r\n"),
        "{r:?}"
    );
    let emailid = line.split(['(', ')']).nth(2).unwrap().to_string();
    let r = c.cmd("u", "UID FETCH 1 (FLAGS EMAILID)").await;
    assert!(
        r[0].contains(&format!("EMAILID ({emailid})")) && r[0].contains("UID 1"),
        "{r:?}"
    );
    let r = c.cmd("c", "CREATE Box").await;
    let created = r[0].split(['(', ')']).nth(1).unwrap().to_string();
    assert!(r[0].starts_with("c OK [MAILBOXID (F"), "{r:?}");
    let r = c.cmd("s", "STATUS Box (MAILBOXID)").await;
    assert_eq!(r[0], format!("* STATUS Box (MAILBOXID ({created}))\r\n"));
    let r = c.cmd("r", "RENAME Box Crate").await;
    assert!(r.last().unwrap().starts_with("r OK"), "{r:?}");
    let r = c.cmd("s2", "STATUS Crate (MESSAGES MAILBOXID)").await;
    assert_eq!(
        r[0],
        format!("* STATUS Crate (MESSAGES 0 MAILBOXID ({created}))\r\n")
    );
    let r = c.cmd("x", "EXAMINE Crate").await;
    assert!(
        r.contains(&format!("* OK [MAILBOXID ({created})] Ok\r\n")),
        "{r:?}"
    );
    let r = c.cmd("k", "CAPABILITY").await;
    assert!(
        r[0].contains(" OBJECTID ") && r[0].contains(" PREVIEW"),
        "{r:?}"
    );
}

/// REPLACE (RFC 8508): the new message is appended (APPENDUID), the old one expunged; a
/// failed append leaves the original.
#[tokio::test]
async fn replace_swaps_a_message() {
    let ctx = context(TestBackend::demo(), ImapConfig::default());
    let mut c = Client::selected(ctx, &[MSG]).await;
    c.cmd("c", "CREATE Drafts").await;
    c.send("r1 REPLACE 1 Drafts (\\Draft) {12+}\r\nSubject:\r\n\r\n\r\n")
        .await;
    let r = c.until_tag("r1").await;
    assert!(r[0].starts_with("* OK [APPENDUID "), "{r:?}");
    assert!(r.contains(&"* 1 EXPUNGE\r\n".to_string()), "{r:?}");
    assert_eq!(r.last().unwrap(), "r1 OK Replace completed.\r\n");
    let r = c.cmd("s", "STATUS Drafts (MESSAGES)").await;
    assert_eq!(r[0], "* STATUS Drafts (MESSAGES 1)\r\n");
    // Into a mailbox that does not exist: TRYCREATE, and the original stays.
    c.cmd("e", "EXAMINE Drafts").await;
    let r = c.cmd("x", "SELECT Drafts").await;
    assert!(r.last().unwrap().starts_with("x OK"), "{r:?}");
    c.send("r2 UID REPLACE 1 Nowhere {12+}\r\nSubject:\r\n\r\n\r\n")
        .await;
    let r = c.until_tag("r2").await;
    assert!(r.last().unwrap().starts_with("r2 NO [TRYCREATE]"), "{r:?}");
    let r = c.cmd("f", "FETCH 1 (UID)").await;
    assert_eq!(r[0], "* 1 FETCH (UID 1)\r\n");
    c.send("r3 REPLACE 5 Drafts {12+}\r\nSubject:\r\n\r\n\r\n")
        .await;
    let r = c.until_tag("r3").await;
    assert!(r.last().unwrap().starts_with("r3 BAD"), "{r:?}");
}
