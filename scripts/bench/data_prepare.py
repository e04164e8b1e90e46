"""Benchmark: `instructmol data prepare` vs the same job in Python + RDKit.

The Python side does what the Rust command does for a MoleculeNet file: read the CSV(.gz),
check every molecule with RDKit (MolFromSmiles), compute its Bemis-Murcko scaffold
(MurckoScaffoldSmiles, includeChirality=False), split 80/10/10 by scaffold sets (deepchem
order) and write LLaVA-style JSONL. (The Rust command also builds the InstructMol graph of
every molecule to check it can be featurized; Python does not, so it is favoured.)

    python scripts/bench/data_prepare.py --bin target/release/instructmol [--data ../shared/data]
Needs an RDKit venv (e.g. /work/main/.venv).
"""
import argparse
import csv
import gzip
import io
import json
import os
import subprocess
import tempfile
import time

from rdkit import Chem, RDLogger
from rdkit.Chem.Scaffolds import MurckoScaffold

RDLogger.DisableLog("rdApp.*")
TASKS = {"bbbp": ("bbbp.csv", "smiles", "p_np"), "bace": ("bace.csv", "mol", "Class"),
         "hiv": ("hiv.csv.gz", "smiles", "HIV_active")}
QUESTION = "Evaluate whether the given molecule is able to enter the blood-brain barrier."


def python_prepare(path, scol, lcol, out):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        rows = list(csv.DictReader(f))
    keep, scaffolds = [], {}
    for i, r in enumerate(rows):
        if Chem.MolFromSmiles(r[scol]) is None:
            continue
        sc = MurckoScaffold.MurckoScaffoldSmiles(smiles=r[scol], includeChirality=False)
        scaffolds.setdefault(sc, []).append(len(keep))
        keep.append(r)
    sets = sorted(scaffolds.values(), key=lambda s: (len(s), s[0]), reverse=True)
    n = len(keep)
    parts = {"train": [], "valid": [], "test": []}
    for s in sets:
        if len(parts["train"]) + len(s) > 0.8 * n:
            if len(parts["train"]) + len(parts["valid"]) + len(s) > 0.9 * n:
                parts["test"] += s
            else:
                parts["valid"] += s
        else:
            parts["train"] += s
    for name, idx in parts.items():
        with open(os.path.join(out, f"{name}.jsonl"), "w") as f:
            for i in sorted(idx):
                r = keep[i]
                rec = {"id": str(i), "smiles": r[scol], "conversations": [
                    {"from": "human", "value": "<image>\n" + QUESTION},
                    {"from": "gpt", "value": "Yes" if r[lcol] == "1" else "No"}]}
                f.write(json.dumps(rec) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--data", default=os.path.join("..", "shared", "data"))
    args = ap.parse_args()
    for task, (file, scol, lcol) in TASKS.items():
        path = os.path.join(args.data, "moleculenet", file)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            python_prepare(path, scol, lcol, tmp)
            py = time.perf_counter() - t0
            t0 = time.perf_counter()
            subprocess.run([args.bin, "data", "prepare", "--task", task, "--input", path,
                            "--out", tmp], check=True, capture_output=True)
            rs = time.perf_counter() - t0
        print(f"{task}: python+rdkit {py:.2f} s, instructmol {rs:.2f} s ({py / rs:.1f}x)")


if __name__ == "__main__":
    main()
