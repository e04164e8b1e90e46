#!/usr/bin/env bash
# The GPU checks of issue 19 in one run that ends within 10 minutes on one H100: the binary
# alone, no model files, no network, no Python needed (PyTorch + peft is used for a
# side-by-side step time when the machine has it).
#
#   bash scripts/gpu_check.sh --bin .gpu/instructmol          # on the GPU machine
#   bash scripts/gpu_check.sh --device cpu --quick            # here: tiny shapes, a few steps
#
# Options: --bin PATH (default target-cuda/release/instructmol, else target/release/instructmol),
# --device cuda|cuda:N|cpu (default cuda), --quick (tiny shapes everywhere), --out DIR (default
# $OUT, the device tool's output folder, else ./gpu-check-out), --budget SECONDS (default 540:
# every step's timeout is cut to what is left of it, so the whole script ends in time).
#
# What it runs, each step under `timeout` (a failing step is reported and the script goes on):
#  1. `instructmol device` in f32 and bf16 (matmul/softmax/reduction against the CPU).
#  2. `instructmol device --preset tiny|smollm2-135m` in f32 and bf16: one forward + causal-LM
#     loss + backward with LoRA on the CPU in f32 and on the device; loss and LoRA-gradient
#     differences against tolerances per dtype.
#  3. SmolLM2 stage 2 for 50 steps on the device in bf16. The real SmolLM2 GGUF (93 MB) cannot
#     be carried (the device tool carries 64 MiB in all, binary included), so the model is
#     SmolLM2-SHAPED with random weights, written by `instructmol bench write-model` on the
#     machine, with the tiny test tokenizer (tests/data/tiny_model, 512 ids) and the 24
#     ChEBI-20 rows of tests/data/train: it shows the trainer runs and the loss falls on the
#     GPU, not what SmolLM2 learns.
#  4. A 7B-shaped (Vicuna-7B) LoRA step, bf16 base, LoRA r 64 on all seven modules in f32,
#     batch 1 x 512 (and 1 x 2048 with gradient checkpointing), no LoRA dropout (as the PyTorch side): tokens/s and MFU against the
#     H100 SXM's dense bf16 peak, 989 TFLOP/s (NVIDIA's datasheet; PCIe cards: 756). Random
#     weights made on the GPU by the binary.
#  5. 7B-shaped generation: prompt (128 tokens) and decode (64 tokens) tokens/s, batch 1.
#  6. If python3 there has torch, transformers and peft: scripts/bench/lora_step.py, the same
#     7B-shaped step in PyTorch + peft on the same GPU.
#
# Output in OUT: results.jsonl (every JSON line the binary printed, plus one
# {"step","status","seconds"} line per step), train_log.jsonl (the stage-2 run's log),
# log.txt (all stderr), summary.txt (a table of the above). Five files: the device tool
# brings back at most 8.
#
# With the device tool (GPU machines have the NVIDIA driver and CUDA 13 libraries, no Rust):
#   bash scripts/build-cuda.sh                            # here: target-cuda/release/instructmol
#   mkdir -p .gpu && grep -qx '/.gpu/' .git/info/exclude || echo /.gpu/ >>.git/info/exclude
#   cp target-cuda/release/instructmol.stripped .gpu/instructmol   # no symbols: under 64 MiB
#   run(command="bash scripts/gpu_check.sh --bin .gpu/instructmol", carry=[".gpu"], timeout_s=600)
# CUDA 13's cuBLAS/cuRAND/NVRTC/cudart are looked for in the loader's cache, /usr/local/cuda and
# the python3 venv's nvidia wheels (PyTorch cu13 ships them), in that order.
set -uo pipefail
cd "$(dirname "$0")/.."

bin= device=cuda quick= out=${OUT:-./gpu-check-out} budget=540
while [[ $# -gt 0 ]]; do
    case $1 in
    --bin) bin=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    --out) out=$2; shift 2 ;;
    --budget) budget=$2; shift 2 ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
if [[ -z $bin ]]; then
    for b in target-cuda/release/instructmol target/release/instructmol; do
        [[ -x $b ]] && { bin=$b; break; }
    done
fi
[[ -n $bin && -x $bin ]] || { echo "gpu_check.sh: no instructmol binary (give --bin PATH)" >&2; exit 2; }
bin=$(realpath "$bin")
mkdir -p "$out"
out=$(realpath "$out")
results=$out/results.jsonl log=$out/log.txt summary=$out/summary.txt
: >"$results"
: >"$log"
work=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
deadline=$((SECONDS + budget))

# CUDA 13 libraries for the binary (it links them dynamically).
if [[ $device == cuda* ]]; then
    extra=
    for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
        [[ -d $d ]] && extra=$extra:$d
    done
    if command -v python3 >/dev/null; then
        wheels=$(python3 -c 'import nvidia, os; [print(os.path.join(p, "cu13", "lib")) for p in nvidia.__path__]' 2>/dev/null)
        for d in $wheels; do [[ -d $d ]] && extra=$extra:$d; done
    fi
    export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH}$extra
fi

note() { echo "$*" | tee -a "$log" >&2; }
failed=()

