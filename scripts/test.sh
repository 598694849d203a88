#!/usr/bin/env bash
# The one command that proves the project: installs the test clients, builds the
# whole workspace (debug) and runs every test. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh

# Lints before the long build: formatting, clippy (warnings are errors) and the dependency
# policy (deny.toml).
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
if cargo deny --version >/dev/null 2>&1; then
  cargo deny --log-level error check licenses bans sources
  # The advisory database cannot be fetched here: check it only from a local copy.
  if compgen -G "${CARGO_HOME:-$HOME/.cargo}/advisory-dbs/*" >/dev/null; then
    cargo deny --offline --log-level error check advisories
  else
    echo "test.sh: no local RustSec database; advisories not checked"
  fi
fi

# The whole-server tests start target/debug/node: build it (and everything) first, and
# point them at exactly that binary.
cargo build --workspace --all-targets
export NODE_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/node"

if cargo nextest --version >/dev/null 2>&1; then
  # scripts/nextest.toml: timeouts, and the fixed-port tests run one at a time.
  cargo nextest run --workspace --no-fail-fast \
    --config-file scripts/nextest.toml --profile ci
else
  cargo test --workspace --no-fail-fast
fi
