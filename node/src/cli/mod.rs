//! The command line: `node serve` and the doveadm-like admin commands.

mod admin_cmds;
mod auth_cmds;
mod cluster_cmds;
mod config_cmds;
mod health;
mod notify;

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
    /// Configuration file (TOML). Without one, the embedded default: ./data, 127.0.0.1, high ports.
    #[arg(
        short = 'c',
        long,
        global = true,
        env = "NODE_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server.
    Serve,
    /// Check the configuration and print the settings that differ from the defaults (doveconf -n).
    Config {
        #[command(subcommand)]
        what: ConfigCmd,
    },
    /// Print a password hash for a passwd-file (doveadm pw).
    Pw {
        /// ARGON2ID, ARGON2I, SHA512-CRYPT, SHA256-CRYPT, BLF-CRYPT, PLAIN.
        #[arg(short = 's', long = "scheme", default_value = "ARGON2ID")]
        scheme: String,
        /// The password; asked for on the terminal when not given.
        #[arg(short = 'p', long = "password")]
        password: Option<String>,
    },
    /// Authentication tools (doveadm auth).
    Auth {
        #[command(subcommand)]
        what: AuthCmd,
    },
    /// Users (doveadm user).
    User {
        #[command(subcommand)]
        what: UserCmd,
    },
    /// Mailboxes of a user (doveadm mailbox).
    Mailbox {
        #[command(subcommand)]
        what: MailboxCmd,
    },
    /// Rebuild a user's index from the change log (doveadm force-resync).
    ForceResync(UserSel),
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
    /// Run only the coordinator, as the witness voter of a two-node raft cluster (no mail).
    Witness,
    /// A cluster on this machine: nodes and keepalived in network namespaces (root only).
    Lab {
        #[command(subcommand)]
        what: crate::lab::LabCmd,
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
        user: String,
        password: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Every user the userdb lists, and users that have mail on this node.
    List,
}

#[derive(Subcommand, Debug)]
pub enum MailboxCmd {
    List {
        #[arg(short = 'u', long = "user")]
        user: String,
    },
    /// messages, unseen, uidnext, uidvalidity, highestmodseq, vsize, guid.
    Status {
        #[arg(short = 'u', long = "user")]
        user: String,
        mailbox: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ReplicationCmd {
    /// Per peer and per user: how far behind (records, bytes, seconds).
    Status {
        #[arg(long)]
        json: bool,
    },
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
    Status {
        #[arg(long)]
        json: bool,
    },
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
        #[arg(short = 'u', long = "user")]
        user: String,
    },
}

#[derive(clap::Args, Debug)]
pub struct UserSel {
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

/// The configuration and where it came from.
pub fn load_config(path: Option<&PathBuf>) -> anyhow::Result<(Config, Origin)> {
    match path {
        Some(p) => Ok((config::load_file(p)?, Origin::File)),
        None => Ok((Config::embedded(), Origin::Embedded)),
    }
}

/// Runs the command; the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Serve => {
            let (config, origin) = load_config(cli.config.as_ref())?;
            crate::logging::init(&config.log_path)?;
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
            what: ConfigCmd::Check,
        } => {
            crate::logging::init_cli();
            config_cmds::check(cli.config.as_ref())
        }
        Command::Pw { scheme, password } => auth_cmds::pw(&scheme, password),
        Command::Auth {
            what: AuthCmd::Test { user, password },
        } => {
            crate::logging::init_cli();
            let (config, _) = load_config(cli.config.as_ref())?;
            auth_cmds::test(&config, &user, password)
        }
        Command::Cluster { what } => {
            let (config, _) = load_config(cli.config.as_ref())?;
            cluster_cmds::run(&config, what)
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
            crate::logging::init(&config.log_path)?;
            Ok(notify::run(&config, state))
        }
        Command::Lab { what } => {
            crate::logging::init_cli();
            crate::lab::run(what)
        }
        other => {
            crate::logging::init_cli();
            let (config, _) = load_config(cli.config.as_ref())?;
            admin_cmds::run(&config, other)
        }
    }
}
