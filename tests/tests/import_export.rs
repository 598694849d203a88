//! `node import` / `node export` (issue 15): a Maildir written by Dovecot itself (doveadm
//! delivering, flagging with keywords, expunging), one made by mbsync from a running node,
//! and mbox files are served afterwards over IMAP (Python's imaplib) with the source's UIDs,
//! UIDVALIDITY, flags, keywords, internal dates and bytes; an export imported into a new
//! user loses nothing; an interrupted import run again completes without duplicates; and the
//! failure paths say what happened. Also `node acl` against IMAP's GETACL.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tests::dovecot::{mail_owner, Instance};
use tests::*;

fn start() -> Server {
    Server::start(ServerSpec {
        wait_for: vec![Proto::Imap, Proto::Lmtp],
        extra_toml: "auth_failure_delay = \"0\"".into(),
        ..Default::default()
    })
    .expect("start node")
}

fn node(server: &Server, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(node_bin());
    cmd.arg("-c")
        .arg(&server.paths.config)
        .args(args)
        .current_dir(&server.paths.dir)
        .env_remove("NODE_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd, None, Duration::from_secs(120)).expect("run node")
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "{}", out.both());
    out.stdout_text()
}

/// Each mailbox of `boxes` as imaplib sees it: UIDVALIDITY, UIDNEXT and, per message, UID,
/// flags (sorted, \Recent left out), INTERNALDATE (seconds) and a hash of the bytes. Also
/// the subscribed mailboxes.
fn imap_view(server: &Server, user: &str, pass: &str, boxes: &[&str]) -> serde_json::Value {
    let script = format!(
        r#"
import imaplib, json, os, hashlib, time, re
M = imaplib.IMAP4('127.0.0.1', int(os.environ['IMAP_PORT']))
M.login({user:?}, {pass:?})
out = {{}}
for name in {boxes}:
    typ, _ = M.select('"%s"' % name, readonly=True)
    assert typ == 'OK', (name, typ)
    uv = int(M.response('UIDVALIDITY')[1][0])
    typ, st = M.status('"%s"' % name, '(UIDNEXT)')
    un = int(re.search(rb'UIDNEXT (\d+)', st[0]).group(1))
    msgs = []
    typ, data = M.uid('FETCH', '1:*', '(UID FLAGS INTERNALDATE BODY.PEEK[])')
    for item in data:
        if not isinstance(item, tuple):
            continue
        head, body = item
        uid = int(re.search(rb'UID (\d+)', head).group(1))
        flags = sorted(f.decode() for f in imaplib.ParseFlags(head) if f != b'\\Recent')
        date = int(time.mktime(imaplib.Internaldate2tuple(head)))
        msgs.append([uid, flags, date, hashlib.sha256(body).hexdigest(), len(body)])
    msgs.sort()
    out[name] = {{'uidvalidity': uv, 'uidnext': un, 'messages': msgs}}
typ, subs = M.lsub()
out['subscribed'] = sorted(s.decode().split(' "/" ')[-1].strip('"') for s in subs if s)
print(json.dumps(out))
"#,
        boxes = serde_json::to_string(boxes).unwrap(),
    );
    let out = server.python(&script, Duration::from_secs(60));
    serde_json::from_str(out.stdout_text().trim()).unwrap_or_else(|e| panic!("{e}: {}", out.both()))
}

fn set_mtime(p: &Path, secs: u64) {
    let f = std::fs::File::options().write(true).open(p).expect("open");
    f.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(secs))
        .expect("set mtime");
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for sub in ["cur", "new"] {
        if let Ok(rd) = std::fs::read_dir(dir.join(sub)) {
            v.extend(rd.flatten().map(|e| e.path()));
        }
    }
    v.sort();
    v
}

