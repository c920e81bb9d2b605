#!/usr/bin/env bash
# Idempotent set-up for the two README commands: uv in .tools/, the locked virtualenv in
# .venv/, and with --browser Debian's Chromium, PgBouncer, nginx and Node.js for the tests (plus the
# official OpenFeature JavaScript SDK, locked in tests/js/). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
UV_VERSION="0.13.9"
export UV_PYTHON_DOWNLOADS=never UV_NO_PROGRESS=1

if [ ! -x .tools/bin/uv ] || [ "$(.tools/bin/uv --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  "$PYTHON" -m venv .tools
  .tools/bin/pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi
.tools/bin/uv sync --frozen --quiet --python "$PYTHON"

# The test suite drives Chromium, runs replicas and the release step through PgBouncer, and
# the web process behind nginx.
if [ "${1:-}" = "--browser" ]; then
  MISSING=""
  command -v chromium >/dev/null 2>&1 || MISSING="$MISSING chromium"
  [ -x /usr/sbin/pgbouncer ] || command -v pgbouncer >/dev/null 2>&1 || MISSING="$MISSING pgbouncer"
  [ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || MISSING="$MISSING nginx"
  command -v npm >/dev/null 2>&1 || MISSING="$MISSING nodejs npm"
  if [ -n "$MISSING" ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086 # one word per package
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $MISSING >/dev/null
  fi
  # The JavaScript OFREP check: installed from the lock, again only when the lock changed.
  if [ ! tests/js/node_modules/.package-lock.json -nt tests/js/package-lock.json ]; then
    npm ci --prefix tests/js --no-audit --no-fund --loglevel=error >/dev/null
  fi
fi
