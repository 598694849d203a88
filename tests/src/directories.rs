//! Real directory servers for the user-database tests, started on loopback with a private
//! data directory under a tempdir and a free port: PostgreSQL, MariaDB and OpenLDAP's
//! slapd, from Debian's packages (scripts/install-test-deps.sh). Each can be stopped and
//! started again on the same port and data, to show the node riding out an outage.
//! Missing server binaries skip the test with a message (and fail it in CI, where the
//! install script put them).

use crate::fixtures::free_port;
use crate::process::run;
use anyhow::{bail, Context, Result};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The first existing path among `candidates` (globs on the version directory resolved),
/// or None after saying the test is skipped (a panic in CI).
fn find(what: &str, package: &str, candidates: &[&str]) -> Option<PathBuf> {
    for c in candidates {
        // /usr/lib/postgresql/*/bin/initdb: the newest version directory.
        if c.contains('*') {
            let (head, tail) = c.split_once('*').unwrap_or((c, ""));
            let mut found: Vec<PathBuf> = std::fs::read_dir(head)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path().join(tail.trim_start_matches('/')))
                .filter(|p| p.exists())
                .collect();
            found.sort();
            if let Some(p) = found.pop() {
                return Some(p);
            }
        } else if Path::new(c).exists() {
            return Some(PathBuf::from(c));
        }
    }
    if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
        panic!("{what} is not installed: scripts/install-test-deps.sh installs {package}");
    }
    eprintln!("SKIPPED: {what} is not installed (apt-get install {package}, or run scripts/install-test-deps.sh)");
    None
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and touches no memory.
    #[allow(unsafe_code)]
    unsafe {
        libc::geteuid() == 0
    }
}

/// uid and gid of a system account (`postgres`, `mysql`), from `id`.
fn account(name: &str) -> Result<(u32, u32)> {
    let id = |flag: &str| -> Result<u32> {
        let out = Command::new("id").args([flag, name]).output()?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .with_context(|| format!("no system account {name}"))
    };
    Ok((id("-u")?, id("-g")?))
}

fn chown(path: &Path, uid: u32, gid: u32) -> Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .with_context(|| format!("chown {}", path.display()))
}

