//! Load, benchmark and fault-injection harness. One module per subcommand: add yours with one
//! variant in [`Command`] and one arm in `main`.

use clap::{Parser, Subcommand};

mod bench_backlog;
mod bench_idle;
mod bench_replication;
mod bench_store;
mod dovecot;
mod harness;
mod node_proc;

#[derive(Parser)]
#[command(
    name = "jepsen",
    about = "Load, benchmarks and fault injection for the mail store"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Durable appends/s of the store (4 KiB and 64 KiB; 1 and 16 writers; 1 and 16 users),
    /// with fsyncs per append and the disk's raw "append 4 KiB + fsync" rate beside.
    BenchStore(bench_store::Args),
    /// Replication lag p50/p99 at a steady delivery rate, replicated vs local deliveries/s, and
    /// full/incremental `sync_user` of a large user (two nodes in-process over mTLS loopback).
    BenchReplication(bench_replication::Args),
    /// Holds N authenticated IMAP IDLE connections on a release node, prints its RSS and the
    /// fan-out latency of one LMTP delivery to every idling connection (issue 4).
    #[command(name = "bench-idle")]
    Idle(bench_idle::Args),
    /// Client latency on node A with no backlog, and while a restarted node B drains a backlog
    /// of N messages with replication yielding to clients and without (issue 6).
    BenchBacklog(bench_backlog::Args),
    /// Fault injection in the manner of Jepsen: a `node lab`, workloads through the service
    /// address and straight to nodes, faults on a schedule, a history, checkers, a report.
    Test(harness::Args),
    /// The checkers of `jepsen test` again over a recorded run directory.
    Check(harness::CheckArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::BenchStore(a) => bench_store::run(a),
        Command::BenchReplication(a) => bench_replication::run(a),
        Command::Idle(a) => bench_idle::run(a),
        Command::BenchBacklog(a) => bench_backlog::run(a),
        Command::Test(a) => harness::run(a),
        Command::Check(a) => harness::check(a),
    }
}
