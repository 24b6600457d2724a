#!/usr/bin/env bash
# The paper's three claims, self-played on the oracle testbed (issue 19 item 3): one run per
# variant and seed of the recipe configs, each 3 iterations, then per-iteration tables of
# mean +- 95 % CI (Student t over seeds) and one SVG plot per claim.
#
#   (i)   actor oracle score and win rate vs the seed rise over iterations;
#   (ii)  judge pairwise agreement with the oracle rises in the judge-training iterations (1-2)
#         under Meta-Rewarding and not under Self-Rewarding;
#   (iii) without length control (rho = 0) answers grow longer when the judge is length-biased.
#
# VARIANTS (default "meta_rewarding self_rewarding no_length_control") name configs/testbed/*.toml;
# SEEDS (default "1 2 3") are run.seed values; SEED_DIR is a bootstrap directory (default
# runs/testbed/seed_v3, made by the command docs/results.md gives); extra `--set` overrides for
# every run go in SETS (default "--set prompts.per_iteration=192 --set evaluation.max_prompts=200":
# 576 of the 2,000 train prompts, all 200 eval prompts). Runs go to
# $OUT/<variant>-seed<seed> (OUT defaults to runs/testbed/three_claims); an existing run is
# resumed, so rerunning finishes a sweep. Plots go to $PLOTS (default $OUT/plots).
#   configs/testbed/three_claims.sh
#   SEEDS="1 2 3 4 5" SEED_DIR=configs/testbed/seed configs/testbed/three_claims.sh
# Needs python3 (standard library only). METAREWARD names the binary (default: `metareward` on
# PATH, else build/bin/metareward).
set -euo pipefail

if [[ -z "${METAREWARD:-}" ]]; then
  if command -v metareward >/dev/null 2>&1; then METAREWARD=metareward; else METAREWARD=build/bin/metareward; fi
fi
command -v python3 >/dev/null 2>&1 || { echo "three_claims.sh: python3 is needed for the tables" >&2; exit 2; }
VARIANTS=${VARIANTS:-"meta_rewarding self_rewarding no_length_control"}
SEEDS=${SEEDS:-"1 2 3"}
SEED_DIR=${SEED_DIR:-runs/testbed/seed_v3}
OUT=${OUT:-runs/testbed/three_claims}
PLOTS=${PLOTS:-$OUT/plots}
[[ -d "$SEED_DIR/seed_model" && -f "$SEED_DIR/data/train_prompts.jsonl" ]] ||
  { echo "three_claims.sh: $SEED_DIR is not a bootstrap directory (seed_model/, data/)" >&2; exit 2; }
for v in $VARIANTS; do
  [[ -f "configs/testbed/$v.toml" ]] || { echo "three_claims.sh: no configs/testbed/$v.toml" >&2; exit 2; }
done
# shellcheck disable=SC2206  # SETS is a word list on purpose.
extra=(${SETS:-"--set" "prompts.per_iteration=192" "--set" "evaluation.max_prompts=200"})

common=(--set "prompts.files=[\"$PWD/$SEED_DIR/data/train_prompts.jsonl\"]"
        --set "models.policy.path=\"$SEED_DIR/seed_model\""
        --set "evaluation.prompts=\"$SEED_DIR/data/eval_prompts.jsonl\"")
runs_file=$(mktemp)
trap 'rm -f "$runs_file"' EXIT
start=$(date +%s)
mkdir -p "$OUT"
for v in $VARIANTS; do
  for seed in $SEEDS; do
    run="$OUT/$v-seed$seed"
    resume=()
    [[ -d "$run" ]] && resume=(--resume)
    echo "== $v seed $seed ($(($(date +%s) - start)) s)" >&2
    "$METAREWARD" run "configs/testbed/$v.toml" --out "$run" --set "run.seed=$seed" "${common[@]}" \
      "${extra[@]}" "${resume[@]}" >"$run.log" 2>&1 ||
      { echo "three_claims.sh: run $run failed (log: $run.log)" >&2; exit 1; }
    echo "$v $seed $run" >>"$runs_file"
  done
done

mkdir -p "$PLOTS"
python3 - "$runs_file" "$(($(date +%s) - start))" "$PLOTS" <<'PY'
import json, math, sys
runs_file, seconds, plots = sys.argv[1], sys.argv[2], sys.argv[3]
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
    return m.get("evaluation", m).get(key)  # None: not measured (the seed's win rate vs itself)
def fmt(m, h, digits=3):
    return f"{m:+.{digits}f} ± {h:.{digits}f}" if not math.isnan(h) else f"{m:+.{digits}f}"
rows = [l.split() for l in open(runs_file)]
groups = {}
for variant, seed, run in rows:
    groups.setdefault(variant, []).append(run)
