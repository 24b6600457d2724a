#!/usr/bin/env bash
# Soak of `metareward serve` on loopback (issue 18): 2,000 requests at concurrency 64, 10 % of
# them malformed, oversized, cut off or abandoned; every valid one must be answered, RSS is
# reported before and after. ROUNDS=N repeats the soak on the same server (RSS after each round
# tells warm-up from growth). Usage: [ROUNDS=N] bench/serve_soak.sh [BUILD_DIR] [mr_serve_soak flags]
set -euo pipefail
build=${1:-build}
shift || true
cmake --build "$build" --target mr_serve_soak metareward >/dev/null
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
"$build/bin/metareward" init-model --config bench/configs/smollm2_135m.config.json \
  --out "$work/model" >/dev/null
"$build/bin/metareward" serve --model "$work/model" --served-model-name soak --port 0 \
  --max-body-bytes 65536 --threads "$(nproc)" 2>"$work/serve.log" &
pid=$!
for _ in $(seq 600); do
  port=$(grep -o 'listening on http://[^:]*:[0-9]*' "$work/serve.log" | grep -o '[0-9]*$' || true)
  [ -n "$port" ] && break
  sleep 0.2
done
[ -n "${port:-}" ] || { cat "$work/serve.log"; exit 1; }
echo "machine: $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "${ROUNDS:-1}"); do
  echo "--- round $round"
  "$build/bin/mr_serve_soak" --port "$port" --pid "$pid" --model soak "$@"
done
kill -TERM "$pid"
wait "$pid"
echo "serve exit status: $?"
