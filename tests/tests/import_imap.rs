//! `node import imap://USER@HOST` (issue 15, `doveadm backup -R imapc:`): an account on a
//! running Dovecot (Debian's packages; Maildir, '.' as separator, keywords, an expunge
//! leaving a UID gap, a subfolder, an empty folder, subscriptions) and one on another
//! running node (over imaps://, internal dates with their time zones) are served by our node
//! afterwards as the source served them: the same mailboxes, UIDVALIDITY, UIDs, flags,
//! keywords, INTERNALDATE strings and bytes, seen through Python's imaplib on both sides. A
//! rerun imports nothing and reports everything present, an interrupted one goes on; a
//! master user imports on a user's behalf; a wrong password, an unreachable host, a certificate that does not verify and a
//! missing password each fail with a message that says so, and a hostile server gets a
//! protocol error.

use std::path::Path;
use std::process::Command;
use std::time::Duration;
use tests::dovecot::{mail_owner, Instance};
use tests::*;

fn node(server: &Server, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(node_bin());
    cmd.arg("-c")
        .arg(&server.paths.config)
        .args(args)
        .current_dir(&server.paths.dir)
        .env_remove("NODE_CONFIG")
        .env_remove("NODE_IMPORT_PASSWORD");
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd, None, Duration::from_secs(180)).expect("run node")
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "{}", out.both());
    out.stdout_text()
}

/// An account as imaplib sees it over IMAP at 127.0.0.1:`port`: per selectable mailbox
/// (named with '/' as separator) its UIDVALIDITY and, per message, UID, sorted flags
/// without \Recent, the INTERNALDATE string, a hash and the length of the bytes; and the
/// subscribed mailboxes.
fn view(port: u16, tls: bool, user: &str, pass: &str) -> serde_json::Value {
    let script = r#"
import imaplib, json, hashlib, re, ssl, sys
port, tls, user, pw = int(sys.argv[1]), sys.argv[2] == '1', sys.argv[3], sys.argv[4]
if tls:
    M = imaplib.IMAP4_SSL('127.0.0.1', port, ssl_context=ssl._create_unverified_context())
else:
    M = imaplib.IMAP4('127.0.0.1', port)
M.login(user, pw)
def names(lines):
    out = []
    for l in lines:
        if not l:
            continue
        m = re.match(rb'\((.*?)\) (?:"(.)"|NIL) "?(.*?)"?$', l)
        attrs, sep, name = m.group(1), m.group(2), m.group(3)
        out.append((attrs, sep, name))
    return out
def mine(sep, name):
    n = name.decode()
    return n.replace(sep.decode(), '/') if sep else n
boxes = {}
typ, lst = M.list('""', '*')
for attrs, sep, name in names(lst):
    if b'\\Noselect' in attrs or b'\\NonExistent' in attrs:
        continue
    typ, _ = M.select(b'"' + name + b'"', readonly=True)
    assert typ == 'OK', (name, typ)
    uv = int(M.response('UIDVALIDITY')[1][0])
    msgs = {}
    typ, data = M.uid('FETCH', '1:*', '(UID FLAGS INTERNALDATE)')
    for item in data:
        if not item:
            continue
        head = item if isinstance(item, bytes) else item[0]
        uid = int(re.search(rb'UID (\d+)', head).group(1))
        flags = sorted(f.decode() for f in imaplib.ParseFlags(head) if f != b'\\Recent')
        date = re.search(rb'INTERNALDATE "([^"]*)"', head).group(1).decode()
        msgs[uid] = [uid, flags, date]
    typ, data = M.uid('FETCH', '1:*', '(UID BODY.PEEK[])')
    for item in data:
        if not isinstance(item, tuple):
            continue
        uid = int(re.search(rb'UID (\d+)', item[0]).group(1))
        msgs[uid] += [hashlib.sha256(item[1]).hexdigest(), len(item[1])]
    boxes[mine(sep, name)] = {'uidvalidity': uv, 'messages': [msgs[u] for u in sorted(msgs)]}
typ, subs = M.lsub('""', '*')
print(json.dumps({'boxes': boxes, 'subscribed': sorted(mine(s, n) for _, s, n in names(subs))}))
"#;
    let out = run(
        Command::new("python3").arg("-c").arg(script).args([
            port.to_string(),
            if tls { "1".into() } else { "0".into() },
            user.to_string(),
            pass.to_string(),
        ]),
        None,
        Duration::from_secs(60),
    )
    .expect("python3");
    assert!(out.status.success(), "view: {}", out.both());
    serde_json::from_str(out.stdout_text().trim()).unwrap_or_else(|e| panic!("{e}: {}", out.both()))
}

