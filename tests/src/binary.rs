//! Finding (and, for a developer, building) the `node` binary under test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests crate lives in the workspace root")
        .to_path_buf()
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                workspace_root().join(d)
            }
        }
        None => workspace_root().join("target"),
    }
}

/// The newest modification time of any source file the node binary is built from.
fn newest_source(dir: &Path, newest: &mut SystemTime) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in rd.flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            newest_source(&path, newest);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("rs" | "toml")
        ) {
            if let Ok(m) = meta.modified() {
                if m > *newest {
                    *newest = m;
                }
            }
        }
    }
}

/// Path of `target/debug/node` (or `$NODE_BIN`). `env!("CARGO_BIN_EXE_node")` only works
/// inside the `node` crate, so the binary is found by path and built once per test process
/// when it is missing or older than its sources (`scripts/test.sh` builds it first, so in
/// CI this is only a check).
pub fn node_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("NODE_BIN") {
            return PathBuf::from(p);
        }
        let bin = target_dir().join("debug").join("node");
        let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
        let mut newest = SystemTime::UNIX_EPOCH;
        for krate in ["node", "protocols", "storage", "replication"] {
            newest_source(&workspace_root().join(krate), &mut newest);
        }
        if built.is_none_or(|b| b < newest) {
            let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args(["build", "-p", "node", "--bin", "node"])
                .current_dir(workspace_root())
                .status();
            match status {
                Ok(s) if s.success() => {}
                // Sources mid-edit in a shared tree: test the binary that exists, and say so.
                _ if bin.exists() => eprintln!(
                    "warning: cargo build -p node failed; testing the existing {}",
                    bin.display()
                ),
                _ => panic!(
                    "cargo build -p node failed and there is no {}",
                    bin.display()
                ),
            }
        }
        assert!(bin.exists(), "node binary not found at {}", bin.display());
        bin
    })
    .clone()
}

/// The `jepsen` binary beside the node under test, built (debug) when it is missing.
pub fn jepsen_bin() -> PathBuf {
    let bin = node_bin().with_file_name("jepsen");
    if !bin.exists() {
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "-p", "jepsen", "--bin", "jepsen"])
            .current_dir(workspace_root())
            .status();
        assert!(
            status.is_ok_and(|s| s.success()) && bin.exists(),
            "cannot build {}",
            bin.display()
        );
    }
    bin
}
