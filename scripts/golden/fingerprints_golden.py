"""Fingerprint and SMARTS goldens from RDKit for tests/chem_fingerprints.rs and tests/chem_smarts.rs.

Usage (RDKit venv, e.g. /work/main/.venv or .venv-golden):
    python scripts/golden/fingerprints_golden.py [--data ../shared/data]

Writes
- tests/data/golden/fingerprints.jsonl: one `{"meta":...}` line, then one line per molecule
  `{"mol":i,"smiles":s,"maccs":[on bits],"morgan":[[id,count],...],"morgan_bits":[on bits],
  "rdk":"<base64 of the 2048-bit RDKFingerprint, bit i = byte i//8, bit i%8>"}`, then one line
  per pair `{"pair":[i,j],"kind":k,"maccs":t,"rdk":t,"morgan":t}` with RDKit's Tanimoto values
  (Morgan: counts, radius 2, as the InstructMol evaluation computes them).
  Pairs: USPTO-50k test reactions (reactant set vs product), product vs product of random
  reactions, and random ChEBI-20 test pairs; seeded, so reruns give identical files.
- tests/data/golden/fingerprints_smarts.json: `{"patterns":[...],"smiles":[...],
  "counts":[[unique match count per pattern] per molecule]}` from `GetSubstructMatches`
  (uniquify, at most 1000 matches).
"""

import argparse
import base64
import json
import os
import random
import sys

from rdkit import Chem, DataStructs, RDLogger, rdBase
from rdkit.Chem import AllChem, MACCSkeys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oracle import uspto_line  # noqa: E402

RDLogger.DisableLog("rdApp.*")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
N_REACTIONS = 260
N_CHEBI = 260
N_PRODUCT_PAIRS = 760
N_CHEBI_PAIRS = 1000

# Patterns for the SMARTS golden: every feature of the supported subset, plus MACCS-style keys.
EXTRA_PATTERNS = [
    "c1ccccc1", "[#6]~[#7]", "C=O", "[CX4]", "[NX3;H2]", "[OH]", "[O-]", "[N+]", "[n;H1]",
    "[#7;R]", "[R2]", "[R0;#6]", "[D3]", "[D1;!#1]", "[X4]", "[Cl,Br,I]", "[!#6;!#1]",
    "c:n", "c-c", "C-C", "C=C", "C#N", "[#6]@[#6]", "[#6]!@[#6]", "*-,:*", "[c;H0]",
    "[$([OH]-c)]", "[$(C=O);$(C-N)]", "[S](=O)(=O)", "O=C-O", "[F,Cl]c", "N-c1ccccc1",
    "C1CC1", "C1CCCCC1", "*~*~*~*", "[CH2]", "[CH3]-*", "a:a:a", "[+,-]", "[Na+,K+]",
    "[#8]~[#6](~[#8])", "[as,se]", "[C;!R]=[O]", "[N;D2](=O)", "[$(*1~*~*~1)]",
]


def load_lines(path):
    with open(path) as f:
        return [line.rstrip("\n") for line in f]


