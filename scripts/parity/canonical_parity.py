#!/usr/bin/env python3
"""Canonical SMILES parity: `instructmol convert --to canonical[-nonisomeric]` vs RDKit on every
distinct molecule of every dataset in the shared data folder (see scripts/golden/oracle.py).

Each distinct SMILES is fed in as written plus N random spellings of it (RDKit doRandom, kept only
where RDKit reads them back to the same canonical SMILES). Checked, isomeric and non-isomeric:
- verdict: we reject a SMILES exactly when RDKit's MolFromSmiles does;
- invariance: every spelling of a molecule gets the same string from us;
- classes: two molecules get the same string from us exactly when they get the same string
  from RDKit (only the partition is compared; the strings themselves differ in style).

    python scripts/parity/canonical_parity.py --bin target/release/instructmol [--random 1] [--show 5]

Exits with status 1 unless everything agrees.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden"))
import oracle  # noqa: E402
from rdkit import Chem, RDLogger, rdBase  # noqa: E402

SEED = 20261124


def run_binary(binary: str, mode: str, smiles: list[str]) -> list[str | None]:
    """One `instructmol convert` process over all SMILES; None for an error line."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "in.smi"), os.path.join(tmp, "out.jsonl")
        with open(src, "w") as handle:
            handle.writelines(s + "\n" for s in smiles)
        subprocess.run([binary, "convert", "--to", mode, "--input", src, "--output", dst], check=True,
                       stderr=subprocess.DEVNULL)
        with open(dst) as handle:
            rows = [json.loads(line) for line in handle if line.strip()]
    if len(rows) != len(smiles):
        sys.exit(f"{binary} wrote {len(rows)} lines for {len(smiles)} inputs")
    return [row.get("output") for row in rows]


def partition_mismatches(keys_a: dict[str, str], keys_b: dict[str, str]) -> list[tuple[str, str]]:
    """Pairs (x, y) grouped together by one key map and apart by the other."""
    bad = []
    for first, second in ((keys_a, keys_b), (keys_b, keys_a)):
        groups: dict[str, list[str]] = defaultdict(list)
        for s, k in first.items():
            groups[k].append(s)
        for members in groups.values():
            head = members[0]
            bad.extend((head, m) for m in members[1:] if second[m] != second[head])
    return bad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", default=os.path.join("target", "release", "instructmol"))
    parser.add_argument("--data", default=oracle.DEFAULT_DATA)
    parser.add_argument("--random", type=int, default=1, help="random spellings per molecule")
    parser.add_argument("--show", type=int, default=5, help="examples printed per check")
    parser.add_argument("--limit", type=int, default=0, help="only the first N lines of each dataset")
    args = parser.parse_args()
    RDLogger.DisableLog("rdApp.*")
    rdBase.SeedRandomNumberGenerator(SEED)

    unique: list[str] = []
    for reader in oracle.datasets(args.data).values():
        rows = list(reader())
        unique.extend(s for s in (rows[: args.limit] if args.limit else rows) if s)
    unique = list(dict.fromkeys(unique))

    start = time.perf_counter()
    rdkit: dict[bool, dict[str, str | None]] = {True: {}, False: {}}
    spellings: dict[str, list[str]] = {}
    for s in unique:
        mol = Chem.MolFromSmiles(s)
        rdkit[True][s] = None if mol is None else Chem.MolToSmiles(mol)
        rdkit[False][s] = None if mol is None else Chem.MolToSmiles(mol, isomericSmiles=False)
        forms = []
        if mol is not None:
            for _ in range(args.random):
                text = Chem.MolToSmiles(mol, doRandom=True)
                again = Chem.MolFromSmiles(text)
                if again is not None and Chem.MolToSmiles(again) == rdkit[True][s]:
                    forms.append(text)
        spellings[s] = forms
    ref_time = time.perf_counter() - start
    inputs = unique + [f for s in unique for f in spellings[s]]
    print(f"{len(unique)} distinct SMILES, {len(inputs) - len(unique)} random spellings; "
          f"RDKit {ref_time:.1f} s", file=sys.stderr)

    failed = False
    for isomeric, mode in ((True, "canonical"), (False, "canonical-nonisomeric")):
        start = time.perf_counter()
        out = dict(zip(inputs, run_binary(args.bin, mode, inputs)))
        bin_time = time.perf_counter() - start
        verdict = [s for s in unique if (out[s] is None) != (rdkit[isomeric][s] is None)]
        variant = [(s, f) for s in unique for f in spellings[s] if out[f] != out[s]]
        accepted = [s for s in unique if out[s] is not None and rdkit[isomeric][s] is not None]
        classes = partition_mismatches({s: rdkit[isomeric][s] for s in accepted}, {s: out[s] for s in accepted})
        identical = sum(out[s] == rdkit[isomeric][s] for s in accepted)
        n_forms = len(inputs) - len(unique)
        print(f"\n## {mode} ({bin_time:.1f} s for {len(inputs)} lines)")
        print(f"verdict agrees     {len(unique) - len(verdict):8d} / {len(unique)}")
        print(f"spellings agree    {n_forms - len(variant):8d} / {n_forms}")
        print(f"classes agree      {len(accepted) - len({x for pair in classes for x in pair}):8d} / {len(accepted)}")
        print(f"identical strings  {identical:8d} / {len(accepted)} (information only)")
        for s in verdict[: args.show]:
            print(f"  verdict: {s}  rdkit {rdkit[isomeric][s]}  ours {out[s]}")
        for s, f in variant[: args.show]:
            print(f"  spelling: {s} -> {out[s]}  but  {f} -> {out[f]}")
        for x, y in classes[: args.show]:
            print(f"  class: {x} / {y}  rdkit {rdkit[isomeric][x]} / {rdkit[isomeric][y]}  ours {out[x]} / {out[y]}")
        failed |= bool(verdict or variant or classes)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
