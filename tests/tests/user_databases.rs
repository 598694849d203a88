//! User databases as an operator migrating from Dovecot has them: PostgreSQL and MariaDB
//! with a Postfixadmin-style `mailbox` table, SQLite, and OpenLDAP (inetOrgPerson +
//! posixAccount, password-lookup and bind modes), each read through an unchanged Dovecot
//! `dovecot-sql.conf.ext` / `dovecot-ldap.conf.ext`. For each: IMAP and POP3 logins, LMTP
//! delivery to a directory user, `node auth test` and `node user`, a disabled user and an
//! injection attempt refused, and the directory stopped mid-run: users seen within the
//! auth cache TTL keep working, others get a temporary failure (`NO [UNAVAILABLE]`,
//! `-ERR [SYS/TEMP]`, LMTP 451), and everything recovers when the directory is back,
//! without restarting the node.

use std::path::Path;
use std::process::Command;
use std::time::Duration;
use tests::directories::{self, Directory};
use tests::*;

/// The directory's users: ann (active, an ARGON2ID hash), eve (active, not used before
/// the outage), dan (disabled).
const ANN_PW: &str = "ann secret";
const EVE_PW: &str = "eve-pw";
const DAN_PW: &str = "dan-pw";

fn node_hash(scheme: &str, password: &str) -> String {
    let out = run(
        Command::new(node_bin()).args(["pw", "-s", scheme, "-p", password]),
        None,
        Duration::from_secs(60),
    )
    .expect("node pw");
    assert!(out.status.success(), "node pw: {}", out.stderr_text());
    out.stdout_text().trim().to_string()
}

/// A node whose first passdb and userdb are `driver` with `args`; the harness's own
/// passwd-file (demo) follows, as a second database would in Dovecot.
fn start_node(driver: &str, args: &Path) -> Server {
    let db = format!(
        "auth_failure_delay = \"0 secs\"\nauth_cache_ttl = \"1 hour\"\nauth_cache_negative_ttl = \"1 hour\"\n\n\
         [[passdb]]\ndriver = \"{driver}\"\nargs = \"{args}\"\n\n\
         [[userdb]]\ndriver = \"{driver}\"\nargs = \"{args}\"\n",
        args = args.display()
    );
    Server::start(ServerSpec {
        wait_for: vec![Proto::Imap, Proto::Pop3, Proto::Lmtp],
        extra_toml: db,
        ..Default::default()
    })
    .expect("start node")
}

fn imap_login(server: &Server, user: &str, password: &str) -> (LineConn, String) {
    let mut c = LineConn::connect(server.addr(Proto::Imap)).expect("connect");
    c.line().expect("greeting");
    let quoted = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let r = c
        .imap("a", &format!("LOGIN {} {}", quoted(user), quoted(password)))
        .expect("login");
    let t = tagged(&r).to_string();
    (c, t)
}

fn pop3_reply(server: &Server, user: &str, password: &str) -> String {
    let mut c = LineConn::connect(server.addr(Proto::Pop3)).expect("connect pop3");
    c.line().expect("greeting");
    c.send(&format!("USER {user}")).expect("user");
    let r = c.line().expect("user reply");
    if !r.starts_with("+OK") {
        return r;
    }
    c.send(&format!("PASS {password}")).expect("pass");
    c.line().expect("pass reply")
}

fn rcpt_reply(server: &Server, rcpt: &str) -> String {
    let mut c = LineConn::connect(server.addr(Proto::Lmtp)).expect("connect lmtp");
    c.line().expect("greeting");
    c.send("LHLO tests.local").expect("lhlo");
    smtp_reply(&mut c, "250").expect("lhlo reply");
    c.send("MAIL FROM:<sender@example.net>").expect("mail");
    smtp_reply(&mut c, "250").expect("mail reply");
    c.send(&format!("RCPT TO:<{rcpt}>")).expect("rcpt");
    smtp_reply(&mut c, "").expect("rcpt reply")
}

