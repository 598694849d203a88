//! The lab, driven only through the `node` binary's `node lab` commands (and `ip` to ask the
//! kernel who holds the service address). [`Lab`] tears the lab down when dropped, also on an
//! error or a panic in the run.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::io::Read as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "demo";
pub const PASS: &str = "demo";
pub const RCPT: &str = "demo@lab.test";

#[derive(Clone, Debug, Deserialize)]
pub struct Member {
    pub id: u32,
    pub netns: String,
    pub addr: Ipv4Addr,
}

#[derive(Clone, Debug, Deserialize)]
struct Status {
    vip: Ipv4Addr,
    client_netns: String,
    nodes: Vec<Member>,
}

/// What `node lab up` is asked for.
#[derive(Clone, Debug, Default)]
pub struct UpOptions {
    pub nodes: u32,
    pub prefix: String,
    /// Passed through as `--mode M` (Raft mode, once the lab has it); None = the lab's default.
    pub mode: Option<String>,
    pub faketime: bool,
    pub tmpfs_mb: Option<u32>,
}

pub struct Lab {
    pub node_bin: PathBuf,
    pub dir: PathBuf,
    pub vip: Ipv4Addr,
    pub client_ns: String,
    pub members: Vec<Member>,
    down_done: bool,
}

/// Runs a command with a time bound; (success, stdout+stderr).
pub fn run(cmd: &mut Command, timeout: Duration) -> Result<(bool, String)> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    let mut out = child.stdout.take().context("stdout")?;
    let mut err = child.stderr.take().context("stderr")?;
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let text = format!(
        "{}{}",
        t_out.join().unwrap_or_default(),
        t_err.join().unwrap_or_default()
    );
    match status {
        Some(s) => Ok((s.success(), text)),
        None => bail!("{cmd:?} still running after {timeout:?}: {text}"),
    }
}

impl Lab {
    /// `node lab up`; the returned guard brings it down. A failed `up` tears down itself.
    pub fn up(node_bin: &Path, dir: &Path, o: &UpOptions) -> Result<Lab> {
        let mut cmd = Command::new(node_bin);
        cmd.args([
            "lab",
            "up",
            "--nodes",
            &o.nodes.to_string(),
            "--prefix",
            &o.prefix,
        ])
        .arg("--dir")
        .arg(dir);
        if let Some(m) = &o.mode {
            cmd.args(["--mode", m]);
        }
        if o.faketime {
            cmd.arg("--faketime");
        }
        if let Some(mb) = o.tmpfs_mb {
            cmd.args(["--tmpfs-mb", &mb.to_string()]);
        }
        let (ok, text) = run(&mut cmd, Duration::from_secs(240))?;
        if !ok {
            bail!("node lab up failed:\n{text}");
        }
        tracing::info!("lab up in {}", dir.display());
        let mut lab = Lab {
            node_bin: node_bin.to_path_buf(),
            dir: dir.to_path_buf(),
            vip: Ipv4Addr::UNSPECIFIED,
            client_ns: String::new(),
            members: Vec::new(),
            down_done: false,
        };
        let (ok, text) = lab.node(&["lab", "status", "--json"], Duration::from_secs(60))?;
        if !ok {
            bail!("node lab status failed:\n{text}");
        }
        let st: Status = serde_json::from_str(text.trim()).context("node lab status --json")?;
        lab.vip = st.vip;
        lab.client_ns = st.client_netns;
        lab.members = st.nodes;
        Ok(lab)
    }

    /// `node ARGS --dir DIR`.
    pub fn node(&self, args: &[&str], timeout: Duration) -> Result<(bool, String)> {
        run(
            Command::new(&self.node_bin)
                .args(args)
                .arg("--dir")
                .arg(&self.dir),
            timeout,
        )
    }

    /// `node lab ARGS`, an error unless it succeeds.
    pub fn lab(&self, args: &[&str]) -> Result<String> {
        let mut full = vec!["lab"];
        full.extend_from_slice(args);
        let (ok, text) = self.node(&full, Duration::from_secs(120))?;
        if !ok {
            bail!("node lab {}: {}", args.join(" "), text.trim());
        }
        Ok(text)
    }

    pub fn vip_addr(&self, port: u16) -> SocketAddr {
        SocketAddr::from((self.vip, port))
    }

    pub fn ids(&self) -> Vec<u32> {
        self.members.iter().map(|m| m.id).collect()
    }

    /// Nodes whose interface has the service address (two during a pause: lab notes).
    pub fn holders(&self) -> Vec<u32> {
        self.members
            .iter()
            .filter(|m| {
                run(
                    Command::new("ip")
                        .args(["-n", &m.netns, "-o", "-4", "addr", "show", "dev", "eth0"]),
                    Duration::from_secs(10),
                )
                .map(|(_, out)| out.contains(&format!("inet {}/", self.vip)))
                .unwrap_or(false)
            })
            .map(|m| m.id)
            .collect()
    }

    pub fn node_log(&self, id: u32) -> PathBuf {
        self.dir.join(format!("n{id}")).join("node.log")
    }

    pub fn down(&mut self) -> Result<()> {
        if self.down_done {
            return Ok(());
        }
        self.down_done = true;
        let (ok, text) = self.node(&["lab", "down"], Duration::from_secs(120))?;
        if !ok {
            bail!("node lab down failed: {text}");
        }
        tracing::info!("lab down");
        Ok(())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Err(e) = self.down() {
            tracing::error!("{e:#}");
        }
    }
}