fn set_mtime(p: &Path, secs: u64) {
    let f = std::fs::File::options().write(true).open(p).expect("open");
    f.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(secs))
        .expect("set mtime");
}

fn maildir_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v = Vec::new();
    for sub in ["cur", "new"] {
        if let Ok(rd) = std::fs::read_dir(dir.join(sub)) {
            v.extend(rd.flatten().map(|e| e.path()));
        }
    }
    v.sort();
    v
}

/// Every mailbox of `theirs` is in `ours` as it was, and every subscription too. (Our node
/// also has its default mailboxes, subscribed, and lists a parent `Work` that Dovecot's
/// Maildir++ only implies.)
fn assert_served(ours: &serde_json::Value, theirs: &serde_json::Value) {
    for (name, b) in theirs["boxes"].as_object().unwrap() {
        assert_eq!(
            &ours["boxes"][name], b,
            "{name}: ours {ours}\ntheirs {theirs}"
        );
    }
    let subs = ours["subscribed"].as_array().unwrap();
    for s in theirs["subscribed"].as_array().unwrap() {
        assert!(
            subs.contains(s),
            "{s} subscribed: ours {ours}\ntheirs {theirs}"
        );
    }
}

/// (imported, present) summed over a `--json` report.
fn totals(json: &str) -> (u64, u64) {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    v.as_array().unwrap().iter().fold((0, 0), |(i, p), r| {
        (
            i + r["imported"].as_u64().unwrap(),
            p + r["present"].as_u64().unwrap(),
        )
    })
}

