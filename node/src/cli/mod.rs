//! The command line: `node serve` and the doveadm-like admin commands.

#[macro_use]
mod out;
mod admin_cmds;
mod auth_cmds;
mod cluster_cmds;
mod config_cmds;
mod doctor;
mod health;
mod imap_import;
mod notify;
mod transfer_cmds;

use crate::config::{self, Config};
use crate::server::Origin;
use anyhow::Context as _;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "node",
    version,
    about = "Replicated mail node: IMAP, POP3, LMTP over a local store"
)]
pub struct Cli {
    /// Configuration file (TOML). Admin commands without one use /etc/node/node.toml when it
    /// exists, else the embedded default when ./data is here (see docs/operations.md).
    #[arg(
        short = 'c',
        long,
        global = true,
        env = "NODE_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,
    /// Machine-readable output: one JSON document.
    #[arg(long, global = true)]
    pub json: bool,
    /// doveadm's output formatter: `json` is --json; `flow`, `tab`, `table`, `pager` print
    /// the text form.
    #[arg(short = 'f', long = "formatter", global = true, value_parser = ["json", "flow", "tab", "table", "pager"])]
    pub formatter: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server.
    Serve,
    /// Settings: all of them (doveconf), `-n` the non-default ones, KEY... some, `check`.
    #[command(args_conflicts_with_subcommands = true)]
    Config {
        #[command(subcommand)]
        what: Option<ConfigCmd>,
        /// Only the settings that differ from the defaults (doveconf -n).
        #[arg(short = 'n')]
        non_default: bool,
        /// Every setting (doveconf -a; the default without KEY).
        #[arg(short = 'a')]
        all: bool,
        /// Values only, without `key =` (doveconf -h).
        #[arg(short = 'H', long = "hide-key")]
        hide_key: bool,
        /// Settings to show: `ssl`, `auth_failure_limit`, `storage.data_dir`, or a section.
        keys: Vec<String>,
    },
    /// Print a password hash for a passwd-file (doveadm pw).
    Pw {
        /// ARGON2ID, ARGON2I, SHA512-CRYPT, SHA256-CRYPT, MD5-CRYPT (weak: old installs), CRAM-MD5, BLF-CRYPT, PLAIN, SCRAM-SHA-1, SCRAM-SHA-256.
        #[arg(short = 's', long = "scheme", default_value = "ARGON2ID")]
        scheme: String,
        /// The password; asked for on the terminal (or read from stdin) when not given.
        #[arg(short = 'p', long = "password")]
        password: Option<String>,
    },
    /// Authentication tools (doveadm auth).
    Auth {
        #[command(subcommand)]
        what: AuthCmd,
    },
    /// userdb lookup (doveadm user): `node user alice`, `node user '*@example.com'`, `node user list`.
    User {
        /// User names or masks (`*`, `?`); `list` lists every user.
        #[arg(required = true)]
        masks: Vec<String>,
    },
    /// Failed-login lock-outs per client address (doveadm penalty); `clear IP` lifts one.
    Penalty {
        #[command(subcommand)]
        what: Option<PenaltyCmd>,
    },
    /// The running node's log file (doveadm log).
    Log {
        #[command(subcommand)]
        what: LogCmd,
    },
    /// Logged-in sessions of the running node (doveadm who).
    Who {
        /// Only users matching this mask.
        mask: Option<String>,
    },
    /// Disconnect a user's sessions (doveadm kick).
    Kick {
        /// User name or mask (`*`, `?`).
        mask: String,
    },
    /// The running node's counters (doveadm stats dump).
    Stats,
    /// Mailboxes of a user (doveadm mailbox).
    Mailbox {
        #[command(subcommand)]
        what: MailboxCmd,
    },
    /// Print fields of messages matching a search query (doveadm fetch).
    Fetch {
        #[command(flatten)]
        sel: UserSel,
        /// Space-separated fields: mailbox mailbox-guid uid seq guid flags modseq size.physical
        /// size.virtual date.received date.saved hdr hdr.NAME body text.
        fields: String,
        /// Search query (doveadm-search-query: `mailbox INBOX unseen`, `all`).
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true)]
        query: Vec<String>,
    },
    /// Mailbox GUID and UID of messages matching a search query (doveadm search).
    Search {
        #[command(flatten)]
        sel: UserSel,
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true)]
        query: Vec<String>,
    },
    /// Expunge the messages matching a search query (doveadm expunge).
    Expunge {
        #[command(flatten)]
        sel: UserSel,
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true)]
        query: Vec<String>,
    },
    /// Copy the messages matching a search query into DESTINATION (doveadm copy).
    Copy {
        #[command(flatten)]
        sel: UserSel,
        destination: String,
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true)]
        query: Vec<String>,
    },
    /// Move the messages matching a search query into DESTINATION (doveadm move).
    Move {
        #[command(flatten)]
        sel: UserSel,
        destination: String,
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true)]
        query: Vec<String>,
    },
    /// Change flags of the messages matching a search query (doveadm flags).
    Flags {
        #[command(subcommand)]
        what: FlagsCmd,
    },
    /// Rebuild a user's index from the change log (doveadm force-resync).
    ForceResync {
        #[command(flatten)]
        sel: UserSel,
        /// Accepted as doveadm takes it; the index is per user, so the whole user is rebuilt.
        mailbox_mask: Option<String>,
    },
    /// Reclaim the space of expunged messages (doveadm purge).
    Purge(UserSel),
    /// Quota (doveadm quota).
    Quota {
        #[command(subcommand)]
        what: QuotaCmd,
    },
    /// A user's Sieve scripts (doveadm sieve).
    Sieve {
        #[command(subcommand)]
        what: SieveCmd,
    },
    /// Import a Maildir tree, mbox files or a remote IMAP account, keeping UIDs,
    /// UIDVALIDITY, flags, keywords and dates (doveadm import/backup from Dovecot or mbsync,
    /// `doveadm backup -R imapc:`). Run again after an interruption, it goes on where it
    /// stopped and stores nothing twice.
    Import {
        /// The local user (for imap:// the URL's user when left out).
        #[arg(short = 'u', long = "user", conflicts_with = "all")]
        user: Option<String>,
        /// PATH is a mail root with one directory per user (`PATH/USER/Maildir` or
        /// `PATH/USER`): every user the userdb knows is imported.
        #[arg(short = 'A', long = "all")]
        all: bool,
        /// maildir (Dovecot's Maildir++ with dovecot-uidlist, mbsync's, or plain) or mbox
        /// (one file, or a directory of them). `maildir:PATH` / `mbox:PATH` say it too.
        #[arg(long, value_enum)]
        format: Option<crate::migrate::source::Format>,
        /// The mailbox an mbox file goes into (default INBOX).
        #[arg(short = 'm', long = "mailbox")]
        mailbox: Option<String>,
        #[command(flatten)]
        imap: transfer_cmds::ImapArgs,
        /// A Maildir or mbox path (`maildir:PATH`, `mbox:PATH`), or
        /// `imap://USER@HOST[:PORT]` / `imaps://USER@HOST[:PORT]`.
        path: String,
    },
    /// Export a user's mail as a Maildir with dovecot-uidlist, dovecot-keywords and
    /// subscriptions (Dovecot reads it with its UIDs; `node import` takes it back).
    Export {
        #[arg(short = 'u', long = "user")]
        user: String,
        #[arg(long, value_enum, default_value = "maildir")]
        format: ExportFormat,
        /// A new or empty directory.
        path: PathBuf,
    },
    /// Mailbox ACLs (doveadm acl), the ones IMAP's SETACL/GETACL use.
    Acl {
        #[command(subcommand)]
        what: AclCmd,
    },
    /// Exchange a user's changes with the peers now, both ways (doveadm sync).
    Sync {
        #[arg(
            short = 'u',
            long = "user",
            required_unless_present = "all",
            conflicts_with = "all"
        )]
        user: Option<String>,
        /// Every user of this node, with a progress bar.
        #[arg(short = 'A', long = "all")]
        all: bool,
        /// Only this peer (node id); default every peer.
        #[arg(long)]
        peer: Option<u32>,
        /// Compare everything rather than trusting version vectors.
        #[arg(long)]
        full: bool,
    },
    /// Replication state (running server).
    Replication {
        #[command(subcommand)]
        what: ReplicationCmd,
    },
    /// Cluster certificates for the peer links.
    Cluster {
        #[command(subcommand)]
        what: ClusterCmd,
    },
    /// Ask the running node whether it is healthy (exit 0) or not (exit 1); for keepalived.
    Health {
        /// Healthy and the active node (holds the writes).
        #[arg(long)]
        active: bool,
    },
    /// keepalived's notify script: log a VRRP transition and tell the running node.
    Notify {
        #[arg(value_enum)]
        state: crate::active::VrrpState,
    },
    /// The troubleshooting checklist against this node: each line OK or FAIL with the fix.
    Doctor {
        /// A user to test a login (and its INBOX) with; the embedded default uses demo/demo.
        #[arg(short = 'u', long = "user", requires = "password")]
        user: Option<String>,
        #[arg(short = 'p', long = "password", requires = "user")]
        password: Option<String>,
    },
    /// Run only the coordinator, as the witness voter of a two-node raft cluster (no mail).
    Witness,
    /// A cluster on this machine: nodes and keepalived in network namespaces (root only).
    Lab {
        #[command(subcommand)]
        what: crate::lab::LabCmd,
    },
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ExportFormat {
    Maildir,
    /// One mbox file per mailbox (`A/B` in `A.sbd/B`), Dovecot's X-UID, X-IMAPbase,
    /// Status, X-Status and X-Keywords headers.
    Mbox,
}

