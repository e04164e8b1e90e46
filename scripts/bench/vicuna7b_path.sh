#!/usr/bin/env bash
# The 7B path end to end on this machine's CPU (issue 15, part 4), on a Vicuna-7B-shaped model
# with random weights (scripts/make_vicuna7b_shaped.py; never committed, never run by CI):
#   1. `generate --dtype bf16`, 8 new tokens;
#   2. one stage-2 LoRA step in bf16 (r 64 on all seven linear layers, the paper's; batch 1,
#      one ChEBI-20 example cut to MAX_LEN tokens), which also makes a stage-2 run;
#   3. `eval --run` with that run on 8 ChEBI-20 test rows (bf16, 8 new tokens per answer).
# Each step's wall time and peak RSS (GNU time) are printed and kept in WORK/*.time.
#   bash scripts/bench/vicuna7b_path.sh /work/vicuna7b/safetensors [WORK] [MAX_LEN]
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL=$(realpath "${1:?usage: vicuna7b_path.sh MODEL_DIR [WORK] [MAX_LEN]}")
WORK=${2:-target/vicuna7b-path}
MAX_LEN=${3:-128}
BIN=$PWD/target/release/instructmol
DATA=${DATA:-../shared/data}
[ -x "$BIN" ] || cargo build --release
rm -rf "$WORK" && mkdir -p "$WORK"
WORK=$(realpath "$WORK")

measure() {
  local name=$1
  shift
  /usr/bin/time -f "$name: %e s wall, %M KB peak RSS" -o "$WORK/$name.time" "$@" \
    >"$WORK/$name.out" 2>"$WORK/$name.err" || { tail -20 "$WORK/$name.err"; exit 1; }
  cat "$WORK/$name.time"
}

"$BIN" data prepare --task chebi20 --input "$DATA/chebi20/test.txt" --out "$WORK/data" 2>/dev/null
head -8 "$WORK/data/test.jsonl" >"$WORK/rows8.jsonl"
head -1 "$WORK/data/test.jsonl" >"$WORK/rows1.jsonl"

measure generate "$BIN" generate --model "$MODEL" --dtype bf16 --raw --max-new-tokens 8 \
  --temperature 0 --prompt "A chat between a curious user and an artificial intelligence assistant. USER: What is caffeine? ASSISTANT:"

cat >"$WORK/stage2.toml" <<TOML
output_dir = "$WORK/run"
[model]
llm = "$MODEL"
dtype = "bf16"
device = "cpu"
train_gin = false
projector = "linear"
template = "vicuna_v1"
max_length = $MAX_LEN
[data]
train = "$WORK/rows1.jsonl"
[train]
epochs = 1
max_steps = 1
batch_size = 1
grad_accum = 1
lr = 8e-5
warmup_ratio = 0.0
save_every = 1
eval_every = 0
[lora]
r = 64
alpha = 16.0
dropout = 0.05
targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
TOML
measure lora_step "$BIN" finetune --config "$WORK/stage2.toml"
grep -h '"step"' "$WORK/run/log.jsonl" | tail -1

measure eval "$BIN" eval --task chebi20 --run "$WORK/run" --data "$WORK/rows8.jsonl" \
  --out "$WORK/eval" --dtype bf16 --max-new-tokens 8 --no-wordnet
