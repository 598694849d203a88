//! Delivery through Sieve scripts, over an LMTP session against a test store.

use super::tests::{context, deliver_one, greeted, inbox, mailbox};
use super::{LmtpConfig, SieveConfig};
use crate::testing::TestBackend;
use storage::Flag;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const MSG: &str = "From: a@example.org\r\nTo: demo@localhost\r\nMessage-ID: <s1@example.org>\r\nSubject: [list] hi\r\n\r\nbody\r\n";

/// A config whose user script is `dir/<user>.sieve`, holding `script` for demo.
fn with_script(dir: &std::path::Path, script: &str, submission: &str) -> LmtpConfig {
    std::fs::write(dir.join("demo.sieve"), script).unwrap();
    LmtpConfig {
        sieve: SieveConfig {
            script: format!("{}/%u.sieve", dir.display()),
            dir: dir.display().to_string(),
            submission_host: submission.to_string(),
            ..SieveConfig::default()
        },
        ..LmtpConfig::default()
    }
}

#[tokio::test]
async fn fileinto_create_with_flags() {
    let d = tempfile::tempdir().unwrap();
    let backend = TestBackend::demo();
    let cfg = with_script(
        d.path(),
        "require [\"fileinto\", \"mailbox\", \"imap4flags\"];\n\
         if header :contains \"subject\" \"[list]\" { fileinto :create :flags \"\\\\Seen $list\" \"Lists\"; }",
        "",
    );
    let ctx = context(&backend, cfg);
    let mut c = greeted(&ctx).await;
    assert!(deliver_one(&mut c, "demo", MSG)
        .await
        .starts_with("250 2.0.0"));
    c.finished().await;
    assert_eq!(inbox(&backend, "demo").len(), 0);
    assert_eq!(mailbox(&backend, "demo", "Lists").len(), 1);
    let store = backend.store.user("demo").unwrap();
    let meta = store.messages("Lists").unwrap();
    assert!(meta[0].flags.contains(&Flag::Seen));
    assert!(meta[0].flags.contains(&Flag::Keyword("$list".into())));
}

#[tokio::test]
async fn reject_refuses_the_recipient_and_stores_nothing() {
    let d = tempfile::tempdir().unwrap();
    let backend = TestBackend::demo();
    let cfg = with_script(
        d.path(),
        "require \"reject\"; reject \"not wanted\r\nhere\";",
        "",
    );
    let ctx = context(&backend, cfg);
    let mut c = greeted(&ctx).await;
    assert_eq!(
        deliver_one(&mut c, "demo", MSG).await,
        "550 5.7.1 <demo> not wanted  here"
    );
    c.finished().await;
    assert_eq!(inbox(&backend, "demo").len(), 0);
}

#[tokio::test]
async fn broken_or_hostile_scripts_keep_the_message() {
    for script in [
        // Does not compile.
        "require \"fileinto\"; fileinto \"x\"",
        // Includes itself without end.
        "require \"include\"; include \"demo\";",
        // Redirects more than the limit allows.
        "redirect \"a@x.example\"; redirect \"b@x.example\"; redirect \"c@x.example\"; redirect \"d@x.example\"; redirect \"e@x.example\";",
    ] {
        let d = tempfile::tempdir().unwrap();
        let backend = TestBackend::demo();
        let ctx = context(&backend, with_script(d.path(), script, ""));
        let mut c = greeted(&ctx).await;
        assert!(deliver_one(&mut c, "demo", MSG).await.starts_with("250 "), "{script}");
        c.finished().await;
        assert_eq!(inbox(&backend, "demo").len(), 1, "{script}");
    }
}