/// What every directory must show; `outage` stops and starts the directory again.
fn exercise(server: &Server, home: &str, mut outage: impl FnMut(bool)) {
    // node auth test: the passdb and the userdb fields.
    let out = server.admin(&["auth", "test", "ann@example.com", ANN_PW]);
    let text = out.stdout_text();
    assert!(out.status.success(), "{text}{}", out.stderr_text());
    assert!(
        text.contains("auth succeeded") && text.contains(home),
        "{text}"
    );
    let out = server.admin(&["auth", "test", "dan@example.com", DAN_PW]);
    assert!(!out.status.success() || out.stdout_text().contains("auth failed"));
    // node user: one user and the listing (iterate).
    let out = server.admin(&["user", "ann@example.com"]);
    assert!(out.stdout_text().contains(home), "{}", out.stdout_text());
    let out = server.admin(&["user", "*"]);
    let list = out.stdout_text();
    assert!(
        list.contains("ann@example.com") && list.contains("eve@example.com"),
        "{list}"
    );

    // IMAP and POP3 logins; a wrong password, a disabled user, an injection attempt.
    let (mut c, t) = imap_login(server, "ann@example.com", ANN_PW);
    assert!(t.starts_with("a OK"), "{t}");
    c.imap("z", "LOGOUT").ok();
    let (_, t) = imap_login(server, "ann@example.com", "wrong");
    assert!(t.contains("[AUTHENTICATIONFAILED]"), "{t}");
    let (_, t) = imap_login(server, "dan@example.com", DAN_PW);
    assert!(t.contains("[AUTHENTICATIONFAILED]"), "disabled user: {t}");
    for evil in ["x' OR '1'='1", "*", "ann@example.com)(|(mail=*"] {
        let (_, t) = imap_login(server, evil, ANN_PW);
        assert!(t.starts_with("a NO"), "{evil}: {t}");
    }
    let r = pop3_reply(server, "ann@example.com", ANN_PW);
    assert!(r.starts_with("+OK"), "{r}");

    // LMTP to a directory user, then the message is there over IMAP.
    let replies = lmtp_deliver(
        server.addr(Proto::Lmtp),
        "sender@example.net",
        &["ann@example.com"],
        &sample_message("From the directory", "Delivered to a directory user."),
    )
    .expect("lmtp");
    assert!(replies[0].starts_with("250"), "{replies:?}");
    let (mut c, _) = imap_login(server, "ann@example.com", ANN_PW);
    let r = c.imap("s", "SELECT INBOX").expect("select");
    assert!(r.iter().any(|l| l == "* 1 EXISTS"), "{r:?}");
    c.imap("z", "LOGOUT").ok();
    assert!(rcpt_reply(server, "dan@example.com").starts_with("550"));

    // The directory goes down mid-run.
    outage(false);
    let (mut c, t) = imap_login(server, "ann@example.com", ANN_PW);
    assert!(t.starts_with("a OK"), "cached login while down: {t}");
    let r = c.imap("s", "SELECT INBOX").expect("select");
    assert!(tagged(&r).starts_with("s OK"), "{r:?}");
    c.imap("z", "LOGOUT").ok();
    let (_, t) = imap_login(server, "eve@example.com", EVE_PW);
    assert!(t.starts_with("a NO [UNAVAILABLE]"), "eve while down: {t}");
    let r = pop3_reply(server, "eve@example.com", EVE_PW);
    assert!(r.starts_with("-ERR [SYS/TEMP]"), "{r}");
    let r = rcpt_reply(server, "eve@example.com");
    assert!(r.starts_with("451"), "{r}");
    // The cached login still counts as known for LMTP too.
    assert!(rcpt_reply(server, "ann@example.com").starts_with("250"));

    // Back: the same node serves eve at once.
    outage(true);
    let (_, t) = imap_login(server, "eve@example.com", EVE_PW);
    assert!(t.starts_with("a OK"), "eve after recovery: {t}");
    assert!(rcpt_reply(server, "eve@example.com").starts_with("250"));
}

/// The Postfixadmin-style table and rows, in the dialect's own SQL.
fn mailbox_sql(dialect: &str, ann_hash: &str) -> String {
    let active = if dialect == "pgsql" {
        "BOOLEAN"
    } else {
        "SMALLINT"
    };
    let (t, f) = if dialect == "pgsql" {
        ("TRUE", "FALSE")
    } else {
        ("1", "0")
    };
    format!(
        "CREATE TABLE mailbox (username VARCHAR(255) PRIMARY KEY, password VARCHAR(255) NOT NULL, \
         name VARCHAR(255) NOT NULL DEFAULT '', maildir VARCHAR(255) NOT NULL, quota BIGINT NOT NULL DEFAULT 0, \
         local_part VARCHAR(255) NOT NULL, domain VARCHAR(255) NOT NULL, active {active} NOT NULL);
         INSERT INTO mailbox (username, password, maildir, quota, local_part, domain, active) VALUES
          ('ann@example.com', '{ann_hash}', 'example.com/ann/', 10485760, 'ann', 'example.com', {t}),
          ('eve@example.com', '{EVE_PW}', 'example.com/eve/', 0, 'eve', 'example.com', {t}),
          ('dan@example.com', '{DAN_PW}', 'example.com/dan/', 0, 'dan', 'example.com', {f});"
    )
}

