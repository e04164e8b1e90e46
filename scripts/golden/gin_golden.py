#!/usr/bin/env python3
"""Goldens for the Rust GIN and projector (tests/model_gin.rs), from a plain PyTorch model.

    python3 scripts/golden/gin_golden.py      # creates .venv-torch on first use (PyPI torch)

Writes, under tests/data/golden/ (deterministic for a given torch version):
  gin_model.pth         MoleculeSTM-layout state dict (keys `molecule_node_model.*` plus an
                        ignored `graph_pred_linear`), hidden 16, 5 layers, random weights with
                        non-trivial BatchNorm running stats and eps != 0
  gin_golden.json       {"hidden", "num_layers", "num_params_300" (parameter count of the
                        hidden-300 GIN), "molecules": [{smiles, node_feat, edge_index,
                        edge_feat}], "embeddings": [[float; hidden] per node, molecules
                        concatenated], "loss": sum(out^2), "grads": {key: flat gradient of the
                        loss w.r.t. that parameter, eval mode}}
  gin_projector_linear.pth, gin_projector_mlp2x_gelu.pth
                        LLaVA projectors (keys `model.mm_projector.*`), 16 -> 24
  gin_projector_golden.json
                        {"input": [[float; 16]], "<kind>": {"output": [[...]], "loss",
                        "grad_first_weight": flat}} for kind in linear, mlp2x_gelu
"""
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_gin  # noqa: E402

torch_gin.ensure_torch_venv()

import torch  # noqa: E402

HIDDEN = 16
OUT = os.path.join(torch_gin.ROOT, "tests", "data", "golden")
FEATURES = os.path.join(OUT, "features.jsonl")
GRAD_KEYS = [
    "atom_encoder.atom_embedding_list.0.weight",
    "atom_encoder.atom_embedding_list.1.weight",
    "gnns.0.eps",
    "gnns.1.bond_encoder.bond_embedding_list.1.weight",
    "gnns.2.mlp.0.weight",
    "gnns.2.mlp.1.weight",
    "gnns.4.mlp.3.bias",
    "batch_norms.4.weight",
]


def pick_molecules(rows):
    """About 30 molecules: special cases first, then a seeded draw of small ones."""
    picked = []

    def take(pred):
        for r in rows:
            if pred(r) and r not in picked:
                picked.append(r)
                return

    take(lambda r: len(r["node_feat"]) == 1)  # no edges at all
    take(lambda r: "." in r["smiles"] and len(r["node_feat"]) < 40)  # several fragments
    take(lambda r: any(f[1] == 2 for f in r["node_feat"]) and len(r["node_feat"]) < 40)
    take(lambda r: any(f[1] == 1 for f in r["node_feat"]) and len(r["node_feat"]) < 40)
    take(lambda r: any(f[1] == 1 for f in r["edge_feat"]) and len(r["node_feat"]) < 40)
    take(lambda r: any(f[1] == 2 for f in r["edge_feat"]) and len(r["node_feat"]) < 40)
    take(lambda r: any(f[0] == 2 for f in r["edge_feat"]) and len(r["node_feat"]) < 40)
    take(lambda r: any(f[0] == 118 for f in r["node_feat"]))  # wildcard atom
    small = [r for r in rows if 2 <= len(r["node_feat"]) <= 40 and r not in picked]
    picked += random.Random(20261123).sample(small, 30 - len(picked))
    return picked


def flat(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def gin_goldens():
    rows = torch_gin.load_feature_rows(FEATURES)
    mols = pick_molecules(rows)
    model = torch_gin.make_model(HIDDEN, seed=1)
    torch.save(model.state_dict(), os.path.join(OUT, "gin_model.pth"))
    gnn = model.molecule_node_model
    x, ei, ea = torch_gin.collate(mols)
    out = gnn(x, ei, ea)  # eval mode, gradients on
    loss = (out**2).sum()
    loss.backward()
    params = dict(gnn.named_parameters())
    full = torch_gin.make_model(300).molecule_node_model  # MoleculeSTM's real size
    golden = {
        "hidden": HIDDEN,
        "num_layers": gnn.num_layer,
        "num_params_300": sum(p.numel() for p in full.parameters()),
        "molecules": mols,
        "embeddings": [[float(v) for v in row] for row in out.detach().tolist()],
        "loss": float(loss.detach()),
        "grads": {k: flat(params[k].grad) for k in GRAD_KEYS},
    }
    with open(os.path.join(OUT, "gin_golden.json"), "w") as f:
        json.dump(golden, f, separators=(",", ":"))
        f.write("\n")
    print(f"gin: {len(mols)} molecules, {out.shape[0]} nodes, loss {float(loss):.6g}")


def projector_goldens():
    torch.manual_seed(2)
    inp, out_dim = HIDDEN, 24
    x = torch.randn(10, inp)
    golden = {"input": [[float(v) for v in row] for row in x.tolist()]}
    kinds = {
        "linear": torch.nn.Linear(inp, out_dim),
        "mlp2x_gelu": torch.nn.Sequential(
            torch.nn.Linear(inp, out_dim), torch.nn.GELU(), torch.nn.Linear(out_dim, out_dim)
        ),
    }
    for kind, proj in kinds.items():
        holder = torch.nn.Module()
        holder.model = torch.nn.Module()
        holder.model.mm_projector = proj
        torch.save(holder.state_dict(), os.path.join(OUT, f"gin_projector_{kind}.pth"))
        y = proj(x)
        loss = (y**2).sum()
        loss.backward()
        first = proj if kind == "linear" else proj[0]
        golden[kind] = {
            "output": [[float(v) for v in row] for row in y.detach().tolist()],
            "loss": float(loss.detach()),
            "grad_first_weight": flat(first.weight.grad),
        }
    with open(os.path.join(OUT, "gin_projector_golden.json"), "w") as f:
        json.dump(golden, f, separators=(",", ":"))
        f.write("\n")
    print("projector: linear and mlp2x_gelu")


if __name__ == "__main__":
    torch.set_num_threads(1)
    gin_goldens()
    projector_goldens()