fn sha(data: &[u8]) -> String {
    let out = run(
        &mut Command::new("sha256sum"),
        Some(data),
        Duration::from_secs(10),
    )
    .expect("sha256sum");
    out.stdout_text()
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_dovecot_maildir_is_served_with_its_uids_flags_keywords_and_dates() {
    if missing_tool("doveadm") {
        return;
    }
    let server = start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let passwd = d.join("passwd");
    std::fs::write(&passwd, "u1:{PLAIN}pw::::::\n").unwrap();
    std::fs::create_dir_all(d.join("mail")).unwrap();
    let owner = mail_owner(d, &[&d.join("mail")]).unwrap();
    let maildir = d.join("mail/u1/Maildir");
    let dv = Instance::start(
        "maildir",
        d,
        &passwd,
        &owner,
        &format!("mail_location = maildir:{}", maildir.display()),
    )
    .unwrap();
    let save = |mailbox: &str, subject: &str| {
        let msg = sample_message(subject, &format!("body of {subject}"));
        let out = run(
            Command::new(tests::dovecot::DOVEADM)
                .arg("-c")
                .arg(&dv.conf)
                .args(["save", "-u", "u1", "-m", mailbox]),
            Some(&msg),
            Duration::from_secs(30),
        )
        .unwrap();
        assert!(out.status.success(), "doveadm save: {}", out.both());
    };
    dv.doveadm(&["mailbox", "create", "-u", "u1", "Work.Sub"])
        .unwrap();
    for i in 1..=4 {
        save("INBOX", &format!("inbox {i}"));
    }
    save("Work.Sub", "work 1");
    dv.doveadm(&[
        "flags",
        "add",
        "-u",
        "u1",
        "\\Seen $Label1 Custom",
        "mailbox",
        "INBOX",
        "uid",
        "2",
    ])
    .unwrap();
    dv.doveadm(&[
        "flags",
        "add",
        "-u",
        "u1",
        "\\Flagged \\Answered",
        "mailbox",
        "INBOX",
        "uid",
        "3",
    ])
    .unwrap();
    dv.doveadm(&[
        "flags", "add", "-u", "u1", "Custom", "mailbox", "Work.Sub", "uid", "1",
    ])
    .unwrap();
    // A gap: UID 1 expunged, UIDs 2..4 stay.
    dv.doveadm(&["expunge", "-u", "u1", "mailbox", "INBOX", "uid", "1"])
        .unwrap();
    dv.doveadm(&["mailbox", "subscribe", "-u", "u1", "INBOX", "Work.Sub"])
        .unwrap();
    let fetched = String::from_utf8_lossy(
        &dv.doveadm(&["fetch", "-u", "u1", "uid flags", "mailbox", "INBOX", "all"])
            .unwrap()
            .stdout,
    )
    .into_owned();
    let status = String::from_utf8_lossy(
        &dv.doveadm(&["mailbox", "status", "-u", "u1", "uidvalidity", "*"])
            .unwrap()
            .stdout,
    )
    .into_owned();
    // Internal dates are the files' mtimes: give each message its own.
    let mut dates = std::collections::BTreeMap::new();
    for (i, f) in files(&maildir)
        .into_iter()
        .chain(files(&maildir.join(".Work.Sub")))
        .enumerate()
    {
        let t = 1_500_000_000 + i as u64 * 86_400;
        set_mtime(&f, t);
        // Served with CRLF line ends (the file has LF ones, as Dovecot writes them).
        let crlf = String::from_utf8(std::fs::read(&f).unwrap())
            .unwrap()
            .replace('\n', "\r\n");
        dates.insert(sha(crlf.as_bytes()), t as i64);
    }
    let uv = |name: &str| -> i64 {
        status
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .and_then(|l| l.split("uidvalidity=").nth(1))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no uidvalidity of {name} in {status:?}"))
    };
    // Dovecot's own view of the flags, \Recent aside.
    let dovecot_flags = flags_by_uid(&fetched);
    assert_eq!(dovecot_flags.len(), 3, "{fetched}");

    let text = ok(&node(
        &server,
        &["import", "-u", "alice", maildir.to_str().unwrap()],
        &[],
    ));
    assert!(
        text.contains("INBOX: 3 imported, 0 already present, 0 refused"),
        "{text}"
    );
    let v = imap_view(&server, "alice", "alicepw", &["INBOX", "Work/Sub"]);
    let inbox = &v["INBOX"];
    assert_eq!(inbox["uidvalidity"].as_i64(), Some(uv("INBOX")), "{v}");
    let msgs = inbox["messages"].as_array().unwrap();
    let got: Vec<(i64, Vec<String>)> = msgs
        .iter()
        .map(|m| {
            let flags = m[1]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap().to_string())
                .collect();
            (m[0].as_i64().unwrap(), flags)
        })
        .collect();
    assert_eq!(got, dovecot_flags, "UIDs and flags as Dovecot served them");
    assert!(
        got.iter().any(|(_, f)| f.contains(&"$Label1".to_string())),
        "{v}"
    );
    for m in msgs
        .iter()
        .chain(v["Work/Sub"]["messages"].as_array().unwrap())
    {
        let hash = m[3].as_str().unwrap();
        assert_eq!(
            dates.get(hash),
            m[2].as_i64().as_ref(),
            "INTERNALDATE is the file's mtime: {m}"
        );
    }
    assert_eq!(
        v["Work/Sub"]["uidvalidity"].as_i64(),
        Some(uv("Work.Sub")),
        "{v}"
    );
    assert_eq!(
        v["Work/Sub"]["messages"][0][1],
        serde_json::json!(["Custom"]),
        "{v}"
    );
    let subs = v["subscribed"].as_array().unwrap();
    assert!(subs.contains(&serde_json::json!("Work/Sub")), "{v}");

    // Run again: everything is there already; nothing is stored twice.
    let text = ok(&node(
        &server,
        &["import", "-u", "alice", maildir.to_str().unwrap()],
        &[],
    ));
    assert!(
        text.contains("INBOX: 0 imported, 3 already present, 0 refused"),
        "{text}"
    );
    assert_eq!(
        imap_view(&server, "alice", "alicepw", &["INBOX", "Work/Sub"]),
        v
    );

    // Export, then import the export into another user: the same mail, nothing lost.
    let exp = d.join("export");
    ok(&node(
        &server,
        &[
            "export",
            "-u",
            "alice",
            "--format",
            "maildir",
            exp.to_str().unwrap(),
        ],
        &[],
    ));
    assert!(std::fs::read_to_string(exp.join("dovecot-uidlist"))
        .unwrap()
        .starts_with("3 V"));
    assert!(std::fs::read_to_string(exp.join("dovecot-keywords"))
        .unwrap()
        .contains("$Label1"));
    ok(&node(
        &server,
        &["import", "-u", "bob", exp.to_str().unwrap()],
        &[],
    ));
    let w = imap_view(&server, "bob", "bobpw", &["INBOX", "Work/Sub"]);
    assert_eq!(w["INBOX"], v["INBOX"], "round trip of INBOX");
    assert_eq!(w["Work/Sub"], v["Work/Sub"], "round trip of Work/Sub");
    assert_eq!(w["subscribed"], v["subscribed"]);
    // Exporting into a directory that holds something is refused.
    let out = node(
        &server,
        &["export", "-u", "alice", exp.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", out.both());
    assert!(out.stderr_text().contains("not empty"), "{}", out.both());

    // Dovecot reads the export with the same UIDs, UIDVALIDITY, flags and keywords.
    mail_owner(d, &[&exp]).unwrap();
    let location = format!("mail_location=maildir:{}", exp.display());
    let out = dv
        .doveadm(&[
            "-o",
            &location,
            "fetch",
            "-u",
            "u1",
            "uid flags",
            "mailbox",
            "INBOX",
            "all",
        ])
        .unwrap();
    let theirs = flags_by_uid(&String::from_utf8_lossy(&out.stdout));
    let ours: Vec<(i64, Vec<String>)> = v["INBOX"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let flags = m[1]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap().to_string())
                .collect();
            (m[0].as_i64().unwrap(), flags)
        })
        .collect();
    assert_eq!(theirs, ours, "Dovecot's view of the export");
    let out = dv
        .doveadm(&[
            "-o",
            &location,
            "mailbox",
            "status",
            "-u",
            "u1",
            "uidvalidity",
            "INBOX",
        ])
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("uidvalidity={}", uv("INBOX"))),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// `doveadm fetch 'uid flags'` output as (UID, sorted flags without \Recent).
fn flags_by_uid(fetched: &str) -> Vec<(i64, Vec<String>)> {
    let mut out: Vec<(i64, Vec<String>)> = Vec::new();
    for line in fetched.lines() {
        if let Some(uid) = line.trim().strip_prefix("uid: ") {
            out.push((uid.trim().parse().unwrap(), Vec::new()));
        } else if let (Some(flags), Some(last)) =
            (line.trim().strip_prefix("flags:"), out.last_mut())
        {
            last.1 = flags
                .split_whitespace()
                .filter(|f| *f != "\\Recent")
                .map(str::to_string)
                .collect();
            last.1.sort();
        }
    }
    out
}

