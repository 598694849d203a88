//! `node lab up`: checks, network, files, nodes, keepalived, then waits for the service
//! address. A failure part-way tears down what was built and points at the logs.

use super::keepalived::{self, KeepalivedSpec};
use super::raft::{self, LabMode};
use super::{net, node_conf, node_env, procs, sh, Layout, Member, State};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A debug build on a busy 2-core machine takes a few seconds to open its store.
const NODE_START_TIMEOUT: Duration = Duration::from_secs(90);
/// keepalived with 0.1 s adverts elects in well under a second; this is a generous bound.
const VIP_TIMEOUT: Duration = Duration::from_secs(20);

pub fn up(
    dir: &Path,
    nodes: u32,
    prefix: &str,
    opts: &super::UpOpts,
    mode: LabMode,
    witness: bool,
) -> Result<()> {
    super::require_root()?;
    raft::check_shape(mode, nodes, witness)?;
    for (tool, pkg) in [
        ("ip", "iproute2"),
        ("keepalived", "keepalived"),
        ("nft", "nftables"),
    ] {
        if !sh::installed(tool) {
            bail!("{tool} not installed: apt-get install {pkg}");
        }
    }
    let names = net::Names::new(prefix)?;
    let node_bin = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .context("cannot find this node binary's path")?;
    prepare_dir(dir)?;
    let layout = Layout {
        dir: dir.canonicalize()?,
        names,
    };
    let mut state = State {
        prefix: prefix.to_string(),
        nodes,
        node_bin: node_bin.clone(),
        vip: net::vip().to_string(),
        client_netns: layout.names.client(),
        faketime: opts.faketime,
        tmpfs_mb: opts.tmpfs_mb,
        members: (1..=nodes)
            .map(|id| Member {
                id,
                netns: layout.names.node(id),
                addr: net::node_addr(id).to_string(),
                config: layout.config(id),
                ..Member::default()
            })
            .collect(),
        mode,
        witness,
        witness_pid: None,
    };
    // Namespaces that exist already are refused before the state is written, so `down`
    // never removes someone else's.
    let existing = net::existing_namespaces()?;
    if let Some(ns) = layout
        .names
        .all_of(nodes, witness)
        .into_iter()
        .find(|n| existing.contains(n))
    {
        bail!(
            "network namespace {ns} already exists: another lab with prefix {prefix:?}? stop it with `node lab down --dir ITS_DIR`, or choose another --prefix"
        );
    }
    state.save(&layout.dir)?;
    match build(&layout, &mut state) {
        Ok(()) => {
            print_summary(&layout, &state);
            Ok(())
        }
        Err(e) => {
            eprintln!(
                "node lab up failed: {e:#}\ntearing down what was built (logs stay in {})",
                layout.dir.display()
            );
            if let Err(d) = super::down(&layout.dir) {
                eprintln!("teardown: {d:#}");
            }
            Err(e)
        }
    }
}

