#!/usr/bin/env bash
# metareward vs an independent PyTorch-eager reference (bench/eager_reference.py) on the same
# checkpoint and workloads, in one command (issue 16, item 4):
#
#   bench/side_by_side.sh                 # full run, ~30 min on 2 idle cores (17 of them the
#                                         # method-shaped stage, without and with the cache)
#   QUICK=1 bench/side_by_side.sh         # ~2 min smoke test, smaller shapes
#
# Knobs (environment): THREADS (2), WORKDIR (/tmp/mr_side_by_side; the checkpoint is written once
# to WORKDIR/model and reused), QUICK (0/1), BUILD_DIR (build), CONFIG
# (bench/configs/smollm2_135m.config.json), PYTHON (a python3 that imports torch; found
# automatically, see bench/setup_bench.sh), REBUILD=1 (rebuild the bench targets even when they
# exist), METHOD_STAGE_ARGS (what follows --method-stage for the method-shaped stage, i.e. "1" and
# its --method-k/-n/... options; METHOD=0 skips it), METHOD_CONFIG (its model shape; by default
# SmolLM2-135M cut to 6 layers, its checkpoint in WORKDIR/method), SKIP_CHECK=1 (skip the logits
# agreement check).
#
# Workloads (the shapes of bench/generation_bench.cpp and bench/training_bench.cpp):
#   prefill   one PROMPT_TOKENS-token prompt (byte ids), only the last position projected, best of 3
#   prefill11 11 distinct PROMPT_TOKENS-token prompts in one pass, best of 2
#   n=11      11 samples (temperature 0.8, top-p 0.95, NEW_TOKENS each) of one chat prompt.
#             metareward: generate() with n=11 (the prompt is prefilled once and its KV shared);
#             metareward also times 11 separate n=1 requests in one call. Both run with the
#             prefix cache off (--prefix-cache-mib 0), so neither timed call reuses the prompt
#             blocks of the warm-up call; tokens/s uses each call's own generated-token count.
#             eager: the plain HF-style loop - the prompt repeated as a batch of 11 rows, prefilled
#             as 11 rows (no sharing), then one token per step for all rows.
#   decode    batch 1 and 32, context 64, one untimed step then DECODE_STEPS greedy steps
#   dpo       PAIRS pairs of PROMPT+RESPONSE tokens. metareward as trained by default
#             (share_prompt: one packed row per pair, the prompt computed once), and again with
#             --share-prompt 0 (chosen + rejected = one 2*PAIRS-row batch, as eager). Both sides:
#             reference log-probs once beforehand (cached, one model resident), beta 0.1, AdamW
#             lr 1e-5, grad clip 1.0; WARMUP untimed + STEPS measured steps; tokens/s and peak RSS
#             of a process that does only this.
# Ratios: metareward / eager for throughput (higher = metareward faster), metareward / eager for
# RSS (lower = metareward leaner).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
THREADS=${THREADS:-2}
WORKDIR=${WORKDIR:-/tmp/mr_side_by_side}
QUICK=${QUICK:-0}
CONFIG=${CONFIG:-$ROOT/bench/configs/smollm2_135m.config.json}
MR=$BUILD_DIR/bin/metareward
GEN_BENCH=$BUILD_DIR/bin/mr_generation_bench
TRAIN_BENCH=$BUILD_DIR/bin/mr_training_bench
EAGER=$ROOT/bench/eager_reference.py

if [ "$QUICK" = 1 ]; then
  PROMPT_TOKENS=128 DECODE_STEPS=4 NEW_TOKENS=8 BATCHES=1,32
  PAIRS=2 DPO_PROMPT=64 DPO_RESPONSE=64 WARMUP=1 STEPS=1
  METHOD_DEFAULT="1 --method-k 2 --method-n 3 --method-meta-responses 1 --judge-tokens 8 --verdict-tokens 4 --response-chars 300 --judgment-chars 150"
  METHOD_CONFIG=${METHOD_CONFIG:-$CONFIG}
