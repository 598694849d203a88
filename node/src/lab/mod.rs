//! `node lab up|down|status|crash`: a whole cluster on one Linux machine, for demos, manual
//! fail-over drills and the fail-over tests. Two or three nodes, each in its own network
//! namespace with a real `node serve` and a real keepalived, on a bridge, and a client
//! namespace that reaches only the service address (VIP). Root only.
//!
//! One job per module: [`net`] namespaces and bridge, [`keepalived`] its configuration,
//! [`node_conf`] the nodes' configuration and certificates, [`procs`] the processes, [`up`]
//! and [`inspect`] the commands. The lab's state (names, pids, paths) is `DIR/lab.json`.

pub mod faults;
pub mod inspect;
pub mod keepalived;
pub mod net;
pub mod node_conf;
pub mod procs;
pub mod raft;
pub mod sh;
pub mod up;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Subcommand, Debug)]
pub enum LabCmd {
    /// Build the namespaces and bridge, write configs and certificates, start every node and
    /// keepalived, wait for the service address.
    Up {
        /// 2 or 3 nodes.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(2..=3))]
        nodes: u32,
        #[command(flatten)]
        at: LabDir,
        /// Namespace names start with this (several labs can run side by side).
        #[arg(long, default_value = "nodelab")]
        prefix: String,
        /// Who decides the active node: keepalived (priorities, nopreempt) or the Raft group.
        #[arg(long, value_enum, default_value_t = raft::LabMode::KeepalivedLed)]
        mode: raft::LabMode,
        /// Raft mode with 2 nodes: a `node witness` in its own namespace is the third voter.
        #[arg(long)]
        witness: bool,
    },
    /// Stop every process of the lab and remove its namespaces (logs and data stay in --dir).
    Down {
        #[command(flatten)]
        at: LabDir,
    },
    /// Each node: namespace, address, pids, health, VRRP state, whether it holds the address.
    Status {
        #[command(flatten)]
        at: LabDir,
        #[arg(long)]
        json: bool,
    },
    /// Crash node N for real: freeze and kill every process in its namespace, unplug its cable.
    Crash {
        node: u32,
        #[command(flatten)]
        at: LabDir,
    },
    /// Raft mode: hand the active role to node N (`node cluster transfer-active N` on the
    /// active node, inside its namespace).
    TransferActive {
        node: u32,
        #[command(flatten)]
        at: LabDir,
    },
    /// SIGSTOP every process of node N (node and keepalived: a frozen machine).
    Pause {
        node: u32,
        #[command(flatten)]
        at: LabDir,
    },
    /// SIGCONT every process of node N.
    Resume {
        node: u32,
        #[command(flatten)]
        at: LabDir,
    },
    /// Cut node N off at the bridge (nft in the switch namespace): VRRP, peer links, clients.
    Partition {
        node: u32,
        #[command(flatten)]
        at: LabDir,
    },
    /// Remove every partition.
    Heal {
        #[command(flatten)]
        at: LabDir,
    },
}

#[derive(clap::Args, Debug)]
pub struct LabDir {
    /// The lab's directory: state, configs, data and logs.
    #[arg(long, default_value = "/tmp/node-lab")]
    pub dir: PathBuf,
}

/// Where a lab's files are.
#[derive(Clone, Debug)]
pub struct Layout {
    pub dir: PathBuf,
    pub names: net::Names,
}

impl Layout {
    pub fn node_dir(&self, id: u32) -> PathBuf {
        self.dir.join(format!("n{id}"))
    }
    pub fn data_dir(&self, id: u32) -> PathBuf {
        self.node_dir(id).join("data")
    }
    pub fn certs_dir(&self, id: u32) -> PathBuf {
        self.node_dir(id).join("cluster")
    }
    pub fn config(&self, id: u32) -> PathBuf {
        self.node_dir(id).join("node.toml")
    }
    pub fn keepalived_conf(&self, id: u32) -> PathBuf {
        self.node_dir(id).join("keepalived.conf")
    }
    pub fn track_file(&self, id: u32) -> PathBuf {
        self.node_dir(id).join("vrrp-track")
    }
    pub fn node_log(&self, id: u32) -> PathBuf {
        self.node_dir(id).join("node.log")
    }
    pub fn keepalived_log(&self, id: u32) -> PathBuf {
        self.node_dir(id).join("keepalived.log")
    }
    pub fn passwd(&self) -> PathBuf {
        self.dir.join("users")
    }
    fn state_file(dir: &Path) -> PathBuf {
        dir.join("lab.json")
    }
    /// Marks a directory as the lab's own, so `up` may clear it and never clears another.
    fn marker(dir: &Path) -> PathBuf {
        dir.join(".node-lab")
    }
}

