#!/usr/bin/env bash
# Dose-response curves on the oracle testbed with the controlled judge (`testbed_oracle`,
# plugins/testbed/README.md "Controlled judges"): one run of configs/testbed/controlled_judge.toml
# (3 iterations) per dose and seed, then a table of mean +- 95 % CI (Student t over seeds).
#
#   CURVE=judge   actor oracle-score gain (iteration 3 - seed) vs judge_accuracy (DOSES,
#                 default "0.0 0.4 0.7 1.0"); policy as actor, controlled judge and meta-judge.
#   CURVE=meta    judge pairwise-accuracy gain vs meta_accuracy (DOSES, default
#                 "0.5 0.7 0.9 1.0"); policy as actor and judge, controlled meta-judge, the judge
#                 trained in iterations 1-2 as in the paper.
#   CURVE=length  answer length (chars) per iteration vs length_bias (DOSES, default
#                 "0.0 0.5 1.0"), each with rho = 0 and rho = 0.3 (judge_accuracy 1).
#
# Run from the repository root; SEED_DIR is a bootstrap directory (default: the committed demo
# seed configs/testbed/seed; `metareward testbed bootstrap --out DIR` makes another):
#   configs/testbed/dose_response.sh                         # CURVE=judge, seeds 1 2 3
#   CURVE=length SEEDS="1 2 3 4 5" configs/testbed/dose_response.sh
# Runs go to $OUT/<curve>/<dose>[-rho<rho>]-seed<seed> (OUT defaults to runs/testbed/dose_response);
# an existing run is resumed (`--resume`), so rerunning finishes or extends a sweep. Extra
# `--set` overrides for every run go in SETS, e.g. SETS="--set prompts.per_iteration=32".
# Needs python3 for the table. METAREWARD names the binary (default: `metareward` on PATH, else
# build/bin/metareward).
set -euo pipefail

if [[ -z "${METAREWARD:-}" ]]; then
  if command -v metareward >/dev/null 2>&1; then METAREWARD=metareward; else METAREWARD=build/bin/metareward; fi
fi
command -v python3 >/dev/null 2>&1 || { echo "dose_response.sh: python3 is needed for the table" >&2; exit 2; }
CURVE=${CURVE:-judge}
SEEDS=${SEEDS:-"1 2 3"}
SEED_DIR=${SEED_DIR:-configs/testbed/seed}
OUT=${OUT:-runs/testbed/dose_response}
CONFIG=configs/testbed/controlled_judge.toml
[[ -d "$SEED_DIR/seed_model" && -f "$SEED_DIR/data/train_prompts.jsonl" ]] ||
  { echo "dose_response.sh: $SEED_DIR is not a bootstrap directory (seed_model/, data/)" >&2; exit 2; }
# shellcheck disable=SC2206  # SETS is a word list on purpose.
extra=(${SETS:-})

case "$CURVE" in
  judge)  DOSES=${DOSES:-"0.0 0.4 0.7 1.0"}; RHOS="0.3" ;;
  meta)   DOSES=${DOSES:-"0.5 0.7 0.9 1.0"}; RHOS="0.3" ;;
  length) DOSES=${DOSES:-"0.0 0.5 1.0"}; RHOS=${RHOS:-"0.0 0.3"} ;;
  *) echo "dose_response.sh: CURVE must be judge, meta or length (got '$CURVE')" >&2; exit 2 ;;
esac

common=(--set "prompts.files=[\"$PWD/$SEED_DIR/data/train_prompts.jsonl\"]"
        --set "models.policy.path=\"$SEED_DIR/seed_model\""
        --set "evaluation.prompts=\"$SEED_DIR/data/eval_prompts.jsonl\"")
