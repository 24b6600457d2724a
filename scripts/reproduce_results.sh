#!/usr/bin/env bash
# Reproduces every table and plot of docs/results.md, in the order the document gives them.
# Run from the repository root after `make build`. Each step resumes runs that already exist, so
# the script can be rerun to finish; STEPS picks some of them (default: all, in this order):
#   seed      metareward testbed bootstrap of the seed with the own-sample stage
#             (runs/testbed/seed_v3; skipped when its bootstrap.json exists)      ~35 min
#   claims    configs/testbed/three_claims.sh on that seed (tables + SVG plots)    ~45 min
#   judge_v3  CURVE=judge configs/testbed/dose_response.sh on seed_v3              ~7 min
#   meta_v3   CURVE=meta configs/testbed/dose_response.sh on seed_v3, 192 prompts  ~20 min
#   judge     CURVE=judge configs/testbed/dose_response.sh (committed seed)         ~7 min
#   length    CURVE=length configs/testbed/dose_response.sh (committed seed)       ~13 min
#   before    scripts/testbed_results.sh: the issue-7 "before" tables (committed seed) ~12 min
# Times are for the 2-core machine docs/results.md names. Output: $OUT/<step>.md (default
# runs/reproduce), plots under runs/testbed/three_claims/plots.
set -euo pipefail
MR=${MR:-build/bin/metareward}
OUT=${OUT:-runs/reproduce}
STEPS=${STEPS:-"seed claims judge_v3 meta_v3 judge length before"}
SEED_V3=${SEED_V3:-runs/testbed/seed_v3}
unset METAREWARD_PLUGIN_PATH
export METAREWARD="$MR"
mkdir -p "$OUT"
if [ ! -f runs/testbed/seed/bootstrap.json ]; then  # the committed seed, where the configs read it
  mkdir -p runs/testbed && rm -rf runs/testbed/seed && cp -r configs/testbed/seed runs/testbed/seed
fi
for step in $STEPS; do
  start=$(date +%s)
  echo "== $step" >&2
  case "$step" in
    seed)
      if [ ! -f "$SEED_V3/bootstrap.json" ]; then
        "$MR" testbed bootstrap --out "$SEED_V3" --force --families add,multiply,count \
          --own-sample-prompts 600 >"$OUT/seed.log" 2>&1
      fi
      python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["own_samples"]["stats"], indent=1))' \
        "$SEED_V3/bootstrap.json" >"$OUT/seed.md" ;;
    claims) SEED_DIR="$SEED_V3" configs/testbed/three_claims.sh >"$OUT/claims.md" ;;
    judge) CURVE=judge configs/testbed/dose_response.sh >"$OUT/judge.md" ;;
    length) CURVE=length configs/testbed/dose_response.sh >"$OUT/length.md" ;;
    judge_v3) CURVE=judge SEED_DIR="$SEED_V3" OUT=runs/testbed/dose_response_v3 \
                configs/testbed/dose_response.sh >"$OUT/judge_v3.md" ;;
    meta_v3) CURVE=meta SEED_DIR="$SEED_V3" OUT=runs/testbed/dose_response_v3 \
               SETS="--set prompts.per_iteration=192 --set evaluation.max_prompts=200" \
               configs/testbed/dose_response.sh >"$OUT/meta_v3.md" ;;
    before) MR="$MR" scripts/testbed_results.sh >"$OUT/before.md" ;;
    *) echo "reproduce_results.sh: unknown step '$step' (seed claims judge_v3 meta_v3 judge length before)" >&2; exit 2 ;;
  esac
  echo "$step: $(( $(date +%s) - start )) s -> $OUT/$step.md" >&2
done
