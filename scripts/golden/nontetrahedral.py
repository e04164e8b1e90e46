#!/usr/bin/env python3
"""RDKit reference for non-tetrahedral stereo (@SP, @TB, @OH): tests/data/golden/nontetrahedral.json.

Sections of the JSON object:

orders     {"SP"|"TB"|"OH": [[n, listing, class], ...]}: the centre [M@XXn] with distinct ligands
           listed in the order `listing` (a permutation of 0..k-1 naming F, Cl, Br, I, N, O);
           rows with equal `class` are the same centre for RDKit (equal canonical SMILES; with
           distinct ligands RDKit's string does not depend on the atom order).
stored     [[smiles, [[atom, "SP"|"TB"|"OH", perm], ...]], ...]: RDKit's tag and
           _chiralPermutation (relative to the stored bond order, missing ligands last) of every
           non-tetrahedral atom after MolFromSmiles.
molecules  [{"smiles", "iso", "class", "orbit", "random"}, ...]: "iso" is RDKit's canonical SMILES.
           "class" is an order-independent key. RDKit reads a centre's missing ligands
           (implicit hydrogens, vacant sites) as distinguishable placeholders, so two equal
           centres can get different strings (F[Pt@SP1H2]Cl and F[Pt@SP2H2]Cl are both cis); for
           the key every placeholder becomes a bonded dummy atom (bonds stored last, in
           placeholder order, so the permutation keeps its meaning), then the smallest RDKit
           canonical string over every atom renumbering is taken. "orbit" counts the distinct
           strings met (> 1 where RDKit's string depends on the input order, e.g.
           cis-[PtF2Cl2]). Two rows are the same molecule exactly when their classes are equal.
           "random": up to 12 random SMILES of the molecule (doRandom and renumbered
           non-canonical output) with the row's class.

    python scripts/golden/nontetrahedral.py      # .venv-golden (rdkit), a few seconds
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random

from rdkit import Chem, rdBase

SEED = 20261124
LIGANDS = ["F", "Cl", "Br", "I", "N", "O"]
SHAPES = {"SP": (4, 3), "TB": (5, 20), "OH": (6, 30)}
CENTRE = {"SP": "Pt", "TB": "As", "OH": "Co"}
ORDERS_PER_NUMBER = 8
N_RANDOM = 12

# Molecules with non-tetrahedral centres: implicit H and vacant sites at the start and inside,
# ring closures, dotted parts, repeated ligands, two centres, no permutation number.
MOLECULES = [
    "F[Pt@SP1](Cl)(F)Cl", "F[Pt@SP2](Cl)(F)Cl", "F[Pt@SP3](Cl)(F)Cl", "Cl[Pt@SP1](Cl)(F)F",
    "F[Pt@SP1](Cl)(Br)I", "F[Pt@SP2](Cl)(Br)I", "F[Pt@SP3](Cl)(Br)I", "I[Pt@SP2](Br)(Cl)F",
    "[Pt@SP1H](F)(Cl)Br", "F[Pt@SP1H](Cl)Br", "F[Pt@SP2H](Cl)Br", "F[Pt@SP3H](Cl)Br",
    "F[Pt@SP1](Cl)Br", "F[Pt@SP2](Cl)Br", "[Pt@SP1H2](F)Cl", "F[Pt@SP2H2]Cl", "F[Pt@SP3H2]Cl",
    "C1CC[Pt@SP1]1(F)Cl", "C1CC[Pt@SP2]1(F)Cl", "F[Pt@SP1]12CC1.C2", "[Pt@SP1H]1(F)CC1",
    "C.[Pt@SP1H](F)(Cl)Br", "[Pt@SP3H](F)(Cl)Br.C", "N[Pt@SP1](N)(Cl)Cl", "N[Pt@SP2](N)(Cl)Cl",
    "F[Pt@SP](Cl)(Br)I", "F[Pt](Cl)(Br)I",
    "S[As@TB1](F)(Cl)(Br)N", "S[As@TB5](F)(Cl)(Br)N", "S[As@TB9](F)(Cl)(Br)N",
    "S[As@TB15](F)(Cl)(Br)N", "N[As@TB20](F)(S)(Cl)Br", "F[As@TB1](Cl)(Br)I", "F[As@TB7](F)(F)(Cl)Cl",
    "F[As@TB9](F)(F)(Cl)Cl", "F[As@TB13](F)(F)(Cl)Cl", "F[Fe@TB2]1(Cl)CCC1Br",
    "O[Co@OH1](F)(Cl)(Br)(I)N", "O[Co@OH12](F)(Cl)(Br)(I)N", "O[Co@OH30](F)(Cl)(Br)(I)N",
    "O[Co@OH7](F)(Cl)(Br)(I)N", "F[Co@OH1](Cl)(Br)I", "F[Co@OH14](Cl)(Br)I", "[Co@OH1H2]1(F)CC1",
    "N[Co@OH1](N)(N)(Cl)(Cl)Cl", "N[Co@OH2](N)(Cl)(N)(Cl)Cl", "N[Co@OH3](N)(Cl)(N)(Cl)Cl",
    "N[Co@OH16](N)(N)(N)(Cl)Cl", "N[Co@OH1](N)(N)(N)(Cl)Cl", "F[Co@OH5](Cl)(F)(Cl)(F)Cl",
    "F[Pt@SP1](Cl)(Br)C[Pt@SP2](F)(Cl)Br", "F[Pt@SP1](Cl)(Br)C[Pt@SP1](F)(Cl)Br",
    "F[Pt@SP2](Cl)(F)C[Pt@SP3](F)(Cl)F",
]


def canonical(smiles: str) -> str | None:
    mol = Chem.MolFromSmiles(smiles)
    return None if mol is None else Chem.MolToSmiles(mol)


MAX_LIGANDS = {
    Chem.ChiralType.CHI_SQUAREPLANAR: 4,
    Chem.ChiralType.CHI_TRIGONALBIPYRAMIDAL: 5,
    Chem.ChiralType.CHI_OCTAHEDRAL: 6,
}


def filled(mol: Chem.Mol) -> Chem.Mol:
    """``mol`` with a dummy atom bonded to a non-tetrahedral centre for each missing ligand."""
    rw = Chem.RWMol(mol)
    for atom in mol.GetAtoms():
        size = MAX_LIGANDS.get(atom.GetChiralTag())
        if size is None:
            continue
        for _ in range(size - atom.GetDegree()):
            dummy = rw.AddAtom(Chem.Atom(0))
            rw.AddBond(atom.GetIdx(), dummy, Chem.BondType.SINGLE)
    return rw.GetMol()


def orbit(mol: Chem.Mol, rng: random.Random) -> set[str]:
    """RDKit's canonical strings over every atom renumbering (a sample of 5,000 beyond 7 atoms)."""
    n = mol.GetNumAtoms()
    if n <= 7:
        orders = itertools.permutations(range(n))
    else:
        orders = (rng.sample(range(n), n) for _ in range(5000))
    return {Chem.MolToSmiles(Chem.RenumberAtoms(mol, list(o))) for o in orders}