/// A Maildir with `n` messages and a dovecot-uidlist (UIDs 10, 12, 14, ...).
fn make_maildir(root: &Path, n: usize) -> Vec<u32> {
    for s in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(root.join(s)).unwrap();
    }
    let mut list = String::from("3 V424242 N1000\n");
    let mut uids = Vec::new();
    for i in 0..n {
        let uid = 10 + 2 * i as u32;
        let base = format!("{}.M{i}P1.test,S=1", 1_600_000_000 + i);
        let p = root.join("cur").join(format!("{base}:2,S"));
        std::fs::write(&p, sample_message(&format!("m{i}"), &"x".repeat(200 + i))).unwrap();
        set_mtime(&p, 1_600_000_000 + i as u64);
        list.push_str(&format!("{uid} :{base}\n"));
        uids.push(uid);
    }
    std::fs::write(root.join("dovecot-uidlist"), list).unwrap();
    uids
}

#[test]
fn an_interrupted_import_resumes_without_duplicates() {
    let server = start();
    let dir = tempfile::tempdir().unwrap();
    let md = dir.path().join("Maildir");
    let uids = make_maildir(&md, 30);
    let path = md.to_str().unwrap();
    let out = node(
        &server,
        &["import", "-u", "alice", path],
        &[("NODE_TEST_IMPORT_STOP_AFTER", "11")],
    );
    assert_eq!(out.status.code(), Some(137), "{}", out.both());
    let v = imap_view(&server, "alice", "alicepw", &["INBOX"]);
    assert_eq!(v["INBOX"]["messages"].as_array().unwrap().len(), 11, "{v}");
    let report: serde_json::Value = serde_json::from_str(&ok(&node(
        &server,
        &["--json", "import", "-u", "alice", path],
        &[],
    )))
    .unwrap();
    assert_eq!(report[0]["mailbox"], "INBOX", "{report}");
    assert_eq!(report[0]["imported"], 19, "{report}");
    assert_eq!(report[0]["present"], 11, "{report}");
    assert_eq!(report[0]["refused"], serde_json::json!([]), "{report}");
    let v = imap_view(&server, "alice", "alicepw", &["INBOX"]);
    let got: Vec<u32> = v["INBOX"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m[0].as_u64().unwrap() as u32)
        .collect();
    assert_eq!(got, uids, "every message once, at its UID");
    assert_eq!(v["INBOX"]["uidvalidity"], 424242);
}

