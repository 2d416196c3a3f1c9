#!/usr/bin/env bash
# Prepare a fresh machine: clang-19 + llvm-19 (to rebuild the on-chain program)
# and .venv with ghostpay and its test tools. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
    echo "setup: installing $* from Debian" >&2
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

if ! command -v clang-19 >/dev/null 2>&1; then
    apt_install clang-19 llvm-19
fi

# PostgreSQL server binaries for the indexer's PostgreSQL tests (they start a throwaway cluster).
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    apt_install postgresql
fi

# Debian's chromium and its driver for the browser tests (the dashboard, the x402 paywall page); no downloaded browsers.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    apt_install chromium chromium-driver
fi

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv" >&2
    python3 -m venv .venv
fi
# The install is editable, so only pyproject.toml (dependencies, entry points, package mapping) calls for
# a new one: a stamp of its hash in .venv skips pip (about 8 s) when nothing changed.
stamp=.venv/.ghostpay-install-stamp
wanted="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    echo "setup: installing ghostpay[dev] into .venv" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
    echo "$wanted" > "$stamp"
fi

# @solana/web3.js for the localnet's Node test (tests/js); again only when the lock file changed.
if command -v npm >/dev/null 2>&1 && \
        [ tests/js/package-lock.json -nt tests/js/node_modules/.package-lock.json ]; then
    echo "setup: npm ci in tests/js" >&2
    (cd tests/js && npm ci --silent --no-audit --no-fund >/dev/null)
fi
