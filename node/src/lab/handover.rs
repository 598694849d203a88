//! `node lab transfer-active N`: a planned hand-over of the active role in a raft-mode lab,
//! run with `node cluster transfer-active` inside the active node's namespace.

use super::{procs, sh, State};
use anyhow::{bail, Context, Result};
use std::path::Path;

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
