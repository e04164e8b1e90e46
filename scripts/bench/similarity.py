#!/usr/bin/env python3
"""Similarity throughput: RDKit from Python vs `instructmol similarity`, on the same pairs.

Pairs: every USPTO-50k test reaction, reactant set vs product (as the retrosynthesis metrics
compare prediction and reference), both SMILES parsed by both sides. One run each:
- Python: per pair `Chem.MolFromSmiles` on both SMILES, then the fingerprint and
  `DataStructs.TanimotoSimilarity`, as the InstructMol evaluation does (MACCS keys,
  RDKFingerprint, Morgan radius-2 counts), over the pairs already in memory.
- Rust: the whole `instructmol similarity --fp KIND --input FILE --output FILE` process
  (start-up, reading, parsing, fingerprints, writing JSON lines), timed from outside; once with
  `--threads 1` and once with all cores.

    python scripts/bench/similarity.py --bin target/release/instructmol [--data ../shared/data]

Prints pairs/s per fingerprint and the ratios; also checks that both sides agree on the values.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden"))
from oracle import uspto_line  # noqa: E402
from rdkit import Chem, DataStructs, RDLogger  # noqa: E402
from rdkit.Chem import AllChem, MACCSkeys  # noqa: E402

RDLogger.DisableLog("rdApp.*")

FPS = {
    "maccs": MACCSkeys.GenMACCSKeys,
    "rdkit": Chem.RDKFingerprint,
    "morgan": lambda m: AllChem.GetMorganFingerprint(m, 2),
}


def python_run(pairs, kind):
    fp = FPS[kind]
    out = []
    start = time.perf_counter()
    for a, b in pairs:
        ma, mb = Chem.MolFromSmiles(a), Chem.MolFromSmiles(b)
        if ma is None or mb is None:
            out.append(None)
            continue
        out.append(DataStructs.TanimotoSimilarity(fp(ma), fp(mb)))
    return time.perf_counter() - start, out


def rust_run(binary, path, kind, threads):
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as out:
        cmd = [binary, "similarity", "--fp", kind, "--input", path, "--output", out.name]
        if threads:
            cmd += ["--threads", str(threads)]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
        elapsed = time.perf_counter() - start
        values = [json.loads(line).get("tanimoto") for line in open(out.name)]
    return elapsed, values


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(here, "..", "..", "target", "release", "instructmol"))
    ap.add_argument("--data", default=os.path.join(here, "..", "..", "..", "shared", "data"))
    args = ap.parse_args()
    base = os.path.join(args.data, "uspto50k")
    sources = [uspto_line(l) for l in open(os.path.join(base, "liu2017_test_sources.txt"))]
    targets = [uspto_line(l) for l in open(os.path.join(base, "liu2017_test_targets.txt"))]
    pairs = list(zip(targets, sources))
    print(f"pairs: {len(pairs)} (USPTO-50k test, reactants vs product); cores: {os.cpu_count()}")
    with tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False) as f:
        for a, b in pairs:
            f.write(f"{a}\t{b}\n")
        path = f.name
    totals = {"python": 0.0, "rust1": 0.0, "rustN": 0.0}
    try:
        for kind in FPS:
            tp, ref = python_run(pairs, kind)
            t1, ours = rust_run(args.bin, path, kind, 1)
            tn, _ = rust_run(args.bin, path, kind, None)
            totals["python"] += tp
            totals["rust1"] += t1
            totals["rustN"] += tn
            both = [(r, o) for r, o in zip(ref, ours) if r is not None and o is not None]
            mean_diff = sum(abs(r - o) for r, o in both) / max(len(both), 1)
            n = len(pairs)
            print(
                f"{kind:7s} RDKit {n / tp:9.0f} pairs/s | instructmol 1 thread {n / t1:9.0f} pairs/s "
                f"(x{tp / t1:.2f}) | all cores {n / tn:9.0f} pairs/s (x{tp / tn:.2f}) | "
                f"mean |diff| {mean_diff:.2e} over {len(both)} pairs"
            )
        n = len(pairs)
        print(
            f"all three: RDKit {n / totals['python']:.0f} pairs/s, instructmol 1 thread "
            f"{n / totals['rust1']:.0f} pairs/s (x{totals['python'] / totals['rust1']:.2f}), all cores "
            f"{n / totals['rustN']:.0f} pairs/s (x{totals['python'] / totals['rustN']:.2f})"
        )
    finally:
        os.unlink(path)


if __name__ == "__main__":
    main()
