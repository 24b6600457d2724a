#!/usr/bin/env bash
# docs/results.md: Meta-Rewarding vs Self-Rewarding vs no length control on the oracle testbed,
# SEEDS run seeds each (run.seed: prompt slices and sampling; the seed model is the same), then
# one Markdown table per metric group with mean +- std over seeds (`metareward compare`).
# Run from the repository root after `make demo` (or with runs/testbed/seed bootstrapped).
# Existing run directories are resumed, so the script can be rerun to finish.
set -euo pipefail
MR=${MR:-build/bin/metareward}
SEEDS=${SEEDS:-"1 2 3"}
OUT=${OUT:-runs/results}
VARIANTS=${VARIANTS:-"meta_rewarding self_rewarding no_length_control"}
unset METAREWARD_PLUGIN_PATH
if [ ! -f runs/testbed/seed/bootstrap.json ]; then
  mkdir -p runs/testbed && cp -r configs/testbed/seed runs/testbed/seed
fi
runs=()
for v in $VARIANTS; do
  for s in $SEEDS; do
    run="$OUT/$v-seed$s"
    start=$(date +%s)
    "$MR" --log-level warn run "configs/testbed/$v.toml" --out "$run" --set "run.seed=$s" --resume
    echo "$run: $(( $(date +%s) - start )) s" >&2
    runs+=("$run")
  done
done
for group in actor/oracle_score actor/exact_accuracy actor/mean_length_chars actor/win_rate_vs_seed \
             judge/pairwise_accuracy judge/spearman meta_judge/accuracy; do
  echo
  echo "### $group"
  echo
  "$MR" --log-level warn compare --markdown --metrics "$group" "${runs[@]}"
done