else
  PROMPT_TOKENS=400 DECODE_STEPS=16 NEW_TOKENS=32 BATCHES=1,32
  PAIRS=8 DPO_PROMPT=128 DPO_RESPONSE=128 WARMUP=1 STEPS=2
  # The recipe's structure (K = 7 responses, N = 11 judgments each, all 110 ordered battles of one
  # response's judgments) at the paper's lengths (mr_generation_bench's defaults: responses of
  # ~1,900 characters, judgments of ~550), scaled down in depth: 6 layers of SmolLM2-135M take
  # ~11 min without the cache and ~5 with it on 2 cores (30 layers: ~5x that).
  METHOD_DEFAULT="1 --method-k 7 --method-n 11 --method-meta-responses 1"
  METHOD_CONFIG=${METHOD_CONFIG:-$ROOT/bench/configs/smollm2_6layers.config.json}
fi
METHOD_STAGE_ARGS=${METHOD_STAGE_ARGS:-$METHOD_DEFAULT}
LOGS=$WORKDIR/logs
MODEL=$WORKDIR/model
mkdir -p "$LOGS"
T_START=$(date +%s)

say() { printf '%s\n' "$*"; }
phase() { say ""; say "== $* (load $(cut -d' ' -f1-3 /proc/loadavg), +$(( $(date +%s) - T_START )) s)"; }
die() { say "side_by_side: error: $*" >&2; exit 1; }

# ---- Python with torch ----------------------------------------------------------------------
if [ -z "${PYTHON:-}" ]; then
  for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c "import torch" >/dev/null 2>&1; then
      PYTHON=$(command -v "$p"); break
    fi
  done
fi
[ -n "${PYTHON:-}" ] || die "no python3 imports torch; run bench/setup_bench.sh (as root) first"

# ---- Header ---------------------------------------------------------------------------------
say "metareward side-by-side vs PyTorch eager ($(date -u '+%Y-%m-%d %H:%M:%S UTC'))"
say "machine: nproc $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), threads $THREADS"
# CPU busy over one second, in percent of all cores (from /proc/stat): the load average lags by
# minutes, this says whether something is running right now.
cpu_busy() {
  local c u n s i w q sq st rest t1 i1 t2 i2
  read -r c u n s i w q sq st rest </proc/stat; t1=$((u + n + s + i + w + q + sq + st)); i1=$((i + w))
  sleep 1
  read -r c u n s i w q sq st rest </proc/stat; t2=$((u + n + s + i + w + q + sq + st)); i2=$((i + w))
  echo $(( (100 * ((t2 - t1) - (i2 - i1))) / ((t2 - t1) > 0 ? (t2 - t1) : 1) ))
}
LOAD_BEFORE=$(cat /proc/loadavg)
BUSY_BEFORE=$(cpu_busy)
say "load average before: $LOAD_BEFORE (CPU busy now: $BUSY_BEFORE%)"
if [ "$BUSY_BEFORE" -gt 20 ]; then
  say "WARNING: the machine is not idle ($BUSY_BEFORE% CPU busy); with $THREADS OpenMP threads per process on"
  say "         $(nproc) cores, contention stalls every parallel region, so both sides' numbers are unreliable:"
  ps -eo pcpu,comm --sort=-pcpu | awk 'NR>1 && NR<=4 && $1 > 5 {printf "           %s%% %s\n", $1, $2}'
fi
if pgrep -f 'cc1plus|ninja' >/dev/null 2>&1; then say "WARNING: a compiler (cc1plus/ninja) is running"; fi
say "mode: $([ "$QUICK" = 1 ] && echo 'QUICK=1 (smoke shapes)' || echo full); workdir $WORKDIR; logs $LOGS"
say "python: $PYTHON, torch $("$PYTHON" -c 'import torch; print(torch.__version__)')"

