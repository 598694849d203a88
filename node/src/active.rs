//! Whether this node may be the active one (hold the service address, take the writes), and
//! what keepalived last said about it.
//!
//! Two modes answer "may I be active?":
//! - keepalived-led (today, [`KeepalivedLed`]): keepalived's priorities and `nopreempt` pick
//!   the holder among the nodes that serve, so the node only answers "I serve".
//! - Raft (issue 11, being built in `replication/`): the answer will be "I am the Raft leader
//!   of the current epoch". It plugs in as another [`ActiveRole`] implementation, given to
//!   [`crate::cluster::Replicated`]; `/health/active`, `node health --active` and the track
//!   file then follow the leader with no change elsewhere. A role change is pushed to
//!   keepalived at once through [`TrackFile`] (its track script runs at most once a second).

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::SystemTime;

/// The "am I the active node" answer, asked by `/health/active` on every probe.
pub trait ActiveRole: Send + Sync + 'static {
    fn may_be_active(&self) -> bool;
    /// Shown in `/health` ("keepalived-led", later "raft").
    fn mode(&self) -> &'static str;
}

/// keepalived-led mode: a serving node may be active; keepalived picks which one.
pub struct KeepalivedLed;

impl ActiveRole for KeepalivedLed {
    fn may_be_active(&self) -> bool {
        true
    }
    fn mode(&self) -> &'static str {
        "keepalived-led"
    }
}

/// A VRRP state keepalived reports through `node notify`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum VrrpState {
    Master,
    Backup,
    Fault,
    Stop,
}

impl VrrpState {
    pub fn as_str(self) -> &'static str {
        match self {
            VrrpState::Master => "master",
            VrrpState::Backup => "backup",
            VrrpState::Fault => "fault",
            VrrpState::Stop => "stop",
        }
    }
}

/// The last transition keepalived reported, for `/health`, `node lab status` and the
/// keepalived-led write gate ([`crate::keepalived_gate`]).
pub struct VrrpReport {
    last: Mutex<Option<(VrrpState, SystemTime)>>,
    /// (how many reports so far, the last state): what the write gate follows.
    changes: tokio::sync::watch::Sender<(u64, Option<VrrpState>)>,
}

impl Default for VrrpReport {
    fn default() -> Self {
        VrrpReport {
            last: Mutex::new(None),
            changes: tokio::sync::watch::channel((0, None)).0,
        }
    }
}

impl VrrpReport {
    /// The number of reports so far and the last state (None before keepalived said anything).
    pub fn current(&self) -> (u64, Option<VrrpState>) {
        *self.changes.borrow()
    }

    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<(u64, Option<VrrpState>)> {
        self.changes.subscribe()
    }

    pub fn set(&self, state: VrrpState) {
        self.changes.send_modify(|(n, s)| {
            *n += 1;
            *s = Some(state);
        });
        let previous = self.last.lock().replace((state, SystemTime::now()));
        tracing::info!(
            target: "vrrp",
            "keepalived: this node is now {} (was {})",
            state.as_str(),
            previous.map_or("unknown", |(s, _)| s.as_str())
        );
    }

    /// (state, seconds since the Unix epoch when it was reported).
    pub fn get(&self) -> Option<(VrrpState, f64)> {
        self.last.lock().map(|(s, at)| {
            let secs = at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            (s, secs)
        })
    }
}

/// keepalived's `track_file`: "0" while this node may be active, "1" when it may not (with
/// `weight 0` keepalived puts the instance in FAULT at once and the address moves). keepalived
/// watches the file with inotify, so the change is seen in milliseconds, where the track script
/// would take up to its interval (one second at least).
pub struct TrackFile {
    path: PathBuf,
}

impl TrackFile {
    /// None when `[cluster] vrrp_track_file` is not set.
    pub fn new(path: PathBuf) -> Option<TrackFile> {
        (!path.as_os_str().is_empty()).then_some(TrackFile { path })
    }

    /// Writes in place (truncate, write, close): keepalived reacts to the close of a write.
    pub fn write(&self, may_be_active: bool) {
        let value = if may_be_active { "0\n" } else { "1\n" };
        match std::fs::write(&self.path, value) {
            Ok(()) => tracing::info!(
                target: "vrrp",
                "track file {}: {}",
                self.path.display(),
                if may_be_active { "may be active (0)" } else { "must not be active (1)" }
            ),
            Err(e) => tracing::warn!(
                target: "vrrp",
                "track file {}: cannot write: {e} (keepalived falls back on its track script)",
                self.path.display()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn track_file_says_zero_when_active_and_one_when_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("track");
        let t = TrackFile::new(path.clone()).unwrap();
        t.write(true);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "0\n");
        t.write(false);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1\n");
        assert!(TrackFile::new(PathBuf::new()).is_none());
    }

    #[test]
    fn vrrp_report_keeps_the_last_state() {
        let r = VrrpReport::default();
        assert!(r.get().is_none());
        r.set(VrrpState::Backup);
        r.set(VrrpState::Master);
        assert_eq!(r.get().unwrap().0, VrrpState::Master);
    }
}
