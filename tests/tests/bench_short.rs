//! `jepsen bench` (issue 18) against a real node for a few seconds per workload: every
//! workload completes operations at a non-zero rate with zero protocol errors (bench exits
//! non-zero on any NO/BAD/-ERR/4xx/5xx, dropped connection or unreadable reply).

use std::process::Command;
use std::time::Duration;
use tests::{jepsen_bin, run, Proto, Server, ServerSpec, User};

const PASSWORD: &str = "benchpw";

/// Runs `jepsen bench ARGS` and returns its report (stdout), failing on a non-zero exit.
fn bench(args: &[&str]) -> String {
    let out = run(
        Command::new(jepsen_bin())
            .arg("bench")
            .args([
                "--quiet",
                "--password",
                PASSWORD,
                "--user",
                "u%d",
                "--users",
                "1-4",
            ])
            .args(args),
        None,
        Duration::from_secs(120),
    )
    .expect("run jepsen bench");
    let stdout = out.stdout_text();
    assert!(
        out.status.success(),
        "jepsen bench {args:?} failed:\n{stdout}\n{}",
        out.stderr_text()
    );
    stdout
}

/// The `all` row of a report: (operations, operations per second, errors).
fn all_row(report: &str) -> (u64, f64, u64) {
    let line = report
        .lines()
        .find(|l| l.starts_with("all "))
        .unwrap_or_else(|| panic!("no `all` row in\n{report}"));
    let w: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(w.len(), 4, "{line}");
    (
        w[1].parse().unwrap(),
        w[2].parse().unwrap(),
        w[3].parse().unwrap(),
    )
}

/// The `count` column of one command's row (0 when the command has no row).
fn count(report: &str, op: &str) -> u64 {
    report
        .lines()
        .find(|l| l.split_whitespace().next() == Some(op))
        .and_then(|l| l.split_whitespace().nth(1))
        .map_or(0, |n| n.parse().unwrap())
}

#[test]
fn bench_runs_every_workload_against_the_node_without_protocol_errors() {
    let server = Server::start(ServerSpec {
        users: (1..=4)
            .map(|i| User::plain(&format!("u{i}"), PASSWORD))
            .collect(),
        wait_for: vec![Proto::Imap, Proto::Imaps, Proto::Pop3, Proto::Lmtp],
        ..ServerSpec::default()
    })
    .expect("start node");
    let port = |p| server.ports.get(p).to_string();

    // Mail first (an exact count of deliveries), then every IMAP and POP3 workload.
    let lmtp = bench(&[
        "--workload",
        "lmtp",
        "--port",
        &port(Proto::Lmtp),
        "--clients",
        "4",
        "--count",
        "200",
        "--secs",
        "60",
        "--msg-size",
        "1k-256k",
    ]);
    assert_eq!(count(&lmtp, "deliver"), 200, "{lmtp}");
    let runs: [(&str, Proto, &str, &[&str]); 6] = [
        ("imap", Proto::Imap, "4", &["--msg-size", "1k-64k"]),
        ("append", Proto::Imap, "4", &["--msg-size", "1k-64k"]),
        ("login", Proto::Imap, "4", &[]),
        ("login", Proto::Imaps, "4", &["--tls"]),
        ("pop3", Proto::Pop3, "4", &["--pop3-dele-pct", "10"]),
        ("large", Proto::Imap, "1", &[]),
    ];
    for (workload, proto, clients, extra) in runs {
        let p = port(proto);
        let mut args = vec!["--workload", workload, "--port", &p, "--clients", clients];
        args.extend_from_slice(&["--secs", "2"]);
        args.extend_from_slice(extra);
        let report = bench(&args);
        let (ops, rate, errors) = all_row(&report);
        assert!(ops > 0 && rate > 0.0, "{workload}: {report}");
        assert_eq!(errors, 0, "{workload}: {report}");
    }
    let idle = bench(&[
        "--workload",
        "idle",
        "--port",
        &port(Proto::Imap),
        "--clients",
        "20",
        "--secs",
        "1",
    ]);
    assert_eq!(count(&idle, "idle"), 20, "{idle}");
    assert_eq!(all_row(&idle).2, 0, "{idle}");
}