#[test]
fn an_mbsync_maildir_keeps_its_uids() {
    if missing_tool("mbsync") {
        return;
    }
    let server = start();
    for i in 1..=3 {
        let r = lmtp_deliver(
            server.addr(Proto::Lmtp),
            "s@example.org",
            &["demo@example.org"],
            &sample_message(&format!("sync {i}"), "body"),
        )
        .expect("lmtp");
        assert!(r[0].starts_with("250"), "{r:?}");
    }
    let mut c = LineConn::connect(server.addr(Proto::Imap)).unwrap();
    c.line().unwrap();
    for cmd in [
        "LOGIN demo demo",
        "SELECT INBOX",
        "UID STORE 2 +FLAGS (\\Seen \\Flagged)",
        "CREATE Work",
    ] {
        let r = c.imap("t", cmd).unwrap();
        assert!(tagged(&r).starts_with("t OK"), "{cmd}: {r:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let mail = dir.path().join("mail");
    std::fs::create_dir_all(&mail).unwrap();
    let cfg = format!(
        "IMAPAccount test\nHost 127.0.0.1\nPort {port}\nUser demo\nPass demo\nSSLType None\n\
         AuthMechs LOGIN\nTimeout 20\n\nIMAPStore remote\nAccount test\n\n\
         MaildirStore local\nPath {mail}/\nInbox {mail}/INBOX\nSubFolders Verbatim\n\n\
         Channel test\nFar :remote:\nNear :local:\nPatterns *\nCreate Near\nSync Pull\nSyncState *\n",
        port = server.ports.imap,
        mail = mail.display(),
    );
    std::fs::write(dir.path().join("mbsyncrc"), cfg).unwrap();
    let out = run(
        Command::new("mbsync")
            .arg("-c")
            .arg(dir.path().join("mbsyncrc"))
            .arg("-a"),
        None,
        Duration::from_secs(60),
    )
    .unwrap();
    assert!(out.status.success(), "mbsync: {}", out.both());
    let inbox = mail.join("INBOX");
    let uv: u64 = std::fs::read_to_string(inbox.join(".uidvalidity"))
        .unwrap()
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .expect("mbsync's .uidvalidity");
    // What the Maildir says: UID (from ,U=) -> flags letters.
    let mut in_files: Vec<(u64, String)> = files(&inbox)
        .iter()
        .map(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            let uid = n
                .split(",U=")
                .nth(1)
                .unwrap()
                .split([':', ','])
                .next()
                .unwrap()
                .parse()
                .unwrap();
            (uid, n.split(":2,").nth(1).unwrap_or("").to_string())
        })
        .collect();
    in_files.sort();
    assert_eq!(in_files.len(), 3, "{in_files:?}");

    let text = ok(&node(
        &server,
        &["import", "-u", "alice", mail.to_str().unwrap()],
        &[],
    ));
    assert!(text.contains("INBOX: 3 imported"), "{text}");
    let v = imap_view(&server, "alice", "alicepw", &["INBOX", "Work"]);
    assert_eq!(v["INBOX"]["uidvalidity"].as_u64(), Some(uv), "{v}");
    let got: Vec<(u64, String)> = v["INBOX"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let flags: Vec<&str> = m[1]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap())
                .collect();
            let mut letters = String::new();
            if flags.contains(&"\\Flagged") {
                letters.push('F');
            }
            if flags.contains(&"\\Seen") {
                letters.push('S');
            }
            (m[0].as_u64().unwrap(), letters)
        })
        .collect();
    assert_eq!(got, in_files, "UIDs and flags of the mbsync Maildir");
    // The bytes are the Maildir's (mbsync added its X-TUID header), lines ending in CRLF.
    let mut want: Vec<(u64, String)> = files(&inbox)
        .iter()
        .map(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            let uid = n
                .split(",U=")
                .nth(1)
                .unwrap()
                .split([':', ','])
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let text = String::from_utf8(std::fs::read(p).unwrap()).unwrap();
            (uid, sha(text.replace('\n', "\r\n").as_bytes()))
        })
        .collect();
    want.sort();
    let got: Vec<(u64, String)> = v["INBOX"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m[0].as_u64().unwrap(), m[3].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(v["Work"]["messages"].as_array().unwrap().len(), 0);
}

