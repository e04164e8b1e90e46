#!/usr/bin/env bash
# Peak RSS and time of one stage-2 training step with and without gradient checkpointing
# (train.gradient_checkpointing; issue 19) and the issue-17 QLoRA memory goal, on this machine's
# CPU. LoRA r 64 (alpha 16, dropout 0.05) on all seven linear layers, as the paper; a fresh
# projector and a random GIN (stage 2 alone: the step's cost does not depend on them):
#   smollm2   SmolLM2-135M (the GGUF, trained dense in f32), batch 8 x 512 tokens
#   7b        the 7B-shaped model (scripts/make_vicuna7b_shaped.py: safetensors, random
#             weights) in bf16, batch 1 x 1024 tokens
#   7b-qlora  the 7B-shaped model as Q4_K blocks (model.quantize = "q4_k" on a Q4_K GGUF from
#             `instructmol quantize`: the blocks are kept), f32 compute, batch 1 x 256 tokens
# Every example is a ChEBI-20 test row whose answer is repeated until the row is longer than
# the sequence length, so each row is cut to exactly that many tokens.
# A run whose RSS passes LIMIT_GB, or that leaves less than 1 GB of memory available, is killed
# by this script and reported with the RSS it had and the last line it printed; a case is
# skipped when less than its NEED_GB is available before it starts (other processes).
#   bash scripts/bench/checkpointing_memory.sh [WORK]
#   env: BIN, DATA (../shared/data), SMOL (models/SmolLM2-135M-Instruct.Q4_1.gguf),
#        VICUNA7B (/work/vicuna7b/safetensors), VICUNA7B_Q4K (/work/vicuna7b-q4k.gguf),
#        CASES ("smollm2 7b 7b-qlora"), MODES ("false true": checkpointing off, on), LIMIT_GB (22)
# Memory in GB is GNU time's "Maximum resident set size" (kB) / 10^6, as in vicuna7b_path.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=${1:-target/checkpointing-memory}
BIN=${BIN:-$PWD/target/release/instructmol}
DATA=${DATA:-../shared/data}
SMOL=${SMOL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
VICUNA7B=${VICUNA7B:-/work/vicuna7b/safetensors}
VICUNA7B_Q4K=${VICUNA7B_Q4K:-/work/vicuna7b-q4k.gguf}
CASES=${CASES:-smollm2 7b 7b-qlora}
MODES=${MODES:-false true}
LIMIT_GB=${LIMIT_GB:-22}
[ -x "$BIN" ] || cargo build --release
rm -rf "$WORK" && mkdir -p "$WORK"
WORK=$(realpath "$WORK")

"$BIN" data prepare --task chebi20 --input "$DATA/chebi20/test.txt" --out "$WORK/data" >/dev/null 2>&1
python3 - "$WORK/data/test.jsonl" "$WORK/long.jsonl" <<'PY'
import json, sys
with open(sys.argv[1]) as src, open(sys.argv[2], "w") as out:
    for line in list(src)[:8]:
        row = json.loads(line)
        answer = row["conversations"][1]["value"]
        row["conversations"][1]["value"] = " ".join([answer] * 40)
        out.write(json.dumps(row) + "\n")
PY

avail_kb() { awk '/MemAvailable/ {print $2}' /proc/meminfo; }
kb_of_gb() { echo $(($1 * 1000000)); }
gb_of_kb() { awk -v k="$1" 'BEGIN {printf "%.2f", k / 1e6}'; }

# config NAME LLM DTYPE TEMPLATE BATCH LEN EXTRA_MODEL_LINE
config() {
  cat >"$WORK/$1.toml" <<TOML
output_dir = "$WORK/run-$1"
[model]
llm = "$(realpath "$2")"
dtype = "$3"
device = "cpu"
template = "$4"
max_length = $6
$7
[data]
train = "$WORK/long.jsonl"
[train]
epochs = 1
max_steps = 1
batch_size = $5
lr = 1e-4
warmup_ratio = 0.0
save_every = 1
[lora]
r = 64
alpha = 16.0
dropout = 0.05
targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
TOML
}

ROWS=()
# measure NAME CHECKPOINTING NEED_GB: one finetune step under GNU time and a memory watchdog.
measure() {
  local name=$1 ckpt=$2 need=$3 out="$WORK/$1-$2"
  local label="$name, checkpointing $ckpt"
  if [ "$(avail_kb)" -lt "$(kb_of_gb "$need")" ]; then
    ROWS+=("| $label | - | - | - | - | skipped: less than $need GB available |")
    return
  fi
  /usr/bin/time -v -o "$out.time" "$BIN" finetune --config "$WORK/$name.toml" --overwrite \
    --set "train.gradient_checkpointing=$ckpt" >"$out.out" 2>"$out.err" &
  local timer=$! pid="" seen=0 killed="" start=$SECONDS load
  load=$(cut -d' ' -f1 /proc/loadavg)
  while kill -0 "$timer" 2>/dev/null; do
    [ -n "$pid" ] || pid=$(pgrep -P "$timer" || true)
    if [ -n "$pid" ]; then
      local rss
      rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
      [ "${rss:-0}" -gt "$seen" ] && seen=$rss
      if [ "${rss:-0}" -gt "$(kb_of_gb "$LIMIT_GB")" ] || [ "$(avail_kb)" -lt "$(kb_of_gb 1)" ]; then
        killed="killed at $(gb_of_kb "$rss") GB (memory available: $(gb_of_kb "$(avail_kb)") GB) after $((SECONDS - start)) s"
        kill -9 "$pid" 2>/dev/null || true
      fi
    fi
    sleep 0.5
  done
  wait "$timer" || true
  local peak wall step result
  peak="$(gb_of_kb "$(awk -F': ' '/Maximum resident set size/ {print $2}' "$out.time")") GB"
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$out.time")
  step=$(grep -h '"step"' "$WORK/run-$name/log.jsonl" 2>/dev/null | tail -1 |
    python3 -c 'import json, sys; r = json.load(sys.stdin); print("%.1f s, loss %.4f" % (r["tokens"] / r["tokens_per_s"], r["loss"]))' 2>/dev/null || true)
  if [ -n "$killed" ]; then
    result="$killed; last output: $(tr '\r' '\n' <"$out.err" | grep -v '^\s*$' | tail -1 | cut -c1-80)"
  elif [ -n "$step" ]; then
    result="ok"
  else
    result="failed: $(tail -1 "$out.err" | cut -c1-100)"
  fi
  ROWS+=("| $label | $peak | $wall | ${step:--} | $load | $result |")
  echo "${ROWS[-1]}"
  rm -rf "$WORK/run-$name"
}

for case in $CASES; do
  case $case in
    smollm2) config smollm2 "$SMOL" f32 chatml 8 512 "" ;;
    7b) config 7b "$VICUNA7B" bf16 vicuna_v1 1 1024 "" ;;
    7b-qlora) config 7b-qlora "$VICUNA7B_Q4K" f32 vicuna_v1 1 256 'quantize = "q4_k"' ;;
    *) echo "unknown case $case" >&2; exit 2 ;;
  esac
  for mode in $MODES; do
    case $case in
      smollm2) measure smollm2 "$mode" 8 ;;
      7b) measure 7b "$mode" 18 ;;
      7b-qlora) measure 7b-qlora "$mode" 13 ;;
    esac
  done
done

echo
echo "| run | peak RSS | wall (load + step + checkpoint) | step (from log.jsonl) | load average at start | result |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
