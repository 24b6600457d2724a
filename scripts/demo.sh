#!/usr/bin/env bash
# `make demo`: Meta-Rewarding on the oracle testbed (plugins/testbed/README.md). A small byte-level
# Llama trained from scratch (the committed seed in configs/testbed/seed, reproducible with
# `metareward testbed bootstrap --out DIR`, see its bootstrap.json) plays actor, judge and
# meta-judge for 3 iterations; the `testbed` evaluator grades the seed model and every iteration
# against the oracle. Prints the per-iteration evaluation table and writes the HTML report; then
# runs the controlled length-biased judge (the claim the testbed reproduces) and prints the
# headline of docs/results.md.
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
# The one claim of the paper the testbed reproduces (docs/results.md section 4): with a judge that
# rewards filler (the controlled `testbed_oracle`, +1 point per extra sentence) and no length
# control, answers grow longer every iteration.
LEN_RUN=${DEMO_LENGTH_RUN:-runs/demo/length_biased_judge}
step "metareward run configs/testbed/controlled_judge.toml --out $LEN_RUN  (length-biased judge, rho = 0)"
start=$(date +%s)
"$MR" --log-level warn run configs/testbed/controlled_judge.toml --out "$LEN_RUN" --resume \
  --set models.judge.judge_accuracy=1.0 --set models.judge.length_bias=1.0 --set pair_selection.rho=0 \
  --set prompts.per_iteration=200
echo "run wall time: $(( $(date +%s) - start )) s"
"$MR" --log-level warn compare "$LEN_RUN" --metrics actor/mean_length_chars --metrics actor/oracle_score

step "headline of docs/results.md (every claim with its 95 % CI and command there)"
sed -n '/^## Headline/,/^## 1\./p' docs/results.md | sed '1d;$d'

cat <<'TXT'

How to read it: actor/oracle_score is the mean oracle grade (0-5) of the actor's answers to
held-out prompts, actor/exact_accuracy the share graded 5; judge/pairwise_accuracy is how often the
judge orders two answers as the oracle does (0.5 = chance), judge/spearman its rank correlation
with the oracle; meta_judge/accuracy how often the meta-judge picks the judgment closer to the
oracle; actor/mean_length_chars the mean answer length. docs/results.md compares Meta-Rewarding,
Self-Rewarding and no length control over seeds, with controlled judges and the own-sample seed.
TXT