#[derive(Subcommand, Debug)]
pub enum AclCmd {
    /// Every entry of MAILBOX.
    Get {
        #[arg(short = 'u', long = "user")]
        user: String,
        mailbox: String,
    },
    /// Give ID (`user=NAME`, `anyone`, `authenticated`, `-user=NAME`) exactly these rights
    /// (names: lookup read write write-seen write-deleted insert post expunge create delete
    /// admin, or RFC 4314 letters).
    Set {
        #[arg(short = 'u', long = "user")]
        user: String,
        mailbox: String,
        id: String,
        #[arg(required = true)]
        rights: Vec<String>,
    },
    /// Add rights to ID's entry.
    Add {
        #[arg(short = 'u', long = "user")]
        user: String,
        mailbox: String,
        id: String,
        #[arg(required = true)]
        rights: Vec<String>,
    },
    /// Take rights from ID's entry.
    Remove {
        #[arg(short = 'u', long = "user")]
        user: String,
        mailbox: String,
        id: String,
        #[arg(required = true)]
        rights: Vec<String>,
    },
    /// Remove ID's entry.
    Delete {
        #[arg(short = 'u', long = "user")]
        user: String,
        mailbox: String,
        id: String,
    },
    /// The rights ID has on the mailbox (without ID: the user's own, doveadm acl my-rights).
    #[command(alias = "my-rights")]
    Rights {
        #[arg(short = 'u', long = "user")]
        user: String,
        mailbox: String,
        id: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCmd {
    /// Parse and check; print non-default settings.
    Check,
}

#[derive(Subcommand, Debug)]
pub enum AuthCmd {
    /// passdb lookup and password check, then the userdb fields (doveadm auth test).
    Test {
        /// Print each step of the lookup to stderr (doveadm auth test's debug output).
        #[arg(short = 'D')]
        debug: bool,
        /// Login information: `rip=192.0.2.1` is the client address allow_nets is checked against.
        #[arg(short = 'x', value_name = "KEY=VALUE")]
        info: Vec<String>,
        user: String,
        password: Option<String>,
    },
    /// passdb lookup without a password check (doveadm auth lookup).
    Lookup {
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// The running node's login cache (doveadm auth cache flush).
    Cache {
        #[command(subcommand)]
        what: AuthCacheCmd,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuthCacheCmd {
    /// Forget every cached login: the next logins check their password hashes again.
    Flush,
}

#[derive(Subcommand, Debug)]
pub enum PenaltyCmd {
    /// Lift the lock-out of IP (or, with --all, of every address).
    Clear {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        ip: Option<std::net::IpAddr>,
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum LogCmd {
    /// Reopen log_path (after logrotate moved it); SIGUSR1 does the same.
    Reopen,
}

#[derive(Subcommand, Debug)]
pub enum MailboxCmd {
    List {
        #[command(flatten)]
        sel: UserSel,
    },
    /// messages, unseen, uidnext, uidvalidity, highestmodseq, vsize, guid: `[MAILBOX]`, or
    /// doveadm's `'FIELDS' MAILBOX_MASK` (`all` or e.g. 'messages vsize'; `*` and `%`).
    Status {
        #[command(flatten)]
        sel: UserSel,
        #[arg(num_args = 0..=2)]
        args: Vec<String>,
    },
    Create {
        #[command(flatten)]
        sel: UserSel,
        /// Subscribe it too.
        #[arg(short = 's')]
        subscribe: bool,
        #[arg(required = true)]
        mailboxes: Vec<String>,
    },
    Delete {
        #[command(flatten)]
        sel: UserSel,
        #[arg(required = true)]
        mailboxes: Vec<String>,
    },
    Rename {
        #[command(flatten)]
        sel: UserSel,
        old: String,
        new: String,
    },
    Subscribe {
        #[command(flatten)]
        sel: UserSel,
        #[arg(required = true)]
        mailboxes: Vec<String>,
    },
    Unsubscribe {
        #[command(flatten)]
        sel: UserSel,
        #[arg(required = true)]
        mailboxes: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum FlagsCmd {
    Add {
        #[command(flatten)]
        sel: UserSel,
        /// Space-separated: `\Seen \Flagged $Label1`.
        flags: String,
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true)]
        query: Vec<String>,
    },
    Remove {
        #[command(flatten)]
        sel: UserSel,
        flags: String,
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true)]
        query: Vec<String>,
    },
    Replace {
        #[command(flatten)]
        sel: UserSel,
        flags: String,
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true)]
        query: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ReplicationCmd {
    /// Per peer and per user: how far behind (records, bytes, seconds).
    Status,
}

#[derive(Subcommand, Debug)]
pub enum ClusterCmd {
    /// Make the cluster CA in [cluster] certs_dir (ca.pem, ca.key).
    Init,
    /// Issue node NODE's certificate (node.pem, node.key) signed by the CA in certs_dir.
    Cert {
        node: u32,
        /// Extra host names or IPs for the certificate.
        #[arg(long = "hostname")]
        hostnames: Vec<String>,
        /// Where to write; default certs_dir for this node's own id, else certs_dir/node-NODE.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Raft mode: members, leader, active node, epoch, peer links and replication backlog.
    Status,
    /// Raft mode: hand the active role to NODE (run on the active node).
    TransferActive { node: u32 },
    /// Raft mode: add NODE to the group (run on the leader).
    Add {
        node: u32,
        /// host:port of its coordination listener ([cluster] raft_listen there).
        #[arg(long)]
        raft_address: String,
        /// A witness: votes, stores no mail, never active.
        #[arg(long)]
        witness: bool,
    },
    /// Raft mode: remove NODE from the group (run on the leader).
    Remove { node: u32 },
}

#[derive(Subcommand, Debug)]
pub enum SieveCmd {
    /// The scripts, the active one marked ACTIVE.
    List {
        #[arg(short = 'u', long = "user")]
        user: String,
    },
    /// Print a script.
    Get {
        #[arg(short = 'u', long = "user")]
        user: String,
        name: String,
    },
    /// Store a script from FILE (or standard input); it must compile.
    Put {
        #[arg(short = 'u', long = "user")]
        user: String,
        /// Make it the active script too.
        #[arg(short = 'a', long = "activate")]
        activate: bool,
        name: String,
        file: Option<PathBuf>,
    },
    Activate {
        #[arg(short = 'u', long = "user")]
        user: String,
        name: String,
    },
    Deactivate {
        #[arg(short = 'u', long = "user")]
        user: String,
    },
    Delete {
        #[arg(short = 'u', long = "user")]
        user: String,
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum QuotaCmd {
    Get {
        #[command(flatten)]
        sel: UserSel,
    },
    /// Recount the usage from the change log (rebuilds the index the counters live in).
    Recalc {
        #[command(flatten)]
        sel: UserSel,
    },
    /// Set a user's limits: `storage=1G`, `messages=1000` (0 = unlimited), written as
    /// userdb_quota_rule into the user's line of the passwd-file (the node re-reads it).
    Set {
        #[arg(short = 'u', long = "user")]
        user: String,
        #[arg(required = true)]
        limits: Vec<String>,
    },
}

#[derive(clap::Args, Debug, Clone)]
pub struct UserSel {
    /// A user, or a mask with `*` and `?` (matched against the userdb and the stores here).
    #[arg(
        short = 'u',
        long = "user",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub user: Option<String>,
    /// Every user of this node.
    #[arg(short = 'A', long = "all")]
    pub all: bool,
}

/// The configuration and where it came from (`node serve`: no file = the embedded default).
pub fn load_config(path: Option<&PathBuf>) -> anyhow::Result<(Config, Origin)> {
    match path {
        Some(p) => Ok((config::load_file(p)?, Origin::File)),
        None => Ok((Config::embedded(), Origin::Embedded)),
    }
}

/// Where admin commands look when neither `-c` nor NODE_CONFIG is given, as doveadm reads
/// /etc/dovecot/dovecot.conf (the path deploy/ uses).
pub const SYSTEM_CONFIG: &str = "/etc/node/node.toml";

/// The configuration for an admin command. Without `-c`: /etc/node/node.toml if it exists;
/// else the embedded default, but only where the embedded server keeps its data (./data
/// exists): an admin command must not make an empty ./data store in whatever directory it
/// was run from, and then report on that instead of the real one.
pub fn admin_config(path: Option<&PathBuf>) -> anyhow::Result<(Config, Origin)> {
    if path.is_some() {
        return load_config(path);
    }
    let system = PathBuf::from(SYSTEM_CONFIG);
    if system.exists() {
        return Ok((config::load_file(&system)?, Origin::File));
    }
    let embedded = Config::embedded();
    anyhow::ensure!(
        embedded.data_dir().exists(),
        "no configuration: pass -c FILE (or set NODE_CONFIG=FILE); {SYSTEM_CONFIG} does not \
         exist, and there is no ./data here for the embedded default (run the command in the \
         directory where `node serve` runs without a configuration)"
    );
    Ok((embedded, Origin::Embedded))
}

/// Runs the command; the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    let json = cli.json || cli.formatter.as_deref() == Some("json");
    match cli.command {
        Command::Serve => {
            let (config, origin) = load_config(cli.config.as_ref())?;
            crate::logging::init(&config.log_path, config.log_format)?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the tokio runtime")?;
            let log_to_file = !config.log_path.is_empty();
            if let Err(e) = rt.block_on(crate::server::run(config, origin)) {
                // stderr gets it from main; a log file must say why the server stopped too.
                if log_to_file {
                    tracing::error!("{e:#}");
                }
                return Err(e);
            }
            // Sessions still finishing after the shutdown timeout are not waited for.
            rt.shutdown_timeout(std::time::Duration::from_millis(100));
            Ok(0)
        }
        Command::Config {
            what: Some(ConfigCmd::Check),
            ..
        } => {
            crate::logging::init_cli();
            config_cmds::check(cli.config.as_ref())
        }
        Command::Config {
            what: None,
            non_default,
            all,
            hide_key,
            keys,
        } => {
            crate::logging::init_cli();
            let (config, _) = if cli.config.is_some() || PathBuf::from(SYSTEM_CONFIG).exists() {
                admin_config(cli.config.as_ref())?
            } else {
                // Showing the embedded default's settings creates nothing.
                load_config(None)?
            };
            config_cmds::show(
                &config,
                &config_cmds::ShowOpts {
                    non_default: non_default && !all,
                    hide_key,
                    json,
                    keys,
                },
            )
        }
        Command::Pw { scheme, password } => auth_cmds::pw(&scheme, password),
        Command::Auth { what } => {
            crate::logging::init_cli();
            let (config, _) = admin_config(cli.config.as_ref())?;
            auth_cmds::run(&config, what, json)
        }
        Command::Cluster { what } => {
            let (config, _) = admin_config(cli.config.as_ref())?;
            cluster_cmds::run(&config, what, json)
        }
        Command::Witness => {
            let path = cli
                .config
                .as_ref()
                .context("node witness needs --config FILE (see docs/operations.md)")?;
            crate::raft::witness::run(path)
        }
        Command::Health { active } => {
            let (config, _) = load_config(cli.config.as_ref())?;
            Ok(health::run(&config, active))
        }
        Command::Notify { state } => {
            let (config, _) = load_config(cli.config.as_ref())?;
            crate::logging::init(&config.log_path, config.log_format)?;
            Ok(notify::run(&config, state))
        }
        Command::Quota {
            what: QuotaCmd::Set { user, limits },
        } => {
            crate::logging::init_cli();
            let (config, _) = admin_config(cli.config.as_ref())?;
            auth_cmds::quota_set(&config, &user, &limits, json)
        }
        Command::Doctor { user, password } => {
            crate::logging::init_cli();
            let (config, origin) = match admin_config(cli.config.as_ref()) {
                Ok(c) => c,
                Err(e) => {
                    outln!("FAIL configuration: {e:#}");
                    outln!("     fix: correct the file and line named, then `node config check`");
                    return Ok(1);
                }
            };
            let source = match (&cli.config, origin) {
                (Some(p), _) => p.display().to_string(),
                (None, Origin::File) => SYSTEM_CONFIG.to_string(),
                (None, Origin::Embedded) => "embedded default".to_string(),
            };
            let who = match (user, password) {
                (Some(user), Some(password)) => Some(doctor::Login { user, password }),
                _ if origin == Origin::Embedded => Some(doctor::Login {
                    user: config::DEMO_USER.into(),
                    password: config::DEMO_PASSWORD.into(),
                }),
                _ => None,
            };
            doctor::run(&config, &source, who, json)
        }
        Command::Import {
            user,
            all,
            format,
            mailbox,
            imap,
            path,
        } => {
            crate::logging::init_cli();
            let (config, _) = admin_config(cli.config.as_ref())?;
            let args = transfer_cmds::ImportArgs {
                user: user.as_deref(),
                all,
                format,
                mailbox: mailbox.as_deref(),
                imap,
                path: &path,
            };
            transfer_cmds::import(&config, args, json)
        }
        Command::Export { user, format, path } => {
            crate::logging::init_cli();
            let (config, _) = admin_config(cli.config.as_ref())?;
            transfer_cmds::export(&config, &user, format, &path, json)
        }
        Command::Acl { what } => {
            crate::logging::init_cli();
            let (config, _) = admin_config(cli.config.as_ref())?;
            transfer_cmds::acl(&config, what, json)
        }
        Command::Lab { what } => {
            crate::logging::init_cli();
            crate::lab::run(what, json)
        }
        other => {
            crate::logging::init_cli();
            let (config, _) = admin_config(cli.config.as_ref())?;
            admin_cmds::run(&config, other, json)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "node", "--json", "search", "-u", "demo", "mailbox", "INBOX", "seen",
        ])
        .unwrap();
        assert!(cli.json);
        assert!(matches!(cli.command, Command::Search { ref query, .. } if query.len() == 3));
        let cli = Cli::try_parse_from(["node", "config", "ssl", "storage.data_dir"]).unwrap();
        assert!(
            matches!(cli.command, Command::Config { what: None, ref keys, .. } if keys.len() == 2)
        );
        let cli = Cli::try_parse_from(["node", "config", "check"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Config {
                what: Some(ConfigCmd::Check),
                ..
            }
        ));
        assert!(
            Cli::try_parse_from(["node", "search", "all"]).is_err(),
            "-u or -A is required"
        );
        assert!(Cli::try_parse_from(["node", "penalty", "clear"]).is_err());
    }
}
