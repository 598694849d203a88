//! Faults for the fault-injection harness (`jepsen test`), each a small `node lab` command:
//! restart a crashed or killed node, pause/resume a node's processes, partitions and packet
//! loss as nft rules at the bridge (lab notes: rules inside a namespace miss VRRP), a cable
//! up or down, a wall-clock step, a full disk, and `heal` that undoes all but a crash.
//!
//! The network faults in force are kept in DIR/faults.json and the whole nft table is
//! rewritten from it at every change, so faults compose and `heal` is one delete.

use super::{net, node_env, procs, sh, up, Layout, State};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const TABLE: &str = "nodelab_faults";

/// The network faults in force.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct NetFaults {
    /// Groups of bridge ports ("n1", "client"); no frame crosses between two groups. Ports in
    /// no group reach everyone.
    pub groups: Vec<Vec<String>>,
    /// Port -> percent of frames dropped, both directions.
    pub loss: BTreeMap<String, u32>,
}

fn faults_file(dir: &Path) -> PathBuf {
    dir.join("faults.json")
}

impl NetFaults {
    fn load(dir: &Path) -> NetFaults {
        std::fs::read_to_string(faults_file(dir))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }
    fn save(&self, dir: &Path) -> Result<()> {
        std::fs::write(faults_file(dir), serde_json::to_string_pretty(self)?)
            .context("cannot write faults.json")
    }

    /// The bridge table: one drop rule per ordered pair of ports in different groups, one
    /// numgen rule per lossy port and direction.
    pub fn render(&self) -> String {
        let mut rules = Vec::new();
        for (i, a) in self.groups.iter().enumerate() {
            for (j, b) in self.groups.iter().enumerate() {
                if i == j {
                    continue;
                }
                for pa in a {
                    for pb in b {
                        rules.push(format!("iifname \"{pa}\" oifname \"{pb}\" drop"));
                    }
                }
            }
        }
        for (port, pct) in &self.loss {
            for dir in ["iifname", "oifname"] {
                rules.push(format!(
                    "{dir} \"{port}\" numgen random mod 100 < {pct} drop"
                ));
            }
        }
        let mut t = format!(
            "table bridge {TABLE}\ndelete table bridge {TABLE}\ntable bridge {TABLE} {{\n  chain faults {{\n    type filter hook forward priority 0; policy accept;\n"
        );
        for r in rules {
            t.push_str("    ");
            t.push_str(&r);
            t.push('\n');
        }
        t.push_str("  }\n}\n");
        t
    }

    fn apply(&self, state: &State, layout: &Layout) -> Result<()> {
        let mut cmd = sh::ip();
        cmd.args(["netns", "exec", &layout.names.switch(), "nft", "-f", "-"]);
        sh::run_ok_stdin(&mut cmd, self.render().as_bytes())
            .context("cannot install the bridge's fault rules")?;
        let _ = state;
        self.save(&layout.dir)
    }
}

/// A bare node id "N" cuts node N off from everything (the other nodes and the clients):
/// "N|others,client".
fn isolate_spec(spec: &str, nodes: u32) -> String {
    match spec.trim().parse::<u32>() {
        Ok(n) if !spec.contains('|') => {
            let others: Vec<String> = (1..=nodes)
                .filter(|i| *i != n)
                .map(|i| i.to_string())
                .chain(["client".to_string()])
                .collect();
            format!("{n}|{}", others.join(","))
        }
        _ => spec.to_string(),
    }
}

/// "1|2,3" or "1,client|2,3": groups of node ids (or `client`) separated by '|'.
pub fn parse_groups(spec: &str, nodes: u32) -> Result<Vec<Vec<String>>> {
    let mut groups = Vec::new();
    let mut seen = Vec::new();
    for g in spec.split('|') {
        let mut ports = Vec::new();
        for m in g.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            let port = if m == "client" {
                net::Names::CLIENT_PORT.to_string()
            } else {
                let id: u32 = m
                    .parse()
                    .ok()
                    .filter(|i| (1..=nodes).contains(i))
                    .with_context(|| {
                        format!("partition {spec:?}: {m:?} is not a node 1..={nodes} or `client`")
                    })?;
                net::Names::port(id)
            };
            if seen.contains(&port) {
                bail!("partition {spec:?}: {m} is in two groups");
            }
            seen.push(port.clone());
            ports.push(port);
        }
        groups.push(ports);
    }
    if groups.len() < 2 || groups.iter().any(Vec::is_empty) {
        bail!("partition {spec:?}: give at least two non-empty groups, e.g. 1|2,3");
    }
    Ok(groups)
}

fn check_id(state: &State, id: u32) -> Result<()> {
    if id == 0 || id > state.nodes {
        bail!("node {id}: this lab has nodes 1 to {}", state.nodes);
    }
    Ok(())
}

