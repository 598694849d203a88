//! keepalived.conf for one node, the same generator for the lab and for `deploy/`: VRRPv3
//! with sub-second adverts over unicast, `node health --active` as the track script, the
//! node's track file, `node notify` on every transition, and the gratuitous-ARP settings that
//! bring clients to the new holder in milliseconds (lab notes: without them clients kept the
//! old ARP entry for about 10 s).

use super::sh;
use anyhow::{bail, Result};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Raft mode's priority on every node: 255 (the "address owner") makes an instance that
/// leaves FAULT go MASTER at once instead of waiting out the master-down timer (3 adverts and
/// a skew, about 0.35 s). Only the Raft-active node is ever out of FAULT, so no two compete;
/// if a resumed stale master does, the tie goes to the higher address and its track file
/// takes it out within milliseconds.
pub const RAFT_PRIORITY: u8 = 255;
/// Raft mode's advert interval: keepalived 2.2 still passes through BACKUP when it leaves
/// FAULT and waits 3 adverts there, so short adverts are what make the address follow fast.
pub const RAFT_ADVERT_INT: &str = "0.03";

#[derive(Clone, Debug)]
pub struct KeepalivedSpec {
    pub router_id: String,
    pub interface: String,
    pub virtual_router_id: u8,
    /// Highest wins the first election; `nopreempt` keeps the holder afterwards.
    pub priority: u8,
    /// "0.1": a dead master is noticed after 3 adverts and a skew, about 0.35 s.
    pub advert_int: String,
    pub unicast_src: Ipv4Addr,
    pub unicast_peers: Vec<Ipv4Addr>,
    /// "10.0.0.10/24".
    pub vip: String,
    /// The node command with its configuration: "/usr/local/bin/node -c /etc/node/node.toml".
    pub node_cmd: String,
    /// `[cluster] vrrp_track_file` of the node, if set.
    pub track_file: Option<PathBuf>,
    /// `[cluster] mode = "raft"`: the track file (the Raft role) alone decides which node may
    /// hold the address; see [`KeepalivedSpec::render`].
    pub raft: bool,
}

