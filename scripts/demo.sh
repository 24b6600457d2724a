#!/usr/bin/env bash
# `make demo`: Meta-Rewarding on the oracle testbed (plugins/testbed/README.md). A small byte-level
# Llama trained from scratch (the committed seed in configs/testbed/seed, reproducible with
# `metareward testbed bootstrap --out DIR`, see its bootstrap.json) plays actor, judge and
# meta-judge for 3 iterations; the `testbed` evaluator grades the seed model and every iteration
# against the oracle. Prints the per-iteration evaluation table and writes the HTML report.
# A second `make demo` resumes the same run (nothing to do when it is complete).
set -euo pipefail
MR=${1:-build/bin/metareward}
RUN=${DEMO_RUN:-runs/demo/meta_rewarding}
unset METAREWARD_PLUGIN_PATH

step() { printf '\n== %s\n' "$*"; }

if [ ! -f "$(dirname "$MR")/../plugins/libmr_torch_backend.so" ]; then
  echo "the demo needs the torch backend (configure with MR_WITH_TORCH=ON)" >&2
  exit 1
fi

# The configs read the seed from runs/testbed/seed, where `testbed bootstrap` writes it.
if [ ! -f runs/testbed/seed/bootstrap.json ]; then
  step "seed model: configs/testbed/seed -> runs/testbed/seed"
  mkdir -p runs/testbed
  rm -rf runs/testbed/seed
  cp -r configs/testbed/seed runs/testbed/seed
elif ! cmp -s configs/testbed/seed/bootstrap.json runs/testbed/seed/bootstrap.json; then
  echo "note: runs/testbed/seed is not the committed seed (your own bootstrap, or one from an" \
    "older checkout); the demo uses it. Remove runs/testbed/seed (and $RUN) to use" \
    "configs/testbed/seed." >&2
fi

step "metareward plan configs/testbed/meta_rewarding.toml"
"$MR" --log-level warn plan configs/testbed/meta_rewarding.toml

step "metareward run configs/testbed/meta_rewarding.toml --out $RUN  (3 iterations)"
start=$(date +%s)
"$MR" run configs/testbed/meta_rewarding.toml --out "$RUN" --resume
echo "run wall time: $(( $(date +%s) - start )) s"

step "metareward report $RUN"
"$MR" --log-level warn report "$RUN"

step "evaluation against the oracle, per iteration (iteration 0 = the seed model)"
"$MR" --log-level warn compare "$RUN" --metrics actor/oracle_score --metrics actor/exact_accuracy \
  --metrics actor/mean_length_chars --metrics actor/win_rate_vs_seed \
  --metrics judge/pairwise_accuracy --metrics judge/spearman --metrics meta_judge/accuracy
echo "(all metrics: $MR compare $RUN; plots: $RUN/report.html)"
cat <<'TXT'

How to read it: actor/oracle_score is the mean oracle grade (0-5) of the actor's answers to
held-out prompts, actor/exact_accuracy the share graded 5; judge/pairwise_accuracy is how often the
judge orders two answers as the oracle does (0.5 = chance), judge/spearman its rank correlation
with the oracle; meta_judge/accuracy how often the meta-judge picks the judgment closer to the
oracle. docs/results.md compares Meta-Rewarding, Self-Rewarding and no length control over seeds.
TXT
