//! `node lab status`: what runs where, asked of the kernel (addresses, processes) and of
//! each node (`node health --active` inside its namespace).

use super::{net, procs, sh, State};
use anyhow::Result;
use serde::Serialize;
use std::path::Path;

#[derive(Debug, Serialize)]
pub struct NodeStatus {
    pub id: u32,
    pub netns: String,
    pub addr: String,
    pub node_pid: Option<u32>,
    pub node_running: bool,
    pub keepalived_pid: Option<u32>,
    pub keepalived_running: bool,
    /// `node health --active` exit 0.
    pub healthy: bool,
    /// The last VRRP state keepalived reported to the node (`node notify`).
    pub vrrp: Option<String>,
    /// The address is on its interface and its keepalived runs.
    pub holds_vip: bool,
    /// The address is still on the interface of a node whose keepalived is dead (a crashed
    /// node: its cable is unplugged, so nobody reaches it there).
    pub stale_vip: bool,
}

#[derive(Debug, Serialize)]
pub struct LabStatus {
    pub dir: String,
    pub vip: String,
    pub client_netns: String,
    pub holder: Option<u32>,
    pub nodes: Vec<NodeStatus>,
}

pub fn status(dir: &Path) -> Result<LabStatus> {
    let state = State::load(dir)?;
    let nodes: Vec<NodeStatus> = state
        .members
        .iter()
        .map(|m| {
            let node_running = m.node_pid.is_some_and(procs::alive);
            let keepalived_running = m.keepalived_pid.is_some_and(procs::alive);
            let has_vip = net::holds_vip(&m.netns);
            let (healthy, vrrp) = if node_running {
                health(&state, &m.netns, &m.config)
            } else {
                (false, None)
            };
            NodeStatus {
                id: m.id,
                netns: m.netns.clone(),
                addr: m.addr.clone(),
                node_pid: m.node_pid,
                node_running,
                keepalived_pid: m.keepalived_pid,
                keepalived_running,
                healthy,
                vrrp,
                holds_vip: has_vip && keepalived_running,
                stale_vip: has_vip && !keepalived_running,
            }
        })
        .collect();
    Ok(LabStatus {
        dir: dir.display().to_string(),
        vip: state.vip.clone(),
        client_netns: state.client_netns.clone(),
        holder: nodes.iter().find(|n| n.holds_vip).map(|n| n.id),
        nodes,
    })
}

/// (exit 0, the VRRP state in its JSON answer).
fn health(state: &State, ns: &str, config: &Path) -> (bool, Option<String>) {
    let mut cmd = sh::ip();
    cmd.args(["netns", "exec", ns])
        .arg(&state.node_bin)
        .arg("-c")
        .arg(config)
        .args(["health", "--active"]);
    match sh::run(&mut cmd, &[]) {
        Ok((code, out, _)) => {
            let vrrp = serde_json::from_str::<serde_json::Value>(out.trim())
                .ok()
                .and_then(|v| v.get("vrrp").and_then(|s| s.as_str()).map(str::to_string));
            (code == Some(0), vrrp)
        }
        Err(_) => (false, None),
    }
}

pub fn print_status(dir: &Path, json: bool) -> Result<i32> {
    let s = status(dir)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(0);
    }
    println!(
        "lab {}: service address {} held by {}",
        s.dir,
        s.vip,
        s.holder
            .map_or("no node".to_string(), |h| format!("node {h}"))
    );
    println!(
        "{:<5} {:<18} {:<12} {:<14} {:<16} {:<9} {:<8} VIP",
        "node", "namespace", "address", "node pid", "keepalived pid", "health", "vrrp"
    );
    let pid = |p: Option<u32>, up: bool| match p {
        Some(p) => format!("{p} {}", if up { "up" } else { "dead" }),
        None => "-".to_string(),
    };
    for n in &s.nodes {
        println!(
            "{:<5} {:<18} {:<12} {:<14} {:<16} {:<9} {:<8} {}",
            n.id,
            n.netns,
            n.addr,
            pid(n.node_pid, n.node_running),
            pid(n.keepalived_pid, n.keepalived_running),
            if n.healthy { "active" } else { "down" },
            n.vrrp.as_deref().unwrap_or("-"),
            if n.holds_vip {
                "yes"
            } else if n.stale_vip {
                "stale (keepalived dead)"
            } else {
                ""
            }
        );
    }
    println!("client namespace {} reaches only {}", s.client_netns, s.vip);
    Ok(0)
}