# step NAME TIMEOUT COMMAND...: runs COMMAND with at most TIMEOUT seconds (less if the budget
# is nearly spent), its stdout's JSON lines into results.jsonl, stderr into log.txt.
step() {
    local name=$1 limit=$2 left rc t0
    shift 2
    left=$((deadline - SECONDS - 5))
    ((left < limit)) && limit=$left
    if ((limit < 10)); then
        note "== $name: skipped, the time budget is spent"
        echo "{\"step\":\"$name\",\"status\":\"skipped (budget)\",\"seconds\":0}" >>"$results"
        failed+=("$name (skipped)")
        return
    fi
    note "== $name (timeout ${limit}s): $*"
    t0=$SECONDS
    timeout --kill-after=5 "$limit" "$@" >"$work/stdout" 2>>"$log"
    rc=$?
    # JSON lines as they are; a command that prints one pretty-printed document (the trainer's
    # summary) gets it on one line.
    python3 -c '
import json, sys
text = open(sys.argv[1]).read()
try:
    print(json.dumps(json.loads(text)))
except ValueError:
    for line in text.splitlines():
        if line.startswith("{"):
            print(line)
' "$work/stdout" >>"$results" 2>/dev/null || grep -E '^\{' "$work/stdout" >>"$results"
    local status=ok
    if ((rc == 124 || rc == 137)); then
        status="timed out after ${limit}s"
    elif ((rc != 0)); then
        status="failed (exit $rc)"
    fi
    [[ $status == ok ]] || failed+=("$name: $status")
    echo "{\"step\":\"$name\",\"status\":\"$status\",\"seconds\":$((SECONDS - t0))}" >>"$results"
    note "== $name: $status in $((SECONDS - t0))s"
}

note "gpu_check.sh: $bin on $device${quick:+ (quick)}, budget ${budget}s, results in $out"
if [[ $device == cuda* ]]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >>"$log" 2>&1 ||
        note "nvidia-smi failed"
    missing=$(ldd "$bin" 2>/dev/null | grep 'not found' || true)
    [[ -z $missing ]] || note "libraries not found: $missing"
fi

if [[ -n $quick ]]; then
    big=tiny agree=(tiny) shaped=tiny train_steps=5 seq=64 long=128 gen_new=8
else
    big=vicuna-7b agree=(tiny smollm2-135m) shaped=smollm2-135m train_steps=50 seq=512 long=2048 gen_new=64
fi
half=bf16
peak_gflops=989000 # H100 SXM dense bf16 (NVIDIA datasheet); PCIe: 756000

# 1. The device computes what the CPU computes.
for dt in f32 $half; do
    step "device-$dt" 60 "$bin" device --device "$device" --dtype "$dt"
done

# 2. Forward + loss + backward with LoRA against the CPU in f32.
for p in "${agree[@]}"; do
    for dt in f32 $half; do
        step "agree-$p-$dt" 120 "$bin" device --device "$device" --dtype "$dt" --preset "$p"
    done
done

# 3. Stage 2 on a model of SmolLM2's shapes (random weights, test tokenizer and data).
model=$work/model-$shaped
step "write-model-$shaped" 120 "$bin" bench write-model --preset "$shaped" --dtype "$half" \
    --tokenizer-from tests/data/tiny_model --out "$model"
step "data-prepare" 60 "$bin" data prepare --task chebi20 \
    --input tests/data/train/chebi20_tiny.txt --out "$work/data"
train_file=$(ls "$work"/data/*.jsonl 2>/dev/null | head -1)
cat >"$work/stage2.toml" <<EOF
output_dir = "$work/stage2"
[model]
llm = "$model"
dtype = "$half"
device = "$device"
template = "chatml"
max_length = 256
[data]
train = "$train_file"
eval = "$train_file"
max_eval_examples = 8
[train]
epochs = 100
max_steps = $train_steps
batch_size = 4
grad_accum = 1
lr = 1e-3
warmup_ratio = 0.05
seed = 1
eval_every = 0
save_every = 0
[lora]
r = 16
alpha = 32.0
dropout = 0.05
targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
EOF
step "stage2-$shaped-$train_steps-steps" 240 "$bin" finetune --config "$work/stage2.toml"
[[ -f $work/stage2/log.jsonl ]] && cp "$work/stage2/log.jsonl" "$out/train_log.jsonl"

# 4. A 7B-shaped LoRA step: tokens/s and MFU.
step "lora-step-$big-b1x$seq" 180 "$bin" bench train --preset "$big" --device "$device" \
    --dtype "$half" --batch 1 --seq "$seq" --rank 64 --dropout 0 --steps 3 \
    --peak-gflops "$peak_gflops"
step "lora-step-$big-b1x$long-checkpointing" 150 "$bin" bench train --preset "$big" \
    --device "$device" --dtype "$half" --batch 1 --seq "$long" --rank 64 --dropout 0 \
    --steps 2 --gradient-checkpointing --peak-gflops "$peak_gflops"

# 5. 7B-shaped generation.
step "generate-$big" 150 "$bin" bench generate --preset "$big" --device "$device" \
    --dtype "$half" --prompt-tokens 128 --new-tokens "$gen_new" --repeats 2

# 6. PyTorch + peft, the same step, where the machine has them.
if [[ $device == cuda* ]] && python3 -c 'import torch, transformers, peft' 2>/dev/null; then
    step "pytorch-peft-$big-b1x$seq" 240 env PYTHONUNBUFFERED=1 python3 scripts/bench/lora_step.py \
        --preset "$big" --device "$device" --dtype "$half" --batch 1 --seq "$seq" --rank 64 \
        --steps 3 --threads 16
else
    note "== pytorch-peft: skipped (no GPU, or python3 without torch + transformers + peft)"
    echo '{"step":"pytorch-peft","status":"skipped (no torch+peft or no GPU)","seconds":0}' >>"$results"
fi

# Summary.
{
    echo "gpu_check.sh on $device${quick:+ (quick: tiny shapes)}, $(date -u +%FT%TZ), binary $bin"
    [[ $device == cuda* ]] && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
    python3 - "$results" <<'PY' 2>&1 || cat "$results"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def g(d, *ks):
    for k in ks:
        d = d.get(k) if isinstance(d, dict) else None
    return d
def f(x, p=3):
    return "-" if x is None else (f"{x:.{p}g}" if isinstance(x, float) else str(x))
for r in rows:
    if "step" in r:
        print(f"  step {r['step']}: {r['status']} ({r['seconds']} s)")
    elif r.get("check") == "model":
        print(f"    agreement {r['preset']} {r['dtype']}: loss cpu {f(r['loss_cpu_f32'],6)} device {f(r['loss_device'],6)}"
              f" rel {f(r['loss_rel_diff'])} (tol {f(r['loss_tolerance'])}); LoRA grads max rel {f(r['grad_max_rel_diff'])}"
              f" (tol {f(r['grad_tolerance'])}), l2 rel {f(r['grad_max_rel_l2'])}; ok {r['ok']}")
    elif "max_rel_diff" in r:
        print(f"    device {r['dtype']}: max rel diff {f(r['max_rel_diff'])} (tol {f(r['tolerance'])}); ok {r['ok']}")
    elif "tokens_per_s" in r and "step_s_mean" in r and r.get("side") != "pytorch":
        print(f"    ours {r['preset']} {r['dtype']} b{r['batch']}x{r['seq']}{' ckpt' if r.get('gradient_checkpointing') else ''}:"
              f" {f(r['step_s_mean'])} s/step, {f(r['tokens_per_s'],4)} tok/s, MFU lora {f(r.get('mfu_lora'))}"
              f" / 6N {f(r.get('mfu_6n'))} (peak {f(r.get('peak_gflops'))} GFLOP/s),"
              f" GPU mem sampled max {f(g(r,'gpu_mem','max_sampled_used_mib'),5)} MiB, init {f(r.get('init_s'))} s")
    elif r.get("side") == "pytorch":
        print(f"    pytorch+peft {r.get('preset')} {r.get('dtype')} b{r.get('batch')}x{r.get('seq')}: {f(r['step_s_mean'])} s/step,"
              f" {f(r['tokens_per_s'],4)} tok/s, max_memory_allocated {f(r.get('max_memory_allocated_mib'),5)} MiB"
              f" (attention: {r.get('attn_implementation')})")
    elif "pp_tok_s" in r:
        print(f"    generate {r['model']} {r['dtype']}: prompt {f(r['pp_tok_s'],4)} tok/s, decode {f(r['tg_tok_s'],4)} tok/s,"
              f" GPU mem sampled max {f(g(r,'gpu_mem','max_sampled_used_mib'),5)} MiB")
    elif "final_loss" in r or "steps" in r and "checkpoint" in r:
        print(f"    stage 2: {r.get('steps')} steps, final loss {f(r.get('final_loss'),4)}, eval loss {f(r.get('eval_loss'),4)},"
              f" {f(r.get('tokens_per_s'),4)} tok/s")
    elif "weights_bytes" in r:
        print(f"    wrote {r['preset']} ({r['params']} parameters, {r['dtype']}) with the tokenizer of {r['tokenizer_from']}")
PY
    if [[ -f $out/train_log.jsonl ]]; then
        python3 - "$out/train_log.jsonl" <<'PY' 2>/dev/null
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
tr = [r["loss"] for r in rows if "loss" in r]
ev = [(r["step"], r["eval_loss"]) for r in rows if "eval_loss" in r]
if tr:
    k = min(5, len(tr))
    print(f"    stage 2 training loss: first {k} mean {sum(tr[:k])/k:.4f}, last {k} mean {sum(tr[-k:])/k:.4f} ({len(tr)} steps)")
if ev:
    print(f"    stage 2 eval loss: " + ", ".join(f"step {s}: {l:.4f}" for s, l in ev))
PY
    fi
    if ((${#failed[@]})); then
        echo "FAILED: ${failed[*]}"
    else
        echo "all steps ok"
    fi
} >"$summary"
cat "$summary"
((${#failed[@]} == 0))
