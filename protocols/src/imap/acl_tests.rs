//! Session tests of ACL (RFC 4314) and shared mailboxes: demo shares a mailbox with bob, bob
//! reads it through `shared/demo/...` and is refused what his rights do not allow.

use super::tests::{append, context, Client, MSG};
use super::ImapConfig;
use crate::testing::TestBackend;

async fn login(ctx: std::sync::Arc<super::ImapContext>, user: &str) -> Client {
    let (mut c, _) = Client::start(ctx).await;
    let r = c.cmd("l", &format!("LOGIN {user} {user}")).await;
    assert!(r.last().unwrap().starts_with("l OK"), "{r:?}");
    c
}

fn ok(r: &[String], tag: &str) {
    assert!(r.last().unwrap().starts_with(&format!("{tag} OK")), "{r:?}");
}

fn no(r: &[String], tag: &str, code: &str) {
    assert!(
        r.last().unwrap().starts_with(&format!("{tag} NO [{code}]")),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_shared_mailbox_is_read_within_its_rights() {
    let ctx = context(
        TestBackend::new(&[("demo", "demo"), ("bob", "bob")]),
        ImapConfig::default(),
    );
    let mut d = login(ctx.clone(), "demo").await;
    ok(&d.cmd("c", "CREATE Shared").await, "c");
    ok(&append(&mut d, "a1", "Shared", MSG).await, "a1");
    ok(&append(&mut d, "a2", "Shared", MSG).await, "a2");
    // append() sets \Seen; clear it so bob's reads can be seen not to set it.
    d.cmd("s", "SELECT Shared").await;
    ok(&d.cmd("u", "STORE 1:* -FLAGS.SILENT (\\Seen)").await, "u");
    ok(&d.cmd("x", "UNSELECT").await, "x");
    ok(&d.cmd("g", "SETACL Shared bob lr").await, "g");
    let r = d.cmd("g", "GETACL Shared").await;
    assert_eq!(r[0], "* ACL Shared demo lrswipkxtea bob lr\r\n");
    let r = d.cmd("g", "LISTRIGHTS Shared bob").await;
    assert_eq!(
        r[0],
        "* LISTRIGHTS Shared bob \"\" l r s w i p k x t e a\r\n"
    );
    let r = d.cmd("g", "MYRIGHTS Shared").await;
    assert_eq!(r[0], "* MYRIGHTS Shared lrswipkxtea\r\n");
    no(&d.cmd("g", "SETACL Shared demo l").await, "g", "CANNOT");
    assert!(d.cmd("g", "SETACL Shared bob +z").await[0].starts_with("g BAD"));
    let r = d.cmd("k", "CAPABILITY").await;
    assert!(
        r[0].contains(" ACL ") && r[0].contains(" RIGHTS=texk"),
        "{r:?}"
    );

    let mut b = login(ctx.clone(), "bob").await;
    let r = b.cmd("n", "NAMESPACE").await;
    assert_eq!(
        r[0],
        "* NAMESPACE ((\"\" \"/\")) ((\"shared/\" \"/\")) NIL\r\n"
    );
    let r = b.cmd("m", "MYRIGHTS shared/demo/Shared").await;
    assert_eq!(r[0], "* MYRIGHTS shared/demo/Shared lr\r\n");
    // Read-only (no s, w, t or e): FETCH reads without setting \Seen, STORE is refused.
    let r = b.cmd("s", "SELECT shared/demo/Shared").await;
    assert!(r.contains(&"* 2 EXISTS\r\n".to_string()), "{r:?}");
    assert!(r.last().unwrap().starts_with("s OK [READ-ONLY]"), "{r:?}");
    let r = b.cmd("f", "FETCH 1 (BODY[TEXT])").await;
    assert!(r[0].starts_with("* 1 FETCH (BODY[TEXT] {14}"), "{r:?}");
    let r = b.cmd("f", "FETCH 1 FLAGS").await;
    assert_eq!(r[0], "* 1 FETCH (FLAGS ())\r\n");
    no(
        &b.cmd("t", "STORE 1 +FLAGS (\\Flagged)").await,
        "t",
        "READ-ONLY",
    );
    no(
        &b.cmd("g", "GETACL shared/demo/Shared").await,
        "g",
        "NOPERM",
    );
    // COPY into bob's own mailbox needs only r; MOVE out of a read-only mailbox is refused.
    let r = b.cmd("c", "COPY 1 INBOX").await;
    assert!(r.last().unwrap().starts_with("c OK [COPYUID "), "{r:?}");
    no(&b.cmd("c", "MOVE 1 INBOX").await, "c", "READ-ONLY");
    // Not shared with bob: not there at all.
    no(
        &b.cmd("s2", "SELECT shared/demo/INBOX").await,
        "s2",
        "NONEXISTENT",
    );
    no(
        &b.cmd("s3", "SELECT shared/nobody/INBOX").await,
        "s3",
        "NONEXISTENT",
    );
    no(
        &append(&mut b, "a", "shared/demo/Shared", MSG).await,
        "a",
        "NOPERM",
    );
    no(&b.cmd("c", "CREATE shared/demo/New").await, "c", "CANNOT");
    let r = b
        .cmd("st", "STATUS shared/demo/Shared (MESSAGES UNSEEN)")
        .await;
    assert_eq!(
        r[0],
        "* STATUS shared/demo/Shared (MESSAGES 2 UNSEEN 2)\r\n"
    );
    no(
        &b.cmd("st", "STATUS shared/demo/INBOX (MESSAGES)").await,
        "st",
        "NONEXISTENT",
    );
    // LIST finds what was shared with bob (with its parents), and only that.
    let r = b.cmd("l", "LIST \"\" shared/*").await;
    assert_eq!(
        r,
        [
            "* LIST (\\Noselect \\HasChildren) \"/\" shared/demo\r\n",
            "* LIST (\\HasNoChildren) \"/\" shared/demo/Shared\r\n",
            "l OK List completed.\r\n"
        ]
    );

    // LIST-MYRIGHTS (RFC 8440).
    let r = b
        .cmd(
            "l",
            "LIST \"\" (INBOX shared/demo/Shared) RETURN (MYRIGHTS)",
        )
        .await;
    assert_eq!(
        r[..4],
        [
            "* LIST (\\HasNoChildren) \"/\" INBOX\r\n",
            "* MYRIGHTS INBOX lrswipkxtea\r\n",
            "* LIST (\\HasNoChildren) \"/\" shared/demo/Shared\r\n",
            "* MYRIGHTS shared/demo/Shared lr\r\n",
        ]
    );
    // NOTIFY for bob's own mailboxes says nothing of demo's while demo's is selected, and
    // goes on telling of bob's own meanwhile.
    ok(&b.cmd("n", "NOTIFY SET (PERSONAL (MessageNew))").await, "n");
    let r = b.cmd("s", "EXAMINE shared/demo/Shared").await;
    assert!(r.last().unwrap().starts_with("s OK"), "{r:?}");
    ok(&append(&mut d, "a3", "INBOX", MSG).await, "a3");
    let r = b.cmd("n", "NOOP").await;
    assert_eq!(r, ["n OK NOOP completed.\r\n"]);
    let mut b2 = login(ctx.clone(), "bob").await;
    ok(&b2.cmd("c", "CREATE Shared").await, "c");
    ok(&append(&mut b2, "a4", "Shared", MSG).await, "a4");
    // a new mailbox is no MessageNew event (MailboxName was not asked for)
    let r = b.cmd("n", "NOOP").await;
    assert_eq!(r, ["n OK NOOP completed.\r\n"]);
    ok(&append(&mut b2, "a5", "Shared", MSG).await, "a5");
    let r = b.cmd("n", "NOOP").await;
    assert_eq!(
        r,
        [
            "* STATUS Shared (MESSAGES 2 UIDNEXT 3)\r\n",
            "n OK NOOP completed.\r\n"
        ],
        "bob's own Shared (not the selected one of that name: demo's) is told of"
    );
    // and while idling: bob's own change wakes the session
    b.send("i IDLE\r\n").await;
    assert_eq!(b.line().await, "+ idling\r\n");
    ok(&append(&mut b2, "a6", "Shared", MSG).await, "a6");
    assert_eq!(b.line().await, "* STATUS Shared (MESSAGES 3 UIDNEXT 4)\r\n");
    b.send("DONE\r\n").await;
    assert_eq!(b.until_tag("i").await, ["i OK Idle completed.\r\n"]);
    ok(&b2.cmd("d", "DELETE Shared").await, "d");
    ok(&b.cmd("n", "NOTIFY NONE").await, "n");
    // More rights: insert, delete, expunge (still no \Seen, no other flags).
    ok(&d.cmd("g", "SETACL Shared bob +ite").await, "g");
    let r = b.cmd("s", "SELECT shared/demo/Shared").await;
    assert!(r.last().unwrap().starts_with("s OK [READ-WRITE]"), "{r:?}");
    // A command about another mailbox runs on bob's own store meanwhile.
    ok(&b.cmd("c", "CREATE Mine").await, "c");
    no(&b.cmd("t", "STORE 1 +FLAGS (\\Seen)").await, "t", "NOPERM");
    ok(&b.cmd("t", "STORE 1 +FLAGS (\\Deleted)").await, "t");
    let r = b.cmd("e", "EXPUNGE").await;
    assert_eq!(r[0], "* 1 EXPUNGE\r\n");
    let r = append(&mut b, "a", "shared/demo/Shared", MSG).await;
    assert!(r.last().unwrap().starts_with("a OK [APPENDUID "), "{r:?}");
    ok(&b.cmd("x", "UNSELECT").await, "x");
    let r = b.cmd("l", "LIST \"\" Mine").await;
    assert_eq!(r[0], "* LIST (\\HasNoChildren) \"/\" Mine\r\n");
    let r = b.cmd("s", "SELECT INBOX").await;
    assert!(
        r.contains(&"* 1 EXISTS\r\n".to_string()),
        "the copy made above: {r:?}"
    );

    // demo sees bob's changes; the \Seen bob asked for on APPEND was dropped (no `s`).
    let r = d.cmd("s", "SELECT Shared").await;
    assert!(r.contains(&"* 2 EXISTS\r\n".to_string()), "{r:?}");
    let r = d.cmd("f", "FETCH 2 FLAGS").await;
    assert_eq!(r[0], "* 2 FETCH (FLAGS ())\r\n");
    let r = d.cmd("l", "LIST \"\" Mine").await;
    assert_eq!(r, ["l OK List completed.\r\n"]);

    // Rights changed while bob has the mailbox selected count for his next command; losing
    // `r` closes it.
    let r = b.cmd("s", "SELECT shared/demo/Shared").await;
    assert!(r.last().unwrap().starts_with("s OK [READ-WRITE]"), "{r:?}");
    ok(&d.cmd("g", "SETACL Shared bob -e").await, "g");
    no(&b.cmd("e", "EXPUNGE").await, "e", "NOPERM");
    ok(&d.cmd("g", "SETACL Shared bob -r").await, "g");
    no(&b.cmd("f", "FETCH 1 FLAGS").await, "f", "NOPERM");
    assert!(b.cmd("f", "FETCH 1 FLAGS").await[0].starts_with("f BAD"));
    ok(&d.cmd("g", "SETACL Shared bob +r").await, "g");
    // Negative rights take away what `anyone` gives; DELETEACL removes an entry.
    ok(&d.cmd("g", "SETACL Shared anyone r").await, "g");
    ok(&d.cmd("g", "SETACL Shared -bob r").await, "g");
    let r = b.cmd("m", "MYRIGHTS shared/demo/Shared").await;
    assert_eq!(r[0], "* MYRIGHTS shared/demo/Shared lit\r\n");
    ok(&d.cmd("g", "DELETEACL Shared bob").await, "g");
    no(
        &b.cmd("m", "MYRIGHTS shared/demo/Shared").await,
        "m",
        "NONEXISTENT",
    );
}

/// URLAUTH (RFC 4467): demo signs a URL of one of its messages for bob; bob fetches it
/// without demo's password; another user may not; RESETKEY makes it stop working.
#[tokio::test]
async fn urlauth_signs_urls_that_stop_at_resetkey() {
    let ctx = context(
        TestBackend::new(&[("demo", "demo"), ("bob", "bob"), ("eve", "eve")]),
        ImapConfig::default(),
    );
    let mut d = login(ctx.clone(), "demo").await;
    ok(&append(&mut d, "a1", "INBOX", MSG).await, "a1");
    let r = d
        .cmd(
            "g",
            "GENURLAUTH \"imap://demo@example.org/INBOX/;uid=1/;section=TEXT;urlauth=user+bob\" INTERNAL",
        )
        .await;
    let line = r[0].clone();
    assert!(line.starts_with("* GENURLAUTH \"imap://demo@example.org/INBOX/;uid=1/;section=TEXT;urlauth=user+bob:internal:"), "{r:?}");
    let signed = line
        .trim_end()
        .strip_prefix("* GENURLAUTH \"")
        .and_then(|l| l.strip_suffix('"'))
        .unwrap()
        .to_string();
    // Another message's URL, not signed by this key, or for another user: refused.
    assert!(d
        .cmd(
            "g",
            "GENURLAUTH \"imap://bob@example.org/INBOX/;uid=1;urlauth=anonymous\" INTERNAL"
        )
        .await[0]
        .starts_with("g NO [BADURL"));
    let mut b = login(ctx.clone(), "bob").await;
    let r = b.cmd("f", &format!("URLFETCH \"{signed}\"")).await;
    assert_eq!(r[0], format!("* URLFETCH {signed} {{14}}\r\n"));
    assert_eq!(r[1], "Hello there.\r\n");
    let tampered = signed.replace("uid=1", "uid=2");
    let r = b.cmd("f", &format!("URLFETCH \"{tampered}\"")).await;
    assert_eq!(r[0], format!("* URLFETCH {tampered} NIL\r\n"));
    let mut e = login(ctx.clone(), "eve").await;
    let r = e.cmd("f", &format!("URLFETCH \"{signed}\"")).await;
    assert_eq!(r[0], format!("* URLFETCH {signed} NIL\r\n"));
    ok(&d.cmd("k", "RESETKEY INBOX").await, "k");
    let r = b.cmd("f", &format!("URLFETCH \"{signed}\"")).await;
    assert_eq!(r[0], format!("* URLFETCH {signed} NIL\r\n"));
}

/// URLAUTH=BINARY (RFC 5524): bob fetches a part of demo's message through a signed URL
/// decoded (BINARY), its structure (BODYPARTSTRUCTURE, beside BINARY with the decoded
/// sizes, as Dovecot) and as it is (BODY); a URL naming no MIME part has no such data.
#[tokio::test]
async fn urlauth_binary_fetches_decoded_parts_and_their_structure() {
    let ctx = context(
        TestBackend::new(&[("demo", "demo"), ("bob", "bob")]),
        ImapConfig::default(),
    );
    let mut d = login(ctx.clone(), "demo").await;
    assert!(d.cmd("c", "CAPABILITY").await[0].contains(" URLAUTH=BINARY "));
    let msg = "From: a@example.org\r\nSubject: s\r\nMIME-Version: 1.0\r\n\
               Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
               Content-Type: text/plain; charset=us-ascii\r\n\
               Content-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n--b--\r\n";
    ok(&append(&mut d, "a1", "INBOX", msg).await, "a1");
    let part = sign_for_bob(&mut d, "imap://demo@example.org/INBOX/;uid=1/;section=1").await;
    let text = sign_for_bob(&mut d, "imap://demo@example.org/INBOX/;uid=1/;section=TEXT").await;
    let mut b = login(ctx.clone(), "bob").await;
    let fetch = |r: Vec<String>| r.concat();
    let r = fetch(b.cmd("f", &format!("URLFETCH (\"{part}\" BINARY)")).await);
    assert!(
        r.starts_with(&format!("* URLFETCH {part} (BINARY {{5}}\r\nhello)\r\n")),
        "{r}"
    );
    let structure = "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"base64\"";
    let r = fetch(
        b.cmd("f", &format!("URLFETCH (\"{part}\" bodypartstructure)"))
            .await,
    );
    assert!(
        r.starts_with(&format!(
            "* URLFETCH {part} (BODYPARTSTRUCTURE {structure} 8 0 NIL NIL NIL NIL))\r\n"
        )),
        "{r}"
    );
    let r = fetch(
        b.cmd(
            "f",
            &format!("URLFETCH (\"{part}\" BINARY BODYPARTSTRUCTURE) (\"{part}\" BODY)"),
        )
        .await,
    );
    assert!(
        r.starts_with(&format!(
            "* URLFETCH {part} (BODYPARTSTRUCTURE {structure} 5 0 NIL NIL NIL NIL) \
             BINARY {{5}}\r\nhello) {part} (BODY {{8}}\r\naGVsbG8=)\r\n"
        )),
        "{r}"
    );
    let r = fetch(
        b.cmd("f", &format!("URLFETCH (\"{text}\" BINARY) \"{text}\""))
            .await,
    );
    assert!(
        r.starts_with(&format!("* URLFETCH {text} NIL {text} {{")),
        "{r}"
    );
    assert!(b.cmd("f", "URLFETCH (x BODY BINARY)").await[0].starts_with("f BAD"));
}

async fn sign_for_bob(c: &mut Client, url: &str) -> String {
    let r = c
        .cmd(
            "g",
            &format!("GENURLAUTH \"{url};urlauth=user+bob\" INTERNAL"),
        )
        .await;
    r[0].trim_end()
        .strip_prefix("* GENURLAUTH ")
        .unwrap()
        .trim_matches('"')
        .to_string()
}

/// COPY and MOVE out of a shared mailbox into the user's own (as Dovecot): the copy is a new
/// message in bob's store with its flags; MOVE needs `t` and `e` besides `r` and then
/// expunges demo's original.
#[tokio::test]
async fn copy_and_move_out_of_a_shared_mailbox() {
    let ctx = context(
        TestBackend::new(&[("demo", "demo"), ("bob", "bob")]),
        ImapConfig::default(),
    );
    let mut d = login(ctx.clone(), "demo").await;
    ok(&d.cmd("c", "CREATE Shared").await, "c");
    ok(&append(&mut d, "a1", "Shared", MSG).await, "a1");
    ok(&append(&mut d, "a2", "Shared", MSG).await, "a2");
    ok(&d.cmd("g", "SETACL Shared bob lrswt").await, "g");
    let mut b = login(ctx.clone(), "bob").await;
    ok(&b.cmd("c", "CREATE Saved").await, "c");
    let r = b.cmd("s", "SELECT shared/demo/Shared").await;
    assert!(r.last().unwrap().starts_with("s OK [READ-WRITE]"), "{r:?}");
    let r = b.cmd("c", "UID COPY 1 Saved").await;
    assert!(
        r.last().unwrap().starts_with("c OK [COPYUID ") && r.last().unwrap().contains(" 1 1]"),
        "{r:?}"
    );
    no(&b.cmd("c", "COPY 1 Missing").await, "c", "TRYCREATE");
    // t without e: no MOVE
    no(&b.cmd("m", "MOVE 2 Saved").await, "m", "NOPERM");
    ok(&d.cmd("g", "SETACL Shared bob +e").await, "g");
    let r = b.cmd("m", "MOVE 2 Saved").await;
    assert!(
        r.iter().any(|l| l.starts_with("* OK [COPYUID "))
            && r.contains(&"* 2 EXPUNGE\r\n".to_string()),
        "{r:?}"
    );
    ok(&r, "m");
    let r = b.cmd("st", "STATUS Saved (MESSAGES)").await;
    assert_eq!(r[0], "* STATUS Saved (MESSAGES 2)\r\n");
    let r = b.cmd("u", "UNSELECT").await;
    ok(&r, "u");
    b.cmd("s", "SELECT Saved").await;
    let r = b.cmd("f", "FETCH 1:2 (FLAGS BODY[TEXT])").await.concat();
    assert_eq!(r.matches("FLAGS (\\Seen \\Recent)").count(), 2, "{r}");
    assert_eq!(r.matches("Hello there.").count(), 2, "{r}");
    let r = d.cmd("st", "STATUS Shared (MESSAGES)").await;
    assert_eq!(r[0], "* STATUS Shared (MESSAGES 1)\r\n");
}

/// METADATA on another user's mailbox (RFC 5464 4.2/4.3): `l` and one of `r s w i p`;
/// only its `/shared` entries are shown and set (in the owner's store), never `/private`.
#[tokio::test]
async fn metadata_on_a_shared_mailbox_within_its_rights() {
    let ctx = context(
        TestBackend::new(&[("demo", "demo"), ("bob", "bob")]),
        ImapConfig::default(),
    );
    let mut d = login(ctx.clone(), "demo").await;
    ok(&d.cmd("c", "CREATE Shared").await, "c");
    ok(
        &d.cmd(
            "m",
            "SETMETADATA Shared (/shared/comment \"team\" /private/comment \"mine\")",
        )
        .await,
        "m",
    );
    ok(&d.cmd("g", "SETACL Shared bob l").await, "g");
    let mut b = login(ctx.clone(), "bob").await;
    let get = "GETMETADATA shared/demo/Shared (/shared/comment /private/comment)";
    no(&b.cmd("m", get).await, "m", "NOPERM");
    no(
        &b.cmd("m", "GETMETADATA shared/demo/INBOX /shared/comment")
            .await,
        "m",
        "NONEXISTENT",
    );
    ok(&d.cmd("g", "SETACL Shared bob lr").await, "g");
    let r = b.cmd("m", get).await;
    assert_eq!(
        r[0], "* METADATA shared/demo/Shared (/private/comment NIL /shared/comment \"team\")\r\n",
        "{r:?}"
    );
    ok(&r, "m");
    no(
        &b.cmd(
            "m",
            "SETMETADATA shared/demo/Shared (/private/comment \"x\")",
        )
        .await,
        "m",
        "NOPERM",
    );
    ok(
        &b.cmd(
            "m",
            "SETMETADATA shared/demo/Shared (/shared/comment \"bob's\")",
        )
        .await,
        "m",
    );
    let r = d
        .cmd("m", "GETMETADATA Shared (/shared/comment /private/comment)")
        .await;
    assert_eq!(
        r[0], "* METADATA Shared (/private/comment \"mine\" /shared/comment \"bob's\")\r\n",
        "{r:?}"
    );
    // bob's own mailbox of the same name is another one
    let r = b.cmd("m", "GETMETADATA INBOX /shared/comment").await;
    ok(&r, "m");
    assert!(!r[0].contains("bob's"), "{r:?}");
}