def orders_section(rng: random.Random) -> dict:
    out = {}
    for name, (k, count) in SHAPES.items():
        rows, classes = [], {}
        all_orders = list(itertools.permutations(range(k)))
        for n in range(1, count + 1):
            chosen = all_orders if k == 4 else rng.sample(all_orders, ORDERS_PER_NUMBER)
            for listing in chosen:
                ligs = [LIGANDS[i] for i in listing]
                smiles = f"[{CENTRE[name]}@{name}{n}]" + "".join(f"({x})" for x in ligs[:-1]) + ligs[-1]
                iso = canonical(smiles)
                assert iso is not None, smiles
                rows.append([n, list(listing), classes.setdefault(iso, len(classes))])
        out[name] = rows
    return out


def stored_section(smiles_list: list[str]) -> list:
    names = {
        Chem.ChiralType.CHI_SQUAREPLANAR: "SP",
        Chem.ChiralType.CHI_TRIGONALBIPYRAMIDAL: "TB",
        Chem.ChiralType.CHI_OCTAHEDRAL: "OH",
    }
    rows = []
    for smiles in smiles_list:
        mol = Chem.MolFromSmiles(smiles)
        atoms = [
            [a.GetIdx(), names[a.GetChiralTag()], a.GetUnsignedProp("_chiralPermutation") if a.HasProp("_chiralPermutation") else 0]
            for a in mol.GetAtoms()
            if a.GetChiralTag() in names
        ]
        rows.append([smiles, atoms])
    return rows


def molecules_section(rng: random.Random) -> list:
    rows = []
    for smiles in MOLECULES:
        mol = Chem.MolFromSmiles(smiles)
        assert mol is not None, smiles
        strings = orbit(filled(mol), rng)
        key = min(strings)
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
            again = Chem.MolFromSmiles(text)
            if text in forms or text == smiles or again is None:
                continue
            if Chem.MolToSmiles(filled(again)) in strings:
                forms.append(text)
        rows.append({"smiles": smiles, "iso": Chem.MolToSmiles(mol), "class": key, "orbit": len(strings), "random": forms})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join("tests", "data", "golden", "nontetrahedral.json"))
    args = parser.parse_args()
    rng = random.Random(SEED)
    molecules = molecules_section(rng)
    stored_inputs = MOLECULES + [f for row in molecules for f in row["random"]]
    data = {"orders": orders_section(rng), "stored": stored_section(stored_inputs), "molecules": molecules}
    with open(args.out, "w") as handle:
        json.dump(data, handle, separators=(",", ":"))
        handle.write("\n")


if __name__ == "__main__":
    main()