# ---- Build the bench targets if missing -----------------------------------------------------
build_target() {
  local bin=$1 target=$2
  if [ -x "$bin" ] && [ "${REBUILD:-0}" != 1 ]; then return 0; fi
  phase "building $target"
  if ! flock /tmp/mr_build.lock cmake --build "$BUILD_DIR" -j"$(nproc)" --target "$target" >"$LOGS/build_$target.log" 2>&1; then
    say "  build of $target failed (tail of $LOGS/build_$target.log):"
    tail -5 "$LOGS/build_$target.log" | sed 's/^/    /'
    return 1
  fi
}
HAVE_GEN=1 HAVE_TRAIN=1
build_target "$GEN_BENCH" mr_generation_bench || HAVE_GEN=0
build_target "$TRAIN_BENCH" mr_training_bench || HAVE_TRAIN=0
[ -x "$MR" ] || die "$MR is missing: build metareward first (cmake --build $BUILD_DIR)"

# ---- The checkpoint, written once -----------------------------------------------------------
# Seed 1, float32, byte-level tokenizer: exactly what mr_generation_bench writes to
# WORKDIR/model itself, so it reuses this one.
if [ ! -f "$MODEL/model.safetensors" ] || ! cmp -s "$CONFIG" "$WORKDIR/source_config.json"; then
  phase "writing the checkpoint ($CONFIG -> $MODEL)"
  rm -rf "$MODEL"
  "$MR" init-model --config "$CONFIG" --out "$MODEL" --seed 1 || die "init-model failed"
  cp "$CONFIG" "$WORKDIR/source_config.json"
fi
say "model: $("$PYTHON" "$EAGER" shapes --model "$MODEL")"

# Runs one heavy phase, its output shown with a prefix and kept in a log.
run_phase() {
  local name=$1 prefix=$2; shift 2
  "$@" 2>&1 | tee "$LOGS/$name.log" | sed -u "s/^/  $prefix /"
  return "${PIPESTATUS[0]}"
}

# ---- Correctness ------------------------------------------------------------------------------
if [ "${SKIP_CHECK:-0}" != 1 ]; then
  phase "logits agreement (eager vs metareward score / generate --temperature 0)"
  run_phase check "" "$PYTHON" "$EAGER" check --model "$MODEL" --metareward "$MR" --threads "$THREADS" ||
    say "  check failed (see $LOGS/check.log)"
fi

# ---- Generation -------------------------------------------------------------------------------
if [ "$HAVE_GEN" = 1 ]; then
  phase "metareward generation (mr_generation_bench --prompt-tokens $PROMPT_TOKENS --new-tokens $NEW_TOKENS --decode-steps $DECODE_STEPS --batches $BATCHES)"
  run_phase mr_gen "[mr]" "$GEN_BENCH" --config "$CONFIG" --workdir "$WORKDIR" --threads "$THREADS" \
    --prompt-tokens "$PROMPT_TOKENS" --new-tokens "$NEW_TOKENS" --decode-steps "$DECODE_STEPS" \
    --batches "$BATCHES" --prefix-cache-mib 0 || say "  mr_generation_bench failed (see $LOGS/mr_gen.log)"
else
  : >"$LOGS/mr_gen.log"
fi
phase "eager generation (same shapes)"
run_phase eager_gen "" "$PYTHON" "$EAGER" gen --model "$MODEL" --threads "$THREADS" \
  --prompt-tokens "$PROMPT_TOKENS" --new-tokens "$NEW_TOKENS" --decode-steps "$DECODE_STEPS" \
  --batches "$BATCHES" --samples 11 || say "  eager gen failed (see $LOGS/eager_gen.log)"

