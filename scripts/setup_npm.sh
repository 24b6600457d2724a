#!/usr/bin/env bash
# Installs what the npm test (tests/npm, ctest npm/openai_client) needs: Node.js (Debian's
# nodejs + npm, only when `node` is not on PATH) and tests/npm/node_modules from the committed
# package-lock.json (`npm ci`). Idempotent: does nothing when node_modules matches the lockfile
# (a stamp holding the lockfile's sha256). Called by `make test` before ctest.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR="$ROOT/tests/npm"
STAMP="$DIR/node_modules/.metareward-lock.sha256"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "[setup_npm] installing nodejs npm"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "[setup_npm] need root (or sudo) to install nodejs npm" >&2; exit 1; }
    SUDO="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends nodejs npm
fi

want=$(sha256sum "$DIR/package-lock.json" | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -f "$DIR/node_modules/openai/package.json" ]; then
  echo "[setup_npm] tests/npm/node_modules up to date"
  exit 0
fi
echo "[setup_npm] npm ci in tests/npm"
(cd "$DIR" && npm ci --no-audit --no-fund --loglevel=error)
echo "$want" > "$STAMP"
echo "[setup_npm] done"