/// An SMTP sink: accepts every message, hands back (MAIL FROM, RCPT TO, data) of each.
async fn smtp_sink() -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<(String, String, String)>,
) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let (r, mut w) = s.into_split();
                let mut r = BufReader::new(r);
                w.write_all(b"220 sink\r\n").await.unwrap();
                let (mut from, mut to, mut data) = (String::new(), String::new(), String::new());
                let mut in_data = false;
                let mut line = String::new();
                while r.read_line(&mut line).await.unwrap_or(0) > 0 {
                    if in_data {
                        if line == ".\r\n" {
                            in_data = false;
                            tx.send((from.clone(), to.clone(), data.clone())).unwrap();
                            w.write_all(b"250 queued\r\n").await.unwrap();
                        } else {
                            data.push_str(&line);
                        }
                    } else if let Some(a) = line.strip_prefix("MAIL FROM:") {
                        from = a.trim().to_string();
                        w.write_all(b"250 ok\r\n").await.unwrap();
                    } else if let Some(a) = line.strip_prefix("RCPT TO:") {
                        to = a.trim().to_string();
                        w.write_all(b"250 ok\r\n").await.unwrap();
                    } else if line.starts_with("DATA") {
                        in_data = true;
                        w.write_all(b"354 go\r\n").await.unwrap();
                    } else {
                        w.write_all(b"250 ok\r\n").await.unwrap();
                    }
                    line.clear();
                }
            });
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn redirect_and_vacation_go_out_once() {
    let d = tempfile::tempdir().unwrap();
    let (sink, mut rx) = smtp_sink().await;
    let backend = TestBackend::demo();
    let cfg = with_script(
        d.path(),
        "require [\"vacation\", \"copy\"];\n\
         redirect :copy \"friend@elsewhere.example\";\n\
         vacation :days 1 :subject \"Away\" :addresses \"demo@localhost\" \"I am away.\";",
        &sink,
    );
    let ctx = context(&backend, cfg);
    let mut c = greeted(&ctx).await;
    assert!(deliver_one(&mut c, "demo", MSG)
        .await
        .starts_with("250 2.0.0"));
    let (from, to, data) = rx.recv().await.unwrap();
    assert_eq!(
        (from.as_str(), to.as_str()),
        ("<a@example.org>", "<friend@elsewhere.example>")
    );
    assert!(data.contains("X-Sieve-Redirected-From: demo\r\n"));
    let (from, to, data) = rx.recv().await.unwrap();
    assert_eq!((from.as_str(), to.as_str()), ("<>", "<a@example.org>"));
    assert!(data.contains("Subject: Away\r\n") && data.contains("I am away."));
    assert!(data.contains("Auto-Submitted: auto-replied"));
    // A second message from the same sender: redirected again, no second reply.
    let second = MSG.replace("<s1@", "<s2@");
    assert!(deliver_one(&mut c, "demo", &second)
        .await
        .starts_with("250 2.0.0"));
    c.finished().await;
    let (_, to, _) = rx.recv().await.unwrap();
    assert_eq!(to, "<friend@elsewhere.example>");
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(300), rx.recv())
            .await
            .is_err()
    );
    assert_eq!(inbox(&backend, "demo").len(), 2);
}

#[tokio::test]
async fn redirect_without_submission_host_is_a_temporary_failure() {
    let d = tempfile::tempdir().unwrap();
    let backend = TestBackend::demo();
    let ctx = context(
        &backend,
        with_script(d.path(), "redirect \"a@x.example\";", ""),
    );
    let mut c = greeted(&ctx).await;
    assert!(deliver_one(&mut c, "demo", MSG).await.starts_with("451 "));
    c.finished().await;
    assert_eq!(inbox(&backend, "demo").len(), 0);
}

#[tokio::test]
async fn duplicate_files_the_second_copy() {
    let d = tempfile::tempdir().unwrap();
    let backend = TestBackend::demo();
    let cfg = with_script(
        d.path(),
        "require [\"duplicate\", \"fileinto\", \"mailbox\"];\nif duplicate { fileinto :create \"Dups\"; }",
        "",
    );
    let ctx = context(&backend, cfg);
    let mut c = greeted(&ctx).await;
    assert!(deliver_one(&mut c, "demo", MSG).await.starts_with("250 "));
    // Same Message-ID, another body (so not a retried delivery).
    let again = MSG.replace("body\r\n", "other body\r\n");
    assert!(deliver_one(&mut c, "demo", &again)
        .await
        .starts_with("250 "));
    c.finished().await;
    assert_eq!(inbox(&backend, "demo").len(), 1);
    assert_eq!(mailbox(&backend, "demo", "Dups").len(), 1);
}

#[tokio::test]
async fn each_copy_is_stored_as_editheader_had_left_it() {
    let d = tempfile::tempdir().unwrap();
    let backend = TestBackend::demo();
    let cfg = with_script(
        d.path(),
        "require [\"fileinto\", \"mailbox\", \"editheader\", \"copy\"];\n\
         addheader \"X-Filed\" \"yes\";\n\
         fileinto :copy :create \"Edited\";\n\
         deleteheader \"X-Filed\";\n\
         deleteheader \"Subject\";",
        "",
    );
    let ctx = context(&backend, cfg);
    let mut c = greeted(&ctx).await;
    assert!(deliver_one(&mut c, "demo", MSG)
        .await
        .starts_with("250 2.0.0"));
    c.finished().await;
    let filed = String::from_utf8(mailbox(&backend, "demo", "Edited").remove(0)).unwrap();
    assert!(
        filed.contains("X-Filed: yes") && filed.contains("Subject:"),
        "{filed}"
    );
    // The implicit keep stores the message as the script ended with it.
    let kept = String::from_utf8(inbox(&backend, "demo").remove(0)).unwrap();
    assert!(
        !kept.contains("X-Filed") && !kept.contains("Subject:"),
        "{kept}"
    );
}
