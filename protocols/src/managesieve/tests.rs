//! ManageSieve sessions over an in-memory stream against a test backend.

use super::{serve, ManageSieveConfig, ManageSieveContext};
use crate::testing::{loopback_conn, TestBackend};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;

struct Client {
    r: BufReader<tokio::io::ReadHalf<tokio::io::DuplexStream>>,
    w: tokio::io::WriteHalf<tokio::io::DuplexStream>,
}

impl Client {
    async fn start(backend: &Arc<TestBackend>) -> Client {
        let ctx = Arc::new(ManageSieveContext {
            backend: backend.clone(),
            tls: None,
            config: ManageSieveConfig {
                max_scripts: 2,
                ..ManageSieveConfig::default()
            },
            shutdown: CancellationToken::new(),
        });
        let (a, b) = tokio::io::duplex(1 << 16);
        tokio::spawn(serve(Box::new(b), loopback_conn("sieve-test"), ctx));
        let (r, w) = tokio::io::split(a);
        let mut c = Client {
            r: BufReader::new(r),
            w,
        };
        let greeting = c.until_status().await;
        assert!(greeting.last().unwrap().starts_with("OK"), "{greeting:?}");
        assert!(greeting
            .iter()
            .any(|l| l.starts_with("\"SIEVE\" \"") && l.contains("fileinto")));
        c
    }

    /// Lines up to and including the OK/NO/BYE line.
    async fn until_status(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                self.r.read_line(&mut line),
            )
            .await
            .expect("reply in time")
            .expect("read");
            assert!(n > 0, "closed after {out:?}");
            let line = line.trim_end().to_string();
            let done = line.starts_with("OK") || line.starts_with("NO") || line.starts_with("BYE");
            out.push(line);
            if done {
                return out;
            }
        }
    }

    async fn cmd(&mut self, s: &str) -> Vec<String> {
        self.w.write_all(s.as_bytes()).await.unwrap();
        self.w.write_all(b"\r\n").await.unwrap();
        self.until_status().await
    }
}

fn last(r: &[String]) -> &str {
    r.last().map(String::as_str).unwrap_or("")
}

#[tokio::test]
async fn upload_activate_list_get_rename_delete() {
    let backend = TestBackend::demo();
    let mut c = Client::start(&backend).await;
    assert!(last(&c.cmd("LISTSCRIPTS").await).starts_with("NO"));
    // PLAIN with an initial response: \0demo\0demo.
    assert!(last(&c.cmd("AUTHENTICATE \"PLAIN\" \"AGRlbW8AZGVtbw==\"").await).starts_with("OK"));
    let script = "require \"fileinto\";\r\nfileinto \"Junk\";\r\n";
    let r = c
        .cmd(&format!(
            "PUTSCRIPT \"main\" {{{}+}}\r\n{script}",
            script.len()
        ))
        .await;
    assert!(last(&r).starts_with("OK"), "{r:?}");
    let r = c.cmd("PUTSCRIPT \"bad\" {8+}\r\nfrobnik;").await;
    assert!(
        last(&r).starts_with("NO") && last(&r).contains("unknown command"),
        "{r:?}"
    );
    assert!(last(&c.cmd("CHECKSCRIPT {5+}\r\nkeep;").await).starts_with("OK"));
    assert!(last(&c.cmd("HAVESPACE \"x\" 100").await).starts_with("OK"));
    assert!(last(&c.cmd("HAVESPACE \"x\" 100000000").await).starts_with("NO (QUOTA/MAXSIZE)"));
    assert!(last(&c.cmd("SETACTIVE \"main\"").await).starts_with("OK"));
    let r = c.cmd("LISTSCRIPTS").await;
    assert_eq!(r[0], "\"main\" ACTIVE");
    // Delivery reads the active script from the user's attributes (which replicate).
    let us = backend.store.user("demo").unwrap();
    assert_eq!(
        super::attrs::active_script(&*us).unwrap(),
        Ok(Some(("main".to_string(), script.as_bytes().to_vec())))
    );
    // No file is written: the attributes are the truth.
    assert!(!us.dir().join(".dovecot.sieve").exists());
    let r = c.cmd("GETSCRIPT \"main\"").await;
    assert_eq!(r[0], format!("{{{}}}", script.len()));
    assert!(last(&r).starts_with("OK"));
    assert!(last(&c.cmd("DELETESCRIPT \"main\"").await).starts_with("NO (ACTIVE)"));
    assert!(last(&c.cmd("RENAMESCRIPT \"main\" \"other\"").await).starts_with("OK"));
    assert_eq!(c.cmd("LISTSCRIPTS").await[0], "\"other\" ACTIVE");
    assert!(last(&c.cmd("PUTSCRIPT \"two\" \"keep;\"").await).starts_with("OK"));
    assert!(
        last(&c.cmd("PUTSCRIPT \"three\" \"keep;\"").await).starts_with("NO (QUOTA/MAXSCRIPTS)")
    );
    assert!(last(&c.cmd("SETACTIVE \"\"").await).starts_with("OK"));
    assert!(last(&c.cmd("DELETESCRIPT \"other\"").await).starts_with("OK"));
    assert!(last(&c.cmd("GETSCRIPT \"other\"").await).starts_with("NO (NONEXISTENT)"));
    assert!(last(&c.cmd("NOOP \"t1\"").await).starts_with("OK (TAG \"t1\")"));
    assert!(last(&c.cmd("UNAUTHENTICATE").await).starts_with("OK"));
    assert!(last(&c.cmd("LISTSCRIPTS").await).starts_with("NO"));
    assert!(last(&c.cmd("LOGOUT").await).starts_with("OK"));
    let mut rest = Vec::new();
    let _ = c.r.read_to_end(&mut rest).await;
}

