#!/usr/bin/env bash
# Sets up a fresh machine and runs the main job on the embedded default.
# Today the chemistry core is what exists: build the release binary, then featurize the ChEBI-20
# test molecules and convert a few to SELFIES and canonical SMILES.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${INSTRUCTMOL_DATA:-../shared/data}
if [ ! -f "$data/chebi20/test.txt" ]; then
    echo "quickstart: no ChEBI-20 data at $data/chebi20/test.txt; set INSTRUCTMOL_DATA to the data folder" >&2
    exit 1
fi
cargo build --release
bin=target/release/instructmol
mkdir -p runs/quickstart
cut -f2 "$data/chebi20/test.txt" | tail -n +2 > runs/quickstart/chebi20_test.smi
"$bin" featurize --input runs/quickstart/chebi20_test.smi --output runs/quickstart/features.jsonl
head -n 5 runs/quickstart/chebi20_test.smi | "$bin" convert --to selfies
head -n 5 runs/quickstart/chebi20_test.smi | "$bin" convert --to canonical
echo "features written to runs/quickstart/features.jsonl"
