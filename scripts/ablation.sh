#!/usr/bin/env bash
# The paper's central ablation at our scale, on the embedded default (SmolLM2-135M-Instruct):
# ChEBI-20 molecule description, trained on a subset of validation.txt, scored by the held-out
# caption loss (answer tokens only) on a subset of test.txt. Three stage-2 runs from the same data:
#   s12-graph  stage 1 (projector alignment) then stage 2 with the real graph tokens
#   s12-zero   the same, with every graph token replaced by zeros in stage 2 (model.zero_graph)
#   s2-only    stage 2 alone, from a fresh projector (no stage 1)
# Stage 1 trains the GIN too (ABLATION_TRAIN_GIN, default true): no pretrained MoleculeSTM GIN
# exists here, and a random frozen one carries little. Writes runs/ablation/summary.md with the
# token-weighted losses and a paired, per-example comparison (scripts/ablation_compare.py).
# Sizes: ABLATION_EXAMPLES (train, default 512) and ABLATION_EVAL (test, default 200). Needs the
# prepared data of scripts/quickstart.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${ABLATION_EXAMPLES:-512}
m=${ABLATION_EVAL:-200}
train_gin=${ABLATION_TRAIN_GIN:-true}
bin=${INSTRUCTMOL_BIN:-target/release/instructmol}
out=runs/ablation
common=(--set data.max_train_examples="$n" --set data.max_eval_examples="$m" --set train.eval_every=0)

"$bin" pretrain --overwrite --config configs/smollm2-stage1.toml --set output_dir="$out/stage1" \
    --set model.train_gin="$train_gin" "${common[@]}"
"$bin" finetune --overwrite --config configs/smollm2-stage2.toml --set output_dir="$out/s12-graph" \
    --set model.init_from="$out/stage1" "${common[@]}"
"$bin" finetune --overwrite --config configs/smollm2-stage2.toml --set output_dir="$out/s12-zero" \
    --set model.init_from="$out/stage1" --set model.zero_graph=true "${common[@]}"
"$bin" finetune --overwrite --config configs/smollm2-stage2.toml --set output_dir="$out/s2-only" \
    --set model.init_from= "${common[@]}"

{
    echo "Train: first $n records of validation.txt; test: first $m records of test.txt;"
    echo "stage-1 GIN trainable: $train_gin."
    echo
    echo "| run | held-out caption loss (token-weighted) |"
    echo "|---|---|"
    for r in stage1 s12-graph s12-zero s2-only; do
        loss=$(grep '"eval_loss"' "$out/$r/log.jsonl" | tail -1 | sed 's/.*"eval_loss":\([0-9.eE+-]*\).*/\1/')
        echo "| $r | $loss |"
    done
    echo
    echo "Paired per example (B - A > 0: A is better; 95% bootstrap interval; sign test):"
    echo
    echo "| A vs B | loss A | loss B | mean B - A | A better | p |"
    echo "|---|---|---|---|---|---|"
    python3 scripts/ablation_compare.py "$out/s12-graph" "$out/s12-zero"
    python3 scripts/ablation_compare.py "$out/s12-graph" "$out/s2-only"
} > "$out/summary.md"
cat "$out/summary.md"
