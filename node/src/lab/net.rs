//! The lab's network: one namespace per node and one for the client, all on a Linux bridge
//! that lives in its own "switch" namespace. Nothing of the lab is in the root namespace: no
//! address, no route, no bridge there, so the host's firewall (root FORWARD rules also hit
//! bridged traffic) neither sees nor blocks it, and lab traffic cannot leave the machine.
//!
//! Every name is derived from a prefix, so several labs (parallel tests) coexist; the
//! addresses are the same in every lab, which is fine since no two labs share a link.

use super::sh::{ip, run_ok};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// The private /24 of every lab (inside its namespaces only).
pub const SUBNET: [u8; 3] = [10, 213, 0];
pub const PREFIX_LEN: u8 = 24;
/// The interface name of every member inside its own namespace.
pub const IFACE: &str = "eth0";
const BRIDGE: &str = "br0";

pub fn node_addr(id: u32) -> Ipv4Addr {
    Ipv4Addr::new(SUBNET[0], SUBNET[1], SUBNET[2], id as u8)
}

pub fn vip() -> Ipv4Addr {
    Ipv4Addr::new(SUBNET[0], SUBNET[1], SUBNET[2], 10)
}

pub fn client_addr() -> Ipv4Addr {
    Ipv4Addr::new(SUBNET[0], SUBNET[1], SUBNET[2], 100)
}

/// The names of one lab's namespaces.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Names {
    pub prefix: String,
}

impl Names {
    /// A prefix is short and plain: it becomes part of namespace names and file names.
    pub fn new(prefix: &str) -> Result<Names> {
        let ok = !prefix.is_empty()
            && prefix.len() <= 16
            && prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            bail!("--prefix {prefix:?}: use 1 to 16 letters, digits, '-' or '_'");
        }
        Ok(Names {
            prefix: prefix.to_string(),
        })
    }
    pub fn switch(&self) -> String {
        format!("{}-sw", self.prefix)
    }
    pub fn node(&self, id: u32) -> String {
        format!("{}-n{id}", self.prefix)
    }
    pub fn client(&self) -> String {
        format!("{}-client", self.prefix)
    }
    /// The raft witness's namespace (`--witness`).
    pub fn witness(&self) -> String {
        format!("{}-w", self.prefix)
    }
    pub const WITNESS_PORT: &'static str = "w";
    /// The switch-side end of node `id`'s cable.
    pub fn port(id: u32) -> String {
        format!("n{id}")
    }
    pub const CLIENT_PORT: &'static str = "client";

    /// Every namespace of a lab with `nodes` nodes (and the witness's), switch last.
    pub fn all_of(&self, nodes: u32, witness: bool) -> Vec<String> {
        let mut v: Vec<String> = (1..=nodes).map(|i| self.node(i)).collect();
        if witness {
            v.push(self.witness());
        }
        v.push(self.client());
        v.push(self.switch());
        v
    }
}

/// Namespaces that exist now.
pub fn existing_namespaces() -> Result<Vec<String>> {
    let out = run_ok(ip().args(["netns", "list"]))?;
    // "name (id: 3)" or "name"
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect())
}

/// Builds the namespaces, the bridge and one cable per member, with addresses; the witness
/// (raft mode, 2 nodes) takes node 3's address.
pub fn create(names: &Names, nodes: u32, witness: bool) -> Result<()> {
    let existing = existing_namespaces()?;
    for ns in names.all_of(nodes, witness) {
        if existing.contains(&ns) {
            bail!(
                "network namespace {ns} already exists: a lab left over? run `node lab down` with its --dir, or `ip netns del {ns}`"
            );
        }
    }
    let sw = names.switch();
    run_ok(ip().args(["netns", "add", &sw]))?;
    run_ok(ip().args(["-n", &sw, "link", "add", BRIDGE, "type", "bridge"]))?;
    run_ok(ip().args(["-n", &sw, "link", "set", BRIDGE, "up"]))?;
    let witness_member = witness.then(|| {
        (
            names.witness(),
            Names::WITNESS_PORT.to_string(),
            node_addr(super::raft::WITNESS_ID),
        )
    });
    let members: Vec<(String, String, Ipv4Addr)> = (1..=nodes)
        .map(|i| (names.node(i), Names::port(i), node_addr(i)))
        .chain(witness_member)
        .chain(std::iter::once((
            names.client(),
            Names::CLIENT_PORT.to_string(),
            client_addr(),
        )))
        .collect();
    for (ns, port, addr) in members {
        run_ok(ip().args(["netns", "add", &ns]))?;
        run_ok(ip().args([
            "-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", IFACE, "netns", &ns,
        ]))?;
        run_ok(ip().args(["-n", &sw, "link", "set", &port, "master", BRIDGE, "up"]))?;
        run_ok(ip().args(["-n", &ns, "link", "set", "lo", "up"]))?;
        run_ok(ip().args([
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{addr}/{PREFIX_LEN}"),
            "dev",
            IFACE,
        ]))?;
        run_ok(ip().args(["-n", &ns, "link", "set", IFACE, "up"]))?;
    }
    Ok(())
}

