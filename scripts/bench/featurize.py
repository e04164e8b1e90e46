#!/usr/bin/env python3
"""Featurization throughput: RDKit + the reference Python loop vs `instructmol featurize`.

Both sides featurize the same HIV SMILES (41,127 molecules) on the same machine, one run each:
- Python: `Chem.MolFromSmiles` and the InstructMol/drugchat `smiles2graph` loop (lists turned
  into int64 numpy arrays, as the reference does), over the SMILES already in memory; molecules
  RDKit rejects are skipped (the reference would crash on them).
- Rust: the whole `instructmol featurize --input FILE --output FILE` process (start-up, reading,
  featurizing and writing JSON lines), timed from outside.

    python scripts/bench/featurize.py --bin target/release/instructmol

Prints molecules/s for both and the ratio.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden"))
import oracle  # noqa: E402
from rdkit import Chem  # noqa: E402


def reference_graph(smiles: str) -> dict | None:
    """The reference featurization with its numpy output layout; None when RDKit rejects."""
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        return None
    atoms = []
    for atom in mol.GetAtoms():
        z = atom.GetAtomicNum() - 1
        atoms.append([118 if z == -1 else z, oracle.CHI[atom.GetChiralTag()]])
    x = np.array(atoms, dtype=np.int64)
    if mol.GetNumBonds() > 0:
        edges, feats = [], []
        for bond in mol.GetBonds():
            i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
            feat = [oracle.BOND_TYPE[bond.GetBondType()], oracle.BOND_DIR[bond.GetBondDir()]]
            edges += [(i, j), (j, i)]
            feats += [feat, feat]
        edge_index = np.array(edges, dtype=np.int64).T
        edge_attr = np.array(feats, dtype=np.int64)
    else:
        edge_index = np.empty((2, 0), dtype=np.int64)
        edge_attr = np.empty((0, 2), dtype=np.int64)
    return {"node_feat": x, "edge_index": edge_index, "edge_feat": edge_attr, "num_nodes": len(x)}


def bench_python(smiles: list[str]) -> tuple[float, int]:
    start = time.perf_counter()
    failed = 0
    for s in smiles:
        try:
            if reference_graph(s) is None:
                failed += 1
        except KeyError:  # a tag or bond type outside the reference tables
            failed += 1
    return time.perf_counter() - start, failed


def bench_rust(binary: str, smiles: list[str]) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "hiv.smi"), os.path.join(tmp, "hiv.jsonl")
        with open(src, "w") as handle:
            handle.writelines(s + "\n" for s in smiles)
        start = time.perf_counter()
        subprocess.run([binary, "featurize", "--input", src, "--output", dst], check=True)
        elapsed = time.perf_counter() - start
        with open(dst) as handle:
            lines = [line for line in handle if line.strip()]
    if len(lines) != len(smiles):
        sys.exit(f"{binary} wrote {len(lines)} lines for {len(smiles)} inputs")
    failed = sum('"error"' in line for line in lines)
    return elapsed, failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", default=os.path.join("target", "release", "instructmol"))
    parser.add_argument("--data", default=oracle.DEFAULT_DATA)
    args = parser.parse_args()
    smiles = [s for s in oracle.datasets(args.data)["hiv"]() if s]
    n = len(smiles)
    py_time, py_failed = bench_python(smiles)
    rs_time, rs_failed = bench_rust(args.bin, smiles)
    py_rate, rs_rate = n / py_time, n / rs_time
    print(f"HIV: {n} molecules (rejected: python {py_failed}, rust {rs_failed})")
    print(f"python  RDKit + reference loop : {py_time:8.2f} s  {py_rate:10.0f} molecules/s")
    print(f"rust    instructmol featurize  : {rs_time:8.2f} s  {rs_rate:10.0f} molecules/s (whole process)")
    print(f"speed-up: {rs_rate / py_rate:.1f}x")


if __name__ == "__main__":
    main()