impl KeepalivedSpec {
    pub fn render(&self) -> Result<String> {
        // keepalived splits script lines on spaces and has no escaping we could rely on.
        for s in [&self.node_cmd, &self.interface, &self.router_id, &self.vip] {
            if s.contains('"') || s.is_empty() {
                bail!("keepalived config: {s:?} is empty or holds a quote");
            }
        }
        if let Some(t) = &self.track_file {
            let t = t.display().to_string();
            if t.contains(['"', ' ']) {
                bail!("keepalived config: track file {t:?} holds a space or a quote");
            }
        }
        if self.unicast_peers.is_empty() {
            bail!("keepalived config: no unicast peers");
        }
        let mut c = String::new();
        let w = &mut c;
        // write! to a String cannot fail.
        let _ = writeln!(
            w,
            "# keepalived.conf for {} (written by `node lab`; same generator as deploy/).",
            self.router_id
        );
        let _ = writeln!(w, "# Check with: keepalived -t -f THIS_FILE");
        let _ = writeln!(w);
        let _ = writeln!(w, "global_defs {{");
        let _ = writeln!(w, "    router_id {}", self.router_id);
        let _ = writeln!(w, "    enable_script_security");
        let _ = writeln!(w, "    script_user root");
        let _ = writeln!(w, "    # VRRPv3 allows adverts below one second.");
        let _ = writeln!(w, "    vrrp_version 3");
        let _ = writeln!(w, "}}");
        let _ = writeln!(w);
        if self.raft {
            let _ = writeln!(
                w,
                "# Raft mode: exit 0 while the node answers at all (a hung node whose track file"
            );
            let _ = writeln!(
                w,
                "# still says 0 falls to FAULT here). The role is the track file's job: with"
            );
            let _ = writeln!(
                w,
                "# `health --active` and rise 2 a newly elected node would wait up to 2 s in FAULT."
            );
            let _ = writeln!(w, "vrrp_script chk_node {{");
            let _ = writeln!(w, "    script \"{} health\"", self.node_cmd);
        } else {
            let _ = writeln!(
                w,
                "# Exit 0 while the node serves and may be the active node (keepalived-led mode:"
            );
            let _ = writeln!(
                w,
                "# every serving node may; Raft mode: only the leader). keepalived runs it at most"
            );
            let _ = writeln!(w, "# once a second; the track file below is the fast path.");
            let _ = writeln!(w, "vrrp_script chk_node {{");
            let _ = writeln!(w, "    script \"{} health --active\"", self.node_cmd);
        }
        let _ = writeln!(w, "    interval 1");
        let _ = writeln!(w, "    timeout 2");
        let _ = writeln!(w, "    fall 2");
        let _ = writeln!(w, "    rise 2");
        let _ = writeln!(w, "}}");
        let _ = writeln!(w);
        if let Some(t) = &self.track_file {
            if self.raft {
                let _ = writeln!(
                    w,
                    "# Raft mode: 0 while this node is the active node (Raft leader with a lease),"
                );
                let _ = writeln!(
                    w,
                    "# 1 from the moment it is not: only the active node is ever out of FAULT."
                );
            }
            let _ = writeln!(
                w,
                "# The node writes 0 here while it may be active and 1 when it may not (at once"
            );
            let _ = writeln!(
                w,
                "# when it stops); with weight 0 a non-zero value puts this node in FAULT."
            );
            let _ = writeln!(w, "track_file node_active {{");
            let _ = writeln!(w, "    file \"{}\"", t.display());
            let _ = writeln!(w, "    weight 0");
            let _ = writeln!(w, "    # Until the node has said it serves, it does not.");
            let _ = writeln!(w, "    init_file 1");
            let _ = writeln!(w, "}}");
            let _ = writeln!(w);
        }
        let _ = writeln!(w, "vrrp_instance MAIL {{");
        if self.raft {
            let _ = writeln!(
                w,
                "    # Raft mode: MASTER with priority 255, so leaving FAULT (this node became"
            );
            let _ = writeln!(
                w,
                "    # active) goes MASTER at once, not after the master-down timer (~0.35 s)."
            );
            let _ = writeln!(w, "    state MASTER");
        } else {
            let _ = writeln!(
                w,
                "    # Every node starts as BACKUP (nopreempt needs it); the highest priority wins"
            );
            let _ = writeln!(w, "    # the first election.");
            let _ = writeln!(w, "    state BACKUP");
        }
        let _ = writeln!(w, "    interface {}", self.interface);
        let _ = writeln!(w, "    virtual_router_id {}", self.virtual_router_id);
        let _ = writeln!(w, "    priority {}", self.priority);
        let _ = writeln!(w, "    advert_int {}", self.advert_int);
        if self.raft {
            let _ = writeln!(
                w,
                "    # Raft mode: no nopreempt, priority 255 on every node: only the active node is"
            );
            let _ = writeln!(
                w,
                "    # out of FAULT, and it goes MASTER at once instead of after 3 missed adverts."
            );
        } else {
            let _ = writeln!(
                w,
                "    # A node that comes back does not take the address back: clients stay where"
            );
            let _ = writeln!(
                w,
                "    # they are while replication catches the returning node up."
            );
            let _ = writeln!(w, "    nopreempt");
        }
        let _ = writeln!(w, "    unicast_src_ip {}", self.unicast_src);
        let _ = writeln!(
            w,
            "    # One peer per line: `unicast_peer {{ a b }}` is only logged as an error."
        );
        let _ = writeln!(w, "    unicast_peer {{");
        for p in &self.unicast_peers {
            let _ = writeln!(w, "        {p}");
        }
        let _ = writeln!(w, "    }}");
        let _ = writeln!(w, "    virtual_ipaddress {{");
        let _ = writeln!(w, "        {} dev {}", self.vip, self.interface);
        let _ = writeln!(w, "    }}");
        let _ = writeln!(w, "    track_script {{");
        let _ = writeln!(w, "        chk_node");
        let _ = writeln!(w, "    }}");
        if self.track_file.is_some() {
            let _ = writeln!(w, "    track_file {{");
            let _ = writeln!(w, "        node_active weight 0");
            let _ = writeln!(w, "    }}");
        }
        let _ = writeln!(
            w,
            "    # Gratuitous ARP: a new master announces itself at once and again after 1 s;"
        );
        let _ = writeln!(
            w,
            "    # a lower-priority advert makes the master answer and re-announce, so clients"
        );
        let _ = writeln!(
            w,
            "    # holding a stale ARP entry move within milliseconds."
        );
        let _ = writeln!(w, "    garp_master_delay 1");
        let _ = writeln!(w, "    garp_master_repeat 3");
        let _ = writeln!(w, "    garp_lower_prio_repeat 3");
        let _ = writeln!(
            w,
            "    # And every second while master: after a partition heals, a client that kept the"
        );
        let _ = writeln!(
            w,
            "    # old holder's MAC (it missed the announcements behind the cut) finds the address."
        );
        let _ = writeln!(w, "    garp_master_refresh 1");
        let _ = writeln!(w, "    higher_prio_send_advert true");
        for state in ["master", "backup", "fault", "stop"] {
            let _ = writeln!(w, "    notify_{state} \"{} notify {state}\"", self.node_cmd);
        }
        let _ = writeln!(w, "}}");
        Ok(c)
    }
}