/// Postfixadmin's documented dovecot-sql.conf.ext (DOCUMENTS/DOVECOT.txt), with the
/// home under /var/vmail; `concat` is the dialect's string concatenation.
fn sql_conf(dir: &Path, driver: &str, connect: &str) -> std::path::PathBuf {
    let (home, quota) = if driver == "mysql" {
        (
            "CONCAT('/var/vmail/', maildir)",
            "CONCAT('*:bytes=', quota)",
        )
    } else {
        ("'/var/vmail/' || maildir", "'*:bytes=' || quota")
    };
    let active = if driver == "pgsql" {
        "active = TRUE"
    } else {
        "active = '1'"
    };
    let path = dir.join("dovecot-sql.conf.ext");
    std::fs::write(
        &path,
        format!(
            "# Postfixadmin's example, unchanged but for the paths\n\
             driver = {driver}\n\
             connect = {connect}\n\
             default_pass_scheme = PLAIN\n\
             password_query = SELECT username AS user, password FROM mailbox \\\n  WHERE username = '%u' AND {active}\n\
             user_query = SELECT {home} AS home, 2000 AS uid, 2000 AS gid, \\\n  {quota} AS quota_rule FROM mailbox WHERE username = '%u' AND {active}\n\
             iterate_query = SELECT username AS user FROM mailbox WHERE {active}\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn postgresql_mailbox_table() {
    let Some(mut pg) = Directory::postgres().expect("start postgres") else {
        return;
    };
    let ann = node_hash("ARGON2ID", ANN_PW);
    pg.sql(&mailbox_sql("pgsql", &ann)).expect("schema");
    pg.sql(&format!(
        "GRANT SELECT ON mailbox TO {}",
        directories::SQL_USER
    ))
    .expect("grant");
    let conf_dir = tempfile::tempdir().unwrap();
    let conf = sql_conf(
        conf_dir.path(),
        "pgsql",
        &format!(
            "host=127.0.0.1 port={} dbname={} user={} password='{}' connect_timeout=1",
            pg.port,
            directories::SQL_DB,
            directories::SQL_USER,
            directories::SQL_PASSWORD
        ),
    );
    let server = start_node("sql", &conf);
    exercise(&server, "/var/vmail/example.com/ann/", |up| {
        if up {
            pg.start().expect("restart postgres")
        } else {
            pg.stop()
        }
    });
}

#[test]
fn mariadb_mailbox_table() {
    let Some(mut my) = Directory::mariadb().expect("start mariadb") else {
        return;
    };
    let ann = node_hash("ARGON2ID", ANN_PW);
    my.sql(&mailbox_sql("mysql", &ann)).expect("schema");
    let conf_dir = tempfile::tempdir().unwrap();
    let conf = sql_conf(
        conf_dir.path(),
        "mysql",
        &format!(
            "host=127.0.0.1 port={} dbname={} user={} password='{}' connect_timeout=1",
            my.port,
            directories::SQL_DB,
            directories::SQL_USER,
            directories::SQL_PASSWORD
        ),
    );
    let server = start_node("sql", &conf);
    exercise(&server, "/var/vmail/example.com/ann/", |up| {
        if up {
            my.start().expect("restart mariadb")
        } else {
            my.stop()
        }
    });
}

#[test]
fn sqlite_mailbox_table() {
    if missing_tool("sqlite3") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("postfix.sqlite");
    let ann = node_hash("ARGON2ID", ANN_PW);
    let out = run(
        Command::new("sqlite3")
            .arg(&db)
            .arg(mailbox_sql("sqlite", &ann)),
        None,
        Duration::from_secs(30),
    )
    .unwrap();
    assert!(out.status.success(), "{}", out.stderr_text());
    let conf = sql_conf(dir.path(), "sqlite", &db.display().to_string());
    let server = start_node("sql", &conf);
    // SQLite has no server to stop: the file turns unreadable under the node's open
    // connections, then comes back.
    let original = std::fs::read(&db).unwrap();
    exercise(&server, "/var/vmail/example.com/ann/", |up| {
        if up {
            std::fs::write(&db, &original).unwrap()
        } else {
            std::fs::write(&db, vec![b'x'; original.len()]).unwrap()
        }
    });
}

/// An inetOrgPerson/posixAccount tree; dan's login shell marks him disabled, as the
/// operator's pass_filter says.
fn ldap_tree() -> String {
    let crypt = |pw: &str| {
        let h = node_hash("SHA512-CRYPT", pw);
        format!(
            "{{CRYPT}}{}",
            h.strip_prefix("{SHA512-CRYPT}").expect("SHA512-CRYPT hash")
        )
    };
    let person = |uid: &str, n: u32, pw: &str, shell: &str| {
        format!(
            "dn: uid={uid},ou=people,{s}\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\n\
             uid: {uid}\ncn: {uid}\nsn: {uid}\nmail: {uid}@example.com\nuidNumber: {n}\ngidNumber: 2000\n\
             homeDirectory: /home/{uid}\nloginShell: {shell}\nuserPassword: {}\n\n",
            crypt(pw),
            s = directories::LDAP_SUFFIX
        )
    };
    format!(
        "dn: {s}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n\
         dn: ou=people,{s}\nobjectClass: organizationalUnit\nou: people\n\n{}{}{}",
        person("ann", 2001, ANN_PW, "/bin/sh"),
        person("eve", 2002, EVE_PW, "/bin/sh"),
        person("dan", 2003, DAN_PW, "/bin/false"),
        s = directories::LDAP_SUFFIX
    )
}

/// A dovecot-ldap.conf.ext as Dovecot's example-config has it, for users found by mail.
fn ldap_conf(dir: &Path, port: u16, bind: bool) -> std::path::PathBuf {
    let path = dir.join(if bind {
        "bind.conf.ext"
    } else {
        "lookup.conf.ext"
    });
    let mode = if bind {
        "auth_bind = yes\n".to_string()
    } else {
        format!(
            "dn = {}\ndnpass = {}\n",
            directories::LDAP_ADMIN,
            directories::LDAP_ADMIN_PW
        )
    };
    std::fs::write(
        &path,
        format!(
            "hosts = 127.0.0.1:{port}\n{mode}ldap_version = 3\nbase = ou=people,{s}\nscope = subtree\n\
             deref = never\ndefault_pass_scheme = CRYPT\n\
             pass_filter = (&(objectClass=posixAccount)(mail=%u)(!(loginShell=/bin/false)))\n\
             pass_attrs = mail=user,userPassword=password\n\
             user_filter = (&(objectClass=posixAccount)(mail=%u)(!(loginShell=/bin/false)))\n\
             user_attrs = mail=user, uidNumber=uid, gidNumber=gid, =home=/var/vmail/example.com/%{{ldap:uid}}/\n\
             iterate_attrs = mail=user\n\
             iterate_filter = (objectClass=posixAccount)\n",
            s = directories::LDAP_SUFFIX
        ),
    )
    .unwrap();
    path
}

#[test]
fn openldap_password_lookup_and_bind() {
    let Some(mut ldap) = Directory::slapd(&ldap_tree()).expect("start slapd") else {
        return;
    };
    let conf_dir = tempfile::tempdir().unwrap();
    for bind in [false, true] {
        let conf = ldap_conf(conf_dir.path(), ldap.port, bind);
        let server = start_node("ldap", &conf);
        exercise(&server, "/var/vmail/example.com/ann/", |up| {
            if up {
                ldap.start().expect("restart slapd")
            } else {
                ldap.stop()
            }
        });
    }
    // auth_bind_userdn: the DN is built from the name, no search.
    let conf = conf_dir.path().join("userdn.conf.ext");
    std::fs::write(
        &conf,
        format!(
            "uris = ldap://127.0.0.1:{}\nauth_bind = yes\nauth_bind_userdn = uid=%n,ou=people,{s}\nbase = ou=people,{s}\n",
            ldap.port,
            s = directories::LDAP_SUFFIX
        ),
    )
    .unwrap();
    let server = start_node("ldap", &conf);
    let (_, t) = imap_login(&server, "ann@example.com", ANN_PW);
    assert!(t.starts_with("a OK"), "{t}");
    let (_, t) = imap_login(&server, "ann@example.com", "wrong");
    assert!(t.contains("[AUTHENTICATIONFAILED]"), "{t}");
    let (_, t) = imap_login(&server, "ann@example.com", "");
    assert!(
        t.starts_with("a NO"),
        "an empty password must not bind: {t}"
    );
}

/// A private CA and a certificate for 127.0.0.1/localhost signed by it (rustls does not
/// take a self-signed leaf as its own anchor): (ca, cert, key).
fn make_ca_and_cert(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let (ca, ca_key, cert, key, csr, ext) = (
        dir.join("ca.pem"),
        dir.join("ca.key"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
        dir.join("req.csr"),
        dir.join("ext.cnf"),
    );
    std::fs::write(
        &ext,
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let steps: Vec<Vec<String>> = vec![
        ["req", "-x509"]
            .iter()
            .chain(&ec)
            .map(|s| s.to_string())
            .chain(["-days", "2", "-subj", "/CN=node test CA", "-keyout"].map(String::from))
            .chain([
                ca_key.display().to_string(),
                "-out".into(),
                ca.display().to_string(),
            ])
            .collect(),
        ["req"]
            .iter()
            .chain(&ec)
            .map(|s| s.to_string())
            .chain(["-subj", "/CN=localhost", "-keyout"].map(String::from))
            .chain([
                key.display().to_string(),
                "-out".into(),
                csr.display().to_string(),
            ])
            .collect(),
        ["x509", "-req", "-days", "2", "-in"]
            .map(String::from)
            .into_iter()
            .chain([
                csr.display().to_string(),
                "-CA".into(),
                ca.display().to_string(),
            ])
            .chain([
                "-CAkey".into(),
                ca_key.display().to_string(),
                "-set_serial".into(),
                "7".into(),
            ])
            .chain([
                "-extfile".into(),
                ext.display().to_string(),
                "-out".into(),
                cert.display().to_string(),
            ])
            .collect(),
    ];
    for args in steps {
        let out = run(
            Command::new("openssl").args(&args),
            None,
            Duration::from_secs(30),
        )
        .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            out.stderr_text()
        );
    }
    // slapd reads the key as whatever user it runs as.
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    (ca, cert, key)
}

/// LDAP over TLS with rustls: ldaps:// and StartTLS (`tls = yes`) against slapd with a
/// certificate from a private CA (`tls_ca_cert_file`); without the CA the certificate is
/// refused, a temporary failure rather than a wrong password.
#[test]
fn openldap_ldaps_and_starttls() {
    if missing_tool("openssl") {
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_ca_and_cert(certs.path());
    let Some(ldap) =
        Directory::slapd_with(&ldap_tree(), Some((&cert, &key))).expect("start slapd with TLS")
    else {
        return;
    };
    let tls_port = ldap.tls_port.expect("tls port");
    let dir = tempfile::tempdir().unwrap();
    let check = |name: &str, servers: &str| -> (bool, String) {
        let conf = dir.path().join(format!("{name}.conf.ext"));
        std::fs::write(
            &conf,
            format!(
                "{servers}\nauth_bind = yes\nbase = ou=people,{s}\n\
                 pass_filter = (&(objectClass=posixAccount)(mail=%u))\npass_attrs = mail=user\n",
                s = directories::LDAP_SUFFIX
            ),
        )
        .unwrap();
        let toml = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &toml,
            format!(
                "[storage]\ndata_dir = \"{}\"\n[[passdb]]\ndriver = \"ldap\"\nargs = \"{}\"\n\
                 [[userdb]]\ndriver = \"static\"\nargs = \"home=/h/%u allow_all_users=yes\"\n",
                dir.path().join("data").display(),
                conf.display()
            ),
        )
        .unwrap();
        let out = run(
            Command::new(node_bin()).arg("-c").arg(&toml).args([
                "auth",
                "test",
                "ann@example.com",
                ANN_PW,
            ]),
            None,
            Duration::from_secs(60),
        )
        .unwrap();
        (
            out.status.success() && out.stdout_text().contains("auth succeeded"),
            format!("{}{}", out.stdout_text(), out.stderr_text()),
        )
    };
    let ca = ca.display();
    let (ok, text) = check(
        "ldaps",
        &format!("uris = ldaps://127.0.0.1:{tls_port}\ntls_ca_cert_file = {ca}"),
    );
    assert!(ok, "ldaps: {text}");
    let (ok, text) = check(
        "starttls",
        &format!(
            "hosts = localhost:{}\ntls = yes\ntls_ca_cert_file = {ca}",
            ldap.port
        ),
    );
    assert!(ok, "StartTLS: {text}");
    let (ok, text) = check("untrusted", &format!("uris = ldaps://127.0.0.1:{tls_port}"));
    assert!(
        !ok && !text.contains("auth failed\n"),
        "an unknown CA must be refused: {text}"
    );
    assert!(text.to_lowercase().contains("cert"), "{text}");
}

/// Removes the test's PAM service file.
struct PamService(std::path::PathBuf);

impl Drop for PamService {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// PAM with a service file of the test's own in /etc/pam.d (root only: PAM reads no other
/// place). pam_exec scripts stand in for the password store: one says whether the
/// "directory" is up, one checks the password, one refuses dan's account.
#[test]
fn pam_service_file() {
    let root = effective_uid() == 0;
    if !root || !Path::new("/etc/pam.d").is_dir() {
        eprintln!("SKIPPED: the PAM test writes a service file to /etc/pam.d and needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let script = |name: &str, body: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    };
    script("up.sh", &format!("[ ! -e {d}/down ]"));
    script(
        "check.sh",
        &format!(
            "read -r pw\ncase \"$PAM_USER:$pw\" in ann@example.com:'{ANN_PW}'|eve@example.com:{EVE_PW}|dan@example.com:{DAN_PW}) exit 0;; esac\nexit 1"
        ),
    );
    script("acct.sh", "[ \"$PAM_USER\" != dan@example.com ]");
    let name = format!("node-test-{}", std::process::id());
    let service = PamService(Path::new("/etc/pam.d").join(&name));
    std::fs::write(
        &service.0,
        format!(
            "auth [success=ignore default=die] pam_exec.so quiet {d}/up.sh\n\
             auth [success=1 default=ignore] pam_exec.so expose_authtok quiet {d}/check.sh\n\
             auth requisite pam_deny.so\n\
             auth required pam_permit.so\n\
             account [success=1 default=ignore] pam_exec.so quiet {d}/acct.sh\n\
             account requisite pam_deny.so\n\
             account required pam_permit.so\n"
        ),
    )
    .unwrap();
    let server = Server::start(ServerSpec {
        wait_for: vec![Proto::Imap, Proto::Pop3, Proto::Lmtp],
        extra_toml: format!(
            "auth_failure_delay = \"0 secs\"\n\n[[passdb]]\ndriver = \"pam\"\nargs = \"{name}\"\n\n\
             [[userdb]]\ndriver = \"static\"\nargs = \"uid=vmail gid=vmail home=/var/vmail/%d/%n/ allow_all_users=yes\"\n"
        ),
        ..Default::default()
    })
    .expect("start node");
    let out = server.admin(&["auth", "test", "ann@example.com", ANN_PW]);
    let text = out.stdout_text();
    assert!(
        text.contains("auth succeeded") && text.contains("/var/vmail/example.com/ann/"),
        "{text}{}",
        out.stderr_text()
    );
    let (_, t) = imap_login(&server, "ann@example.com", ANN_PW);
    assert!(t.starts_with("a OK"), "{t}");
    let (_, t) = imap_login(&server, "ann@example.com", "wrong");
    assert!(t.contains("[AUTHENTICATIONFAILED]"), "{t}");
    let (_, t) = imap_login(&server, "dan@example.com", DAN_PW);
    assert!(
        t.contains("[AUTHENTICATIONFAILED]"),
        "account refused by PAM: {t}"
    );
    assert!(pop3_reply(&server, "ann@example.com", ANN_PW).starts_with("+OK"));
    let replies = lmtp_deliver(
        server.addr(Proto::Lmtp),
        "sender@example.net",
        &["ann@example.com"],
        &sample_message("Via PAM", "A PAM user's mail."),
    )
    .expect("lmtp");
    assert!(replies[0].starts_with("250"), "{replies:?}");

    std::fs::write(dir.path().join("down"), "").unwrap();
    let (_, t) = imap_login(&server, "ann@example.com", ANN_PW);
    assert!(t.starts_with("a OK"), "cached while down: {t}");
    let (_, t) = imap_login(&server, "eve@example.com", EVE_PW);
    assert!(t.starts_with("a NO [UNAVAILABLE]"), "{t}");
    let r = pop3_reply(&server, "eve@example.com", EVE_PW);
    assert!(r.starts_with("-ERR [SYS/TEMP]"), "{r}");
    std::fs::remove_file(dir.path().join("down")).unwrap();
    let (_, t) = imap_login(&server, "eve@example.com", EVE_PW);
    assert!(t.starts_with("a OK"), "after recovery: {t}");
}

fn effective_uid() -> u32 {
    let out = Command::new("id").arg("-u").output().expect("id -u");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(u32::MAX)
}

/// checkpassword: a script in the style of Dovecot's wiki example reads `user NUL password
/// NUL` from fd 3 and execs the reply program with USER, HOME and a quota in its
/// environment; exit 1 refuses, 111 is a temporary failure; userdb lookups run it with
/// AUTHORIZED=1.
#[test]
fn checkpassword_script() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let script = dir.path().join("checkpassword.sh");
    std::fs::write(
        &script,
        format!(
            r#"#!/bin/sh
input=$(dd bs=512 count=1 <&3 2>/dev/null | tr '\0' '\n')
user=$(printf '%s\n' "$input" | sed -n 1p)
pass=$(printf '%s\n' "$input" | sed -n 2p)
[ -e {d}/down ] && exit 111
case "$user" in
  ann@example.com) want='{ANN_PW}' ;;
  eve@example.com) want='{EVE_PW}' ;;
  *) [ "$AUTHORIZED" = 1 ] && exit 3; exit 1 ;;
esac
[ "$AUTHORIZED" = 1 ] || [ "$pass" = "$want" ] || exit 1
USER=$user HOME=/var/vmail/$user/ userdb_quota_rule='*:storage=1M'
export USER HOME userdb_quota_rule
exec "$@"
"#
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let server = start_node("checkpassword", &script);
    let out = server.admin(&["auth", "test", "ann@example.com", ANN_PW]);
    let text = out.stdout_text();
    assert!(
        text.contains("auth succeeded")
            && text.contains("/var/vmail/ann@example.com/")
            && text.contains("bytes=1048576"),
        "{text}{}",
        out.stderr_text()
    );
    let (_, t) = imap_login(&server, "ann@example.com", ANN_PW);
    assert!(t.starts_with("a OK"), "{t}");
    let (_, t) = imap_login(&server, "ann@example.com", "wrong");
    assert!(t.contains("[AUTHENTICATIONFAILED]"), "{t}");
    let (_, t) = imap_login(&server, "dan@example.com", DAN_PW);
    assert!(t.contains("[AUTHENTICATIONFAILED]"), "{t}");
    assert!(pop3_reply(&server, "ann@example.com", ANN_PW).starts_with("+OK"));
    assert!(rcpt_reply(&server, "ann@example.com").starts_with("250"));
    assert!(rcpt_reply(&server, "nobody@example.com").starts_with("550"));

    std::fs::write(dir.path().join("down"), "").unwrap();
    let (_, t) = imap_login(&server, "ann@example.com", ANN_PW);
    assert!(t.starts_with("a OK"), "cached while down: {t}");
    let (_, t) = imap_login(&server, "eve@example.com", EVE_PW);
    assert!(t.starts_with("a NO [UNAVAILABLE]"), "{t}");
    assert!(rcpt_reply(&server, "eve@example.com").starts_with("451"));
    std::fs::remove_file(dir.path().join("down")).unwrap();
    let (_, t) = imap_login(&server, "eve@example.com", EVE_PW);
    assert!(t.starts_with("a OK"), "after recovery: {t}");
}

/// A node with `dbs` (TOML `[[passdb]]` / `[[userdb]]` sections) in front of the harness's
/// own passwd-file passdb and userdb.
fn start_with(settings: &str, dbs: &str) -> Server {
    Server::start(ServerSpec {
        wait_for: vec![Proto::Imap, Proto::Pop3, Proto::Lmtp],
        extra_toml: format!("auth_failure_delay = \"0 secs\"\n{settings}\n\n{dbs}"),
        ..Default::default()
    })
    .expect("start node")
}

/// The quota line a logged-in session reports for INBOX.
fn quota_line(c: &mut LineConn) -> String {
    let r = c.imap("q", "GETQUOTAROOT INBOX").expect("getquotaroot");
    assert!(tagged(&r).starts_with("q OK"), "{r:?}");
    r.iter()
        .find(|l| l.starts_with("* QUOTA "))
        .cloned()
        .unwrap_or_default()
}

/// Postfixadmin's query with the user_query's columns moved into the password_query as
/// `userdb_*` (Dovecot's prefetch set-up), on SQLite. After a login the `prefetch` userdb
/// answers from that one query (the quota the session enforces is the row's); LMTP has
/// no passdb answer, so the next userdb answers: the harness's passwd-file (which does
/// not know ann: 550) in one node, the SQL user_query (250) in the other.
#[test]
fn sqlite_prefetch_userdb_fields_in_the_password_query() {
    if missing_tool("sqlite3") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("postfix.sqlite");
    let ann = node_hash("ARGON2ID", ANN_PW);
    let out = run(
        Command::new("sqlite3")
            .arg(&db)
            .arg(mailbox_sql("sqlite", &ann)),
        None,
        Duration::from_secs(30),
    )
    .unwrap();
    assert!(out.status.success(), "{}", out.stderr_text());
    let conf = dir.path().join("dovecot-sql.conf.ext");
    std::fs::write(
        &conf,
        format!(
            "driver = sqlite\n\
             connect = {}\n\
             default_pass_scheme = PLAIN\n\
             password_query = SELECT username AS user, password, \\\n  \
               '/var/vmail/' || maildir AS userdb_home, 2000 AS userdb_uid, 2000 AS userdb_gid, \\\n  \
               '*:bytes=' || quota AS userdb_quota_rule \\\n  \
               FROM mailbox WHERE username = '%u' AND active = '1'\n\
             user_query = SELECT '/var/vmail/' || maildir AS home, 2000 AS uid, 2000 AS gid, \\\n  \
               '*:bytes=' || quota AS quota_rule FROM mailbox WHERE username = '%u' AND active = '1'\n",
            db.display()
        ),
    )
    .unwrap();
    let passdb = format!(
        "[[passdb]]\ndriver = \"sql\"\nargs = \"{}\"\n",
        conf.display()
    );
    let prefetch = "[[userdb]]\ndriver = \"prefetch\"\n";

    // prefetch, then the harness's passwd-file.
    let server = start_with("", &format!("{passdb}\n{prefetch}"));
    let out = server.admin(&["auth", "test", "ann@example.com", ANN_PW]);
    let text = out.stdout_text();
    assert!(
        text.contains("auth succeeded")
            && text.contains("/var/vmail/example.com/ann/")
            && text.contains("bytes=10485760"),
        "{text}{}",
        out.stderr_text()
    );
    let (mut c, t) = imap_login(&server, "ann@example.com", ANN_PW);
    assert!(t.starts_with("a OK"), "{t}");
    let q = quota_line(&mut c);
    assert!(
        q.contains("STORAGE 0 10240"),
        "the row's userdb_quota_rule: {q}"
    );
    c.imap("z", "LOGOUT").ok();
    // eve's row has quota 0 (no limit): her session has no STORAGE limit.
    let (mut c, t) = imap_login(&server, "eve@example.com", EVE_PW);
    assert!(t.starts_with("a OK"), "{t}");
    let q = quota_line(&mut c);
    assert!(!q.contains("STORAGE"), "{q}");
    c.imap("z", "LOGOUT").ok();
    // No passdb lookup in LMTP: prefetch has nothing, the passwd-file does not know ann.
    let r = rcpt_reply(&server, "ann@example.com");
    assert!(
        r.starts_with("550"),
        "LMTP must not see prefetched fields: {r}"
    );
    let out = server.admin(&["user", "ann@example.com"]);
    assert!(
        !out.stdout_text().contains("/var/vmail/"),
        "{}",
        out.stdout_text()
    );
    drop(server);

    // prefetch, then the SQL user_query: LMTP and `node user` are answered by it.
    let sql_userdb = format!(
        "[[userdb]]\ndriver = \"sql\"\nargs = \"{}\"\n",
        conf.display()
    );
    let server = start_with("", &format!("{passdb}\n{prefetch}\n{sql_userdb}"));
    let r = rcpt_reply(&server, "ann@example.com");
    assert!(r.starts_with("250"), "{r}");
    let out = server.admin(&["user", "ann@example.com"]);
    assert!(
        out.stdout_text().contains("/var/vmail/example.com/ann/"),
        "{}",
        out.stdout_text()
    );
    assert!(rcpt_reply(&server, "dan@example.com").starts_with("550"));
    let (mut c, t) = imap_login(&server, "ann@example.com", ANN_PW);
    assert!(t.starts_with("a OK"), "{t}");
    assert!(quota_line(&mut c).contains("STORAGE 0 10240"));
    c.imap("z", "LOGOUT").ok();
    let (_, t) = imap_login(&server, "dan@example.com", DAN_PW);
    assert!(t.contains("[AUTHENTICATIONFAILED]"), "{t}");
}

/// Dovecot 2.3's default_fields / override_fields (with variables) and username_filter
/// on passwd-file and static databases: a static "shared" password only for
/// *@shared.test, userdb defaults under the file's own fields and overrides over them,
/// and a catch-all userdb that only answers for *@shared.test.
#[test]
fn passwd_file_default_override_fields_and_username_filter() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    std::fs::write(
        &users,
        format!(
            "ann@example.com:{{PLAIN}}{ANN_PW}:1000:1000::::\n\
             eve@example.com:{{PLAIN}}{EVE_PW}:1000:1000::/home/eve::userdb_quota_rule=*:storage=3M\n"
        ),
    )
    .unwrap();
    let u = users.display();
    let dbs = format!(
        "[[passdb]]\ndriver = \"static\"\nargs = \"password=shared\"\nusername_filter = \"*@shared.test !root@*\"\n\n\
         [[passdb]]\ndriver = \"passwd-file\"\nargs = \"{u}\"\n\n\
         [[userdb]]\ndriver = \"passwd-file\"\nargs = \"{u}\"\n\
         default_fields = \"home=/var/vmail/%d/%n quota_rule=*:storage=1M\"\n\
         override_fields = \"uid=2000 mail_note=\\\"%u via %{{userdb:uid}}\\\"\"\n\n\
         [[userdb]]\ndriver = \"static\"\nargs = \"allow_all_users=yes\"\n\
         username_filter = \"*@shared.test\"\noverride_fields = \"home=/srv/shared/%n\"\n"
    );
    let server = start_with("", &dbs);

    // The static passdb is asked only for *@shared.test.
    let (_, t) = imap_login(&server, "ann@example.com", "shared");
    assert!(t.contains("[AUTHENTICATIONFAILED]"), "{t}");
    let (mut c, t) = imap_login(&server, "ann@example.com", ANN_PW);
    assert!(t.starts_with("a OK"), "{t}");
    // default_fields' quota_rule: the file has none for ann.
    assert!(quota_line(&mut c).contains("STORAGE 0 1024"));
    c.imap("z", "LOGOUT").ok();
    let (mut c, t) = imap_login(&server, "guest@shared.test", "shared");
    assert!(t.starts_with("a OK"), "{t}");
    c.imap("z", "LOGOUT").ok();
    let (_, t) = imap_login(&server, "root@shared.test", "shared");
    assert!(t.contains("[AUTHENTICATIONFAILED]"), "excluded: {t}");

    // userdb fields: defaults under the file's, overrides over them, variables expanded.
    let out = server.admin(&["user", "ann@example.com"]);
    let text = out.stdout_text();
    assert!(
        text.contains("home\t/var/vmail/example.com/ann")
            && text.contains("uid\t2000")
            && text.contains("gid\t1000")
            && text.contains("mail_note\tann@example.com via 1000")
            && text.contains("bytes=1048576"),
        "{text}{}",
        out.stderr_text()
    );
    let out = server.admin(&["user", "eve@example.com"]);
    let text = out.stdout_text();
    assert!(
        text.contains("/home/eve") && text.contains("bytes=3145728"),
        "the file's own fields win over default_fields: {text}"
    );
    let out = server.admin(&["user", "guest@shared.test"]);
    assert!(
        out.stdout_text().contains("/srv/shared/guest"),
        "{}",
        out.stdout_text()
    );
    // The catch-all userdb does not answer outside its filter.
    assert!(rcpt_reply(&server, "guest@shared.test").starts_with("250"));
    let r = rcpt_reply(&server, "nobody@example.com");
    assert!(r.starts_with("550"), "{r}");
}

/// The auth cache past its TTL while the passwd-file is gone (Dovecot falls back to
/// expired cache data on an internal failure): ann, seen once, keeps logging in, opening
/// her mailbox and receiving mail; eve, never seen, gets the temporary failure; with the
/// file back, eve logs in.
#[test]
fn passwd_file_expired_cache_entries_serve_while_the_file_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    let away = dir.path().join("users.away");
    std::fs::write(
        &users,
        format!(
            "ann@example.com:{{PLAIN}}{ANN_PW}::::::\neve@example.com:{{PLAIN}}{EVE_PW}::::::\n"
        ),
    )
    .unwrap();
    let u = users.display();
    let server = start_with(
        "auth_cache_ttl = \"1 secs\"\nauth_cache_negative_ttl = \"1 secs\"",
        &format!(
            "[[passdb]]\ndriver = \"passwd-file\"\nargs = \"{u}\"\n\n\
             [[userdb]]\ndriver = \"passwd-file\"\nargs = \"{u}\"\n"
        ),
    );
    let (mut c, t) = imap_login(&server, "ann@example.com", ANN_PW);
    assert!(t.starts_with("a OK"), "{t}");
    let r = c.imap("s", "SELECT INBOX").expect("select");
    assert!(tagged(&r).starts_with("s OK"), "{r:?}");
    c.imap("z", "LOGOUT").ok();
    assert!(rcpt_reply(&server, "ann@example.com").starts_with("250"));

    std::fs::rename(&users, &away).unwrap();
    // Past the TTL: every entry has expired.
    std::thread::sleep(Duration::from_millis(1500));
    let (mut c, t) = imap_login(&server, "ann@example.com", ANN_PW);
    assert!(t.starts_with("a OK"), "expired but served while down: {t}");
    let r = c.imap("s", "SELECT INBOX").expect("select");
    assert!(tagged(&r).starts_with("s OK"), "{r:?}");
    c.imap("z", "LOGOUT").ok();
    let (_, t) = imap_login(&server, "ann@example.com", "wrong");
    assert!(
        t.starts_with("a NO"),
        "a wrong password is never served: {t}"
    );
    let replies = lmtp_deliver(
        server.addr(Proto::Lmtp),
        "sender@example.net",
        &["ann@example.com"],
        &sample_message("During the outage", "Still delivered."),
    )
    .expect("lmtp");
    assert!(replies[0].starts_with("250"), "{replies:?}");
    let (_, t) = imap_login(&server, "eve@example.com", EVE_PW);
    assert!(t.starts_with("a NO [UNAVAILABLE]"), "never seen: {t}");
    assert!(rcpt_reply(&server, "eve@example.com").starts_with("451"));
    let r = pop3_reply(&server, "eve@example.com", EVE_PW);
    assert!(r.starts_with("-ERR [SYS/TEMP]"), "{r}");

    std::fs::rename(&away, &users).unwrap();
    let (_, t) = imap_login(&server, "eve@example.com", EVE_PW);
    assert!(t.starts_with("a OK"), "after recovery: {t}");
}
