"""How often InChI equality (the reference's exact-match test) and canonical non-isomeric
SMILES equality (ours) could give different verdicts on USPTO-50k.

Usage (RDKit venv): python scripts/golden/inchi_vs_canonical.py [--data ../shared/data]

Every distinct molecule of the Liu-2017 files (products = source lines, reactant sets = target
lines, whole dotted sets as one molecule, all splits) is turned into RDKit's canonical
non-isomeric SMILES and its standard InChI. Writes scripts/golden/inchi_vs_canonical.json:
- `inchi_merges`: InChIs shared by more than one canonical SMILES (e.g. tautomers, which InChI
  normalizes: InChI would call them equal, canonical SMILES would not), with the number of
  canonical SMILES involved and examples;
- `smiles_splits`: canonical SMILES with more than one InChI (canonical SMILES would call equal
  what InChI tells apart; InChI is computed from the isomeric molecule, so stereo shows here);
- `no_inchi`: molecules RDKit reads but cannot write an InChI for.
"""

import argparse
import json
import os
import sys
from collections import defaultdict

from rdkit import Chem, RDLogger, rdBase

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oracle import uspto_line  # noqa: E402

RDLogger.DisableLog("rdApp.*")
HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(HERE, "..", "..", "..", "shared", "data"))
    args = ap.parse_args()
    smiles = set()
    for split in ("train", "valid", "test"):
        for kind in ("sources", "targets"):
            path = os.path.join(args.data, "uspto50k", f"liu2017_{split}_{kind}.txt")
            with open(path) as f:
                smiles.update(uspto_line(line) for line in f if line.strip())
    by_inchi = defaultdict(set)
    by_canon = defaultdict(set)
    unreadable = no_inchi = 0
    for s in sorted(smiles):
        mol = Chem.MolFromSmiles(s)
        if mol is None:
            unreadable += 1
            continue
        canon = Chem.MolToSmiles(mol, isomericSmiles=False)
        inchi = Chem.MolToInchi(mol)
        if not inchi:
            no_inchi += 1
            continue
        by_inchi[inchi].add(canon)
        by_canon[canon].add(inchi)
    merges = {k: sorted(v) for k, v in by_inchi.items() if len(v) > 1}
    splits = {k: sorted(v) for k, v in by_canon.items() if len(v) > 1}
    report = {
        "rdkit": rdBase.rdkitVersion,
        "distinct_smiles": len(smiles),
        "unreadable": unreadable,
        "no_inchi": no_inchi,
        "distinct_inchi": len(by_inchi),
        "distinct_canonical_nonisomeric": len(by_canon),
        "inchi_merges": {
            "inchis": len(merges),
            "canonical_smiles_involved": sum(len(v) for v in merges.values()),
            "examples": dict(sorted(merges.items())[:10]),
        },
        "smiles_splits": {
            "canonical_smiles": len(splits),
            "inchis_involved": sum(len(v) for v in splits.values()),
            "examples": dict(sorted(splits.items())[:10]),
        },
    }
    with open(os.path.join(HERE, "inchi_vs_canonical.json"), "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    print(json.dumps({k: v for k, v in report.items() if k not in ("inchi_merges", "smiles_splits")}))
    print("InChI shared by several canonical SMILES:", report["inchi_merges"]["inchis"],
          "InChIs,", report["inchi_merges"]["canonical_smiles_involved"], "canonical SMILES")
    print("canonical SMILES with several InChIs:", report["smiles_splits"]["canonical_smiles"])


if __name__ == "__main__":
    main()
