#!/usr/bin/env bash
# The rho sweep on the oracle testbed: Meta-Rewarding (meta_rewarding.toml) with the
# length-control tier width rho set to each value of RHOS, for each seed of SEEDS, then one
# comparison table of the evaluation metrics (iterations x variants, mean +- std over seeds).
#
# Run from the repository root after the bootstrap:
#   metareward testbed bootstrap --out runs/testbed/seed
#   configs/testbed/rho_sweep.sh                       # rho 0.0 0.1 0.2 0.3 0.4, seed 1
#   RHOS="0.0 0.3" SEEDS="1 2 3" configs/testbed/rho_sweep.sh
# METAREWARD names the binary (default: `metareward` on PATH, else build/bin/metareward).
# Runs go to $OUT/rho_<rho>-seed<seed> (OUT defaults to runs/testbed/rho_sweep); an existing run
# directory is resumed (`--resume`: nothing to do when complete), so the script can be rerun to
# finish or extend the sweep.
set -euo pipefail

if [[ -z "${METAREWARD:-}" ]]; then
  if command -v metareward >/dev/null 2>&1; then METAREWARD=metareward; else METAREWARD=build/bin/metareward; fi
fi
RHOS=${RHOS:-"0.0 0.1 0.2 0.3 0.4"}
SEEDS=${SEEDS:-1}
OUT=${OUT:-runs/testbed/rho_sweep}

runs=()
for rho in $RHOS; do
  for seed in $SEEDS; do
    run="$OUT/rho_${rho}-seed${seed}"
    resume=()
    [[ -d "$run" ]] && resume=(--resume)
    "$METAREWARD" run configs/testbed/meta_rewarding.toml --out "$run" \
      --set "pair_selection.rho=${rho}" --set "run.seed=${seed}" "${resume[@]}"
    runs+=("$run")
  done
done
"$METAREWARD" compare "${runs[@]}"
