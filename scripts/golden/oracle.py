"""Shared helpers for the golden, parity and benchmark scripts.

RDKit and selfies are used here only as a test oracle: the reference InstructMol
featurization (drugchat ``smiles2graph``: RDKit ``Chem.MolFromSmiles`` with default
sanitization), error categorization, and readers for every dataset in the shared data
folder.
"""

from __future__ import annotations

import csv
import gzip
import os
import sys
from typing import Iterator

from rdkit import Chem, RDLogger
from rdkit.Chem.rdchem import BondDir, BondType, ChiralType

RDLogger.DisableLog("rdApp.*")
csv.field_size_limit(sys.maxsize)

DEFAULT_DATA = os.environ.get("INSTRUCTMOL_DATA", "/work/shared/data")

# The reference lookup tables (InstructMol / drugchat smiles2graph).
CHI = {
    ChiralType.CHI_UNSPECIFIED: 0,
    ChiralType.CHI_TETRAHEDRAL_CW: 1,
    ChiralType.CHI_TETRAHEDRAL_CCW: 2,
    ChiralType.CHI_OTHER: 3,
}
BOND_TYPE = {
    BondType.SINGLE: 0,
    BondType.DOUBLE: 1,
    BondType.TRIPLE: 2,
    BondType.AROMATIC: 3,
}
BOND_DIR = {
    BondDir.NONE: 0,
    BondDir.ENDUPRIGHT: 1,
    BondDir.ENDDOWNRIGHT: 2,
}

# Error categories shared with the Rust tests (ErrorKind Syntax/Valence/Kekulize/Unsupported).
PARSE, VALENCE, KEKULIZE, UNSUPPORTED, OTHER = "parse", "valence", "kekulize", "unsupported", "other"


class FeatureError(Exception):
    """The reference featurizer rejects a SMILES; ``category`` is one of the categories above."""

    def __init__(self, category: str, message: str):
        super().__init__(message)
        self.category = category
        self.message = message


def rejection(smiles: str) -> FeatureError:
    """Explain why ``Chem.MolFromSmiles(smiles)`` returned None."""
    raw = Chem.MolFromSmiles(smiles, sanitize=False)
    if raw is None:
        return FeatureError(PARSE, "SMILES parse error")
    problems = Chem.DetectChemistryProblems(raw)
    if not problems:
        return FeatureError(OTHER, "rejected by RDKit for an unknown reason")
    kind, message = problems[0].GetType(), problems[0].Message()
    if kind == "AtomValenceException":
        return FeatureError(VALENCE, message)
    if kind in ("KekulizeException", "AtomKekulizeException"):
        return FeatureError(KEKULIZE, message)
    return FeatureError(OTHER, f"{kind}: {message}")


def mol_or_error(smiles: str) -> Chem.Mol:
    """``Chem.MolFromSmiles`` with defaults, raising FeatureError instead of returning None."""
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise rejection(smiles)
    return mol


def smiles2graph(smiles: str) -> dict:
    """The reference featurization: node_feat, edge_index, edge_feat as nested int lists.

    Raises FeatureError for molecules RDKit rejects and for features outside the reference
    lookup tables (the reference raises KeyError there: category "unsupported").
    """
    mol = mol_or_error(smiles)
    node_feat = []
    for atom in mol.GetAtoms():
        z = atom.GetAtomicNum()
        tag = atom.GetChiralTag()
        if tag not in CHI:
            raise FeatureError(UNSUPPORTED, f"chiral tag {tag} on atom {atom.GetIdx()}")
        node_feat.append([118 if z == 0 else z - 1, CHI[tag]])
    src, dst, edge_feat = [], [], []
    for bond in mol.GetBonds():
        kind, direction = bond.GetBondType(), bond.GetBondDir()
        if kind not in BOND_TYPE:
            raise FeatureError(UNSUPPORTED, f"bond type {kind} on bond {bond.GetIdx()}")
        if direction not in BOND_DIR:
            raise FeatureError(UNSUPPORTED, f"bond direction {direction} on bond {bond.GetIdx()}")
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        feat = [BOND_TYPE[kind], BOND_DIR[direction]]
        src += [i, j]
        dst += [j, i]
        edge_feat += [feat, feat]
    return {"node_feat": node_feat, "edge_index": [src, dst], "edge_feat": edge_feat}


# ---------------------------------------------------------------- datasets


def _csv_column(path: str, column: str, opener=open, delimiter: str = ",") -> Iterator[str]:
    with opener(path, "rt", newline="") as handle:
        for row in csv.DictReader(handle, delimiter=delimiter):
            yield row[column]


def uspto_line(line: str) -> str:
    """A Liu-2017 USPTO line without its ``<RX_k>`` prefix and with the spaces removed."""
    line = line.strip()
    if line.startswith("<RX_"):
        line = line.split(" ", 1)[1] if " " in line else ""
    return line.replace(" ", "")


def _uspto(data: str, kind: str) -> Iterator[str]:
    for split in ("train", "valid", "test"):
        path = os.path.join(data, "uspto50k", f"liu2017_{split}_{kind}.txt")
        with open(path) as handle:
            for line in handle:
                if line.strip():
                    yield uspto_line(line)


def datasets(data: str = DEFAULT_DATA) -> dict:
    """Every dataset as a name -> zero-argument function yielding SMILES strings (file order).

    USPTO products are the source lines; reactant sets are whole target lines (dotted);
    single reactants are the '.'-separated parts of every target line.
    """

    def reactant_singles() -> Iterator[str]:
        for reactants in _uspto(data, "targets"):
            yield from reactants.split(".")

    return {
        "hiv": lambda: _csv_column(os.path.join(data, "moleculenet", "hiv.csv.gz"), "smiles", gzip.open),
        "bbbp": lambda: _csv_column(os.path.join(data, "moleculenet", "bbbp.csv"), "smiles"),
        "bace": lambda: _csv_column(os.path.join(data, "moleculenet", "bace.csv"), "mol"),
        "chebi20_test": lambda: _csv_column(os.path.join(data, "chebi20", "test.txt"), "SMILES", delimiter="\t"),
        "chebi20_validation": lambda: _csv_column(
            os.path.join(data, "chebi20", "validation.txt"), "SMILES", delimiter="\t"
        ),
        "qm9": lambda: _csv_column(os.path.join(data, "qm9", "qm9_small.csv"), "smiles"),
        "uspto_products": lambda: _uspto(data, "sources"),
        "uspto_reactant_sets": lambda: _uspto(data, "targets"),
        "uspto_reactants": reactant_singles,
    }


def read_smi(path: str) -> list[tuple[str, str]]:
    """Rows of a ``.smi``/``.tsv`` test file as (smiles, note).

    Blank lines and comment lines (``#`` alone or ``# `` followed by text) are skipped, so a
    SMILES may still start with ``#`` (an invalid one); a tab separates the SMILES from an
    optional note or source tag; a ``smiles<TAB>source`` header is skipped.
    """
    rows = []
    with open(path) as handle:
        for line in handle:
            line = line.rstrip("\n")
            if not line.strip() or line == "#" or line.startswith("# "):
                continue
            smiles, _, note = line.partition("\t")
            if (smiles, note) == ("smiles", "source"):
                continue
            rows.append((smiles, note))
    return rows
