#!/usr/bin/env python3
"""Cut a deterministic, diversity-weighted SMILES sample from every shared dataset.

Writes tests/data/sample.tsv: a ``smiles<TAB>source`` header, then one row per molecule.
For each dataset, about 60% of its quota goes to rare features (each SMILES token, element,
chiral tag, bond type/direction, RDKit rejection category and size bucket is covered by up
to two molecules, rarest features first); the rest is a seeded uniform draw.

    python scripts/golden/make_sample.py [--data /work/shared/data] [--out tests/data/sample.tsv]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle  # noqa: E402
from rdkit import Chem  # noqa: E402

SEED = 20261123
QUOTA = {
    "hiv": 1200,
    "bbbp": 430,
    "bace": 300,
    "chebi20_test": 510,
    "chebi20_validation": 510,
    "qm9": 600,
    "uspto_products": 600,
    "uspto_reactant_sets": 430,
    "uspto_reactants": 420,
}
DIVERSE_SHARE = 0.6
PER_FEATURE = 2

TOKEN = re.compile(r"\[[^\]]*\]|Cl|Br|%\(\d+\)|%\d\d|[A-Za-z]|[=#$/\\:\-.*~@]|\d")


def features(smiles: str) -> set[str]:
    """The diversity features of one SMILES (textual tokens plus what RDKit makes of it)."""
    feats = {"tok:" + t for t in TOKEN.findall(smiles)}
    feats.add(f"len:{min(len(smiles) // 25, 8)}")
    if smiles.count(".") > 0:
        feats.add(f"frags:{min(smiles.count('.') + 1, 4)}")
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        feats.add("err:" + oracle.rejection(smiles).category)
        return feats
    for atom in mol.GetAtoms():
        feats.add(f"z:{atom.GetAtomicNum()}")
        feats.add(f"chi:{atom.GetChiralTag()}")
        if atom.GetFormalCharge():
            feats.add(f"charge:{atom.GetSymbol()}{atom.GetFormalCharge():+d}")
    for bond in mol.GetBonds():
        feats.add(f"bt:{bond.GetBondType()}")
        feats.add(f"dir:{bond.GetBondDir()}")
        feats.add(f"stereo:{bond.GetStereo()}")
    ring_sizes = {len(r) for r in mol.GetRingInfo().AtomRings()}
    feats.update(f"ring:{min(n, 12)}" for n in ring_sizes)
    return feats


def pick(smiles: list[str], quota: int, rng: random.Random) -> list[int]:
    """Indices into ``smiles`` (sorted) of the sample for one dataset."""
    if len(smiles) <= quota:
        return list(range(len(smiles)))
    order = list(range(len(smiles)))
    rng.shuffle(order)
    feats = [features(s) for s in smiles]
    freq = Counter(f for fs in feats for f in fs)
    holders: dict[str, list[int]] = {}
    for i in order:
        for f in feats[i]:
            bucket = holders.setdefault(f, [])
            if len(bucket) < 4 * PER_FEATURE:
                bucket.append(i)
    chosen: set[int] = set()
    diverse_quota = int(quota * DIVERSE_SHARE)
    for f in sorted(freq, key=lambda f: (freq[f], f)):
        if len(chosen) >= diverse_quota:
            break
        have = sum(1 for i in holders[f] if i in chosen)
        for i in holders[f]:
            if have >= PER_FEATURE or len(chosen) >= diverse_quota:
                break
            if i not in chosen:
                chosen.add(i)
                have += 1
    for i in order:
        if len(chosen) >= quota:
            break
        chosen.add(i)
    return sorted(chosen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=oracle.DEFAULT_DATA)
    parser.add_argument("--out", default=os.path.join("tests", "data", "sample.tsv"))
    args = parser.parse_args()
    rows = []
    for name, reader in oracle.datasets(args.data).items():
        unique = list(dict.fromkeys(s for s in reader() if s))
        rng = random.Random(f"{SEED}:{name}")
        picked = pick(unique, QUOTA[name], rng)
        rows += [(unique[i], name) for i in picked]
        print(f"{name:22s} {len(unique):7d} unique -> {len(picked):5d}", file=sys.stderr)
    with open(args.out, "w") as handle:
        handle.write("smiles\tsource\n")
        for smiles, name in rows:
            handle.write(f"{smiles}\t{name}\n")
    print(f"wrote {len(rows)} rows to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