runs_file=$(mktemp)
trap 'rm -f "$runs_file"' EXIT
start=$(date +%s)
for dose in $DOSES; do
  for rho in $RHOS; do
    for seed in $SEEDS; do
      case "$CURVE" in
        judge)  name="acc${dose}-seed${seed}"
                sets=(--set "models.judge.judge_accuracy=$dose") ;;
        meta)   name="meta${dose}-seed${seed}"
                sets=(--set "roles.judge=\"policy\"" --set "run.train_judge=[true, true, false]"
                      --set "models.judge.meta_accuracy=$dose") ;;
        length) name="bias${dose}-rho${rho}-seed${seed}"
                sets=(--set "models.judge.judge_accuracy=1.0" --set "models.judge.length_bias=$dose"
                      --set "pair_selection.rho=$rho") ;;
      esac
      run="$OUT/$CURVE/$name"
      resume=()
      [[ -d "$run" ]] && resume=(--resume)
      mkdir -p "$OUT/$CURVE"
      echo "== $CURVE $name ($(($(date +%s) - start)) s)" >&2
      "$METAREWARD" run "$CONFIG" --out "$run" --set "run.seed=$seed" "${common[@]}" "${sets[@]}" \
        "${extra[@]}" "${resume[@]}" >"$run.log" 2>&1 ||
        { echo "dose_response.sh: run $run failed (log: $run.log)" >&2; exit 1; }
      echo "$dose $rho $seed $run" >>"$runs_file"
    done
  done
done

python3 - "$CURVE" "$runs_file" "$(($(date +%s) - start))" <<'PY'
import json, math, sys
curve, runs_file, seconds = sys.argv[1], sys.argv[2], sys.argv[3]
# Two-sided 95 % Student t quantiles by degrees of freedom.
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
       10: 2.228, 15: 2.131, 20: 2.086, 30: 2.042}
def t95(df):
    return T95.get(df) or T95[max(k for k in T95 if k <= df)]
def ci(xs):
    n = len(xs); m = sum(xs) / n
    if n < 2: return m, float("nan")
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1))
    return m, t95(n - 1) * sd / math.sqrt(n)
def metric(run, it, key):
    path = f"{run}/iter_{it}/eval/metrics.json" if it == 0 else f"{run}/iter_{it}/metrics.json"
    m = json.load(open(path))
    m = m.get("evaluation", m)
    return m[key]
rows = [l.split() for l in open(runs_file)]
groups = {}
for dose, rho, seed, run in rows:
    groups.setdefault((dose, rho), []).append(run)
iters = 3
def fmt(m, h):
    return f"{m:+.3f} ± {h:.3f}" if not math.isnan(h) else f"{m:+.3f}"
if curve == "judge":
    print("| judge_accuracy | seeds | actor oracle score, seed | after 3 iterations | gain (95 % CI) | win rate vs seed |")
    print("|---|---|---|---|---|---|")
    for (dose, rho), runs in groups.items():
        s0 = [metric(r, 0, "actor/oracle_score") for r in runs]
        s3 = [metric(r, iters, "actor/oracle_score") for r in runs]
        win = [metric(r, iters, "actor/win_rate_vs_seed") for r in runs]
        print(f"| {dose} | {len(runs)} | {ci(s0)[0]:.3f} | {ci(s3)[0]:.3f} | {fmt(*ci([b - a for a, b in zip(s0, s3)]))} | {fmt(*ci(win))} |")
elif curve == "meta":
    print("| meta_accuracy | seeds | judge pairwise accuracy, seed | after iteration 2 | gain (95 % CI) | after iteration 3 |")
    print("|---|---|---|---|---|---|")
    for (dose, rho), runs in groups.items():
        a0 = [metric(r, 0, "judge/pairwise_accuracy") for r in runs]
        a2 = [metric(r, 2, "judge/pairwise_accuracy") for r in runs]
        a3 = [metric(r, 3, "judge/pairwise_accuracy") for r in runs]
        print(f"| {dose} | {len(runs)} | {ci(a0)[0]:.3f} | {ci(a2)[0]:.3f} | {fmt(*ci([b - a for a, b in zip(a0, a2)]))} | {ci(a3)[0]:.3f} |")
else:
    print("| length_bias | rho | seeds | " + " | ".join(f"length iter {i}" for i in range(iters + 1)) + " | change 0 -> 3 (95 % CI) |")
    print("|---|---|---|" + "---|" * (iters + 2))
    for (dose, rho), runs in groups.items():
        L = [[metric(r, i, "actor/mean_length_chars") for r in runs] for i in range(iters + 1)]
        cells = " | ".join(f"{ci(L[i])[0]:.1f}" for i in range(iters + 1))
        print(f"| {dose} | {rho} | {len(runs)} | {cells} | {fmt(*ci([b - a for a, b in zip(L[0], L[iters])]))} |")
print(f"\n{len(rows)} runs, {seconds} s")
PY