fn load(dir: &Path) -> Result<(State, Layout)> {
    super::require_root()?;
    let state = State::load(dir)?;
    let layout = state.layout(dir)?;
    Ok((state, layout))
}

pub fn partition(dir: &Path, spec: &str) -> Result<()> {
    let (state, layout) = load(dir)?;
    let mut f = NetFaults::load(dir);
    f.groups = parse_groups(&isolate_spec(spec, state.nodes), state.nodes)?;
    f.apply(&state, &layout)?;
    println!("partitioned: {spec}");
    Ok(())
}

pub fn loss(dir: &Path, id: u32, percent: u32) -> Result<()> {
    let (state, layout) = load(dir)?;
    check_id(&state, id)?;
    if percent > 100 {
        bail!("loss {percent}%: give 0 to 100");
    }
    let mut f = NetFaults::load(dir);
    if percent == 0 {
        f.loss.remove(&net::Names::port(id));
    } else {
        f.loss.insert(net::Names::port(id), percent);
    }
    f.apply(&state, &layout)?;
    println!("node {id}: {percent}% of frames dropped");
    Ok(())
}

pub fn link(dir: &Path, id: u32, up: bool) -> Result<()> {
    let (state, layout) = load(dir)?;
    check_id(&state, id)?;
    let updown = if up { "up" } else { "down" };
    sh::run_ok(sh::ip().args([
        "-n",
        &layout.names.switch(),
        "link",
        "set",
        &net::Names::port(id),
        updown,
    ]))?;
    println!("node {id}: cable {updown}");
    Ok(())
}

#[allow(unsafe_code)]
fn signal_ns(ns: &str, sig: libc::c_int) -> Vec<u32> {
    let pids = procs::pids_in(ns);
    for &p in &pids {
        if let Ok(p) = libc::pid_t::try_from(p) {
            if p > 1 {
                // SAFETY: plain syscall on a process of the lab's own namespace.
                unsafe {
                    libc::kill(p, sig);
                }
            }
        }
    }
    pids
}

/// SIGSTOP (or SIGCONT) every process of node `id`: node and keepalived (lab notes: a paused
/// master keeps its address while another takes it).
pub fn pause(dir: &Path, id: u32, resume: bool) -> Result<()> {
    let (state, layout) = load(dir)?;
    check_id(&state, id)?;
    let sig = if resume { libc::SIGCONT } else { libc::SIGSTOP };
    let pids = signal_ns(&layout.names.node(id), sig);
    println!(
        "node {id}: {} {} processes",
        if resume { "resumed" } else { "paused" },
        pids.len()
    );
    Ok(())
}

pub fn clock(dir: &Path, id: u32, offset: &str) -> Result<()> {
    let (state, layout) = load(dir)?;
    check_id(&state, id)?;
    node_env::set_clock(&layout, id, offset)?;
    println!("node {id}: wall clock at real time {offset} s");
    Ok(())
}

pub fn fill(dir: &Path, id: u32) -> Result<()> {
    let (state, layout) = load(dir)?;
    check_id(&state, id)?;
    let n = node_env::fill(&layout, id, state.tmpfs_mb)?;
    println!(
        "node {id}: data filesystem full ({} KiB of ballast)",
        n / 1024
    );
    Ok(())
}

const QUEUE: &str = "0";

fn delayer_pid_file(layout: &Layout, id: u32) -> PathBuf {
    layout.node_dir(id).join("delayer.pid")
}

fn nfqueue_rule(ns: &str, op: &str) -> Result<String> {
    let mut cmd = sh::ip();
    cmd.args([
        "netns",
        "exec",
        ns,
        "iptables",
        "-t",
        "mangle",
        op,
        "POSTROUTING",
    ])
    .args([
        "-o",
        net::IFACE,
        "-j",
        "NFQUEUE",
        "--queue-num",
        QUEUE,
        "--queue-bypass",
    ]);
    sh::run_ok(&mut cmd)
}

