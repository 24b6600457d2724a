#!/usr/bin/env bash
# `make demo` until the Meta-Rewarding loop (`metareward run`) exists: show the plugins, validate
# the paper's recipe and the Self-Rewarding baseline, print the paper's generation budget, and
# run the model commands end to end on a tiny random checkpoint.
set -euo pipefail
MR=${1:-build/bin/metareward}
PLACEHOLDERS=${2:-build/tests/placeholders}
PLUGINS_DIR=$(dirname "$MR")/../plugins
unset METAREWARD_PLUGIN_PATH

step() { printf '\n== %s\n' "$*"; }

step "metareward plugins list"
"$MR" plugins list

extra=()
have_backend=0
if [ -f "$PLUGINS_DIR/libmr_torch_backend.so" ] && [ -f "$PLUGINS_DIR/libmr_optimizers.so" ]; then
  have_backend=1
elif [ -d "$PLACEHOLDERS" ]; then
  echo "note: the torch backend / optimizers are not built (MR_WITH_TORCH=OFF); test placeholders"
  echo "      with their schemas stand in for them so the recipe can be validated."
  extra=(--plugin-dir "$PLACEHOLDERS")
fi

for cfg in configs/meta_rewarding.toml configs/self_rewarding.toml; do
  step "metareward config check $cfg"
  "$MR" "${extra[@]}" config check "$cfg"
done
step "metareward plan configs/meta_rewarding.toml (the paper's budget per iteration)"
"$MR" "${extra[@]}" plan configs/meta_rewarding.toml

if [ "$have_backend" -eq 0 ]; then
  echo "(model commands skipped: the torch backend is not built)"
  exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/metareward-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
cat > "$work/tiny.config.json" <<'JSON'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
 "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
 "num_key_value_heads": 2, "vocab_size": 300, "max_position_embeddings": 512,
 "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": true}
JSON
step "metareward init-model (tiny random Llama, byte-level tokenizer)"
"$MR" init-model --config "$work/tiny.config.json" --out "$work/m0" --seed 1
ls "$work/m0"

printf '%s\n' '{"id": "sort", "prompt": "Sort: 3 1 2"}' '{"id": "rev", "prompt": "Reverse: abc"}' \
  > "$work/prompts.jsonl"
step "metareward generate --n 2 (random weights: expect noise)"
"$MR" generate --model "$work/m0" --input "$work/prompts.jsonl" --n 2 --max-new-tokens 16 --seed 7

for i in 1 2 3 4; do
  echo "{\"prompt\": \"Sort: 3 1 2 ($i)\", \"chosen\": \"1 2 3\", \"rejected\": \"3 1 2 and more words\"}"
done > "$work/pairs.jsonl"
# Score the first pair's chosen and rejected answers before and after DPO.
printf '%s\n' '{"prompt": "Sort: 3 1 2 (1)", "completion": "1 2 3"}' \
  '{"prompt": "Sort: 3 1 2 (1)", "completion": "3 1 2 and more words"}' > "$work/score.jsonl"
margin() {
  "$MR" --log-level warn score --model "$1" --input "$work/score.jsonl" |
    grep -o '"logprob_sum":[-0-9.e]*' | cut -d: -f2 |
    awk 'NR == 1 { c = $1 } NR == 2 { r = $1 } END { printf "log p(chosen) %.2f  log p(rejected) %.2f  margin %.2f\n", c, r, c - r }'
}
step "metareward score (first pair, before training)"
margin "$work/m0"
step "metareward train-dpo (4 pairs, 3 epochs)"
"$MR" train-dpo --model "$work/m0" --pairs "$work/pairs.jsonl" --out "$work/m1" \
  --set optimizer.batch_size=2 --set optimizer.micro_batch_size=2 \
  --set optimizer.learning_rate=0.01 --set optimizer.epochs=3 --set optimizer.warmup_ratio=0
step "metareward score (first pair, after DPO: the chosen-rejected margin grows)"
margin "$work/m1"
