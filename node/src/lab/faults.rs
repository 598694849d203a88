//! `node lab transfer-active|pause|resume|partition|heal`: planned hand-overs and the faults a
//! fail-over drill needs, besides `crash`. Partitions are cut at the bridge (nft bridge family
//! in the switch namespace): rules inside a node's namespace miss VRRP (lab notes).

use super::{procs, sh, State};
use anyhow::{bail, Context, Result};
use std::path::Path;

/// The nft table in the switch namespace that holds every partition rule.
const TABLE: &str = "nodelab_partition";

fn check_node(state: &State, id: u32) -> Result<()> {
    if id == 0 || id > state.nodes {
        bail!("node {id}: this lab has nodes 1 to {}", state.nodes);
    }
    Ok(())
}

/// `node -c CONF ARGS` inside node `id`'s namespace: (exit code, stdout, stderr).
fn node_in(state: &State, id: u32, args: &[&str]) -> Result<(Option<i32>, String, String)> {
    let m = &state.members[id as usize - 1];
    let mut cmd = sh::ip();
    cmd.args(["netns", "exec", &m.netns])
        .arg(&state.node_bin)
        .arg("-c")
        .arg(&m.config)
        .args(args);
    sh::run(&mut cmd, &[])
}

/// The node whose `node health --active` says it is the active one.
fn active_node(state: &State) -> Option<u32> {
    state
        .members
        .iter()
        .filter(|m| m.node_pid.is_some_and(procs::alive))
        .find(|m| {
            node_in(state, m.id, &["health", "--active"]).is_ok_and(|(code, _, _)| code == Some(0))
        })
        .map(|m| m.id)
}

/// Runs `node cluster transfer-active N` on the active node; its exit code.
pub fn transfer_active(dir: &Path, target: u32) -> Result<i32> {
    super::require_root()?;
    let state = State::load(dir)?;
    check_node(&state, target)?;
    if state.mode != super::raft::LabMode::Raft {
        bail!("transfer-active needs a raft-mode lab (node lab up --mode raft); in keepalived-led mode stop a node's keepalived instead");
    }
    let active = active_node(&state).context(
        "no node says it is active now (an election in progress?); see `node lab status`",
    )?;
    let (code, out, err) = node_in(
        &state,
        active,
        &["cluster", "transfer-active", &target.to_string()],
    )?;
    print!("{out}");
    eprint!("{err}");
    println!("(run on node {active}, the active node)");
    Ok(code.unwrap_or(1))
}

/// SIGSTOP (`stop`) or SIGCONT every process in node `id`'s namespace: node and keepalived
/// freeze together, as a hung machine does (its address stays on its interface).
pub fn pause(dir: &Path, id: u32, stop: bool) -> Result<()> {
    super::require_root()?;
    let state = State::load(dir)?;
    check_node(&state, id)?;
    let ns = &state.members[id as usize - 1].netns;
    let pids = procs::pids_in(ns);
    if pids.is_empty() {
        bail!("node {id}: no process runs in {ns}");
    }
    procs::signal_all(&pids, if stop { libc::SIGSTOP } else { libc::SIGCONT });
    println!(
        "node {id}: {} {} processes in {ns} ({pids:?})",
        if stop { "paused" } else { "resumed" },
        pids.len()
    );
    Ok(())
}

/// Cuts node `id` off at the bridge, both directions, every protocol (VRRP, Raft, replication,
/// clients). Several nodes may be cut; `heal` removes them all.
pub fn partition(dir: &Path, id: u32) -> Result<()> {
    super::require_root()?;
    let state = State::load(dir)?;
    check_node(&state, id)?;
    let layout = state.layout(dir)?;
    let port = super::net::Names::port(id);
    let rules = format!(
        "table bridge {TABLE} {{\n  chain forward {{\n    type filter hook forward priority 0; policy accept;\n  }}\n}}\n\
         add rule bridge {TABLE} forward iifname \"{port}\" drop\n\
         add rule bridge {TABLE} forward oifname \"{port}\" drop\n"
    );
    let mut cmd = sh::ip();
    cmd.args(["netns", "exec", &layout.names.switch(), "nft", "-f", "-"]);
    sh::run_ok_stdin(&mut cmd, rules.as_bytes())
        .with_context(|| format!("cannot cut node {id} off at the bridge"))?;
    println!("node {id}: cut off at the bridge (port {port})");
    Ok(())
}

pub fn heal(dir: &Path) -> Result<()> {
    super::require_root()?;
    let state = State::load(dir)?;
    let layout = state.layout(dir)?;
    let mut cmd = sh::ip();
    cmd.args([
        "netns",
        "exec",
        &layout.names.switch(),
        "nft",
        "delete",
        "table",
        "bridge",
        TABLE,
    ]);
    let (code, _, err) = sh::run(&mut cmd, &[])?;
    // No table: nothing was cut, which is healed too.
    if code != Some(0) && !err.contains("No such file") {
        bail!("cannot heal the partitions: {}", err.trim());
    }
    println!("partitions healed");
    Ok(())
}
