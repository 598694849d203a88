//! `node cluster init` / `node cluster cert NODE`: the CA and node certificates of the peer links.

use super::ClusterCmd;
use crate::config::Config;

pub fn run(config: &Config, cmd: ClusterCmd) -> anyhow::Result<i32> {
    let dir = config.cluster_certs_dir();
    match cmd {
        ClusterCmd::Init => {
            let paths = replication::certs::init_ca(&dir)?;
            println!(
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
            println!(
                "node {node}: {} (key {})",
                paths.cert.display(),
                paths.key.display()
            );
            if out != dir {
                println!(
                    "copy {} and these two files into node {node}'s [cluster] certs_dir",
                    dir.join(replication::certs::CA_CERT_FILE).display()
                );
            }
        }
    }
    Ok(0)
}
