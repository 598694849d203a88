//! Session-level tests of the smaller extensions: SEARCHRES (RFC 5182: SAVE, then `$` in
//! FETCH, STORE and SEARCH), UNAUTHENTICATE (RFC 8437), OBJECTID (RFC 8474), PREVIEW
//! (RFC 8970), REPLACE (RFC 8508), NOTIFY (RFC 5465) and search contexts (RFC 5267).

use super::tests::{append, context, Client, MSG};
use super::ImapConfig;
use crate::imap::commands::MAX_METADATA_VALUE as MAX_VALUE;
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

/// NOTIFY (RFC 5465): another session's changes to mailboxes that are not selected arrive as
/// STATUS and LIST, after a command and while idling; NOTIFY NONE stops them.
#[tokio::test]
async fn notify_reports_other_mailboxes() {
    let ctx = context(TestBackend::demo(), ImapConfig::default());
    let mut a = Client::selected(ctx.clone(), &[]).await;
    let mut b = Client::login(ctx).await;
    b.cmd("c", "CREATE Lists").await;
    let r = a
        .cmd(
            "n",
            "NOTIFY SET STATUS (SELECTED (MessageNew MessageExpunge)) \
             (SUBTREE (Lists Fresh) (MessageNew MessageExpunge FlagChange MailboxName))",
        )
        .await;
    // The selected INBOX gets no STATUS; Lists does.
    assert!(
        r[0].starts_with("* STATUS Lists (MESSAGES 0 UIDNEXT 1 UIDVALIDITY "),
        "{r:?}"
    );
    assert!(r[0].contains(" HIGHESTMODSEQ "), "{r:?}");
    assert_eq!(r.len(), 2, "{r:?}");
    append(&mut b, "a1", "Lists", MSG).await;
    let r = a.cmd("n1", "NOOP").await;
    assert_eq!(r[0], "* STATUS Lists (MESSAGES 1 UIDNEXT 2)\r\n", "{r:?}");
    b.cmd("s", "SELECT Lists").await;
    b.cmd("f", "STORE 1 +FLAGS (\\Flagged)").await;
    let r = a.cmd("n4", "NOOP").await;
    assert!(r[0].starts_with("* STATUS Lists (HIGHESTMODSEQ "), "{r:?}");
    b.cmd("u", "UNSELECT").await;
    // While idling: a new mailbox, then a delivery into it.
    a.send("i IDLE\r\n").await;
    assert_eq!(a.line().await, "+ idling\r\n");
    b.cmd("c2", "CREATE Fresh").await;
    assert_eq!(a.line().await, "* LIST () \"/\" Fresh\r\n");
    append(&mut b, "a2", "Fresh", MSG).await;
    assert_eq!(a.line().await, "* STATUS Fresh (MESSAGES 1 UIDNEXT 2)\r\n");
    b.cmd("d", "DELETE Fresh").await;
    assert_eq!(a.line().await, "* LIST (\\NonExistent) \"/\" Fresh\r\n");
    a.send("DONE\r\n").await;
    assert_eq!(a.until_tag("i").await, vec!["i OK Idle completed.\r\n"]);
    let r = a.cmd("n2", "NOTIFY NONE").await;
    assert_eq!(r, vec!["n2 OK NOTIFY completed.\r\n"]);
    append(&mut b, "a3", "Lists", MSG).await;
    let r = a.cmd("n3", "NOOP").await;
    assert_eq!(r, vec!["n3 OK NOOP completed.\r\n"]);
}

/// CONTEXT=SEARCH (RFC 5267) while idling: a flag change by another session that puts a
/// message into the result is told as ADDTO without waiting for the next command.
#[tokio::test]
async fn search_context_updates_reach_an_idling_client() {
    let ctx = context(TestBackend::demo(), ImapConfig::default());
    let mut a = Client::selected(ctx.clone(), &[MSG, MSG]).await;
    let mut b = Client::selected(ctx, &[]).await;
    let r = a.cmd("s", "SEARCH RETURN (UPDATE COUNT) FLAGGED").await;
    assert_eq!(r[0], "* ESEARCH (TAG \"s\") COUNT 0\r\n");
    a.send("i IDLE\r\n").await;
    assert_eq!(a.line().await, "+ idling\r\n");
    b.cmd("f", "STORE 2 +FLAGS (\\Flagged)").await;
    let mut got = Vec::new();
    loop {
        let l = a.line().await;
        let done = l.starts_with("* ESEARCH");
        got.push(l);
        if done {
            break;
        }
    }
    assert_eq!(
        got.last().unwrap(),
        "* ESEARCH (TAG \"s\") ADDTO (0 2)\r\n",
        "{got:?}"
    );
    a.send("DONE\r\n").await;
    assert_eq!(a.until_tag("i").await, vec!["i OK Idle completed.\r\n"]);
    let r = a.cmd("c", "CANCELUPDATE \"s\"").await;
    assert_eq!(r, vec!["c OK Cancelupdate completed.\r\n"]);
    let r = a.cmd("c2", "CANCELUPDATE \"s\"").await;
    assert!(r[0].starts_with("c2 BAD"), "{r:?}");
}

