//! keepalived-led mode's write gate: the node holding the service address takes the writes.
//!
//! keepalived tells the node where the address is (`node notify master|backup|fault`). A node
//! that keepalived made backup (or faulty) refuses writes, naming why, so a client still
//! talking to it after the address moved gets a temporary failure instead of writes the new
//! holder knows nothing of. A node that keepalived just made master first pulls from its peers
//! what they took while it did not hold the address, then takes writes: otherwise its first
//! appends would reuse UIDs the previous holder had already acknowledged (invariant 2).
//! Before keepalived reports anything (no keepalived, or a node started by hand) every write
//! is taken, as a node without a cluster manager would.

use crate::active::{VrrpReport, VrrpState};
use protocols::WriteRefused;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct KeepalivedGate {
    vrrp: Arc<VrrpReport>,
    /// The report number whose catch-up pull is done (taking writes from then on).
    caught_up: AtomicU64,
}

impl KeepalivedGate {
    /// Starts the task that runs the catch-up pull at every transition to master.
    pub fn start(
        vrrp: Arc<VrrpReport>,
        replication: replication::Handle,
        budget: Duration,
    ) -> Arc<KeepalivedGate> {
        let gate = Arc::new(KeepalivedGate {
            vrrp: vrrp.clone(),
            caught_up: AtomicU64::new(0),
        });
        let mut changes = vrrp.subscribe();
        let g = gate.clone();
        tokio::spawn(async move {
            // Ends with the report's sender, i.e. with the node.
            while changes.changed().await.is_ok() {
                let (n, state) = *changes.borrow_and_update();
                if state == Some(VrrpState::Master) {
                    let started = Instant::now();
                    let report = replication.take_over(budget).await;
                    tracing::info!(
                        target: "vrrp",
                        records = report.records(),
                        ms = started.elapsed().as_millis() as u64,
                        "keepalived made this node master: pulled from the peers before taking writes: {report}"
                    );
                }
                g.caught_up.store(n, Ordering::SeqCst);
            }
        });
        gate
    }

    pub fn may_write(&self) -> Result<(), WriteRefused> {
        verdict(self.vrrp.current(), self.caught_up.load(Ordering::SeqCst))
    }
}

/// Whether a node whose last VRRP report is `current` (number, state), with the catch-up pull
/// done for report `caught_up`, takes writes.
fn verdict(current: (u64, Option<VrrpState>), caught_up: u64) -> Result<(), WriteRefused> {
    match current {
        (_, None) => Ok(()),
        (n, Some(VrrpState::Master)) if caught_up >= n => Ok(()),
        (_, Some(VrrpState::Master)) => Err(WriteRefused(
            "this node just took the service address and is catching up with its peers; try again in a moment"
                .into(),
        )),
        (_, Some(s)) => Err(WriteRefused(format!(
            "this node does not hold the service address (keepalived: {}); connect to the service address",
            s.as_str()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_follow_the_address() {
        // No keepalived: every write is taken.
        assert!(verdict((0, None), 0).is_ok());
        // Master, pull not done yet: refused, saying why; done: taken.
        let e = verdict((3, Some(VrrpState::Master)), 2).unwrap_err();
        assert!(e.0.contains("catching up"), "{}", e.0);
        assert!(verdict((3, Some(VrrpState::Master)), 3).is_ok());
        // Backup or fault: refused, naming the state.
        for s in [VrrpState::Backup, VrrpState::Fault, VrrpState::Stop] {
            let e = verdict((4, Some(s)), 4).unwrap_err();
            assert!(e.0.contains(s.as_str()), "{}", e.0);
        }
    }

    #[tokio::test]
    async fn the_report_numbers_every_transition() {
        let r = VrrpReport::default();
        assert_eq!(r.current(), (0, None));
        r.set(VrrpState::Backup);
        r.set(VrrpState::Master);
        assert_eq!(r.current(), (2, Some(VrrpState::Master)));
    }
}