# ---- DPO ----------------------------------------------------------------------------------------
# mr_training_bench builds the config's shape with its own random weights (CausalLM::initialize);
# throughput does not depend on the values. Each side runs in its own process (own peak RSS).
if [ "$HAVE_TRAIN" = 1 ]; then
  phase "metareward DPO (mr_training_bench dpo --pairs $PAIRS --prompt $DPO_PROMPT --response $DPO_RESPONSE --warmup $WARMUP --steps $STEPS)"
  run_phase mr_dpo "[mr]" "$TRAIN_BENCH" dpo --config "$CONFIG" --threads "$THREADS" --pairs "$PAIRS" \
    --prompt "$DPO_PROMPT" --response "$DPO_RESPONSE" --warmup "$WARMUP" --steps "$STEPS" ||
    say "  mr_training_bench failed (see $LOGS/mr_dpo.log)"
  phase "metareward DPO, chosen and rejected in separate rows (--share-prompt 0)"
  run_phase mr_dpo_rows "[mr]" "$TRAIN_BENCH" dpo --config "$CONFIG" --threads "$THREADS" --pairs "$PAIRS" \
    --prompt "$DPO_PROMPT" --response "$DPO_RESPONSE" --warmup "$WARMUP" --steps "$STEPS" --share-prompt 0 ||
    say "  mr_training_bench --share-prompt 0 failed (see $LOGS/mr_dpo_rows.log)"
else
  : >"$LOGS/mr_dpo.log"
  : >"$LOGS/mr_dpo_rows.log"
fi
phase "eager DPO (same shapes)"
run_phase eager_dpo "" "$PYTHON" "$EAGER" dpo --model "$MODEL" --threads "$THREADS" --pairs "$PAIRS" \
  --prompt "$DPO_PROMPT" --response "$DPO_RESPONSE" --warmup "$WARMUP" --steps "$STEPS" \
  --beta 0.1 --lr 1e-5 || say "  eager dpo failed (see $LOGS/eager_dpo.log)"

# ---- Method-shaped stage (hook) ------------------------------------------------------------------
METHOD_LINES="method stage: not available in this build"
if [ "${METHOD:-1}" = 0 ]; then
  METHOD_LINES="method stage: skipped (METHOD=0)"
elif [ "$HAVE_GEN" = 1 ] && { "$GEN_BENCH" --help 2>&1 || true; } | grep -q -- '--method-stage'; then
  # (mr_generation_bench --help lists its options; `|| true` keeps pipefail quiet on any exit status.)
  phase "metareward method-shaped stage (mr_generation_bench --config $METHOD_CONFIG --method-stage $METHOD_STAGE_ARGS)"
  # shellcheck disable=SC2086  # METHOD_STAGE_ARGS is a word list on purpose.
  if run_phase mr_method "[mr]" "$GEN_BENCH" --config "$METHOD_CONFIG" --workdir "$WORKDIR/method" --threads "$THREADS" \
    --method-stage $METHOD_STAGE_ARGS; then
    METHOD_LINES=$(grep -E '^(method stage|RESULT method )' "$LOGS/mr_method.log")
    [ -n "$METHOD_LINES" ] || METHOD_LINES="method stage: ran, but printed no 'method stage ...' or 'RESULT method...' line ($LOGS/mr_method.log)"
  else
    METHOD_LINES="method stage: failed (see $LOGS/mr_method.log)"
  fi
fi

LOAD_AFTER=$(cat /proc/loadavg)

# ---- Table ----------------------------------------------------------------------------------------
phase "summary"
"$PYTHON" - "$LOGS" "$THREADS" "$QUICK" "$PROMPT_TOKENS" "$NEW_TOKENS" "$PAIRS" "$DPO_PROMPT" "$DPO_RESPONSE" <<'PY'
import os, re, sys

logs, threads, quick, P, NEW, PAIRS, DP, DR = sys.argv[1:9]
P, NEW = int(P), int(NEW)

def read(name):
    try:
        with open(os.path.join(logs, name + ".log")) as f:
            return f.read()
    except OSError:
        return ""

def results(text):
    out = []
    for line in text.splitlines():
        if line.startswith("RESULT "):
            out.append(dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv))
    return out

def first(rs, **match):
    for r in rs:
        if all(r.get(k) == v for k, v in match.items()):
            return r
    return {}