fn wait_port(port: u16, child: &mut Child, log: &Path, within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            bail!(
                "server exited ({status}) before listening:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "server not listening on {port} within {within:?}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Postgres,
    MariaDb,
    Slapd,
}

/// A directory server the test owns; stopped on drop.
pub struct Directory {
    pub kind: Kind,
    pub port: u16,
    /// slapd with TLS: the ldaps:// port (StartTLS is offered on `port`).
    pub tls_port: Option<u16>,
    pub dir: PathBuf,
    server: PathBuf,
    child: Option<Child>,
    /// The client tool (psql, mariadb) for [`Directory::sql`].
    client: Option<PathBuf>,
    run_as: Option<(u32, u32)>,
    _tmp: tempfile::TempDir,
}

/// The LDAP tree's suffix and admin, as the tests' dovecot-ldap.conf.ext names them.
pub const LDAP_SUFFIX: &str = "dc=example,dc=com";
pub const LDAP_ADMIN: &str = "cn=admin,dc=example,dc=com";
pub const LDAP_ADMIN_PW: &str = "secret";
/// The SQL account the node connects as.
pub const SQL_USER: &str = "postfix";
pub const SQL_PASSWORD: &str = "pf secret";
pub const SQL_DB: &str = "postfix";

impl Directory {
    fn new(kind: Kind, server: PathBuf, client: Option<PathBuf>) -> Result<Directory> {
        let tmp = tempfile::Builder::new().prefix("node-dir-").tempdir()?;
        let dir = tmp.path().to_path_buf();
        Ok(Directory {
            kind,
            port: free_port(),
            tls_port: None,
            dir,
            server,
            child: None,
            client,
            run_as: None,
            _tmp: tmp,
        })
    }

    /// PostgreSQL with a `postfix` database and account (password auth on TCP).
    pub fn postgres() -> Result<Option<Directory>> {
        let pg = &[
            "/usr/lib/postgresql/*/bin/postgres",
            "/usr/local/bin/postgres",
        ];
        let (Some(server), Some(initdb), Some(psql)) = (
            find("PostgreSQL (postgres)", "postgresql", pg),
            find(
                "PostgreSQL (initdb)",
                "postgresql",
                &["/usr/lib/postgresql/*/bin/initdb", "/usr/local/bin/initdb"],
            ),
            find("psql", "postgresql-client", &["/usr/bin/psql"]),
        ) else {
            return Ok(None);
        };
        let mut d = Directory::new(Kind::Postgres, server, Some(psql))?;
        if is_root() {
            let (uid, gid) = account("postgres")?;
            chown(&d.dir, uid, gid)?;
            d.run_as = Some((uid, gid));
        }
        let pwfile = d.dir.join("pw");
        std::fs::write(&pwfile, "admin\n")?;
        if let Some((uid, gid)) = d.run_as {
            chown(&pwfile, uid, gid)?;
        }
        let mut init = Command::new(initdb);
        init.args(["-D", "data", "-U", "postgres", "--no-sync", "-E", "UTF8"])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .current_dir(&d.dir);
        d.as_owner(&mut init);
        let out = run(&mut init, None, Duration::from_secs(60))?;
        if !out.status.success() {
            bail!("initdb failed: {}", out.stderr_text());
        }
        d.start()?;
        d.sql(&format!(
            "CREATE ROLE {SQL_USER} LOGIN PASSWORD '{SQL_PASSWORD}'; CREATE DATABASE {SQL_DB} OWNER {SQL_USER};"
        ))?;
        Ok(Some(d))
    }

    /// MariaDB with a `postfix` database and account.
    pub fn mariadb() -> Result<Option<Directory>> {
        let (Some(server), Some(install), Some(client)) = (
            find(
                "MariaDB (mariadbd)",
                "mariadb-server",
                &["/usr/sbin/mariadbd", "/usr/sbin/mysqld"],
            ),
            find(
                "MariaDB (mariadb-install-db)",
                "mariadb-server",
                &["/usr/bin/mariadb-install-db", "/usr/bin/mysql_install_db"],
            ),
            find(
                "mariadb client",
                "mariadb-client",
                &["/usr/bin/mariadb", "/usr/bin/mysql"],
            ),
        ) else {
            return Ok(None);
        };
        let mut d = Directory::new(Kind::MariaDb, server, Some(client))?;
        let mut install = Command::new(install);
        install
            .arg("--no-defaults")
            .arg(format!("--datadir={}", d.dir.join("data").display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .current_dir(&d.dir);
        if is_root() {
            let (uid, gid) = account("mysql")?;
            chown(&d.dir, uid, gid)?;
            d.run_as = Some((uid, gid));
            install.arg("--user=mysql");
        }
        let out = run(&mut install, None, Duration::from_secs(120))?;
        if !out.status.success() {
            bail!("mariadb-install-db failed: {}", out.stderr_text());
        }
        d.start()?;
        d.sql(&format!(
            "CREATE DATABASE {SQL_DB}; CREATE USER '{SQL_USER}'@'127.0.0.1' IDENTIFIED BY '{SQL_PASSWORD}'; \
             GRANT SELECT ON {SQL_DB}.* TO '{SQL_USER}'@'127.0.0.1';"
        ))?;
        Ok(Some(d))
    }

    /// slapd (back_mdb) holding `ldif` under [`LDAP_SUFFIX`]; the admin may read
    /// userPassword, users may bind.
    pub fn slapd(ldif: &str) -> Result<Option<Directory>> {
        Self::slapd_with(ldif, None)
    }

    /// [`Directory::slapd`] with TLS: `tls` is (certificate chain, key) in PEM; ldaps:// on
    /// `tls_port`, StartTLS on `port`.
    pub fn slapd_with(ldif: &str, tls: Option<(&Path, &Path)>) -> Result<Option<Directory>> {
        let (Some(server), Some(slapadd)) = (
            find("OpenLDAP (slapd)", "slapd", &["/usr/sbin/slapd"]),
            find("OpenLDAP (slapadd)", "slapd", &["/usr/sbin/slapadd"]),
        ) else {
            return Ok(None);
        };
        let mut d = Directory::new(Kind::Slapd, server, None)?;
        std::fs::create_dir_all(d.dir.join("db"))?;
        let tls_conf = match tls {
            Some((cert, key)) => {
                d.tls_port = Some(free_port());
                format!(
                    "TLSCertificateFile {}\nTLSCertificateKeyFile {}\n",
                    cert.display(),
                    key.display()
                )
            }
            None => String::new(),
        };
        let conf = format!(
            "{tls_conf}include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/nis.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             pidfile {dir}/slapd.pid\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n\
             database mdb\n\
             maxsize 10485760\n\
             suffix \"{LDAP_SUFFIX}\"\n\
             rootdn \"{LDAP_ADMIN}\"\n\
             rootpw {LDAP_ADMIN_PW}\n\
             directory {dir}/db\n\
             access to attrs=userPassword by self write by anonymous auth by * none\n\
             access to * by * read\n",
            dir = d.dir.display()
        );
        std::fs::write(d.dir.join("slapd.conf"), conf)?;
        std::fs::write(d.dir.join("data.ldif"), ldif)?;
        let out = run(
            Command::new(slapadd)
                .args(["-f", "slapd.conf", "-l", "data.ldif"])
                .current_dir(&d.dir),
            None,
            Duration::from_secs(60),
        )?;
        if !out.status.success() {
            bail!("slapadd failed: {}", out.stderr_text());
        }
        d.start()?;
        Ok(Some(d))
    }

    fn as_owner(&self, cmd: &mut Command) {
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
    }

    /// Starts (or starts again) the server on its port and data.
    pub fn start(&mut self) -> Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        let log = self.dir.join("server.log");
        let mut cmd = Command::new(&self.server);
        match self.kind {
            Kind::Postgres => {
                cmd.args(["-D", "data", "-p", &self.port.to_string()])
                    .args(["-c", "listen_addresses=127.0.0.1"])
                    .arg("-c")
                    .arg(format!("unix_socket_directories={}", self.dir.display()))
                    .args(["-c", "fsync=off", "-c", "shared_buffers=16MB"]);
                self.as_owner(&mut cmd);
            }
            Kind::MariaDb => {
                cmd.arg("--no-defaults")
                    .arg(format!("--datadir={}", self.dir.join("data").display()))
                    .arg(format!("--port={}", self.port))
                    .arg("--bind-address=127.0.0.1")
                    .arg(format!("--socket={}", self.dir.join("sock").display()))
                    .arg(format!("--pid-file={}", self.dir.join("pid").display()))
                    .args(["--innodb-buffer-pool-size=16M", "--skip-name-resolve"])
                    .arg("--innodb-flush-log-at-trx-commit=0");
                if self.run_as.is_some() {
                    cmd.arg("--user=mysql");
                }
            }
            Kind::Slapd => {
                let mut urls = format!("ldap://127.0.0.1:{}/", self.port);
                if let Some(p) = self.tls_port {
                    urls.push_str(&format!(" ldaps://127.0.0.1:{p}/"));
                }
                cmd.args(["-f", "slapd.conf", "-d", "0", "-h", &urls]);
            }
        }
        let out = std::fs::File::create(&log)?;
        cmd.current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("start {}", self.server.display()))?;
        if let Err(e) = wait_port(self.port, &mut child, &log, Duration::from_secs(60)) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
        self.child = Some(child);
        Ok(())
    }

    /// Stops the server (a clean, fast shutdown) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGINT is PostgreSQL's fast shutdown (SIGTERM would wait for the node's
            // pooled connections); MariaDB and slapd stop on SIGTERM.
            let sig = match self.kind {
                Kind::Postgres => libc::SIGINT,
                Kind::MariaDb | Kind::Slapd => libc::SIGTERM,
            };
            // SAFETY: kill(2) on our own child's pid; no memory is involved.
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(child.id() as i32, sig)
            };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs SQL statements as the database's administrator.
    pub fn sql(&self, statements: &str) -> Result<()> {
        let client = self.client.as_ref().context("not an SQL server")?;
        let mut cmd = Command::new(client);
        match self.kind {
            Kind::Postgres => {
                cmd.arg("-h")
                    .arg(&self.dir)
                    .args(["-p", &self.port.to_string(), "-U", "postgres"])
                    .args(["-v", "ON_ERROR_STOP=1", "-q", "-d"])
                    .arg(if statements.contains("CREATE DATABASE") {
                        "postgres"
                    } else {
                        SQL_DB
                    });
                self.as_owner(&mut cmd);
                // CREATE DATABASE cannot run inside the implicit transaction of -c: one
                // statement per -c.
                for s in statements
                    .split(';')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                {
                    cmd.arg("-c").arg(s);
                }
            }
            Kind::MariaDb => {
                cmd.arg("--no-defaults")
                    .arg(format!("--socket={}", self.dir.join("sock").display()))
                    .args(["-u", "root", "-e", statements]);
                if !statements.contains("CREATE DATABASE") {
                    cmd.arg(SQL_DB);
                }
            }
            Kind::Slapd => bail!("not an SQL server"),
        }
        let out = run(cmd.current_dir(&self.dir), None, Duration::from_secs(60))?;
        if !out.status.success() {
            bail!("{} failed: {}", client.display(), out.stderr_text());
        }
        Ok(())
    }
}

impl Drop for Directory {
    fn drop(&mut self) {
        self.stop();
    }
}
