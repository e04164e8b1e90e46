#!/usr/bin/env python3
"""Write the RDKit / selfies reference outputs the Rust golden tests compare against.

Inputs: tests/data/sample.tsv (source tag per row) and tests/data/edge_cases.smi (source "edge").
Outputs, one compact JSON object per input line, in input order, under tests/data/golden/:

features.jsonl   {"smiles","source","atoms":[z0,chi0,z1,chi1,...],"bonds":[i0,j0,t0,d0,i1,...]}
                 (flattened to keep the file small) or {"smiles","source","error":category,"message"};
                 category is one of parse / valence / kekulize / unsupported. Atom k's node_feat row
                 is [z_k, chi_k]; bond k (i,j,t,d) stands for the reference's two directed edges
                 (i,j),(j,i), both with edge_feat [t,d]; the script checks that this compact form
                 expands back to smiles2graph's output exactly.
selfies.jsonl    {"smiles","source","selfies","decoded","roundtrip"} or {"smiles","source","error"};
                 roundtrip: RDKit canonical(decoded) == RDKit canonical(smiles).
canonical.jsonl  {"smiles","source","iso","noniso"} or {"smiles","source","error"}; "noniso" is left
                 out when it equals "iso" (to keep the file small); molecules with a square-planar,
                 trigonal-bipyramidal or octahedral centre also carry "iso_class", the
                 order-independent RDKit key of nontetrahedral.py (RDKit's "iso" for them can
                 depend on the input atom order); rows of the
                 stereo/symmetric/dotted subset also carry "random" (20 distinct random SMILES of the
                 same molecule, each checked to round-trip in RDKit) and "kekule" (Kekule SMILES).

    python scripts/golden/make_goldens.py
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nontetrahedral  # noqa: E402
import oracle  # noqa: E402
import selfies as sf  # noqa: E402
from rdkit import Chem, rdBase  # noqa: E402

SEED = 20261123
N_RANDOM = 20
MAX_RANDOM_ATOMS = 60
SUBSET = {"stereo": 130, "symmetric": 80, "dotted": 60, "edge": 40, "any": 60}


def dump(handle, obj: dict) -> None:
    handle.write(json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n")


def compact_features(smiles: str) -> dict:
    """smiles2graph output as atoms + bonds, verified to expand back to the reference output."""
    graph = oracle.smiles2graph(smiles)
    src, dst = graph["edge_index"]
    feats = graph["edge_feat"]
    bonds = [[src[k], dst[k], *feats[k]] for k in range(0, len(src), 2)]
    expanded_src = [x for i, j, _, _ in bonds for x in (i, j)]
    expanded_dst = [x for i, j, _, _ in bonds for x in (j, i)]
    expanded_feat = [[t, d] for _, _, t, d in bonds for _ in (0, 1)]
    assert (expanded_src, expanded_dst, expanded_feat) == (src, dst, feats), smiles
    return {"atoms": [x for row in graph["node_feat"] for x in row], "bonds": [x for b in bonds for x in b]}


def canonical(smiles: str, isomeric: bool = True) -> str | None:
    mol = Chem.MolFromSmiles(smiles)
    return None if mol is None else Chem.MolToSmiles(mol, isomericSmiles=isomeric)


def selfies_row(smiles: str) -> dict:
    try:
        encoded = sf.encoder(smiles)
    except Exception as exc:  # selfies raises EncoderError and, rarely, others
        return {"error": f"{type(exc).__name__}: {exc}".splitlines()[0][:200]}
    if encoded is None:
        return {"error": "encoder returned None"}
    try:
        decoded = sf.decoder(encoded)
    except Exception as exc:
        return {"selfies": encoded, "error": f"decoder {type(exc).__name__}: {exc}".splitlines()[0][:200]}
    original = canonical(smiles)
    return {
        "selfies": encoded,
        "decoded": decoded,
        "roundtrip": original is not None and canonical(decoded) == original,
    }


def random_forms(mol: Chem.Mol, iso: str, rng: random.Random) -> list[str]:
    """Up to N_RANDOM distinct SMILES of ``mol`` that RDKit reads back to canonical ``iso``:
    half from MolToSmiles(doRandom=True) under a seeded RDKit RNG, half from a random atom
    renumbering written with canonical=False."""
    forms: list[str] = []
    rdBase.SeedRandomNumberGenerator(rng.randrange(1 << 30))
    for attempt in range(6 * N_RANDOM):
        if len(forms) >= N_RANDOM:
            break
        if attempt % 2 == 0:
            text = Chem.MolToSmiles(mol, doRandom=True)
        else:
            order = list(range(mol.GetNumAtoms()))
            rng.shuffle(order)
            text = Chem.MolToSmiles(Chem.RenumberAtoms(mol, order), canonical=False)
        if text not in forms and text != iso and canonical(text) == iso:
            forms.append(text)
    return forms


def kekule_form(mol: Chem.Mol, iso: str) -> str | None:
    copy = Chem.Mol(mol)
    try:
        Chem.Kekulize(copy, clearAromaticFlags=True)
    except Exception:
        return None
    text = Chem.MolToSmiles(copy, kekuleSmiles=True)
    return text if canonical(text) == iso else None


def choose_subset(rows: list[tuple[str, str]], rng: random.Random) -> set[int]:
    """Indices of rows that get random and Kekule forms: stereo, symmetric, dotted, edge, any."""
    pools: dict[str, list[int]] = {k: [] for k in SUBSET}
    for idx, (smiles, source) in enumerate(rows):
        mol = Chem.MolFromSmiles(smiles)
        if mol is None or not 0 < mol.GetNumAtoms() <= MAX_RANDOM_ATOMS:
            continue
        iso = Chem.MolToSmiles(mol)
        ranks = list(Chem.CanonicalRankAtoms(mol, breakTies=False))
        if source == "edge":
            pools["edge"].append(idx)
        elif any(c in iso for c in "@/\\"):
            pools["stereo"].append(idx)
        elif "." in iso:
            pools["dotted"].append(idx)
        elif len(set(ranks)) <= 0.6 * len(ranks):
            pools["symmetric"].append(idx)
        else:
            pools["any"].append(idx)
    chosen: set[int] = set()
    for kind, count in SUBSET.items():
        pool = pools[kind]
        rng.shuffle(pool)
        chosen.update(pool[:count])
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", default=os.path.join("tests", "data", "sample.tsv"))
    parser.add_argument("--edge", default=os.path.join("tests", "data", "edge_cases.smi"))
    parser.add_argument("--out", default=os.path.join("tests", "data", "golden"))
    args = parser.parse_args()

    rows = oracle.read_smi(args.sample) + [(s, "edge") for s, _ in oracle.read_smi(args.edge)]
    rng = random.Random(SEED)
    subset = choose_subset(rows, rng)
    os.makedirs(args.out, exist_ok=True)
    stats = {"rows": len(rows), "feature_errors": 0, "selfies_errors": 0, "subset": 0, "random": 0}
    with (
        open(os.path.join(args.out, "features.jsonl"), "w") as feat_out,
        open(os.path.join(args.out, "selfies.jsonl"), "w") as selfies_out,
        open(os.path.join(args.out, "canonical.jsonl"), "w") as canon_out,
    ):
        for idx, (smiles, source) in enumerate(rows):
            head = {"smiles": smiles, "source": source}
            try:
                dump(feat_out, head | compact_features(smiles))
            except oracle.FeatureError as err:
                stats["feature_errors"] += 1
                dump(feat_out, head | {"error": err.category, "message": err.message[:200]})

            srow = selfies_row(smiles)
            stats["selfies_errors"] += "error" in srow
            dump(selfies_out, head | srow)

            mol = Chem.MolFromSmiles(smiles)
            if mol is None:
                dump(canon_out, head | {"error": oracle.rejection(smiles).category})
                continue
            iso = Chem.MolToSmiles(mol)
            crow = head | {"iso": iso}
            if any(a.GetChiralTag() in nontetrahedral.MAX_LIGANDS for a in mol.GetAtoms()):
                crow["iso_class"] = min(nontetrahedral.orbit(nontetrahedral.filled(mol), random.Random(SEED)))
            noniso = Chem.MolToSmiles(mol, isomericSmiles=False)
            if noniso != iso:
                crow["noniso"] = noniso
            if idx in subset:
                crow["random"] = random_forms(mol, iso, rng)
                kekule = kekule_form(mol, iso)
                if kekule is not None:
                    crow["kekule"] = kekule
                stats["subset"] += 1
                stats["random"] += len(crow["random"])
            dump(canon_out, crow)
    print(json.dumps(stats), file=sys.stderr)


if __name__ == "__main__":
    main()
