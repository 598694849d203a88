#!/usr/bin/env bash
# The one command that proves the project: installs the test clients, builds the
# whole workspace (debug) and runs every test. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh

# The whole-server tests start target/debug/node: build it (and everything) first.
cargo build --workspace --all-targets --locked

if cargo nextest --version >/dev/null 2>&1; then
  # scripts/nextest.toml: timeouts, and the fixed-port tests run one at a time.
  cargo nextest run --workspace --locked --no-fail-fast \
    --config-file scripts/nextest.toml --profile ci
else
  cargo test --workspace --locked --no-fail-fast
fi