/// An empty or missing directory, or one a previous lab left (its marker), which is cleared.
fn prepare_dir(dir: &Path) -> Result<()> {
    if Layout::state_file(dir).exists() {
        bail!(
            "a lab is already up in {} (see `node lab status --dir {0}`); stop it first with `node lab down --dir {0}`",
            dir.display()
        );
    }
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_none();
        if !empty {
            if !Layout::marker(dir).exists() {
                bail!(
                    "{} is not empty and is not a lab directory: give another --dir",
                    dir.display()
                );
            }
            std::fs::remove_dir_all(dir)
                .with_context(|| format!("cannot clear the old lab in {}", dir.display()))?;
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(Layout::marker(dir), "node lab directory\n")?;
    Ok(())
}

fn build(layout: &Layout, state: &mut State) -> Result<()> {
    let nodes = state.nodes;
    let t0 = Instant::now();
    net::create(&layout.names, nodes, state.witness)?;
    net::restrict_client(&layout.names)?;
    println!(
        "network: {} node namespaces{} and {} on a bridge in {} ({} ms)",
        nodes,
        if state.witness { ", the witness's" } else { "" },
        layout.names.client(),
        layout.names.switch(),
        t0.elapsed().as_millis()
    );

    node_conf::make_certs(layout, nodes)?;
    node_conf::write_passwd(&layout.passwd())?;
    if state.faketime {
        node_env::libfaketime()?;
    }
    for id in 1..=nodes {
        std::fs::create_dir_all(layout.data_dir(id))?;
        if let Some(mb) = state.tmpfs_mb {
            node_env::mount_tmpfs(layout, id, mb)?;
        }
        let path = layout.config(id);
        let raft = (state.mode == LabMode::Raft).then_some(state.witness);
        std::fs::write(&path, node_conf::render(layout, id, nodes, raft))
            .with_context(|| format!("cannot write {}", path.display()))?;
        // The same check as `node config check`: a generated mistake stops here, not in a log.
        crate::config::load_file(&path)
            .with_context(|| format!("generated {} does not load", path.display()))?;
        let conf = layout.keepalived_conf(id);
        std::fs::write(&conf, keepalived_spec(layout, state, id).render()?)
            .with_context(|| format!("cannot write {}", conf.display()))?;
        keepalived::validate(&conf, Some(&layout.names.node(id)))?;
    }
    println!(
        "configs: node.toml and keepalived.conf (checked with keepalived -t) per node in {}",
        layout.dir.display()
    );
    if state.witness {
        raft::write_witness(layout, nodes)?;
        raft::start_witness(layout, state)?;
        println!("witness: serving in {}", layout.names.witness());
    }

    for id in 1..=nodes {
        start_node(layout, state, id)?;
    }
    for id in 1..=nodes {
        wait_ready(layout, state, id)?;
        println!("node {id}: serving in {}", layout.names.node(id));
    }

    if state.mode == LabMode::Raft {
        return start_keepalived_raft(layout, state);
    }
    // Node 1 first, alone until it holds the address: the first election otherwise goes to
    // whichever keepalived finished its first track script first, and nopreempt keeps it.
    let t = Instant::now();
    start_keepalived(layout, state, 1)?;
    let holder = wait_vip(layout, state)?;
    println!(
        "keepalived: node {holder} holds {} ({} ms after its keepalived started)",
        net::vip(),
        t.elapsed().as_millis()
    );
    for id in 2..=nodes {
        start_keepalived(layout, state, id)?;
    }
    wait_backups(layout, state)?;
    println!("keepalived: the other nodes are backups");
    Ok(())
}

/// Starts node `id`'s `node serve` (under libfaketime when the lab has it).
pub fn start_node(layout: &Layout, state: &mut State, id: u32) -> Result<()> {
    let config = layout.config(id).display().to_string();
    let launch = node_env::launcher(layout, &state.node_bin, id, state.faketime)?;
    let mut args: Vec<&str> = launch[1..].iter().map(String::as_str).collect();
    args.extend(["-c", &config, "serve"]);
    let pid = procs::spawn_in(
        &layout.names.node(id),
        Path::new(&launch[0]),
        &args,
        &layout.node_log(id),
    )?;
    state.members[id as usize - 1].node_pid = Some(pid);
    state.save(&layout.dir)
}

pub fn start_keepalived_pub(layout: &Layout, state: &mut State, id: u32) -> Result<()> {
    start_keepalived(layout, state, id)
}

/// Waits for a "node: ready" written after byte `from` of node `id`'s log (a restarted node
/// appends to the log of its previous life).
pub fn wait_ready_after(layout: &Layout, state: &State, id: u32, from: usize) -> Result<()> {
    wait_ready_from(layout, state, id, from)
}

/// Raft mode: every keepalived at once; the active node's track file alone lets one out of
/// FAULT, so the address goes to the Raft-active node whatever the start order.
fn start_keepalived_raft(layout: &Layout, state: &mut State) -> Result<()> {
    let t = Instant::now();
    for id in 1..=state.nodes {
        start_keepalived(layout, state, id)?;
    }
    let holder = wait_vip(layout, state)?;
    println!(
        "keepalived: node {holder} (the Raft-active node) holds {} ({} ms after keepalived started)",
        net::vip(),
        t.elapsed().as_millis()
    );
    wait_backups(layout, state)?;
    println!("keepalived: the other nodes are in FAULT or BACKUP (not active)");
    Ok(())
}

fn start_keepalived(layout: &Layout, state: &mut State, id: u32) -> Result<()> {
    let d = layout.node_dir(id);
    let pid_arg = |f: &str| d.join(f).display().to_string();
    let conf = layout.keepalived_conf(id).display().to_string();
    let (p, r, c) = (
        pid_arg("keepalived.pid"),
        pid_arg("vrrp.pid"),
        pid_arg("checkers.pid"),
    );
    // -n: stay in the foreground (the pid is keepalived's parent); -P: VRRP only; own pid
    // files, or a second keepalived on the machine exits at once.
    let pid = procs::spawn_in(
        &layout.names.node(id),
        Path::new("keepalived"),
        &[
            "-n", "-l", "-D", "-P", "-f", &conf, "-p", &p, "-r", &r, "-c", &c,
        ],
        &layout.keepalived_log(id),
    )?;
    state.members[id as usize - 1].keepalived_pid = Some(pid);
    state.save(&layout.dir)
}

/// Every keepalived after the first has reported BACKUP to its node (`node notify`).
fn wait_backups(layout: &Layout, state: &State) -> Result<()> {
    let deadline = Instant::now() + VIP_TIMEOUT;
    let holder = (1..=state.nodes).find(|id| net::holds_vip(&layout.names.node(*id)));
    for id in (1..=state.nodes).filter(|id| Some(*id) != holder) {
        let log = layout.node_log(id);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            // Raft mode: a node that is not active sits in FAULT (its track file says 1).
            if text.contains("this node is now backup") || text.contains("this node is now fault") {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "node {id}'s keepalived did not report BACKUP or FAULT within {VIP_TIMEOUT:?}: see {}",
                    layout.keepalived_log(id).display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(())
}

pub fn keepalived_spec(layout: &Layout, state: &State, id: u32) -> KeepalivedSpec {
    KeepalivedSpec {
        router_id: layout.names.node(id),
        interface: net::IFACE.into(),
        virtual_router_id: 51,
        // Raft mode: the Raft role picks the holder, not priorities (see keepalived.rs).
        priority: if state.mode == LabMode::Raft {
            keepalived::RAFT_PRIORITY
        } else {
            super::priority(id)
        },
        // Raft mode: only the active node is out of FAULT, so short adverts cannot make a
        // wrong node MASTER; they shorten the new active node's master-down wait to ~0.1 s.
        advert_int: if state.mode == LabMode::Raft {
            keepalived::RAFT_ADVERT_INT.into()
        } else {
            "0.1".into()
        },
        unicast_src: net::node_addr(id),
        unicast_peers: (1..=state.nodes)
            .filter(|p| *p != id)
            .map(net::node_addr)
            .collect(),
        vip: format!("{}/{}", net::vip(), net::PREFIX_LEN),
        node_cmd: format!(
            "{} -c {}",
            state.node_bin.display(),
            layout.config(id).display()
        ),
        track_file: Some(layout.track_file(id)),
        raft: state.mode == LabMode::Raft,
    }
}

fn wait_ready(layout: &Layout, state: &State, id: u32) -> Result<()> {
    wait_ready_from(layout, state, id, 0)
}

fn wait_ready_from(layout: &Layout, state: &State, id: u32, from: usize) -> Result<()> {
    let log = layout.node_log(id);
    let pid = state.members[id as usize - 1].node_pid.unwrap_or(0);
    let deadline = Instant::now() + NODE_START_TIMEOUT;
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.get(from..).is_some_and(|t| t.contains("node: ready")) {
            return Ok(());
        }
        if !procs::alive(pid) {
            bail!(
                "node {id} exited at start-up; its log {}:\n{}",
                log.display(),
                tail(&text, 15)
            );
        }
        if Instant::now() > deadline {
            bail!(
                "node {id} not ready after {NODE_START_TIMEOUT:?}; its log {}:\n{}",
                log.display(),
                tail(&text, 15)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_vip(layout: &Layout, state: &State) -> Result<u32> {
    let deadline = Instant::now() + VIP_TIMEOUT;
    loop {
        if let Some(id) = (1..=state.nodes).find(|id| net::holds_vip(&layout.names.node(*id))) {
            return Ok(id);
        }
        if Instant::now() > deadline {
            let logs: Vec<PathBuf> = (1..=state.nodes)
                .map(|i| layout.keepalived_log(i))
                .collect();
            bail!(
                "no node took {} within {VIP_TIMEOUT:?}: see {logs:?}",
                net::vip()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn print_summary(layout: &Layout, state: &State) {
    let dir = layout.dir.display();
    let client = layout.names.client();
    let vip = net::vip();
    println!();
    println!(
        "lab up: {} nodes{}, {} mode, service address {vip}, state in {dir}",
        state.nodes,
        if state.witness { " and a witness" } else { "" },
        state.mode.as_str()
    );
    println!(
        "  IMAP:   ip netns exec {client} nc -C {vip} 143     (LOGIN {} {})",
        node_conf::DEMO_USER,
        node_conf::DEMO_PASSWORD
    );
    println!(
        "  LMTP:   ip netns exec {client} nc -C {vip} 24      (RCPT TO:<{}@{}>)",
        node_conf::DEMO_USER,
        node_conf::REALM
    );
    println!("  status: node lab status --dir {dir}");
    println!("  crash:  node lab crash N --dir {dir}    (planned move: kill -TERM a node's keepalived pid)");
    if state.mode == LabMode::Raft {
        println!("  planned hand-over: node lab transfer-active N --dir {dir}");
    }
    println!("  faults: node lab pause|resume|partition N --dir {dir}, node lab heal --dir {dir}");
    println!("  logs:   {dir}/nN/node.log, {dir}/nN/keepalived.log");
    println!("  stop:   node lab down --dir {dir}");
}
