//! Load, benchmark and fault-injection harness: a black box that drives `node` binaries over
//! their wire protocols (benchmarks of library internals are examples of their crates:
//! `cargo run --release -p storage --example bench_store`, `-p replication --example
//! bench_replication`). One module per subcommand: add yours with one
//! variant in [`Command`] and one arm in `main`.

use clap::{Parser, Subcommand};

mod aconn;
mod bench;
mod bench_backlog;
mod bench_idle;
mod compare;
mod harness;
mod node_proc;
mod procinfo;

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
    /// Holds N authenticated IMAP IDLE connections on a release node, prints its RSS and the
    /// fan-out latency of one LMTP delivery to every idling connection (issue 4).
    #[command(name = "bench-idle")]
    Idle(bench_idle::Args),
    /// Client latency on node A with no backlog, and while a restarted node B drains a backlog
    /// of N messages with replication yielding to clients and without (issue 6).
    BenchBacklog(bench_backlog::Args),
    /// Load in the manner of imaptest against any IMAP, POP3 or LMTP server: operations/s,
    /// latency p50/p99/max and errors per command; exits non-zero on any protocol error.
    Bench(bench::Args),
    /// This project's node and Debian's Dovecot side by side: the same users and `bench`
    /// workloads on both, in alternation; one table of figures, ratios, peak RSS and CPU.
    Compare(compare::Args),
    /// Fault injection in the manner of Jepsen: a `node lab`, workloads through the service
    /// address and straight to nodes, faults on a schedule, a history, checkers, a report.
    Test(harness::Args),
    /// The checkers of `jepsen test` again over a recorded run directory.
    Check(harness::CheckArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Idle(a) => bench_idle::run(a),
        Command::BenchBacklog(a) => bench_backlog::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Compare(a) => compare::run(a),
        Command::Test(a) => harness::run(a),
        Command::Check(a) => harness::check(a),
    }
}