/// The client may reach the service address only (not the nodes' own addresses).
pub fn restrict_client(names: &Names) -> Result<()> {
    let rules = format!(
        "table inet nodelab {{\n  chain out {{\n    type filter hook output priority 0; policy drop;\n    oifname \"lo\" accept\n    ip daddr {vip} accept\n  }}\n}}\n",
        vip = vip()
    );
    let mut cmd = ip();
    cmd.args(["netns", "exec", &names.client(), "nft", "-f", "-"]);
    super::sh::run_ok_stdin(&mut cmd, rules.as_bytes()).context(
        "cannot install the client's firewall (is nftables installed? apt-get install nftables)",
    )?;
    Ok(())
}

/// Whether namespace `ns` holds the service address.
pub fn holds_vip(ns: &str) -> bool {
    run_ok(ip().args(["-n", ns, "-o", "-4", "addr", "show", "dev", IFACE]))
        .map(|out| out.contains(&format!("inet {}/", vip())))
        .unwrap_or(false)
}

/// Unplugs node `id`'s cable at the switch.
pub fn unplug(names: &Names, id: u32) -> Result<()> {
    run_ok(ip().args([
        "-n",
        &names.switch(),
        "link",
        "set",
        &Names::port(id),
        "down",
    ]))?;
    Ok(())
}

/// Tears down in the order that lets a quick re-create work (`ip netns del` finishes in the
/// background): cables, then the bridge, then the namespaces. Best effort: every step is
/// tried, the failures are returned.
pub fn destroy(names: &Names, nodes: u32, witness: bool) -> Vec<String> {
    let mut errors = Vec::new();
    let existing = existing_namespaces().unwrap_or_default();
    let sw = names.switch();
    if existing.contains(&sw) {
        let ports = (1..=nodes)
            .map(Names::port)
            .chain(witness.then(|| Names::WITNESS_PORT.to_string()))
            .chain(std::iter::once(Names::CLIENT_PORT.to_string()));
        for port in ports {
            // A missing cable is fine (a failed `up`).
            let _ = run_ok(ip().args(["-n", &sw, "link", "del", &port]));
        }
        if let Err(e) = run_ok(ip().args(["-n", &sw, "link", "del", BRIDGE])) {
            errors.push(format!("bridge: {e:#}"));
        }
    }
    for ns in names.all_of(nodes, witness) {
        if existing.contains(&ns) {
            if let Err(e) = run_ok(ip().args(["netns", "del", &ns])) {
                errors.push(format!("{ns}: {e:#}"));
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_short_and_plain() {
        assert!(Names::new("nodelab").is_ok());
        for bad in ["", "a b", "x/y", "../etc", "seventeen-chars-x"] {
            assert!(Names::new(bad).is_err(), "{bad:?} accepted");
        }
        let n = Names::new("lab").unwrap();
        assert_eq!(
            n.all_of(2, false),
            vec!["lab-n1", "lab-n2", "lab-client", "lab-sw"]
        );
        assert_eq!(n.all_of(2, true)[2], "lab-w");
        assert_eq!(node_addr(2).to_string(), "10.213.0.2");
        assert!(vip().is_private() && client_addr().is_private());
    }
}