#[test]
fn a_dovecot_account_over_imap_is_served_as_dovecot_served_it() {
    if missing_tool("doveadm") || !Path::new("/usr/lib/dovecot/imap-login").exists() {
        eprintln!("skipped: needs dovecot-core and dovecot-imapd");
        return;
    }
    let server = Server::start(ServerSpec {
        wait_for: vec![Proto::Imap],
        extra_toml: "auth_failure_delay = \"0\"".into(),
        ..Default::default()
    })
    .expect("start node");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let passwd = d.join("passwd");
    std::fs::write(&passwd, "u1:{PLAIN}pw::::::\n").unwrap();
    let masters = d.join("masters");
    std::fs::write(&masters, "admin:{PLAIN}adminpw::::::\n").unwrap();
    std::fs::create_dir_all(d.join("mail")).unwrap();
    let owner = mail_owner(d, &[&d.join("mail")]).unwrap();
    let maildir = d.join("mail/u1/Maildir");
    let port = free_port();
    let dv = Instance::start(
        "imap",
        d,
        &passwd,
        &owner,
        &format!(
            r#"mail_location = maildir:{md}
protocols = imap
auth_failure_delay = 0
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
passdb {{
  driver = passwd-file
  master = yes
  args = {masters}
}}
"#,
            md = maildir.display(),
            masters = masters.display(),
        ),
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
    dv.doveadm(&["mailbox", "create", "-u", "u1", "Empty"])
        .unwrap();
    for i in 1..=4 {
        save("INBOX", &format!("inbox {i}"));
    }
    save("Work.Sub", "work 1");
    save("Work.Sub", "work 2");
    for (flags, mailbox, uid) in [
        ("\\Seen $Label1 Custom", "INBOX", "2"),
        ("\\Flagged \\Answered", "INBOX", "3"),
        ("\\Deleted Other", "INBOX", "4"),
        ("Custom", "Work.Sub", "2"),
    ] {
        dv.doveadm(&[
            "flags", "add", "-u", "u1", flags, "mailbox", mailbox, "uid", uid,
        ])
        .unwrap();
    }
    // A gap: UID 1 expunged in INBOX and Work.Sub.
    dv.doveadm(&["expunge", "-u", "u1", "mailbox", "INBOX", "uid", "1"])
        .unwrap();
    dv.doveadm(&["expunge", "-u", "u1", "mailbox", "Work.Sub", "uid", "1"])
        .unwrap();
    dv.doveadm(&["mailbox", "subscribe", "-u", "u1", "INBOX", "Work.Sub"])
        .unwrap();
    // Internal dates are the files' mtimes: give each message its own.
    for (i, f) in maildir_files(&maildir)
        .into_iter()
        .chain(maildir_files(&maildir.join(".Work.Sub")))
        .enumerate()
    {
        set_mtime(&f, 1_500_000_000 + i as u64 * 86_400 + 17);
    }
    let theirs = view(port, false, "u1", "pw");
    assert_eq!(
        theirs["boxes"]["INBOX"]["messages"]
            .as_array()
            .unwrap()
            .len(),
        3,
        "{theirs}"
    );
    assert!(theirs["boxes"]["Work/Sub"].is_object(), "{theirs}");

    let url = format!("imap://u1@127.0.0.1:{port}");
    let text = ok(&node(
        &server,
        &["import", "-u", "alice", &url],
        &[("NODE_IMPORT_PASSWORD", "pw")],
    ));
    assert!(
        text.contains("INBOX: 3 imported, 0 already present, 0 refused"),
        "{text}"
    );
    assert!(text.contains("Work/Sub: 1 imported"), "{text}");
    assert!(text.contains("Empty: 0 imported"), "{text}");
    let ours = view(server.ports.imap, false, "alice", "alicepw");
    assert_served(&ours, &theirs);

    // Run again (password from a file): nothing is stored twice, everything is present.
    let pwfile = d.join("pw");
    std::fs::write(&pwfile, "pw\n").unwrap();
    let out = ok(&node(
        &server,
        &[
            "--json",
            "import",
            "-u",
            "alice",
            "--password-file",
            pwfile.to_str().unwrap(),
            &url,
        ],
        &[],
    ));
    assert_eq!(totals(&out), (0, 4), "{out}");
    assert_eq!(view(server.ports.imap, false, "alice", "alicepw"), ours);

    // A master user imports u1's mail into bob (AUTHENTICATE PLAIN with authzid u1).
    ok(&node(
        &server,
        &["import", "-u", "bob", "--master-user", "admin", &url],
        &[("NODE_IMPORT_PASSWORD", "adminpw")],
    ));
    assert_served(&view(server.ports.imap, false, "bob", "bobpw"), &theirs);

    // A wrong password: non-zero, and the message says the login was refused.
    let out = node(
        &server,
        &["import", "-u", "demo", &url],
        &[("NODE_IMPORT_PASSWORD", "wrong")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", out.both());
    assert!(
        out.stderr_text().contains("refused the login of u1"),
        "{}",
        out.both()
    );
    drop(dv);
}

#[test]
fn another_node_over_imaps_keeps_time_zones_and_failures_say_why() {
    let mut source = Server::start(ServerSpec {
        wait_for: vec![Proto::Imap, Proto::Imaps],
        ..Default::default()
    })
    .expect("start source node");
    let target = Server::start(ServerSpec {
        wait_for: vec![Proto::Imap],
        ..Default::default()
    })
    .expect("start target node");
    // alice's mail on the source: dates in three time zones, keywords, a gap, a
    // subfolder, a subscription.
    source.python(
        r#"
import imaplib, os
M = imaplib.IMAP4('127.0.0.1', int(os.environ['IMAP_PORT']))
M.login('alice', 'alicepw')
msg = lambda s: ('From: a@example.org\r\nSubject: %s\r\n\r\nbody %s\r\n' % (s, s)).encode()
M.append('INBOX', r'(\Seen $Important)', '"01-Feb-2021 10:11:12 +0200"', msg('one'))
M.append('INBOX', r'(\Flagged)', '"02-Mar-2022 23:59:59 -0530"', msg('two'))
M.append('INBOX', None, '"03-Apr-2023 00:00:01 +0000"', msg('three'))
M.create('Projects/2024')
M.append('Projects/2024', r'(\Answered Work)', '"04-May-2024 12:00:00 +1000"', msg('four'))
M.subscribe('Projects/2024')
M.select('INBOX')
M.uid('STORE', '2', '+FLAGS', r'(\Deleted)')
M.expunge()
M.logout()
"#,
        Duration::from_secs(60),
    );
    let theirs = view(source.ports.imap, false, "alice", "alicepw");
    let dates: Vec<&str> = theirs["boxes"]["INBOX"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m[2].as_str().unwrap())
        .collect();
    assert_eq!(
        dates,
        ["01-Feb-2021 10:11:12 +0200", "03-Apr-2023 00:00:01 +0000"],
        "{theirs}"
    );

    let url = format!("imaps://alice@127.0.0.1:{}", source.ports.imaps);
    let pw = [("NODE_IMPORT_PASSWORD", "alicepw")];
    // The test certificate is self-signed: it does not verify without --insecure.
    let out = node(&target, &["import", "-u", "bob", &url], &pw);
    assert_eq!(out.status.code(), Some(1), "{}", out.both());
    assert!(
        out.stderr_text().contains("certificate does not verify")
            && out.stderr_text().contains("--insecure"),
        "{}",
        out.both()
    );
    // Interrupted after the first message (as if killed), then run again: it goes on.
    let out = node(
        &target,
        &["import", "-u", "bob", "--insecure", &url],
        &[pw[0], ("NODE_TEST_IMPORT_STOP_AFTER", "1")],
    );
    assert_eq!(out.status.code(), Some(137), "{}", out.both());
    let text = ok(&node(
        &target,
        &["import", "-u", "bob", "--insecure", &url],
        &pw,
    ));
    assert!(
        text.contains("INBOX: 1 imported, 1 already present, 0 refused"),
        "{text}"
    );
    assert!(text.contains("Projects/2024: 1 imported"), "{text}");
    assert_eq!(view(target.ports.imap, false, "bob", "bobpw"), theirs);
    // Plain imap:// with STARTTLS offered: the same certificate check applies.
    let plain = format!("imap://alice@127.0.0.1:{}", source.ports.imap);
    let out = node(&target, &["import", "-u", "bob", &plain], &pw);
    assert_eq!(out.status.code(), Some(1), "{}", out.both());
    let out = ok(&node(
        &target,
        &["--json", "import", "-u", "bob", "--insecure", &plain],
        &pw,
    ));
    assert_eq!(totals(&out), (0, 3), "{out}");

    // Nothing listens on this port.
    let dead = format!("imap://alice@127.0.0.1:{}", free_port());
    let out = node(&target, &["import", "-u", "bob", &dead], &pw);
    assert_eq!(out.status.code(), Some(1), "{}", out.both());
    assert!(
        out.stderr_text().contains("cannot connect"),
        "{}",
        out.both()
    );
    // No password given: refused before connecting, saying how to give one.
    let out = node(&target, &["import", "-u", "bob", &url], &[]);
    assert_eq!(out.status.code(), Some(64), "{}", out.both());
    assert!(
        out.stderr_text().contains("NODE_IMPORT_PASSWORD"),
        "{}",
        out.both()
    );
    // A wrong password over TLS.
    let out = node(
        &target,
        &["import", "-u", "bob", "--insecure", &url],
        &[("NODE_IMPORT_PASSWORD", "nope")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", out.both());
    assert!(
        out.stderr_text().contains("refused the login"),
        "{}",
        out.both()
    );

    // The source with a certificate from a private CA: --ca-file CA verifies it.
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let script = format!(
        "set -e; cd {d}; \
         openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
           -out ca.pem -days 30 -subj /CN=test-ca 2>/dev/null; \
         openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout {key} \
           -out leaf.csr -subj /CN=localhost 2>/dev/null; \
         printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' > ext; \
         openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
           -out {cert} -days 30 -extfile ext 2>/dev/null",
        d = dir.path().display(),
        key = source.paths.key.display(),
        cert = source.paths.cert.display(),
    );
    let out = run(
        Command::new("sh").arg("-c").arg(&script),
        None,
        Duration::from_secs(60),
    )
    .unwrap();
    assert!(out.status.success(), "openssl: {}", out.both());
    source.restart(&[Proto::Imap, Proto::Imaps]).unwrap();
    let out = ok(&node(
        &target,
        &[
            "--json",
            "import",
            "-u",
            "bob",
            "--ca-file",
            ca.to_str().unwrap(),
            &url,
        ],
        &pw,
    ));
    assert_eq!(totals(&out), (0, 3), "{out}");
    // Without -u the local user is the URL's: alice on the target, who had nothing.
    let out = ok(&node(
        &target,
        &["--json", "import", "--insecure", &url],
        &pw,
    ));
    assert_eq!(totals(&out), (3, 0), "{out}");
    assert_eq!(view(target.ports.imap, false, "alice", "alicepw"), theirs);
}

/// A server that logs in, lists INBOX and then answers UID FETCH with `reply`: the import
/// must stop with a clear protocol error (exit 1), never a crash.
fn hostile_server(reply: &'static [u8]) -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let Ok((sock, _)) = listener.accept() else {
            return;
        };
        let mut out = sock.try_clone().unwrap();
        let _ = out.write_all(b"* OK [CAPABILITY IMAP4rev1] hostile\r\n");
        for line in BufReader::new(sock).lines() {
            let Ok(line) = line else { return };
            let mut words = line.split(' ');
            let tag = words.next().unwrap_or("*").to_string();
            let cmd = words.next().unwrap_or("").to_ascii_uppercase();
            let arg = words.next().unwrap_or("").to_ascii_uppercase();
            let answer: Vec<u8> = match (cmd.as_str(), arg.as_str()) {
                ("LIST", _) => b"* LIST () \"/\" INBOX\r\n".to_vec(),
                ("EXAMINE", _) => b"* 1 EXISTS\r\n* OK [UIDVALIDITY 5] ok\r\n".to_vec(),
                ("UID", _) if line.contains("BODY.PEEK") => reply.to_vec(),
                ("UID", _) => b"* 1 FETCH (UID 3 RFC822.SIZE 10)\r\n".to_vec(),
                _ => Vec::new(),
            };
            let _ = out.write_all(&answer);
            let _ = out.write_all(format!("{tag} OK done\r\n").as_bytes());
        }
    });
    port
}

#[test]
fn a_hostile_server_gets_a_clear_error() {
    let server = Server::start(ServerSpec {
        wait_for: vec![Proto::Imap],
        ..Default::default()
    })
    .expect("start node");
    for reply in [
        &b"* 1 FETCH (UID 0 BODY[] {1}\r\nx)\r\n"[..],
        b"* 1 FETCH (UID 3 BODY[] {99999999999}\r\n",
        b"* 1 FETCH (UID 3 INTERNALDATE \"99-Foo-2020 99:00:00 +9999\" BODY[] {1}\r\nx)\r\n",
        b"* 1 FETCH ((((((((((((((((((((((((((((((((((((((((((((((\r\n",
    ] {
        let port = hostile_server(reply);
        let url = format!("imap://alice@127.0.0.1:{port}");
        let out = node(
            &server,
            &["import", "-u", "alice", &url],
            &[("NODE_IMPORT_PASSWORD", "x")],
        );
        assert_eq!(out.status.code(), Some(1), "{}", out.both());
        assert!(
            out.stderr_text().contains("the server broke the protocol"),
            "{}",
            out.both()
        );
    }
}
