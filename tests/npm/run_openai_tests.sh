#!/usr/bin/env bash
# ctest npm/openai_client: starts `metareward serve` on a free port with a tiny init-model
# checkpoint and runs serve_openai_test.mjs (the official openai npm client) against it, then
# stops the server with SIGTERM and requires exit status 0.
# Usage: run_openai_tests.sh PATH/TO/metareward
set -euo pipefail
MR=${1:?usage: run_openai_tests.sh PATH/TO/metareward}
HERE=$(cd "$(dirname "$0")" && pwd)

command -v node >/dev/null || { echo "FAIL: node is not on PATH (run scripts/setup_npm.sh)" >&2; exit 1; }
if [ ! -f "$HERE/node_modules/openai/package.json" ]; then
  echo "FAIL: $HERE/node_modules is missing (run scripts/setup_npm.sh; make test does)" >&2
  exit 1
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mr_npm_serve.XXXXXX")
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then kill -KILL "$SERVER_PID"; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

cat > "$WORK/tiny.config.json" <<'JSON'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama",
 "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
 "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 300,
 "max_position_embeddings": 256, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
 "tie_word_embeddings": false}
JSON
env -u METAREWARD_PLUGIN_PATH "$MR" init-model --config "$WORK/tiny.config.json" \
  --out "$WORK/model" --seed 3 >/dev/null

env -u METAREWARD_PLUGIN_PATH "$MR" serve --model "$WORK/model" --port 0 2>"$WORK/serve.log" &
SERVER_PID=$!
URL=""
for _ in $(seq 1 600); do
  URL=$(grep -o 'listening on http://[^ ]*' "$WORK/serve.log" | head -n1 | sed 's/^listening on //' || true)
  [ -n "$URL" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/serve.log" >&2; echo "FAIL: serve exited" >&2; exit 1; }
  sleep 0.1
done
[ -n "$URL" ] || { cat "$WORK/serve.log" >&2; echo "FAIL: serve did not listen" >&2; exit 1; }
echo "serve listening on $URL"

status=0
(cd "$HERE" && node serve_openai_test.mjs "$URL") || status=$?

kill -TERM "$SERVER_PID"
code=0
wait "$SERVER_PID" || code=$?
SERVER_PID=""
if [ "$code" -ne 0 ]; then
  cat "$WORK/serve.log" >&2
  echo "FAIL: serve exited with status $code after SIGTERM (expected 0)" >&2
  exit 1
fi
[ "$status" -eq 0 ] || { tail -n 50 "$WORK/serve.log" >&2; echo "FAIL: node tests failed" >&2; exit 1; }
echo "PASS"
