//! What /proc and the kernel say about processes: a server's memory and CPU time summed over
//! its process tree, this process's descriptor limit, the machine line printed beside figures.

use anyhow::{Context, Result};

/// Memory of a server: summed over its processes.
pub struct Mem {
    pub rss_kib: u64,
    /// Proportional set size: shared pages (libraries, a forked master's) divided among the
    /// processes sharing them; the fair sum for a process-per-connection server.
    pub pss_kib: u64,
    pub hwm_kib: u64,
    pub threads: u64,
    /// Open file descriptors (entries of /proc/PID/fd).
    pub fds: u64,
    pub processes: usize,
}

/// VmRSS / VmHWM / Threads of one process from /proc/PID/status.
pub fn proc_status(pid: u32) -> Result<Mem> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status (has the server exited?)"))?;
    // Missing (kernel without smaps_rollup) reads as 0.
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    Ok(Mem {
        rss_kib: kib_field(&text, "VmRSS:"),
        pss_kib: kib_field(&rollup, "Pss:"),
        hwm_kib: kib_field(&text, "VmHWM:"),
        threads: kib_field(&text, "Threads:"),
        fds: std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| d.count() as u64)
            .unwrap_or(0),
        processes: 1,
    })
}

/// The first number after `name` on its line ("VmRSS:   1234 kB" -> 1234); 0 if absent.
pub fn kib_field(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// `root` and all its descendants (Dovecot's master, login, auth, anvil, imap processes), from
/// the parent links in /proc/PID/stat; `root` first.
pub fn tree_pids(root: u32) -> Result<Vec<u32>> {
    let mut parent = std::collections::HashMap::new();
    for e in std::fs::read_dir("/proc").context("read /proc")?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if let Some(ppid) = stat_field(&stat, 4) {
            parent.insert(pid, ppid as u32);
        }
    }
    let in_tree = |mut p: u32| -> bool {
        for _ in 0..64 {
            if p == root {
                return true;
            }
            match parent.get(&p) {
                Some(&pp) if pp != 0 && pp != p => p = pp,
                _ => return false,
            }
        }
        false
    };
    let mut pids = vec![root];
    pids.extend(parent.keys().copied().filter(|&p| p != root && in_tree(p)));
    Ok(pids)
}

/// Field `n` (1-based, as in proc(5)) of a /proc/PID/stat line: "pid (comm) state ppid ...";
/// comm may contain spaces and ')'.
fn stat_field(stat: &str, n: usize) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(n.checked_sub(3)?)?.parse().ok()
}

/// [`proc_status`] summed over `root` and all its descendants. A process that exits while
/// being read is skipped.
pub fn tree_status(root: u32) -> Result<Mem> {
    let mut sum = proc_status(root)?;
    for pid in tree_pids(root)?.into_iter().skip(1) {
        if let Ok(m) = proc_status(pid) {
            sum.rss_kib += m.rss_kib;
            sum.pss_kib += m.pss_kib;
            sum.hwm_kib += m.hwm_kib;
            sum.threads += m.threads;
            sum.fds += m.fds;
            sum.processes += 1;
        }
    }
    Ok(sum)
}

/// VmRSS summed over the tree, without the costlier PSS: for frequent sampling.
pub fn tree_rss_kib(root: u32) -> u64 {
    tree_pids(root)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .map(|t| kib_field(&t, "VmRSS:"))
        .sum()
}

/// CPU seconds (user + system) of the tree: every live process's own time and that of the
/// children it has reaped (a Dovecot imap process that exited is counted in its master's).
#[allow(unsafe_code)]
pub fn tree_cpu_secs(root: u32) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let ticks: u64 = tree_pids(root)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .map(|st| (14..=17).filter_map(|f| stat_field(&st, f)).sum::<u64>())
        .sum();
    ticks as f64 / hz
}

/// Raises this process's RLIMIT_NOFILE soft limit to `want` (and the hard limit, if allowed);
/// children inherit it. Returns the soft limit in force afterwards.
#[allow(unsafe_code)]
pub fn raise_nofile(want: u64) -> Result<u64> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write/read only the rlimit struct passed by reference.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return Err(std::io::Error::last_os_error()).context("getrlimit(RLIMIT_NOFILE)");
    }
    if r.rlim_max < want {
        let raised = libc::rlimit {
            rlim_cur: want,
            rlim_max: want,
        };
        // Raising the hard limit needs CAP_SYS_RESOURCE; without it keep the old hard limit.
        // SAFETY: setrlimit reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return Ok(want);
        }
    }
    let target = libc::rlimit {
        rlim_cur: want.min(r.rlim_max).max(r.rlim_cur),
        rlim_max: r.rlim_max,
    };
    // SAFETY: setrlimit reads the struct it is given.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &target) } != 0 {
        return Err(std::io::Error::last_os_error()).context("setrlimit(RLIMIT_NOFILE)");
    }
    Ok(target.rlim_cur)
}

/// nproc, CPU model and kernel, for the figures' context.
pub fn machine_line() -> String {
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    format!("nproc={nproc} cpu=\"{cpu}\" kernel={kernel}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_status_reads_own_memory() {
        let m = proc_status(std::process::id()).unwrap();
        assert!(m.rss_kib > 0 && m.hwm_kib >= m.rss_kib && m.threads >= 1);
        // stdin/stdout/stderr at least.
        assert!(m.fds >= 3, "{}", m.fds);
    }

    #[test]
    fn stat_fields_survive_odd_names() {
        let st = "42 (a) b) S 7 42 42 0 -1 4194560 1 0 0 0 300 45 6 7 20 0 1 0";
        assert_eq!(stat_field(st, 4), Some(7));
        assert_eq!(stat_field(st, 14), Some(300));
        assert_eq!(stat_field(st, 17), Some(7));
        assert_eq!(stat_field(st, 2), None);
        assert_eq!(stat_field("garbage", 4), None);
    }

    #[test]
    fn own_cpu_time_is_counted() {
        let mut x = 0u64;
        for i in 0..50_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(tree_cpu_secs(std::process::id()) > 0.0);
        assert!(tree_rss_kib(std::process::id()) > 0);
    }

    #[test]
    fn tree_status_counts_children() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let alone = proc_status(std::process::id()).unwrap();
        let tree = tree_status(std::process::id()).unwrap();
        let _ = child.kill();
        let _ = child.wait();
        assert!(tree.processes >= 2, "{}", tree.processes);
        assert!(tree.rss_kib > alone.rss_kib / 2);
    }
}
