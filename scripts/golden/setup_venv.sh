#!/usr/bin/env bash
# Create the Python oracle environment used by scripts/golden, scripts/parity and scripts/bench:
#   scripts/golden/setup_venv.sh            -> .venv-golden/ at the repository root
# RDKit and selfies are test oracles only; nothing in the crate needs Python.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${VENV:-$root/.venv-golden}"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet -r "$root/scripts/golden/requirements.txt"
echo "ready: $venv/bin/python"