/// `keepalived -t -f CONF` (in namespace `netns` when given, where the interface exists);
/// keepalived only logs some mistakes, so its output is checked for errors too.
pub fn validate(conf: &Path, netns: Option<&str>) -> Result<()> {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = sh::ip();
            c.args(["netns", "exec", ns, "keepalived"]);
            c
        }
        None => Command::new("keepalived"),
    };
    cmd.args(["-t", "-l", "-f"]).arg(conf);
    let (code, out, err) = sh::run(&mut cmd, &[])?;
    let text = format!("{out}{err}");
    let logged_error = text
        .lines()
        .find(|l| l.contains("(Line ") || l.to_ascii_lowercase().contains("error"));
    if code != Some(0) || logged_error.is_some() {
        bail!(
            "keepalived -t -f {} rejects the generated configuration: {}",
            conf.display(),
            logged_error.unwrap_or(text.trim())
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> KeepalivedSpec {
        KeepalivedSpec {
            router_id: "mail1".into(),
            interface: "eth0".into(),
            virtual_router_id: 51,
            priority: 150,
            advert_int: "0.1".into(),
            unicast_src: Ipv4Addr::new(10, 0, 0, 1),
            unicast_peers: vec![Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 3)],
            vip: "10.0.0.10/24".into(),
            node_cmd: "/usr/local/bin/node -c /etc/node/node.toml".into(),
            track_file: Some("/run/node/vrrp-track".into()),
            raft: false,
        }
    }

    #[test]
    fn one_peer_per_line_and_every_notify() {
        let c = spec().render().unwrap();
        assert!(c.contains("unicast_peer {\n        10.0.0.2\n        10.0.0.3\n    }"));
        for s in ["master", "backup", "fault", "stop"] {
            assert!(c.contains(&format!(
                "notify_{s} \"/usr/local/bin/node -c /etc/node/node.toml notify {s}\""
            )));
        }
        assert!(c.contains("advert_int 0.1"));
        assert!(c.contains("vrrp_version 3"));
        assert!(c.contains("node_active weight 0"));
    }

    #[test]
    fn raft_mode_follows_the_track_file_without_nopreempt() {
        let mut s = spec();
        s.raft = true;
        let c = s.render().unwrap();
        assert!(!c.contains("    nopreempt\n"), "{c}");
        assert!(c.contains("    state MASTER\n"), "{c}");
        assert!(c.contains("node_active weight 0"));
        assert!(c.contains("script \"/usr/local/bin/node -c /etc/node/node.toml health\""));
        assert!(spec().render().unwrap().contains("    nopreempt\n"));
    }

    #[test]
    fn quotes_and_missing_peers_are_refused() {
        let mut s = spec();
        s.node_cmd = "/bin/node \"x\"".into();
        assert!(s.render().is_err());
        let mut s = spec();
        s.unicast_peers.clear();
        assert!(s.render().is_err());
    }

    /// deploy/ holds the generator's output for example hosts, so the operator's files and
    /// the lab's cannot drift apart. `UPDATE_DEPLOY=1 cargo test -p node deploy_` rewrites them.
    #[test]
    fn deploy_examples_match_the_generator() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
        for (dir, n) in [("two-node", 2u32), ("three-node", 3)] {
            for id in 1..=n {
                let spec = KeepalivedSpec {
                    router_id: format!("mail{id}"),
                    interface: "eth0".into(),
                    virtual_router_id: 51,
                    priority: super::super::priority(id),
                    advert_int: "0.1".into(),
                    unicast_src: Ipv4Addr::new(10, 0, 0, id as u8),
                    unicast_peers: (1..=n)
                        .filter(|p| *p != id)
                        .map(|p| Ipv4Addr::new(10, 0, 0, p as u8))
                        .collect(),
                    vip: "10.0.0.10/24".into(),
                    node_cmd: "/usr/local/bin/node -c /etc/node/node.toml".into(),
                    track_file: Some("/run/node/vrrp-track".into()),
                    raft: false,
                };
                let text = spec.render().unwrap().replace(
                    "(written by `node lab`; same generator as deploy/)",
                    "(generated by node's lab::keepalived; edit addresses and interface)",
                );
                let path = root.join(dir).join(format!("keepalived-mail{id}.conf"));
                if std::env::var_os("UPDATE_DEPLOY").is_some() {
                    std::fs::write(&path, &text).unwrap();
                }
                let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
                assert_eq!(
                    on_disk,
                    text,
                    "{} differs from the generator: UPDATE_DEPLOY=1 cargo test -p node deploy_",
                    path.display()
                );
            }
        }
    }
}