/// Every packet node `id` sends waits `ms` ms (lab notes: netem is missing, NFQUEUE works).
/// 0 removes the delay.
pub fn delay(dir: &Path, id: u32, ms: u64) -> Result<()> {
    let (state, layout) = load(dir)?;
    check_id(&state, id)?;
    let ns = layout.names.node(id);
    let pid_file = delayer_pid_file(&layout, id);
    if let Some(pid) = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|t| t.trim().parse().ok())
    {
        procs::stop(&[pid], Duration::from_secs(2));
        let _ = std::fs::remove_file(&pid_file);
    }
    if ms == 0 {
        // Absent already is fine.
        let _ = nfqueue_rule(&ns, "-D");
        println!("node {id}: no delay");
        return Ok(());
    }
    if ms > 10_000 {
        bail!("delay {ms} ms: give at most 10000");
    }
    let log = layout.node_dir(id).join("delayer.log");
    let pid = procs::spawn_in(
        &ns,
        &state.node_bin,
        &["lab", "delayer", "--queue", QUEUE, "--ms", &ms.to_string()],
        &log,
    )?;
    std::fs::write(&pid_file, pid.to_string())?;
    // The delayer binds its queue first; with --queue-bypass nothing is lost meanwhile.
    std::thread::sleep(Duration::from_millis(100));
    if !procs::alive(pid) {
        bail!(
            "the delayer exited at once: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    if nfqueue_rule(&ns, "-C").is_err() {
        nfqueue_rule(&ns, "-A").context("cannot add the NFQUEUE rule (is iptables installed?)")?;
    }
    println!("node {id}: every packet it sends waits {ms} ms");
    Ok(())
}

/// Starts what of node `id` is not running: after a crash, the stale address goes, the cable
/// goes back in, then the node and its keepalived start; after a kill, only the node.
pub fn restart(dir: &Path, id: u32) -> Result<()> {
    let (mut state, layout) = load(dir)?;
    check_id(&state, id)?;
    let m = state.members[id as usize - 1].clone();
    let node_up = m.node_pid.is_some_and(procs::alive);
    let ka_up = m.keepalived_pid.is_some_and(procs::alive);
    let ns = layout.names.node(id);
    if !ka_up {
        // A crashed holder kept the address on its interface; plugged in again with it, two
        // nodes would answer ARP for it.
        let _ = sh::run_ok(sh::ip().args([
            "-n",
            &ns,
            "addr",
            "del",
            &format!("{}/{}", net::vip(), net::PREFIX_LEN),
            "dev",
            net::IFACE,
        ]));
        sh::run_ok(sh::ip().args([
            "-n",
            &layout.names.switch(),
            "link",
            "set",
            &net::Names::port(id),
            "up",
        ]))?;
    }
    if !node_up {
        let from = std::fs::metadata(layout.node_log(id)).map_or(0, |m| m.len() as usize);
        up::start_node(&layout, &mut state, id)?;
        up::wait_ready_after(&layout, &state, id, from)?;
    }
    if !ka_up {
        up::start_keepalived_pub(&layout, &mut state, id)?;
    }
    println!(
        "node {id}: restarted{}{}",
        if node_up { "" } else { " node" },
        if ka_up { "" } else { " keepalived" }
    );
    Ok(())
}

/// Undoes every fault but a crash: network rules gone, cables of running nodes back in,
/// paused processes resumed, clocks at real time, ballast removed.
pub fn heal(dir: &Path) -> Result<()> {
    let (state, layout) = load(dir)?;
    NetFaults::default().apply(&state, &layout)?;
    for m in &state.members {
        signal_ns(&m.netns, libc::SIGCONT);
        if m.keepalived_pid.is_some_and(procs::alive) {
            sh::run_ok(sh::ip().args([
                "-n",
                &layout.names.switch(),
                "link",
                "set",
                &net::Names::port(m.id),
                "up",
            ]))?;
        }
        if node_env::faketime_file(&layout, m.id).exists() {
            node_env::set_clock(&layout, m.id, "+0")?;
        }
        node_env::unfill(&layout, m.id);
        if delayer_pid_file(&layout, m.id).exists() {
            delay(dir, m.id, 0)?;
        }
    }
    // Resumed processes and re-plugged cables need a moment before they are themselves.
    std::thread::sleep(Duration::from_millis(50));
    println!("healed: no partition or loss, cables in, processes resumed, clocks real, disks free");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_specs() {
        let g = parse_groups("1|2,3", 3).unwrap();
        assert_eq!(
            g,
            vec![vec!["n1".to_string()], vec!["n2".into(), "n3".into()]]
        );
        assert!(parse_groups("1,client|2", 2).is_ok());
        assert_eq!(isolate_spec("2", 3), "2|1,3,client");
        assert_eq!(isolate_spec("1|2", 3), "1|2");
        for bad in ["1", "1|1", "1|4", "|2", "1|x"] {
            assert!(parse_groups(bad, 3).is_err(), "{bad:?} accepted");
        }
        let f = NetFaults {
            groups: parse_groups("1|2", 2).unwrap(),
            loss: BTreeMap::from([("n2".to_string(), 20)]),
        };
        let t = f.render();
        assert!(t.contains("iifname \"n1\" oifname \"n2\" drop"));
        assert!(t.contains("iifname \"n2\" oifname \"n1\" drop"));
        assert!(t.contains("oifname \"n2\" numgen random mod 100 < 20 drop"));
    }
}