#[test]
fn mbox_files_keep_their_uids_flags_and_dates() {
    let server = start();
    let dir = tempfile::tempdir().unwrap();
    let mbox = dir.path().join("saved.mbox");
    std::fs::write(
        &mbox,
        "From a@example.org Thu Nov 14 22:13:20 2023\n\
         X-IMAPbase: 1700000000 9\n\
         Status: RO\n\
         X-Status: F\n\
         X-Keywords: $Label2\n\
         X-UID: 4\n\
         Subject: first\n\
         \n\
         one\n\
         >From the start\n\
         \n\
         From b@example.org Fri Nov 15 00:00:00 2023\n\
         X-UID: 8\n\
         Subject: second\n\
         \n\
         two\n",
    )
    .unwrap();
    let text = ok(&node(
        &server,
        &[
            "import",
            "-u",
            "alice",
            "--format",
            "mbox",
            "-m",
            "Old",
            mbox.to_str().unwrap(),
        ],
        &[],
    ));
    assert!(text.contains("Old: 2 imported"), "{text}");
    let v = imap_view(&server, "alice", "alicepw", &["Old"]);
    assert_eq!(v["Old"]["uidvalidity"], 1700000000, "{v}");
    let m = v["Old"]["messages"].as_array().unwrap();
    assert_eq!(m[0][0], 4);
    assert_eq!(
        m[0][1],
        serde_json::json!(["$Label2", "\\Flagged", "\\Seen"])
    );
    assert_eq!(m[0][2], 1_700_000_000);
    assert_eq!(m[1][0], 8);
    assert_eq!(m[1][2], 1_700_006_400);
    // mbox-only headers are not part of the message; the body's ">From " is unquoted.
    assert_eq!(
        m[0][3].as_str().unwrap(),
        sha(b"Subject: first\r\n\r\none\r\nFrom the start\r\n")
    );

    // Export as mbox (children in PARENT.sbd/) and import into another user: the same.
    ok(&node(
        &server,
        &[
            "import",
            "-u",
            "alice",
            "--format",
            "mbox",
            "-m",
            "Old/Deeper",
            mbox.to_str().unwrap(),
        ],
        &[],
    ));
    let exp = dir.path().join("mbox-export");
    ok(&node(
        &server,
        &[
            "export",
            "-u",
            "alice",
            "--format",
            "mbox",
            exp.to_str().unwrap(),
        ],
        &[],
    ));
    assert!(exp.join("Old.sbd/Deeper").is_file());
    let text = std::fs::read_to_string(exp.join("Old")).unwrap();
    assert!(
        text.starts_with("From MAILER-DAEMON Tue Nov 14 22:13:20 2023\n"),
        "{text}"
    );
    assert!(
        text.contains("X-IMAPbase: 1700000000 9\n") && text.contains("\n>From the start\n"),
        "{text}"
    );
    ok(&node(
        &server,
        &[
            "import",
            "-u",
            "bob",
            "--format",
            "mbox",
            exp.to_str().unwrap(),
        ],
        &[],
    ));
    let a = imap_view(&server, "alice", "alicepw", &["Old", "Old/Deeper"]);
    let b = imap_view(&server, "bob", "bobpw", &["Old", "Old/Deeper"]);
    assert_eq!(a["Old"], b["Old"]);
    assert_eq!(a["Old/Deeper"], b["Old/Deeper"]);
}