#[tokio::test]
async fn bad_logins_and_bad_commands() {
    let backend = TestBackend::demo();
    let mut c = Client::start(&backend).await;
    // LOGIN, step by step, with a wrong password.
    c.w.write_all(b"AUTHENTICATE \"LOGIN\"\r\n").await.unwrap();
    let mut line = String::new();
    c.r.read_line(&mut line).await.unwrap();
    assert_eq!(line.trim_end(), "\"VXNlcm5hbWU6\"");
    c.w.write_all(b"\"ZGVtbw==\"\r\n").await.unwrap();
    line.clear();
    c.r.read_line(&mut line).await.unwrap();
    c.w.write_all(b"\"d3Jvbmc=\"\r\n").await.unwrap();
    assert!(last(&c.until_status().await).starts_with("NO"));
    // Cancelled.
    c.w.write_all(b"AUTHENTICATE \"LOGIN\"\r\n*\r\n")
        .await
        .unwrap();
    let r = c.until_status().await;
    assert!(last(&r).contains("aborted"), "{r:?}");
    assert!(last(&c.cmd("FROB").await).starts_with("NO"));
    assert!(last(&c.cmd("PUTSCRIPT \"x\"").await).starts_with("NO"));
    assert!(last(&c.cmd("AUTHENTICATE \"CRAM-MD5\"").await).starts_with("NO"));
}

#[tokio::test]
async fn script_files_are_imported_at_the_first_login() {
    let backend = TestBackend::demo();
    let home = backend.store.user("demo").unwrap().dir().to_path_buf();
    let files = super::storage::ScriptDir {
        dir: home.join("sieve"),
        active_link: home.join(".dovecot.sieve"),
    };
    files.put("old", b"discard;").unwrap();
    files.set_active(Some("old")).unwrap();
    let mut c = Client::start(&backend).await;
    assert!(last(&c.cmd("AUTHENTICATE \"PLAIN\" \"AGRlbW8AZGVtbw==\"").await).starts_with("OK"));
    assert_eq!(c.cmd("LISTSCRIPTS").await[0], "\"old\" ACTIVE");
    // Internal entries stay out of IMAP METADATA's way (checked in imap's tests); here the
    // script is an attribute of the store.
    let us = backend.store.user("demo").unwrap();
    assert_eq!(super::attrs::get(&*us, "old").unwrap(), b"discard;");
}

#[tokio::test]
async fn xclient_is_refused_from_an_untrusted_address() {
    let backend = TestBackend::demo();
    let mut c = Client::start(&backend).await;
    let caps = c.cmd("CAPABILITY").await;
    assert!(!caps.iter().any(|l| l == "\"XCLIENT\""), "{caps:?}");
    let r = c.cmd("XCLIENT ADDR=192.0.2.7 PORT=5555").await;
    assert_eq!(last(&r), "NO \"You are not from trusted IP\"");
    // The session goes on as before.
    assert!(last(&c.cmd("AUTHENTICATE \"PLAIN\" \"AGRlbW8AZGVtbw==\"").await).starts_with("OK"));
}