def mol_record(i, smiles, mol):
    morgan = AllChem.GetMorganFingerprint(mol, 2).GetNonzeroElements()
    rdk = Chem.RDKFingerprint(mol)
    raw = bytearray(256)
    for b in rdk.GetOnBits():
        raw[b // 8] |= 1 << (b % 8)
    return {
        "mol": i,
        "smiles": smiles,
        "maccs": list(MACCSkeys.GenMACCSKeys(mol).GetOnBits()),
        "morgan": sorted([k, v] for k, v in morgan.items()),
        "morgan_bits": list(AllChem.GetMorganFingerprintAsBitVect(mol, 2, 2048).GetOnBits()),
        "rdk": base64.b64encode(bytes(raw)).decode(),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    args = ap.parse_args()
    rng = random.Random(20261123)

    sources = load_lines(os.path.join(args.data, "uspto50k", "liu2017_test_sources.txt"))
    targets = load_lines(os.path.join(args.data, "uspto50k", "liu2017_test_targets.txt"))
    reactions = []
    for i in rng.sample(range(len(sources)), len(sources)):
        product, reactants = uspto_line(sources[i]), uspto_line(targets[i])
        if Chem.MolFromSmiles(product) is not None and Chem.MolFromSmiles(reactants) is not None:
            reactions.append((reactants, product))
        if len(reactions) == N_REACTIONS:
            break

    chebi = []
    with open(os.path.join(args.data, "chebi20", "test.txt")) as f:
        header = f.readline().rstrip("\n").split("\t")
        col = header.index("SMILES")
        rows = [line.rstrip("\n").split("\t")[col] for line in f]
    for i in rng.sample(range(len(rows)), len(rows)):
        if Chem.MolFromSmiles(rows[i]) is not None:
            chebi.append(rows[i])
        if len(chebi) == N_CHEBI:
            break

    smiles = []
    index = {}

    def add(s):
        if s not in index:
            index[s] = len(smiles)
            smiles.append(s)
        return index[s]

    pairs = []
    products = []
    for reactants, product in reactions:
        pairs.append((add(reactants), add(product), "uspto_reactants_product"))
        products.append(index[product])
    for _ in range(N_PRODUCT_PAIRS):
        a, b = rng.sample(products, 2)
        pairs.append((a, b, "uspto_product_product"))
    chebi_ids = [add(s) for s in chebi]
    for _ in range(N_CHEBI_PAIRS):
        a, b = rng.sample(chebi_ids, 2)
        pairs.append((a, b, "chebi20"))

    mols = [Chem.MolFromSmiles(s) for s in smiles]
    out = os.path.join(ROOT, "tests", "data", "golden", "fingerprints.jsonl")
    with open(out, "w") as f:
        meta = {"rdkit": rdBase.rdkitVersion, "molecules": len(smiles), "pairs": len(pairs)}
        f.write(json.dumps({"meta": meta}, separators=(",", ":")) + "\n")
        for i, (s, m) in enumerate(zip(smiles, mols)):
            f.write(json.dumps(mol_record(i, s, m), separators=(",", ":")) + "\n")
        for a, b, kind in pairs:
            ma, mb = mols[a], mols[b]
            rec = {
                "pair": [a, b],
                "kind": kind,
                "maccs": DataStructs.FingerprintSimilarity(
                    MACCSkeys.GenMACCSKeys(ma), MACCSkeys.GenMACCSKeys(mb),
                    metric=DataStructs.TanimotoSimilarity),
                "rdk": DataStructs.FingerprintSimilarity(
                    Chem.RDKFingerprint(ma), Chem.RDKFingerprint(mb),
                    metric=DataStructs.TanimotoSimilarity),
                "morgan": DataStructs.TanimotoSimilarity(
                    AllChem.GetMorganFingerprint(ma, 2), AllChem.GetMorganFingerprint(mb, 2)),
            }
            f.write(json.dumps(rec, separators=(",", ":")) + "\n")

    # SMARTS golden: MACCS patterns from RDKit's Python table plus the extra ones, on a subset.
    patterns = list(EXTRA_PATTERNS)
    for _, (smarts, _) in sorted(MACCSkeys.smartsPatts.items()):
        if smarts != "?" and smarts not in patterns:
            patterns.append(smarts)
    queries = [Chem.MolFromSmarts(p) for p in patterns]
    sub = smiles[::6]
    counts = []
    for m in (Chem.MolFromSmiles(s) for s in sub):
        counts.append([len(m.GetSubstructMatches(q, uniquify=True, maxMatches=1000)) for q in queries])
    out = os.path.join(ROOT, "tests", "data", "golden", "fingerprints_smarts.json")
    with open(out, "w") as f:
        json.dump({"rdkit": rdBase.rdkitVersion, "patterns": patterns, "smiles": sub, "counts": counts},
                  f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
