//! Each lab node's files: its node.toml (real listeners on the standard ports inside its
//! namespace, `durability = "replicated"`, peers = the other lab nodes), its peer-link
//! certificates made by the same code as `node cluster init` / `node cluster cert`, and the
//! shared passwd-file with the demo user.

use super::net;
use super::Layout;
use anyhow::{Context, Result};
use replication::certs::{self, CA_CERT_FILE};
use std::path::Path;

pub const DEMO_USER: &str = "demo";
pub const DEMO_PASSWORD: &str = "demo";
/// LMTP recipients are demo@lab.test.
pub const REALM: &str = "lab.test";
pub const REPLICATION_PORT: u16 = 7143;

/// The CA under DIR/ca and each node's certificate (SAN: its lab address) in its certs_dir.
pub fn make_certs(layout: &Layout, nodes: u32) -> Result<()> {
    let ca = layout.dir.join("ca");
    certs::init_ca(&ca).context("cannot make the lab's cluster CA")?;
    for id in 1..=nodes {
        let out = layout.certs_dir(id);
        std::fs::create_dir_all(&out)
            .with_context(|| format!("cannot create {}", out.display()))?;
        certs::issue_node_cert(&ca, id, &[net::node_addr(id).to_string()], &out)
            .with_context(|| format!("cannot issue node {id}'s certificate"))?;
        std::fs::copy(ca.join(CA_CERT_FILE), out.join(CA_CERT_FILE))
            .with_context(|| format!("cannot copy the CA certificate to {}", out.display()))?;
    }
    Ok(())
}

pub fn write_passwd(path: &Path) -> Result<()> {
    std::fs::write(
        path,
        format!("{DEMO_USER}:{{PLAIN}}{DEMO_PASSWORD}::::::\n"),
    )
    .with_context(|| format!("cannot write {}", path.display()))
}

fn q(p: &Path) -> String {
    // Debug quoting of a path is valid TOML for the plain paths the lab makes.
    format!("{:?}", p.display().to_string())
}

/// `raft`: None in keepalived-led mode, Some(witness) in raft mode.
pub fn render(layout: &Layout, id: u32, nodes: u32, raft: Option<bool>) -> String {
    let peers: Vec<String> = (1..=nodes)
        .filter(|p| *p != id)
        .map(|p| {
            format!(
                "  {{ node_id = {p}, address = \"{}:{REPLICATION_PORT}\" }},",
                net::node_addr(p),
            )
        })
        .collect();
    let raft_lines = raft.map_or(String::new(), |witness| {
        super::raft::cluster_lines(nodes, witness)
    });
    format!(
        r#"# Lab node {id} (written by `node lab up`): runs in network namespace {ns}.
protocols = "imap pop3 lmtp"
# Every address of the namespace, so the service address works wherever keepalived puts it.
listen = "*"
hostname = "lab-n{id}"
# ssl_cert/ssl_key unset: a self-signed certificate under data_dir/tls.
ssl = "yes"
# The lab's client speaks plain IMAP to the service address, which is not loopback.
auth_allow_cleartext = true
auth_default_realm = "{REALM}"
auth_failure_delay = "0 secs"
# `node notify` (keepalived's notify scripts) logs here too.
log_path = {log}
shutdown_timeout = "3 secs"
# The lab's clients all come from one address, and a fault (a cut cable, a stopped node) leaves
# their old connections open on the server until TCP gives up on them: the default limit of 10
# per user and address would lock the harness's clients out after a few faults.
mail_max_userip_connections = 1000

[[passdb]]
driver = "passwd-file"
args = {passwd}

[imap]
port = 143
ssl_port = 993

[pop3]
port = 110
ssl_port = 995

[lmtp]
port = 24

# Loopback of the namespace: `node health` (keepalived's track script) runs there.
[http]
port = 9143
listen = "127.0.0.1"

[storage]
data_dir = {data}

[cluster]
node_id = {id}
listen = "{addr}:{REPLICATION_PORT}"
durability = "replicated"
replication_sync_timeout = "2 secs"
certs_dir = {certs}
vrrp_track_file = {track}
{raft_lines}peers = [
{peers}
]
"#,
        ns = layout.names.node(id),
        log = q(&layout.node_log(id)),
        passwd = q(&layout.passwd()),
        data = q(&layout.data_dir(id)),
        addr = net::node_addr(id),
        certs = q(&layout.certs_dir(id)),
        track = q(&layout.track_file(id)),
        peers = peers.join("\n"),
    )
}
