//! `node cluster init` / `node cluster cert NODE`: the CA and node certificates of the peer
//! links. `node cluster status|transfer-active|add|remove`: the running node's coordinator
//! (raft mode), asked over the admin socket.

use super::ClusterCmd;
use crate::admin::{AdminClient, Request};
use crate::config::Config;

/// Asks the running node over its admin socket.
fn ask(config: &Config, req: &Request) -> anyhow::Result<serde_json::Value> {
    let path = config.admin_socket_path();
    let mut client = AdminClient::connect(&path).ok_or_else(|| {
        anyhow::anyhow!(
            "no running node answers on {} (start it with `node serve`)",
            path.display()
        )
    })?;
    client.call(req).map_err(|e| anyhow::anyhow!(e))
}

fn print_status(v: &serde_json::Value) {
    let c = &v["coordinator"];
    let opt = |x: &serde_json::Value| {
        x.as_u64()
            .map_or("none".to_string(), |n| format!("node {n}"))
    };
    outln!(
        "node {} ({}) mode={} raft={} term={} leader={} active={} epoch={} am_active={}",
        c["node"],
        c["role"].as_str().unwrap_or("?"),
        c["mode"].as_str().unwrap_or("?"),
        c["raft_state"].as_str().unwrap_or("?"),
        c["term"],
        opt(&c["leader"]),
        opt(&c["active"]),
        c["epoch"],
        c["am_active"]
    );
    for m in c["members"].as_array().into_iter().flatten() {
        outln!(
            "member {} {}{}{}",
            m["id"],
            m["addr"].as_str().unwrap_or("?"),
            if m["witness"].as_bool() == Some(true) {
                " witness"
            } else {
                ""
            },
            if m["voter"].as_bool() == Some(true) {
                ""
            } else {
                " learner"
            },
        );
    }
    for p in v["replication"]["peers"].as_array().into_iter().flatten() {
        outln!(
            "peer {} {} {} records_behind={}",
            p["id"],
            p["addr"].as_str().unwrap_or("?"),
            if p["connected"].as_bool() == Some(true) {
                "connected"
            } else {
                "disconnected"
            },
            p["records_behind"]
        );
    }
    if let Some(n) = v["replication"]["fenced_frames"].as_u64() {
        outln!("fenced_frames={n}");
    }
}

pub fn run(config: &Config, cmd: ClusterCmd, json: bool) -> anyhow::Result<i32> {
    let dir = config.cluster_certs_dir();
    match cmd {
        ClusterCmd::Status => {
            let v = ask(config, &Request::ClusterStatus)?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print_status(&v);
            }
        }
        ClusterCmd::TransferActive { node } => {
            let v = ask(config, &Request::TransferActive { node })?;
            outln!(
                "node {node} is active (epoch {}) after {:.3} s",
                v["epoch"],
                v["seconds"].as_f64().unwrap_or(0.0)
            );
        }
        ClusterCmd::Add {
            node,
            raft_address,
            witness,
        } => {
            ask(
                config,
                &Request::AddMember {
                    node,
                    raft_address,
                    witness,
                },
            )?;
            outln!("node {node} added to the group");
        }
        ClusterCmd::Remove { node } => {
            ask(config, &Request::RemoveMember { node })?;
            outln!("node {node} removed from the group");
        }
        ClusterCmd::Init => {
            let paths = replication::certs::init_ca(&dir)?;
            outln!(
                "cluster CA: {} (key {}, keep it secret)",
                paths.cert.display(),
                paths.key.display()
            );
        }
        ClusterCmd::Cert {
            node,
            hostnames,
            out,
        } => {
            anyhow::ensure!(node >= 1, "node ids start at 1");
            let out = out.unwrap_or_else(|| {
                if node == config.cluster.node_id {
                    dir.clone()
                } else {
                    dir.join(format!("node-{node}"))
                }
            });
            std::fs::create_dir_all(&out)?;
            let paths = replication::certs::issue_node_cert(&dir, node, &hostnames, &out)?;
            outln!(
                "node {node}: {} (key {})",
                paths.cert.display(),
                paths.key.display()
            );
            if out != dir {
                outln!(
                    "copy {} and these two files into node {node}'s [cluster] certs_dir",
                    dir.join(replication::certs::CA_CERT_FILE).display()
                );
            }
        }
    }
    Ok(0)
}