/// CONTEXT=SORT (RFC 5267): updates carry positions in the sorted result, and PARTIAL
/// (RFC 9394) cuts by position.
#[tokio::test]
async fn sort_context_updates_carry_positions() {
    let ctx = context(TestBackend::demo(), ImapConfig::default());
    let (b, c) = (
        MSG.replace("hello", "bravo"),
        MSG.replace("hello", "charlie"),
    );
    let mut s = Client::selected(ctx, &[&c, MSG, &b]).await;
    // By subject: bravo (3), charlie (1), hello (2).
    let r = s
        .cmd(
            "o",
            "SORT RETURN (ALL UPDATE PARTIAL 2:3) (SUBJECT) UTF-8 ALL",
        )
        .await;
    assert_eq!(
        r[0],
        "* ESEARCH (TAG \"o\") ALL 3,1:2 PARTIAL (2:3 1:2)\r\n"
    );
    let d = MSG.replace("hello", "delta");
    s.send(&format!("a APPEND INBOX {{{}+}}\r\n{d}\r\n", d.len()))
        .await;
    let r = s.until_tag("a").await;
    // delta sorts third of four.
    assert!(
        r.contains(&"* ESEARCH (TAG \"o\") ADDTO (3 4)\r\n".to_string()),
        "{r:?}"
    );
    let r = s.cmd("x", "STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    assert!(r.last().unwrap().starts_with("x OK"), "{r:?}");
    let r = s.cmd("e", "EXPUNGE").await;
    // charlie was second: REMOVEFROM comes before the EXPUNGE it explains.
    assert_eq!(r[0], "* ESEARCH (TAG \"o\") REMOVEFROM (2 1)\r\n", "{r:?}");
    assert_eq!(r[1], "* 1 EXPUNGE\r\n", "{r:?}");
}

/// SAVEDATE (RFC 8514): the day a message entered the mailbox, not its internal date; stable
/// across reads (it is the store's record of the append, not the clock at FETCH time); the
/// SAVED* search keys work inside OR and NOT.
#[tokio::test]
async fn save_dates_fetch_and_search() {
    let ctx = context(TestBackend::demo(), ImapConfig::default());
    let mut c = Client::selected(ctx, &[MSG]).await;
    let today = chrono::Utc::now().date_naive();
    c.send("a APPEND INBOX \"01-Jan-2000 10:00:00 +0100\" {12+}\r\nSubject:\r\n\r\n\r\n")
        .await;
    let r = c.until_tag("a").await;
    assert!(r.last().unwrap().starts_with("a OK"), "{r:?}");
    c.cmd("n", "NOOP").await;
    let r = c.cmd("f", "FETCH 2 (SAVEDATE INTERNALDATE)").await;
    let day = today.format("%d-%b-%Y").to_string();
    let want = format!("* 2 FETCH (INTERNALDATE \"01-Jan-2000 10:00:00 +0100\" SAVEDATE \"{day} ");
    assert!(r[0].starts_with(&want), "{r:?}");
    assert!(r[0].ends_with(" +0000\")\r\n"), "{r:?}");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let again = c.cmd("f2", "FETCH 2 (SAVEDATE INTERNALDATE)").await;
    assert_eq!(r[0], again[0]);
    let tomorrow = (today + chrono::Days::new(1))
        .format("%d-%b-%Y")
        .to_string();
    for (criteria, want) in [
        (format!("SAVEDON {day}"), "* SEARCH 1 2\r\n"),
        (format!("SAVEDSINCE \"{day}\""), "* SEARCH 1 2\r\n"),
        (format!("SAVEDBEFORE {day}"), "* SEARCH\r\n"),
        (format!("SAVEDSINCE {tomorrow}"), "* SEARCH\r\n"),
        (format!("BEFORE {day} SAVEDON {day}"), "* SEARCH 2\r\n"),
        (
            format!("OR SAVEDBEFORE {day} NOT SAVEDSINCE {tomorrow}"),
            "* SEARCH 1 2\r\n",
        ),
        ("SAVEDATESUPPORTED".into(), "* SEARCH 1 2\r\n"),
    ] {
        let r = c.cmd("s", &format!("SEARCH {criteria}")).await;
        assert_eq!(r[0], want, "{criteria}");
    }
    let r = c
        .cmd("u", &format!("UID SEARCH RETURN (COUNT) SAVEDON {day}"))
        .await;
    assert!(r[0].ends_with(" UID COUNT 2\r\n"), "{r:?}");
    for bad_cmd in [
        "SEARCH SAVEDON 32-Jan-2020",
        "SEARCH SAVEDBEFORE",
        "SEARCH KEYWORD $$SAVEDATE-B20200101",
    ] {
        let r = c.cmd("b", bad_cmd).await;
        assert!(r[0].starts_with("b BAD "), "{bad_cmd}: {r:?}");
    }
    let r = c.cmd("k", "CAPABILITY").await;
    assert!(r[0].contains(" SAVEDATE "), "{r:?}");
}

/// METADATA and METADATA-SERVER (RFC 5464): entries set, read at each depth, with MAXSIZE,
/// removed with NIL; binary values come back as literal8; limits and bad names refused.
#[tokio::test]
async fn metadata_entries_of_mailboxes_and_the_server() {
    let ctx = context(TestBackend::demo(), ImapConfig::default());
    let mut c = Client::selected(ctx, &[MSG]).await;
    let r = c.cmd("k", "CAPABILITY").await;
    assert!(
        r[0].contains(" METADATA ") && r[0].contains(" METADATA-SERVER "),
        "{r:?}"
    );
    let r = c
        .cmd("s1", "SETMETADATA INBOX (/private/Comment \"my inbox\" /shared/vendor/x/a \"1\" /shared/vendor/x/a/b \"22\")")
        .await;
    assert_eq!(r, ["s1 OK Setmetadata completed.\r\n"]);
    let r = c
        .cmd("s2", "SETMETADATA \"\" (/shared/comment {4+}\r\nmotd)")
        .await;
    assert_eq!(r, ["s2 OK Setmetadata completed.\r\n"]);
    let r = c.cmd("g1", "GETMETADATA INBOX /private/comment").await;
    assert_eq!(
        r,
        [
            "* METADATA INBOX (/private/comment \"my inbox\")\r\n",
            "g1 OK Getmetadata completed.\r\n"
        ]
    );
    let r = c
        .cmd("g2", "GETMETADATA \"\" (/shared/comment /private/none)")
        .await;
    assert_eq!(
        r[0],
        "* METADATA \"\" (/private/none NIL /shared/comment \"motd\")\r\n"
    );
    let r = c
        .cmd("g3", "GETMETADATA (DEPTH 1) INBOX /shared/vendor/x")
        .await;
    assert_eq!(r[0], "* METADATA INBOX (/shared/vendor/x/a \"1\")\r\n");
    let r = c
        .cmd(
            "g4",
            "GETMETADATA (MAXSIZE 1 DEPTH infinity) INBOX (/shared /private)",
        )
        .await;
    assert_eq!(
        r,
        [
            "* METADATA INBOX (/shared/vendor/x/a \"1\")\r\n",
            "g4 OK [METADATA LONGENTRIES 8] Getmetadata completed.\r\n"
        ]
    );
    // NIL removes; a value with NUL comes back as literal8.
    let r = c
        .cmd(
            "s3",
            "SETMETADATA INBOX (/private/comment NIL /shared/bin ~{3}\r\na\0b)",
        )
        .await;
    assert_eq!(r, ["+ OK\r\n", "s3 OK Setmetadata completed.\r\n"]);
    let r = c
        .cmd("g5", "GETMETADATA (DEPTH infinity) INBOX /private")
        .await;
    assert_eq!(r, ["g5 OK Getmetadata completed.\r\n"]);
    let r = c.cmd("g6", "GETMETADATA INBOX /shared/bin").await;
    assert_eq!(r[0], "* METADATA INBOX (/shared/bin ~{3}\r\n");
    // Entries follow the mailbox through a rename, and a missing mailbox is NONEXISTENT.
    c.cmd("c", "CREATE Box").await;
    c.cmd("s4", "SETMETADATA Box (/shared/comment \"box\")")
        .await;
    c.cmd("r", "RENAME Box Crate").await;
    let r = c.cmd("g7", "GETMETADATA Crate /shared/comment").await;
    assert_eq!(r[0], "* METADATA Crate (/shared/comment \"box\")\r\n");
    let r = c.cmd("g8", "GETMETADATA Box /shared/comment").await;
    assert!(r[0].starts_with("g8 NO [NONEXISTENT]"), "{r:?}");
    let big = "x".repeat(MAX_VALUE + 1);
    let r = c
        .cmd(
            "s5",
            &format!(
                "SETMETADATA INBOX (/shared/big {{{}+}}\r\n{big})",
                big.len()
            ),
        )
        .await;
    assert_eq!(
        r,
        [format!(
            "s5 NO [METADATA MAXSIZE {MAX_VALUE}] Metadata entry value too large\r\n"
        )]
    );
    for bad_cmd in [
        "SETMETADATA INBOX (/other/x \"v\")",
        "SETMETADATA INBOX (/shared \"v\")",
        "GETMETADATA INBOX /shared/*",
        "GETMETADATA (DEPTH 2) INBOX /shared",
    ] {
        let r = c.cmd("b", bad_cmd).await;
        assert!(r[0].starts_with("b BAD "), "{bad_cmd}: {r:?}");
    }
}
