//! A `node lab` (nodes and keepalived in network namespaces) for the fail-over tests: built
//! by the binary's own `node lab up`, so the tests drive what an operator drives, and torn
//! down by `node lab down` when the [`Lab`] drops, also when the test panics.

use crate::{node_bin, run};
use anyhow::{bail, Context, Result};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// The lab's service address and demo user (node/src/lab: net.rs, node_conf.rs).
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 10);
pub const USER: &str = "demo";
pub const PASS: &str = "demo";
pub const RCPT: &str = "demo@lab.test";

pub fn vip(port: u16) -> SocketAddr {
    SocketAddr::from((VIP, port))
}

/// Why the lab cannot run here (not root, no network namespaces), or None. A missing
/// keepalived or nft is not a reason: `missing_tool` fails those in CI.
#[allow(unsafe_code)]
pub fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root: network namespaces need root".into());
    }
    let probe = format!("probe{}", std::process::id());
    let made = Command::new("ip")
        .args(["netns", "add", &probe])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !made {
        return Some("cannot create a network namespace (`ip netns add` failed)".into());
    }
    let _ = Command::new("ip").args(["netns", "del", &probe]).output();
    None
}

pub struct Lab {
    pub dir: tempfile::TempDir,
    pub prefix: String,
    pub nodes: u32,
    pub up_output: String,
}

impl Lab {
    /// `node lab up --nodes N` with a prefix of its own, so tests run in parallel.
    pub fn up(nodes: u32) -> Result<Lab> {
        Lab::up_with(nodes, &[])
    }

    /// Raft mode: 3 voting mail nodes, or 2 mail nodes and a witness.
    pub fn up_raft(nodes: u32) -> Result<Lab> {
        if nodes == 2 {
            Lab::up_with(2, &["--mode", "raft", "--witness"])
        } else {
            Lab::up_with(nodes, &["--mode", "raft"])
        }
    }

    /// `node lab up --nodes N EXTRA...`.
    pub fn up_with(nodes: u32, extra: &[&str]) -> Result<Lab> {
        static N: AtomicU32 = AtomicU32::new(0);
        let prefix = format!(
            "t{}x{}",
            std::process::id() % 1_000_000,
            N.fetch_add(1, Ordering::Relaxed)
        );
        let dir = tempfile::Builder::new().prefix("node-lab-").tempdir()?;
        // The guard exists before `up` runs: a half-built lab is torn down too.
        let mut lab = Lab {
            dir,
            prefix,
            nodes,
            up_output: String::new(),
        };
        let nodes_arg = nodes.to_string();
        let prefix = lab.prefix.clone();
        let mut args = vec!["lab", "up", "--nodes", &nodes_arg, "--prefix", &prefix];
        args.extend_from_slice(extra);
        let out = lab.node(&args, Duration::from_secs(180))?;
        if !out.status.success() {
            bail!("node lab up failed:\n{}", out.both());
        }
        lab.up_output = out.stdout_text();
        Ok(lab)
    }

    fn dir_arg(&self) -> String {
        self.dir.path().display().to_string()
    }

    /// `node ARGS --dir DIR`.
    pub fn node(&self, args: &[&str], timeout: Duration) -> Result<crate::Output> {
        run(
            Command::new(node_bin())
                .args(args)
                .arg("--dir")
                .arg(self.dir_arg()),
            None,
            timeout,
        )
    }

    pub fn client_ns(&self) -> String {
        format!("{}-client", self.prefix)
    }

    pub fn node_ns(&self, id: u32) -> String {
        format!("{}-n{id}", self.prefix)
    }

    /// Which node holds the service address now (the kernel's answer).
    pub fn holder(&self) -> Option<u32> {
        (1..=self.nodes).find(|id| self.holds_vip(*id))
    }

    pub fn holds_vip(&self, id: u32) -> bool {
        Command::new("ip")
            .args([
                "-n",
                &self.node_ns(id),
                "-o",
                "-4",
                "addr",
                "show",
                "dev",
                "eth0",
            ])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains(&format!("inet {VIP}/")))
            .unwrap_or(false)
    }

    /// `node lab crash ID`: freeze and kill every process of the node, unplug its cable.
    pub fn crash(&self, id: u32) -> Result<()> {
        let out = self.node(&["lab", "crash", &id.to_string()], Duration::from_secs(30))?;
        if !out.status.success() {
            bail!("node lab crash {id}:\n{}", out.both());
        }
        Ok(())
    }

    /// `node lab ARGS` that must succeed (transfer-active, pause, resume, partition, heal).
    pub fn lab_cmd(&self, args: &[&str]) -> Result<String> {
        let mut all = vec!["lab"];
        all.extend_from_slice(args);
        let out = self.node(&all, Duration::from_secs(60))?;
        if !out.status.success() {
            bail!("node lab {}:\n{}", args.join(" "), out.both());
        }
        Ok(out.stdout_text())
    }

    /// Node `id`'s own address (reachable from its namespace, not from the client's).
    pub fn node_addr(id: u32, port: u16) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::new(10, 213, 0, id as u8), port))
    }

    /// `node health --active` inside node `id`'s namespace exits 0.
    pub fn is_active(&self, id: u32) -> bool {
        let config = self.dir.path().join(format!("n{id}")).join("node.toml");
        Command::new("ip")
            .args(["netns", "exec", &self.node_ns(id)])
            .arg(node_bin())
            .arg("-c")
            .arg(config)
            .args(["health", "--active"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    pub fn status_text(&self) -> String {
        self.node(&["lab", "status"], Duration::from_secs(60))
            .map(|o| o.both())
            .unwrap_or_else(|e| format!("{e:#}"))
    }

    pub fn log(&self, id: u32, which: &str) -> PathBuf {
        self.dir.path().join(format!("n{id}")).join(which)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- lab status at failure ---\n{}", self.status_text());
            for id in 1..=self.nodes {
                for f in ["node.log", "keepalived.log"] {
                    let text = std::fs::read_to_string(self.log(id, f)).unwrap_or_default();
                    eprintln!("--- node {id} {f} (tail) ---\n{}", crate::tail(&text, 25));
                }
            }
        }
        match self.node(&["lab", "down"], Duration::from_secs(60)) {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!("node lab down failed:\n{}", o.both()),
            Err(e) => eprintln!("node lab down: {e:#}"),
        }
    }
}

/// Runs `f` on a thread inside network namespace `ns`: sockets it opens live there (setns
/// moves only the calling thread), while the rest of the test stays in its own namespace.
#[allow(unsafe_code)]
pub fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> JoinHandle<Result<T>> {
    let path = PathBuf::from("/run/netns").join(ns);
    std::thread::spawn(move || {
        use std::os::fd::AsRawFd as _;
        let file =
            std::fs::File::open(&path).with_context(|| format!("open {}", path.display()))?;
        // SAFETY: a valid namespace fd; CLONE_NEWNET changes this thread's network namespace.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        if rc != 0 {
            bail!(
                "setns {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            );
        }
        Ok(f())
    })
}