#[test]
fn import_and_export_failures_say_what_to_do() {
    let server = start();
    let dir = tempfile::tempdir().unwrap();
    let md = dir.path().join("Maildir");
    make_maildir(&md, 2);
    let path = md.to_str().unwrap();
    let out = node(&server, &["import", "-u", "nosuchuser", path], &[]);
    assert_eq!(out.status.code(), Some(67), "{}", out.both());
    assert!(
        out.stderr_text().contains("doesn't exist"),
        "{}",
        out.both()
    );
    let out = node(
        &server,
        &[
            "export",
            "-u",
            "nosuchuser",
            dir.path().join("e").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(67), "{}", out.both());
    let missing = dir.path().join("nope");
    let out = node(
        &server,
        &["import", "-u", "alice", missing.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", out.both());
    assert!(out.stderr_text().contains("No such file"), "{}", out.both());
    let out = node(
        &server,
        &["import", "-u", "alice", "--format", "zip", path],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", out.both());
    assert!(out.stderr_text().contains("maildir"), "{}", out.both());
    let out = node(
        &server,
        &[
            "import",
            "-u",
            "alice",
            md.join("dovecot-uidlist").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", out.both());
    assert!(
        out.stderr_text().contains("not a directory"),
        "{}",
        out.both()
    );
    let out = node(
        &server,
        &[
            "import",
            "-u",
            "alice",
            "--format",
            "mbox",
            md.join("dovecot-uidlist").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", out.both());
    assert!(out.stderr_text().contains("not an mbox"), "{}", out.both());
    // A mailbox that has held other messages under another UIDVALIDITY is not overwritten.
    let r = lmtp_deliver(
        server.addr(Proto::Lmtp),
        "s@example.org",
        &["alice@example.org"],
        &sample_message("x", "y"),
    )
    .expect("lmtp");
    assert!(r[0].starts_with("250"), "{r:?}");
    let out = node(&server, &["import", "-u", "alice", path], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", out.both());
    assert!(out.stderr_text().contains("UIDVALIDITY"), "{}", out.both());
}

#[test]
fn acl_commands_are_the_acls_imap_sees() {
    let server = start();
    let text = ok(&node(
        &server,
        &[
            "acl",
            "set",
            "-u",
            "demo",
            "INBOX",
            "user=alice",
            "lookup",
            "read",
        ],
        &[],
    ));
    assert_eq!(text, "");
    ok(&node(
        &server,
        &["acl", "add", "-u", "demo", "INBOX", "anyone", "l"],
        &[],
    ));
    let text = ok(&node(&server, &["acl", "get", "-u", "demo", "INBOX"], &[]));
    assert!(text.contains("user=alice\t\tlookup read"), "{text}");
    assert!(text.contains("anyone\t\tlookup"), "{text}");
    assert_eq!(
        ok(&node(
            &server,
            &["acl", "rights", "-u", "demo", "INBOX", "user=alice"],
            &[]
        ))
        .trim(),
        "lookup read"
    );
    let mut c = LineConn::connect(server.addr(Proto::Imap)).unwrap();
    c.line().unwrap();
    let r = c.imap("a", "LOGIN demo demo").unwrap();
    assert!(tagged(&r).starts_with("a OK"), "{r:?}");
    let r = c.imap("b", "GETACL INBOX").unwrap();
    assert!(r.iter().any(|l| l.contains("alice lr")), "{r:?}");
    let mut a = LineConn::connect(server.addr(Proto::Imap)).unwrap();
    a.line().unwrap();
    let r = a.imap("a", "LOGIN alice alicepw").unwrap();
    assert!(tagged(&r).starts_with("a OK"), "{r:?}");
    let r = a.imap("b", "MYRIGHTS shared/demo/INBOX").unwrap();
    assert!(r.iter().any(|l| l.contains(" lr")), "{r:?}");
    ok(&node(
        &server,
        &["acl", "delete", "-u", "demo", "INBOX", "user=alice"],
        &[],
    ));
    let r = c.imap("c", "GETACL INBOX").unwrap();
    assert!(!r.iter().any(|l| l.contains("alice")), "{r:?}");
    let json: serde_json::Value = serde_json::from_str(&ok(&node(
        &server,
        &["--json", "acl", "my-rights", "-u", "demo", "INBOX"],
        &[],
    )))
    .unwrap();
    assert_eq!(json["rights"], "lrswipkxtea");
    // Failures: a missing mailbox, a right that is none, an unknown user, the owner.
    let out = node(&server, &["acl", "get", "-u", "demo", "Nope"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", out.both());
    assert!(out.stderr_text().contains("mailbox list"), "{}", out.both());
    let out = node(
        &server,
        &["acl", "set", "-u", "demo", "INBOX", "user=alice", "fly"],
        &[],
    );
    assert!(
        !out.status.success() && out.stderr_text().contains("not a right"),
        "{}",
        out.both()
    );
    let out = node(&server, &["acl", "get", "-u", "nosuchuser", "INBOX"], &[]);
    assert_eq!(out.status.code(), Some(67), "{}", out.both());
    let out = node(
        &server,
        &["acl", "set", "-u", "demo", "INBOX", "user=demo", "lr"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", out.both());
    assert!(out.stderr_text().contains("every right"), "{}", out.both());
}

#[test]
fn imported_mail_replicates_with_its_uids_and_uidvalidity() {
    let cluster = tests::cluster::Cluster::start(tests::cluster::ClusterSpec {
        durability: "replicated",
        ..Default::default()
    })
    .expect("cluster");
    let dir = tempfile::tempdir().unwrap();
    let md = dir.path().join("Maildir");
    let uids = make_maildir(&md, 12);
    let user = tests::cluster::USER;
    let out = cluster
        .admin(0, &["import", "-u", user, md.to_str().unwrap()])
        .unwrap();
    assert!(out.status.success(), "{}", out.both());
    let d = cluster
        .wait_converged(&[0, 1], Duration::from_secs(30))
        .expect("both nodes hold the import");
    let inbox = &d.mailboxes["INBOX"];
    assert_eq!(inbox.uidvalidity, 424242);
    assert_eq!(inbox.messages.keys().copied().collect::<Vec<_>>(), uids);
    // \Recent is the session's, not the message's.
    assert!(
        inbox
            .messages
            .values()
            .all(|m| m.flags.contains(&"\\Seen".to_string())),
        "{inbox:?}"
    );
}

#[test]
fn a_whole_mail_root_imports_with_the_node_stopped() {
    let mut server = start();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("vmail");
    let alice = make_maildir(&root.join("alice/Maildir"), 3);
    let bob = make_maildir(&root.join("bob"), 2);
    make_maildir(&root.join("ghost/Maildir"), 1);
    // No server: the command opens the store itself.
    server.stop();
    let out = node(&server, &["import", "-A", root.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", out.both());
    let text = out.stdout_text();
    assert!(text.contains("alice INBOX: 3 imported"), "{}", out.both());
    assert!(text.contains("bob INBOX: 2 imported"), "{}", out.both());
    assert!(
        out.stderr_text().contains("User ghost doesn't exist")
            && out.stderr_text().contains("1 of 3 users failed"),
        "{}",
        out.both()
    );
    server.restart(&[Proto::Imap]).unwrap();
    let uids_of = |user: &str, pass: &str| -> Vec<u32> {
        imap_view(&server, user, pass, &["INBOX"])["INBOX"]["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m[0].as_u64().unwrap() as u32)
            .collect()
    };
    assert_eq!(uids_of("alice", "alicepw"), alice);
    assert_eq!(uids_of("bob", "bobpw"), bob);
    let users = ok(&node(&server, &["--json", "user", "list"], &[]));
    assert!(!users.contains("ghost"), "{users}");
}
