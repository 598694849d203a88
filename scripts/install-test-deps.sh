#!/usr/bin/env bash
# Installs what the whole-server tests drive: real mail clients and the network
# tools the cluster tests use. Idempotent: a second run on a ready machine only
# checks `command -v` and returns in well under a second.
set -euo pipefail

# command -> Debian package that provides it
declare -A PKG_FOR=(
  [mbsync]=isync
  [fetchmail]=fetchmail
  [swaks]=swaks
  [openssl]=openssl
  [python3]=python3
  [faketime]=faketime
  [keepalived]=keepalived
  [nft]=nftables
  [iptables]=iptables
  [ip]=iproute2
  [ping]=iputils-ping
  [nc]=netcat-openbsd
  [pkill]=procps
  [sieve-connect]=sieve-connect
  [curl]=curl
  [sqlite3]=sqlite3
  [ldapsearch]=ldap-utils
)

missing=()
for cmd in "${!PKG_FOR[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${PKG_FOR[$cmd]}")
done
# The Sieve delivery test's SMTP receiver (Debian's module, for Debian's python3).
if ! /usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1; then
  missing+=(python3-aiosmtpd)
fi
# The user-database tests start their own directory servers (tests/src/directories.rs);
# the server binaries live outside a normal user's PATH.
[[ -x /usr/sbin/slapd ]] || missing+=(slapd)
[[ -x /usr/sbin/mariadbd ]] || missing+=(mariadb-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
# The import tests have Dovecot itself write a Maildir (doveadm save/flags/expunge).
[[ -x /usr/bin/doveadm ]] || missing+=(dovecot-core)
# The IMAP import test logs in to a running Dovecot (its imap and imap-login services).
[[ -x /usr/lib/dovecot/imap-login ]] || missing+=(dovecot-imapd)
# faketime's command alone is not enough: the tests preload the library.
if ! ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1; then
  missing+=(libfaketime)
fi
# The node_stats test parses /metrics with Prometheus' own text-format parser.
if ! /usr/bin/python3 -c 'import prometheus_client.parser' >/dev/null 2>&1; then
  missing+=(python3-prometheus-client)
fi

if ((${#missing[@]})); then
  echo "install-test-deps: installing ${missing[*]}"
  SUDO=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || { echo "install-test-deps: need root or sudo to install ${missing[*]}" >&2; exit 1; }
    SUDO=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  # Another apt run (unattended upgrades, a parallel install) holds the locks for a
  # while: wait for it instead of failing.
  for attempt in $(seq 1 60); do
    "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=300 update -qq && break
    [[ $attempt -eq 60 ]] && { echo "install-test-deps: apt-get update kept failing" >&2; exit 1; }
    sleep 5
  done
  # --no-install-recommends keeps out MTAs and daemons the tests never start.
  "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    $(printf '%s\n' "${missing[@]}" | sort -u) </dev/null
else
  echo "install-test-deps: all test clients present"
fi

# The Rust toolchain is the machine's own; nextest is optional (test.sh falls back to cargo test).
command -v cargo >/dev/null 2>&1 || { echo "install-test-deps: cargo not found: install Rust (rustup) first" >&2; exit 1; }
if cargo nextest --version >/dev/null 2>&1; then
  echo "install-test-deps: $(cargo nextest --version | head -1)"
else
  echo "install-test-deps: cargo-nextest not found, tests will run under cargo test"
fi

# cargo-deny checks licences, sources and advisories (deny.toml); built once from crates.io
# (about 20 minutes on 2 busy cores: a fresh machine pays it once).
if ! cargo deny --version >/dev/null 2>&1; then
  echo "install-test-deps: installing cargo-deny"
  cargo install --locked cargo-deny >/dev/null 2>&1 || echo "install-test-deps: cargo-deny could not be installed; dependency policy not checked" >&2
fi
