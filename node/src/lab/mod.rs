//! `node lab up|down|status|crash`: a whole cluster on one Linux machine, for demos, manual
//! fail-over drills and the fail-over tests. Two or three nodes, each in its own network
//! namespace with a real `node serve` and a real keepalived, on a bridge, and a client
//! namespace that reaches only the service address (VIP). Root only.
//!
//! One job per module: [`net`] namespaces and bridge, [`keepalived`] its configuration,
//! [`node_conf`] the nodes' configuration and certificates, [`procs`] the processes, [`up`]
//! and [`inspect`] the commands. The lab's state (names, pids, paths) is `DIR/lab.json`.

pub mod delayer;
pub mod faults;
pub mod handover;
pub mod inspect;
pub mod keepalived;
pub mod net;
pub mod node_conf;
pub mod node_env;
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
        #[command(flatten)]
        opts: UpOpts,
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
    /// (`--json`, the global flag, for a JSON document.)
    Status {
        #[command(flatten)]
        at: LabDir,
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
    #[command(flatten)]
    Fault(FaultCmd),
}

/// Options of `node lab up` for fault injection (off by default).
#[derive(clap::Args, Debug, Default)]
pub struct UpOpts {
    /// Start the nodes under libfaketime, so `node lab clock` can step their wall clocks.
    #[arg(long)]
    pub faketime: bool,
    /// Give each node a tmpfs of this many MiB as its data directory (so `node lab fill`
    /// can fill it); the data goes with `node lab down`.
    #[arg(long)]
    pub tmpfs_mb: Option<u32>,
}

/// Faults (node/src/lab/faults.rs), for `jepsen test` and manual drills.
#[derive(Subcommand, Debug)]
pub enum FaultCmd {
    /// Start what of node N is not running (after `crash`, or a kill of its node process).
    Restart {
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
    /// Cut the bridge between groups: "1|2,3", "1,client|2" (unnamed ports reach everyone);
    /// a bare "N" cuts node N off from the other nodes and the clients.
    Partition {
        groups: String,
        #[command(flatten)]
        at: LabDir,
    },
    /// Node N's cable at the bridge: up or down.
    Link {
        node: u32,
        #[arg(value_parser = ["up", "down"])]
        state: String,
        #[command(flatten)]
        at: LabDir,
    },
    /// Drop PERCENT of node N's frames at the bridge, both ways (0 removes it).
    Loss {
        node: u32,
        percent: u32,
        #[command(flatten)]
        at: LabDir,
    },
    /// Step node N's wall clock to real time + OFFSET seconds ("+3600", "-86400", "+0");
    /// needs `up --faketime`.
    Clock {
        node: u32,
        #[arg(allow_hyphen_values = true)]
        offset: String,
        #[command(flatten)]
        at: LabDir,
    },
    /// Fill node N's data filesystem; needs `up --tmpfs-mb`.
    Fill {
        node: u32,
        #[command(flatten)]
        at: LabDir,
    },
    /// Delay every packet node N sends by MS milliseconds (NFQUEUE + a delayer; 0 removes it).
    Delay {
        node: u32,
        ms: u64,
        #[command(flatten)]
        at: LabDir,
    },
    /// The packet delayer itself (started by `delay` inside the node's namespace).
    #[command(hide = true)]
    Delayer {
        #[arg(long)]
        queue: u16,
        #[arg(long)]
        ms: u64,
    },
    /// Undo every fault but a crash.
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
    #[serde(default)]
    pub faketime: bool,
    #[serde(default)]
    pub tmpfs_mb: Option<u32>,
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

pub fn run(cmd: LabCmd, json: bool) -> Result<i32> {
    match cmd {
        LabCmd::Up {
            nodes,
            at,
            prefix,
            opts,
            mode,
            witness,
        } => up::up(&at.dir, nodes, &prefix, &opts, mode, witness).map(|_| 0),
        LabCmd::Down { at } => {
            require_root()?;
            down(&at.dir).map(|_| 0)
        }
        LabCmd::Status { at } => {
            require_root()?;
            inspect::print_status(&at.dir, json)
        }
        LabCmd::Crash { node, at } => {
            require_root()?;
            crash(&at.dir, node).map(|_| 0)
        }
        LabCmd::TransferActive { node, at } => handover::transfer_active(&at.dir, node),
        LabCmd::Fault(f) => run_fault(f).map(|_| 0),
    }
}

fn run_fault(cmd: FaultCmd) -> Result<()> {
    match cmd {
        FaultCmd::Restart { node, at } => faults::restart(&at.dir, node),
        FaultCmd::Pause { node, at } => faults::pause(&at.dir, node, false),
        FaultCmd::Resume { node, at } => faults::pause(&at.dir, node, true),
        FaultCmd::Partition { groups, at } => faults::partition(&at.dir, &groups),
        FaultCmd::Link { node, state, at } => faults::link(&at.dir, node, state == "up"),
        FaultCmd::Loss { node, percent, at } => faults::loss(&at.dir, node, percent),
        FaultCmd::Clock { node, offset, at } => faults::clock(&at.dir, node, &offset),
        FaultCmd::Fill { node, at } => faults::fill(&at.dir, node),
        FaultCmd::Delay { node, ms, at } => faults::delay(&at.dir, node, ms),
        FaultCmd::Delayer { queue, ms } => delayer::run(queue, Duration::from_millis(ms)),
        FaultCmd::Heal { at } => faults::heal(&at.dir),
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
    if state.tmpfs_mb.is_some() {
        for id in 1..=state.nodes {
            if let Err(e) = node_env::unmount_tmpfs(&layout, id) {
                tracing::warn!("node {id}: cannot unmount its data tmpfs: {e:#}");
            }
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