def num(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return None

mr_gen, mr_dpo, mr_dpo_rows = read("mr_gen"), read("mr_dpo"), read("mr_dpo_rows")
eg, ed, ck = results(read("eager_gen")), results(read("eager_dpo")), results(read("check"))

# metareward's generation bench prints one `RESULT <workload> key=value ...` line per workload.
def workloads(text):
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "RESULT" and "=" not in parts[1]:
            out[parts[1]] = dict(kv.split("=", 1) for kv in parts[2:] if "=" in kv)
    return out

mw = workloads(mr_gen)
mr = {}
mr["gemm"] = num(mw.get("gemm", {}).get("gemm_gflops"))
mr["prefill"] = num(mw.get("prefill", {}).get("tokens_per_s"))
mr["prefill_rows"] = num(mw.get("prefill11_one_pass", {}).get("tokens_per_s"))
mr["prefill_rows_chunked"] = num(mw.get("prefill11_chunked", {}).get("tokens_per_s"))
mr_shared, mr_requests = mw.get("n11_shared", {}), mw.get("n11_requests", {})
mr["n11_shared"] = num(mr_shared.get("tokens_per_s"))
mr["n11_batched"] = num(mr_requests.get("tokens_per_s"))
for name, r in mw.items():
    if name.startswith("decode_b"):
        mr["decode" + r.get("batch", name[len("decode_b"):])] = num(r.get("tokens_per_s"))
dpo_mr = first(results(mr_dpo), mode="dpo")
dpo_mr_rows = first(results(mr_dpo_rows), mode="dpo")

e = {}
e["gemm"] = num(first(eg, phase="gemm").get("gemm_gflops"))
e["prefill"] = num(first(eg, phase="prefill").get("tokens_per_s"))
e["prefill_rows"] = num(first(eg, phase="prefill_rows").get("tokens_per_s"))
n11 = first(eg, phase="n_samples")
e["n11"] = num(n11.get("tokens_per_s"))
e["n11_s"] = num(n11.get("seconds"))
for r in eg:
    if r.get("phase") == "decode":
        e["decode" + r["batch"]] = num(r.get("tokens_per_s"))
dpo_e = first(ed, phase="dpo")

rows = []
def row(label, a, b, unit, lower_better=False):
    ratio = a / b if (a is not None and b) else None
    rows.append((label, a, b, unit, ratio, lower_better))

row("GEMM fp32 (libtorch vs Debian torch BLAS)", mr.get("gemm"), e.get("gemm"), "GFLOP/s")
row("prefill 1 x %d tokens" % P, mr.get("prefill"), e.get("prefill"), "tokens/s")
row("prefill 11 x %d tokens, one pass" % P, mr.get("prefill_rows"), e.get("prefill_rows"), "tokens/s")
row("prefill 11 x %d, mr chunked vs eager one pass" % P, mr.get("prefill_rows_chunked"), e.get("prefill_rows"), "tokens/s")
row("decode batch 1", mr.get("decode1"), e.get("decode1"), "tokens/s")
row("decode batch 32", mr.get("decode32"), e.get("decode32"), "tokens/s")
row("n=11 x %d new: mr shared prefill vs eager 11 rows" % NEW, mr.get("n11_shared"), e.get("n11"), "gen tok/s")
row("n=11 x %d new: mr 11 requests vs eager 11 rows" % NEW, mr.get("n11_batched"), e.get("n11"), "gen tok/s")
row("DPO step %sx2 x (%s+%s)" % (PAIRS, DP, DR), num(dpo_mr.get("tokens_per_s")), num(dpo_e.get("tokens_per_s")), "tokens/s")
row("DPO reference pass (cached log-probs)",
    (2 * int(PAIRS) * (int(DP) + int(DR)) / num(dpo_mr["ref_pass_s"])) if num(dpo_mr.get("ref_pass_s")) else None,
    (2 * int(PAIRS) * (int(DP) + int(DR)) / num(dpo_e["ref_pass_s"])) if num(dpo_e.get("ref_pass_s")) else None,
    "tokens/s")
row("DPO step, mr separate rows (share_prompt off)", num(dpo_mr_rows.get("tokens_per_s")), num(dpo_e.get("tokens_per_s")), "tokens/s")
row("DPO peak RSS (whole process)", num(dpo_mr.get("peak_rss_mib")), num(dpo_e.get("peak_rss_mib")), "MiB", True)
row("DPO peak RSS, mr separate rows", num(dpo_mr_rows.get("peak_rss_mib")), num(dpo_e.get("peak_rss_mib")), "MiB", True)
row("DPO RSS after model (before training)", num(dpo_mr.get("rss_after_model_mib")), num(dpo_e.get("rss_after_model_mib")), "MiB", True)

def f(x):
    return "n/a" if x is None else ("%.1f" % x if x < 1000 else "%.0f" % x)

w = max(len(r[0]) for r in rows)
print("%-*s  %12s  %12s  %-9s  %s" % (w, "workload", "metareward", "eager", "unit", "ratio mr/eager"))
print("-" * (w + 56))
for label, a, b, unit, ratio, lower in rows:
    note = "" if ratio is None else ("  (lower = mr leaner)" if lower else "")
    print("%-*s  %12s  %12s  %-9s  %s%s" % (w, label, f(a), f(b), unit, "n/a" if ratio is None else "%.2fx" % ratio, note))
c = first(ck, phase="check")
if c:
    print("\nlogits agreement: %s positions, max |dlogprob| %s, |dsum| %s; greedy %s tokens %s -> %s"
          % (c.get("positions"), c.get("max_abs_logprob_diff"), c.get("abs_sum_diff"), c.get("greedy_tokens"),
             "identical" if c.get("greedy_match") == "1" else "DIFFERENT", "OK" if c.get("ok") == "1" else "MISMATCH"))
missing = [l for l, a, b, *_ in rows if a is None or b is None]
if missing:
    print("not measured on one side: " + "; ".join(missing) + " (see the logs)")
def ival(d, k):
    v = num(d.get(k))
    return "?" if v is None else "%d" % v

print("\nn=11: metareward prefills the chat prompt once and shares its KV across the 11 samples; its"
      " '11 requests' line sends 11 separate n=1 requests in one generate() call (11-row prefill)."
      " Both with the prefix cache off (prefix_cache_mib %s), so no timed call reuses the prompt"
      " blocks of the warm-up call (prompt tokens reused: shared %s, 11 requests %s)."
      " Eager prefills 11 identical rows as one batch, no sharing, no cache."
      " Eager decode grows its KV cache with torch.cat each step; eager attention is explicit"
      " matmul + mask + softmax (torch 1.13 has no SDPA)."
      % (mr_shared.get("prefix_cache_mib", "?"), ival(mr_shared, "prefix_reused_tokens"),
         ival(mr_requests, "prefix_reused_tokens")))
print("n=11 sizes: prompt %d bytes requested -> mr %s tokens, eager %s ids with the chat template;"
      " generated tokens (at most 11 x %d, rows stop at end of turn): mr shared %s, mr 11 requests %s,"
      " eager %s; each gen tok/s uses its own count."
      % (P, ival(mr_shared, "prompt_tokens"), ival(n11, "prompt_ids"), NEW,
         ival(mr_shared, "generated"), ival(mr_requests, "generated"), ival(n11, "generated")))
print("peak RSS of generation is not compared: the two generation processes run different workloads"
      " (mr_generation_bench holds the model once: it releases the backend before loading the model"
      " directly).")
PY

say ""
say "$METHOD_LINES"
say "load average before: $LOAD_BEFORE"
say "load average after:  $LOAD_AFTER"
say "nproc $(nproc), threads $THREADS, total $(( $(date +%s) - T_START )) s; logs in $LOGS"
