//! `node lab up --mode raft`: the raft-mode parts of a lab. Three mail nodes are the voters,
//! or two mail nodes and a `node witness` in its own namespace (`--nodes 2 --witness`). Each
//! node's `[cluster]` gets `mode = "raft"`, its coordination listener and the lab's timers;
//! the witness gets its small file and certificate.

use super::{net, procs, Layout, State};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Who decides the active node in a lab.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LabMode {
    /// keepalived's priorities and nopreempt; every node accepts writes.
    #[default]
    KeepalivedLed,
    /// The openraft group elects the active node; keepalived follows it.
    Raft,
}

impl LabMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LabMode::KeepalivedLed => "keepalived-led",
            LabMode::Raft => "raft",
        }
    }
}

/// The witness's coordination port (it has no replication listener); mail nodes carry raft
/// on their replication port.
pub const RAFT_PORT: u16 = 7144;
/// The witness takes the third node's id and address (a 2-node lab has no node 3).
pub const WITNESS_ID: u32 = 3;

/// The lab's raft timers, for sub-second fail-over (docs/performance.md, "Fail-over"). In
/// openraft 0.9 a follower campaigns only after the leader lease (`election_timeout_max`)
/// *plus* a random election timeout since the last heartbeat, so a dead active node is
/// replaced after 0.5 to 0.7 s here (1.2 to 1.6 s with the node's defaults 100/400/800 ms). The
/// active node's own lease is the minimum, 250 ms: five heartbeats, which a busy debug build
/// on 2 cores still gets acknowledged in time.
pub const HEARTBEAT: &str = "50 msecs";
pub const ELECTION_MIN: &str = "250 msecs";
pub const ELECTION_MAX: &str = "350 msecs";
/// The pull before taking the role is quick when nothing is missing; a dead peer costs only
/// the take-over's grace (a twentieth of this) once the other peers answered.
pub const TAKEOVER: &str = "1 secs";

/// Where a voter takes raft connections: the witness on its own port, a mail node on its
/// replication port.
pub fn raft_addr(id: u32) -> String {
    if id == WITNESS_ID {
        format!("{}:{RAFT_PORT}", net::node_addr(id))
    } else {
        format!(
            "{}:{}",
            net::node_addr(id),
            super::node_conf::REPLICATION_PORT
        )
    }
}

/// The `[cluster]` lines a raft-mode node adds to its file (after `durability`); raft shares
/// the replication port (no `raft_listen`).
pub fn cluster_lines(nodes: u32, witness: bool) -> String {
    let mut s = format!(
        "mode = \"raft\"\nraft_heartbeat = \"{HEARTBEAT}\"\n\
         raft_election_timeout_min = \"{ELECTION_MIN}\"\nraft_election_timeout_max = \"{ELECTION_MAX}\"\n\
         takeover_timeout = \"{TAKEOVER}\"\n"
    );
    if witness && nodes == 2 {
        s.push_str(&format!(
            "witness = {{ node_id = {WITNESS_ID}, raft_address = \"{}\" }}\n",
            raft_addr(WITNESS_ID)
        ));
    }
    s
}

pub fn witness_dir(layout: &Layout) -> PathBuf {
    layout.dir.join("witness")
}

pub fn witness_config(layout: &Layout) -> PathBuf {
    witness_dir(layout).join("witness.toml")
}

pub fn witness_log(layout: &Layout) -> PathBuf {
    witness_dir(layout).join("witness.log")
}

fn q(p: &std::path::Path) -> String {
    format!("{:?}", p.display().to_string())
}

/// The witness's certificate (same CA as the nodes) and its file.
pub fn write_witness(layout: &Layout, nodes: u32) -> Result<()> {
    let dir = witness_dir(layout);
    let certs = dir.join("cluster");
    std::fs::create_dir_all(&certs)
        .with_context(|| format!("cannot create {}", certs.display()))?;
    let ca = layout.dir.join("ca");
    replication::certs::issue_node_cert(
        &ca,
        WITNESS_ID,
        &[net::node_addr(WITNESS_ID).to_string()],
        &certs,
    )
    .context("cannot issue the witness's certificate")?;
    let ca_cert = replication::certs::CA_CERT_FILE;
    std::fs::copy(ca.join(ca_cert), certs.join(ca_cert))
        .with_context(|| format!("cannot copy the CA certificate to {}", certs.display()))?;
    let members: Vec<String> = (1..=nodes)
        .map(|p| {
            format!(
                "  {{ node_id = {p}, raft_address = \"{}\" }},",
                raft_addr(p)
            )
        })
        .collect();
    let text = format!(
        "# Lab witness (written by `node lab up --witness`): the third voter, no mail.\n\
         node_id = {WITNESS_ID}\nraft_listen = \"{}\"\ndata_dir = {}\ncerts_dir = {}\nlog_path = {}\n\
         raft_heartbeat = \"{HEARTBEAT}\"\nraft_election_timeout_min = \"{ELECTION_MIN}\"\n\
         raft_election_timeout_max = \"{ELECTION_MAX}\"\nmembers = [\n{}\n]\n",
        raft_addr(WITNESS_ID),
        q(&dir.join("data")),
        q(&certs),
        q(&witness_log(layout)),
        members.join("\n")
    );
    let path = witness_config(layout);
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Starts `node witness` in its namespace and waits for its ready line.
pub fn start_witness(layout: &Layout, state: &mut State) -> Result<()> {
    let config = witness_config(layout).display().to_string();
    let log = witness_log(layout);
    let pid = procs::spawn_in(
        &layout.names.witness(),
        &state.node_bin,
        &["-c", &config, "witness"],
        &log,
    )?;
    state.witness_pid = Some(pid);
    state.save(&layout.dir)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("node: ready witness") {
            return Ok(());
        }
        if !procs::alive(pid) || Instant::now() > deadline {
            bail!(
                "the witness did not start (see {}):\n{}",
                log.display(),
                text.lines().rev().take(10).collect::<Vec<_>>().join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `node lab up` checks: a witness only with two mail nodes in raft mode.
pub fn check_shape(mode: LabMode, nodes: u32, witness: bool) -> Result<()> {
    if witness && (mode != LabMode::Raft || nodes != 2) {
        bail!("--witness needs --mode raft --nodes 2 (the witness is the third voter)");
    }
    if mode == LabMode::Raft && nodes == 2 && !witness {
        bail!("--mode raft with --nodes 2 needs --witness: Raft needs three voters");
    }
    Ok(())
}
