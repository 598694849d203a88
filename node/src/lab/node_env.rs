//! What a lab node may be started with for fault injection, chosen at `node lab up`:
//! libfaketime (its wall clock read from a timestamp file the lab rewrites: `node lab clock`)
//! and a small tmpfs as its data directory (`node lab fill` fills it). Both are off by default
//! so a plain lab runs the node exactly as an operator would.

use super::{sh, Layout};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Debian's libfaketime (package `libfaketime`).
const LIBFAKETIME: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
];

pub fn libfaketime() -> Result<PathBuf> {
    LIBFAKETIME
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .context("libfaketime not installed: apt-get install libfaketime")
}

pub fn faketime_file(layout: &Layout, id: u32) -> PathBuf {
    layout.node_dir(id).join("faketime")
}

/// The program and leading arguments that start node `id`: `env VARS... NODE` under
/// libfaketime, else NODE itself.
pub fn launcher(layout: &Layout, node_bin: &Path, id: u32, faketime: bool) -> Result<Vec<String>> {
    let node = node_bin.display().to_string();
    if !faketime {
        return Ok(vec![node]);
    }
    let file = faketime_file(layout, id);
    if !file.exists() {
        // "+0": no offset until a nemesis writes one.
        std::fs::write(&file, "+0\n")
            .with_context(|| format!("cannot write {}", file.display()))?;
    }
    Ok(vec![
        "env".into(),
        format!("LD_PRELOAD={}", libfaketime()?.display()),
        format!("FAKETIME_TIMESTAMP_FILE={}", file.display()),
        // Lab notes: without this Instant jumps too and tokio hangs at start-up.
        "FAKETIME_DONT_FAKE_MONOTONIC=1".into(),
        // About 90 ns a read; a change applies within about a second.
        "FAKETIME_CACHE_DURATION=1".into(),
        node,
    ])
}

/// Steps node `id`'s wall clock to `offset` from real time: "+3600", "-86400", "+0".
pub fn set_clock(layout: &Layout, id: u32, offset: &str) -> Result<()> {
    if !valid_offset(offset) {
        bail!("clock offset {offset:?}: give seconds with a sign, e.g. +3600 or -86400");
    }
    let file = faketime_file(layout, id);
    if !file.exists() {
        bail!("node {id} was not started under libfaketime: bring the lab up with --faketime");
    }
    // Rename over the file: libfaketime never reads a half-written offset.
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, format!("{offset}\n"))?;
    std::fs::rename(&tmp, &file).with_context(|| format!("cannot write {}", file.display()))
}

/// "+3600", "-86400": a sign and at most 10 digits (libfaketime's relative offset).
fn valid_offset(offset: &str) -> bool {
    offset.len() > 1
        && offset.len() <= 11
        && offset.starts_with(['+', '-'])
        && offset[1..].chars().all(|c| c.is_ascii_digit())
}

/// Mounts a tmpfs of `mb` MiB on node `id`'s data directory.
pub fn mount_tmpfs(layout: &Layout, id: u32, mb: u32) -> Result<()> {
    let data = layout.data_dir(id);
    std::fs::create_dir_all(&data)?;
    sh::run_ok(std::process::Command::new("mount").args([
        "-t",
        "tmpfs",
        "-o",
        &format!("size={mb}m,mode=0700"),
        "nodelab-data",
        &data.display().to_string(),
    ]))
    .with_context(|| format!("cannot mount a tmpfs on {}", data.display()))?;
    Ok(())
}

/// Unmounts node `id`'s data tmpfs if one is mounted (lazy: a killed node's files may linger).
pub fn unmount_tmpfs(layout: &Layout, id: u32) -> Result<()> {
    let data = layout.data_dir(id);
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let target = data.display().to_string();
    if mounts
        .lines()
        .any(|l| l.split(' ').nth(1) == Some(target.as_str()))
    {
        sh::run_ok(std::process::Command::new("umount").args(["-l", &target]))?;
    }
    Ok(())
}

fn ballast(layout: &Layout, id: u32) -> PathBuf {
    layout.data_dir(id).join("lab-ballast")
}

/// Fills node `id`'s data filesystem until the kernel refuses (ENOSPC); the bytes written.
/// Refused unless the data directory is the lab's own tmpfs: never fill a real disk.
pub fn fill(layout: &Layout, id: u32, tmpfs_mb: Option<u32>) -> Result<u64> {
    use std::io::Write as _;
    let Some(mb) = tmpfs_mb else {
        bail!("node {id}'s data is on the real disk: bring the lab up with --tmpfs-mb to fill it");
    };
    let path = ballast(layout, id);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let chunk = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    // Bounded by the tmpfs size (plus one chunk): a tmpfs cannot take more.
    let max = u64::from(mb) * 1024 * 1024 + chunk.len() as u64;
    while written < max {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => return Err(e).context("writing the ballast"),
        }
    }
    Ok(written)
}

pub fn unfill(layout: &Layout, id: u32) {
    let _ = std::fs::remove_file(ballast(layout, id));
}

#[cfg(test)]
mod tests {
    #[test]
    fn clock_offsets_are_signed_seconds() {
        for ok in ["+0", "+3600", "-86400"] {
            assert!(super::valid_offset(ok), "{ok}");
        }
        for bad in ["", "+", "3600", "+1h", "-1 day", "+123456789012", "+3600\n"] {
            assert!(!super::valid_offset(bad), "{bad:?}");
        }
    }
}
