"""Bemis-Murcko scaffold golden: RDKit's MurckoScaffoldSmiles(smiles, includeChirality=False).

Input: the full BBBP and BACE files of the shared data folder plus the HIV rows of
tests/data/sample.tsv. Output: tests/data/golden/scaffold.json, {"rdkit": version,
"rows": [[source, smiles, scaffold or null when RDKit rejects the molecule], ...]}.
Deterministic (rows in file order). Run from the crate root with the RDKit venv:
    /work/main/.venv/bin/python scripts/golden/scaffold_golden.py [--data ../shared/data]
"""
import argparse
import csv
import json
import os

from rdkit import Chem, RDLogger, rdBase
from rdkit.Chem.Scaffolds import MurckoScaffold

RDLogger.DisableLog("rdApp.*")


def scaffold(smiles):
    if Chem.MolFromSmiles(smiles) is None:
        return None
    return MurckoScaffold.MurckoScaffoldSmiles(smiles=smiles, includeChirality=False)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join("..", "shared", "data"))
    ap.add_argument("--out", default="tests/data/golden/scaffold.json")
    args = ap.parse_args()
    rows = []
    for name, col in (("bbbp", "smiles"), ("bace", "mol")):
        with open(os.path.join(args.data, "moleculenet", f"{name}.csv"), newline="") as f:
            for rec in csv.DictReader(f):
                rows.append([name, rec[col], scaffold(rec[col])])
    with open("tests/data/sample.tsv") as f:
        next(f)
        for line in f:
            smi, src = line.rstrip("\n").split("\t")
            if src == "hiv":
                rows.append(["hiv", smi, scaffold(smi)])
    with open(args.out, "w") as f:
        json.dump({"rdkit": rdBase.rdkitVersion, "rows": rows}, f, indent=0)
        f.write("\n")


if __name__ == "__main__":
    main()
