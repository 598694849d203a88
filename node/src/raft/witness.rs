//! `node witness --config FILE`: only the coordinator, as the third voter of a two-node raft
//! cluster. It stores no mail, never campaigns and never becomes active; it lets the surviving
//! mail node win a majority when the other is down.
//!
//! Its file is small (unknown keys are errors):
//! ```toml
//! node_id = 3
//! raft_listen = "10.0.0.3:7002"
//! data_dir = "/var/lib/node-witness"
//! certs_dir = "/etc/node/cluster"   # ca.pem, node.pem, node.key (`node cluster cert 3`)
//! members = [ { node_id = 1, raft_address = "10.0.0.1:7002" },
//!             { node_id = 2, raft_address = "10.0.0.2:7002" } ]
//! ```
//! The timers (`raft_heartbeat`, `raft_election_timeout_min`, `raft_election_timeout_max`)
//! default as in `[cluster]` and must match the mail nodes'.

use crate::config::values::DurationSetting;
use anyhow::Context as _;
use replication::certs::{CA_CERT_FILE, NODE_CERT_FILE, NODE_KEY_FILE};
use replication::coord::{CoordConfig, CoordPeer, CoordRole, CoordTimeouts, Coordinator};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessFile {
    pub node_id: u32,
    pub raft_listen: String,
    pub data_dir: PathBuf,
    pub certs_dir: PathBuf,
    pub members: Vec<Member>,
    #[serde(default)]
    pub log_path: String,
    #[serde(default = "heartbeat")]
    pub raft_heartbeat: DurationSetting,
    #[serde(default = "election_min")]
    pub raft_election_timeout_min: DurationSetting,
    #[serde(default = "election_max")]
    pub raft_election_timeout_max: DurationSetting,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub node_id: u32,
    pub raft_address: String,
}

fn heartbeat() -> DurationSetting {
    DurationSetting(Duration::from_millis(100))
}
fn election_min() -> DurationSetting {
    DurationSetting(Duration::from_millis(400))
}
fn election_max() -> DurationSetting {
    DurationSetting(Duration::from_millis(800))
}

impl WitnessFile {
    pub fn parse(text: &str, path: &Path) -> anyhow::Result<WitnessFile> {
        let w: WitnessFile = toml::from_str(text)
            .with_context(|| format!("{}: witness configuration", path.display()))?;
        anyhow::ensure!(
            w.node_id >= 1,
            "{}: node_id must be at least 1",
            path.display()
        );
        anyhow::ensure!(
            w.members.len() >= 2 && w.members.iter().all(|m| m.node_id != w.node_id && m.raft_address.contains(':')),
            "{}: members needs the mail nodes (at least two, each with raft_address = \"host:port\", none with the witness's node_id)",
            path.display()
        );
        Ok(w)
    }

    fn coord_config(&self) -> anyhow::Result<CoordConfig> {
        let tls = replication::TlsMaterial::load(
            &self.certs_dir.join(CA_CERT_FILE),
            &self.certs_dir.join(NODE_CERT_FILE),
            &self.certs_dir.join(NODE_KEY_FILE),
        )
        .with_context(|| format!("certs_dir {}", self.certs_dir.display()))?;
        let mut members: Vec<CoordPeer> = self
            .members
            .iter()
            .map(|m| CoordPeer {
                id: m.node_id,
                addr: m.raft_address.clone(),
                witness: false,
            })
            .collect();
        members.push(CoordPeer {
            id: self.node_id,
            addr: self.raft_listen.clone(),
            witness: true,
        });
        Ok(CoordConfig {
            node_id: self.node_id,
            data_dir: self.data_dir.clone(),
            listen: self
                .raft_listen
                .parse()
                .with_context(|| format!("raft_listen {:?}", self.raft_listen))?,
            members,
            role: CoordRole::Witness,
            timeouts: CoordTimeouts {
                heartbeat: self.raft_heartbeat.0,
                election_min: self.raft_election_timeout_min.0,
                election_max: self.raft_election_timeout_max.0,
                lease: self.raft_election_timeout_min.0,
            },
            tls,
            on_activate: None,
        })
    }
}

/// Runs the witness until SIGTERM/SIGINT.
pub fn run(path: &Path) -> anyhow::Result<i32> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let w = WitnessFile::parse(&text, path)?;
    crate::logging::init(&w.log_path, crate::logging::LogFormat::Text)?;
    std::fs::create_dir_all(&w.data_dir)
        .with_context(|| format!("data_dir {}: cannot create", w.data_dir.display()))?;
    let cfg = w.coord_config()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    rt.block_on(async {
        let coord = Coordinator::start(cfg)
            .await
            .context("witness: cannot start")?;
        let ready = format!(
            "node: ready witness={} raft={}",
            w.node_id,
            coord
                .local_addr()
                .map_or_else(|| "-".to_string(), |a| a.to_string())
        );
        tracing::info!("{ready}");
        // Test harnesses and init scripts wait for this line.
        eprintln!("{ready}");
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        coord.shutdown().await;
        anyhow::Ok(())
    })?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn witness_file_parses_and_refuses_unknown_keys() {
        let text = "node_id = 3\nraft_listen = \"127.0.0.1:7003\"\ndata_dir = \"/tmp/w\"\ncerts_dir = \"/tmp/c\"\n\
                    members = [ { node_id = 1, raft_address = \"127.0.0.1:7001\" }, { node_id = 2, raft_address = \"127.0.0.1:7002\" } ]\n";
        let w = WitnessFile::parse(text, Path::new("w.toml")).unwrap();
        assert_eq!(w.raft_heartbeat.0, Duration::from_millis(100));
        assert_eq!(w.members.len(), 2);
        let e = WitnessFile::parse(&format!("{text}listen = \"x\"\n"), Path::new("w.toml"))
            .unwrap_err();
        assert!(format!("{e:#}").contains("listen"), "{e:#}");
        let one = "node_id = 3\nraft_listen = \"127.0.0.1:7003\"\ndata_dir = \"/tmp/w\"\ncerts_dir = \"/tmp/c\"\n\
                   members = [ { node_id = 1, raft_address = \"127.0.0.1:7001\" } ]\n";
        assert!(WitnessFile::parse(one, Path::new("w.toml")).is_err());
    }
}