/// keepalived priorities: node 1 wins the first election, then 2, then 3.
pub fn priority(id: u32) -> u8 {
    match id {
        1 => 150,
        2 => 100,
        _ => 50,
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Member {
    pub id: u32,
    pub netns: String,
    pub addr: String,
    pub config: PathBuf,
    pub node_pid: Option<u32>,
    pub keepalived_pid: Option<u32>,
}

/// DIR/lab.json: written before anything is built, so `down` finds a half-built lab too.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct State {
    pub prefix: String,
    pub nodes: u32,
    pub node_bin: PathBuf,
    pub vip: String,
    pub client_netns: String,
    pub members: Vec<Member>,
    /// Absent in a lab.json from before raft mode: keepalived-led.
    #[serde(default)]
    pub mode: raft::LabMode,
    /// A `node witness` runs in namespace PREFIX-w.
    #[serde(default)]
    pub witness: bool,
    #[serde(default)]
    pub witness_pid: Option<u32>,
}

impl State {
    pub fn load(dir: &Path) -> Result<State> {
        let path = Layout::state_file(dir);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            anyhow::anyhow!(
                "no lab in {} ({}: {e}); start one with `node lab up --dir {}`",
                dir.display(),
                path.display(),
                dir.display()
            )
        })?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a lab state", path.display()))
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = Layout::state_file(dir);
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    }

    pub fn layout(&self, dir: &Path) -> Result<Layout> {
        Ok(Layout {
            dir: dir.to_path_buf(),
            names: net::Names::new(&self.prefix)?,
        })
    }
}

pub fn run(cmd: LabCmd) -> Result<i32> {
    match cmd {
        LabCmd::Up {
            nodes,
            at,
            prefix,
            mode,
            witness,
        } => up::up(&at.dir, nodes, &prefix, mode, witness).map(|_| 0),
        LabCmd::Down { at } => {
            require_root()?;
            down(&at.dir).map(|_| 0)
        }
        LabCmd::Status { at, json } => {
            require_root()?;
            inspect::print_status(&at.dir, json)
        }
        LabCmd::Crash { node, at } => {
            require_root()?;
            crash(&at.dir, node).map(|_| 0)
        }
        LabCmd::TransferActive { node, at } => faults::transfer_active(&at.dir, node),
        LabCmd::Pause { node, at } => faults::pause(&at.dir, node, true).map(|_| 0),
        LabCmd::Resume { node, at } => faults::pause(&at.dir, node, false).map(|_| 0),
        LabCmd::Partition { node, at } => faults::partition(&at.dir, node).map(|_| 0),
        LabCmd::Heal { at } => faults::heal(&at.dir).map(|_| 0),
    }
}

#[allow(unsafe_code)]
pub fn require_root() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("not root: the lab makes network namespaces and runs keepalived; run it as root (sudo node lab ...)");
    }
    Ok(())
}

/// Stops keepalived first (gracefully: it gives the address up), then the nodes, then
/// whatever else runs in the namespaces, then removes the network.
pub fn down(dir: &Path) -> Result<()> {
    let state = State::load(dir)?;
    let layout = state.layout(dir)?;
    println!("lab {}: stopping {} nodes", dir.display(), state.nodes);
    let keepalived: Vec<u32> = state
        .members
        .iter()
        .filter_map(|m| m.keepalived_pid)
        .collect();
    procs::stop(&keepalived, Duration::from_secs(3));
    let nodes: Vec<u32> = state
        .members
        .iter()
        .filter_map(|m| m.node_pid)
        .chain(state.witness_pid)
        .collect();
    procs::stop(&nodes, Duration::from_secs(5));
    for ns in layout.names.all_of(state.nodes, state.witness) {
        let left = procs::pids_in(&ns);
        if !left.is_empty() {
            tracing::info!("{ns}: stopping {} leftover processes", left.len());
            procs::stop(&left, Duration::from_secs(2));
        }
    }
    let errors = net::destroy(&layout.names, state.nodes, state.witness);
    if !errors.is_empty() {
        bail!(
            "lab network not fully removed: {}; check `ip netns list` and delete what is left with `ip netns del NAME`",
            errors.join("; ")
        );
    }
    std::fs::remove_file(Layout::state_file(dir))
        .with_context(|| format!("cannot remove {}", Layout::state_file(dir).display()))?;
    println!(
        "lab down: namespaces removed; logs and data kept in {} (rm -r it to remove)",
        dir.display()
    );
    Ok(())
}

/// A real crash of node `id` (lab notes: killing keepalived's parent alone is a graceful
/// stop; only freezing everything, killing it and cutting the link is a crash).
pub fn crash(dir: &Path, id: u32) -> Result<()> {
    let state = State::load(dir)?;
    let layout = state.layout(dir)?;
    if id == 0 || id > state.nodes {
        bail!("node {id}: this lab has nodes 1 to {}", state.nodes);
    }
    let ns = layout.names.node(id);
    let killed = procs::crash_all_in(&ns);
    net::unplug(&layout.names, id)?;
    println!(
        "node {id} crashed: {} processes in {ns} frozen and killed ({killed:?}), cable unplugged",
        killed.len()
    );
    Ok(())
}