ITERS = 3
METRICS = [("actor/oracle_score", "actor oracle score (0-5)", 3),
           ("actor/win_rate_vs_seed", "actor win rate vs the seed", 3),
           ("actor/correct_accuracy", "actor correct share (oracle >= 4)", 3),
           ("judge/pairwise_accuracy", "judge pairwise agreement with the oracle", 3),
           ("judge/length_bias", "judge length bias", 3),
           ("actor/mean_length_chars", "actor answer length (chars)", 1)]
series = {}
for key, title, digits in METRICS:
    print(f"\n**{title}** (`{key}`), mean ± 95 % CI over seeds; last column: change 0 -> 3\n")
    print("| variant | seeds | " + " | ".join(f"iter {i}" for i in range(ITERS + 1)) + " | change 0 -> 3 |")
    print("|---|---|" + "---|" * (ITERS + 2))
    for variant, runs in groups.items():
        per_iter = [[metric(r, i, key) for r in runs] for i in range(ITERS + 1)]
        stats = [ci(x) if None not in x else (float("nan"), float("nan")) for x in per_iter]
        series[(key, variant)] = stats
        cells = " | ".join("-" if math.isnan(m) else fmt(m, h, digits).lstrip("+") for m, h in stats)
        def change(a, b):
            if None in per_iter[a] or None in per_iter[b]: return "-"
            return fmt(*ci([y - x for x, y in zip(per_iter[a], per_iter[b])]), digits)
        change_cell = change(0, ITERS)
        if key == "judge/pairwise_accuracy":
            change_cell += f" (0 -> 2: {change(0, 2)})"
        print(f"| {variant} | {len(runs)} | {cells} | {change_cell} |")
print(f"\n{len(rows)} runs, {seconds} s")

# One SVG per metric: mean per iteration, 95 % CI as error bars, one line per variant.
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
def svg(key, title):
    W, H, L, R, T, B = 520, 320, 60, 150, 30, 40
    lines = [(v, series[(key, v)]) for v in groups]
    ys = [m + s * (0 if math.isnan(h) else h) for _, st in lines for m, h in st for s in (-1, 1)
          if not math.isnan(m)]
    lo, hi = min(ys), max(ys)
    if hi - lo < 1e-9: lo, hi = lo - 1, hi + 1
    pad = (hi - lo) * 0.08; lo -= pad; hi += pad
    X = lambda i: L + (W - L - R) * i / ITERS
    Y = lambda y: T + (H - T - B) * (hi - y) / (hi - lo)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{L}" y="18" font-size="13">{title}</text>',
           f'<line x1="{L}" y1="{H-B}" x2="{W-R}" y2="{H-B}" stroke="black"/>',
           f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H-B}" stroke="black"/>']
    for i in range(ITERS + 1):
        out.append(f'<text x="{X(i):.1f}" y="{H-B+16}" text-anchor="middle">{i}</text>')
    out.append(f'<text x="{(L+W-R)/2:.1f}" y="{H-6}" text-anchor="middle">iteration (0 = seed)</text>')
    for k in range(5):
        y = lo + (hi - lo) * k / 4
        out.append(f'<text x="{L-6}" y="{Y(y)+4:.1f}" text-anchor="end">{y:.2f}</text>')
        out.append(f'<line x1="{L}" y1="{Y(y):.1f}" x2="{W-R}" y2="{Y(y):.1f}" stroke="#ddd"/>')
    for n, (variant, st) in enumerate(lines):
        c = COLORS[n % len(COLORS)]
        pts = [(i, m, h) for i, (m, h) in enumerate(st) if not math.isnan(m)]
        out.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>' %
                   (c, " ".join(f"{X(i)+n*3:.1f},{Y(m):.1f}" for i, m, _ in pts)))
        for i, m, h in pts:
            if not math.isnan(h):
                out.append(f'<line x1="{X(i)+n*3:.1f}" y1="{Y(m-h):.1f}" x2="{X(i)+n*3:.1f}" y2="{Y(m+h):.1f}" stroke="{c}"/>')
            out.append(f'<circle cx="{X(i)+n*3:.1f}" cy="{Y(m):.1f}" r="3" fill="{c}"/>')
        out.append(f'<text x="{W-R+10}" y="{T+16+18*n}" fill="{c}">{variant}</text>')
    out.append("</svg>")
    name = key.replace("/", "_") + ".svg"
    with open(f"{plots}/{name}", "w") as f:
        f.write("\n".join(out) + "\n")
    return name
names = [svg(key, title) for key, title, _ in METRICS]
print(f"plots: " + ", ".join(f"{plots}/{n}" for n in names))
PY
