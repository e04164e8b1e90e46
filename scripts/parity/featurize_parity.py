#!/usr/bin/env python3
"""Featurization parity: RDKit + the reference InstructMol featurizer vs `instructmol featurize`
on every molecule of every dataset in the shared data folder.

Datasets (see scripts/golden/oracle.py): HIV, BBBP, BACE, ChEBI-20 test and validation, QM9,
USPTO-50k products, USPTO-50k reactant sets (whole dotted lines) and single reactants (the
sets split at '.'). Every line counts; identical SMILES are featurized once per side.

    python scripts/parity/featurize_parity.py --bin target/release/instructmol [--show 5]

Prints agreement per dataset and overall, then the disagreements grouped by category with
the first examples of each. Exits with status 1 unless everything agrees.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden"))
import oracle  # noqa: E402


def reference(smiles: str) -> dict:
    try:
        return oracle.smiles2graph(smiles)
    except oracle.FeatureError as err:
        return {"error": err.category, "message": err.message}


def run_binary(binary: str, smiles: list[str]) -> list[dict]:
    """One `instructmol featurize` process over all SMILES (file in, file out)."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "in.smi"), os.path.join(tmp, "out.jsonl")
        with open(src, "w") as handle:
            handle.writelines(s + "\n" for s in smiles)
        subprocess.run([binary, "featurize", "--input", src, "--output", dst], check=True)
        with open(dst) as handle:
            out = [json.loads(line) for line in handle if line.strip()]
    if len(out) != len(smiles):
        sys.exit(f"{binary} wrote {len(out)} lines for {len(smiles)} inputs")
    for s, row in zip(smiles, out):
        if row.get("smiles") != s:
            sys.exit(f"output out of order: expected {s!r}, got {row.get('smiles')!r}")
    return out


def difference(want: dict, ours: dict) -> tuple[str, str] | None:
    """(category, detail) of the first way ``ours`` differs from ``want``; None when equal."""
    if "error" in want and "error" in ours:
        return None
    if "error" in want:
        return f"rdkit rejects ({want['error']}), ours accepts", want["message"][:100]
    if "error" in ours:
        return "rdkit accepts, ours rejects", str(ours["error"])[:100]
    wa, oa = want["node_feat"], ours.get("node_feat", [])
    if len(wa) != len(oa):
        return "atom count", f"rdkit {len(wa)} ours {len(oa)}"
    for i, (w, o) in enumerate(zip(wa, oa)):
        if w[0] != o[0]:
            return "element", f"atom {i}: rdkit z-1={w[0]} ours {o[0]}"
    for i, (w, o) in enumerate(zip(wa, oa)):
        if w != o:
            return "chiral tag", f"atom {i}: rdkit {w[1]} ours {o[1]}"
    wi, oi = want["edge_index"], ours.get("edge_index", [[], []])
    we, oe = want["edge_feat"], ours.get("edge_feat", [])
    if len(we) != len(oe) or len(oi[0]) != len(oe) or len(oi[1]) != len(oe):
        return "bond count", f"rdkit {len(we) // 2} ours {len(oe) // 2}"
    for e in range(len(we)):
        if (wi[0][e], wi[1][e]) != (oi[0][e], oi[1][e]):
            return "bond order / endpoints", f"edge {e}: rdkit {wi[0][e]}->{wi[1][e]} ours {oi[0][e]}->{oi[1][e]}"
    for e in range(len(we)):
        if we[e][0] != oe[e][0]:
            return "bond type", f"edge {e} ({wi[0][e]}-{wi[1][e]}): rdkit {we[e][0]} ours {oe[e][0]}"
    for e in range(len(we)):
        if we[e][1] != oe[e][1]:
            return "bond direction", f"edge {e} ({wi[0][e]}-{wi[1][e]}): rdkit {we[e][1]} ours {oe[e][1]}"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", default=os.path.join("target", "release", "instructmol"))
    parser.add_argument("--data", default=oracle.DEFAULT_DATA)
    parser.add_argument("--show", type=int, default=5, help="examples printed per category")
    parser.add_argument("--limit", type=int, default=0, help="only the first N lines of each dataset")
    parser.add_argument("--only", nargs="*", help="dataset names to run (default: all)")
    args = parser.parse_args()

    lines: dict[str, list[str]] = {}
    for name, reader in oracle.datasets(args.data).items():
        if args.only and name not in args.only:
            continue
        rows = list(reader())
        lines[name] = rows[: args.limit] if args.limit else rows
    empty = {name: sum(1 for s in rows if not s) for name, rows in lines.items()}
    unique = list(dict.fromkeys(s for rows in lines.values() for s in rows if s))
    print(f"{sum(map(len, lines.values()))} lines, {len(unique)} distinct SMILES", file=sys.stderr)

    start = time.perf_counter()
    want = {s: reference(s) for s in unique}
    ref_time = time.perf_counter() - start
    start = time.perf_counter()
    ours = dict(zip(unique, run_binary(args.bin, unique)))
    bin_time = time.perf_counter() - start
    print(f"reference {ref_time:.1f} s, {args.bin} {bin_time:.1f} s", file=sys.stderr)

    diffs = {s: difference(want[s], ours[s]) for s in unique}
    by_category: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    print(f"{'dataset':22s} {'agree':>8s} / {'lines':>7s}   {'%':>7s}  rdkit-rejected")
    total_ok = total = 0
    for name, rows in lines.items():
        ok = n = rejected = 0
        for s in rows:
            if not s:
                continue
            n += 1
            rejected += "error" in want[s]
            if diffs[s] is None:
                ok += 1
            else:
                by_category[diffs[s][0]].append((name, s, diffs[s][1]))
        total_ok, total = total_ok + ok, total + n
        note = f"  ({empty[name]} empty lines skipped)" if empty[name] else ""
        print(f"{name:22s} {ok:8d} / {n:7d}   {100 * ok / max(n, 1):6.2f}%  {rejected:6d}{note}")
    print(f"{'overall':22s} {total_ok:8d} / {total:7d}   {100 * total_ok / max(total, 1):6.2f}%")

    distinct = Counter(d[0] for d in diffs.values() if d is not None)
    for category, count in distinct.most_common():
        examples = by_category[category]
        print(f"\n## {category}: {count} distinct SMILES, {len(examples)} lines")
        seen = set()
        for name, s, detail in examples:
            if s in seen:
                continue
            seen.add(s)
            print(f"  [{name}] {s}\n      {detail}")
            if len(seen) >= args.show:
                break
    sys.exit(0 if total_ok == total else 1)


if __name__ == "__main__":
    main()
