"""Plain PyTorch MoleculeSTM GIN (no torch-geometric), shared by gin_golden.py and bench/gin.py.

Module names match MoleculeSTM's GNN / OGB AtomEncoder / BondEncoder / GINConv, so the
state_dict keys are those of `molecule_model.pth`:
  molecule_node_model.atom_encoder.atom_embedding_list.{c}.weight
  molecule_node_model.gnns.{l}.{eps, bond_encoder.bond_embedding_list.{c}.weight, mlp.{0,1,3}.*}
  molecule_node_model.batch_norms.{l}.*
Also `ensure_torch_venv()`: re-runs the calling script inside .venv-torch (created on demand).
"""
import json
import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
VENV = os.path.join(ROOT, ".venv-torch")
ATOM_VOCAB = [119, 5, 12, 12, 10, 6, 6, 2, 2]
BOND_VOCAB = [5, 6, 2]


def ensure_torch_venv():
    """Import torch, or create .venv-torch (PyPI torch, ~3 GB) and re-run this script in it."""
    try:
        import torch  # noqa: F401
        return
    except ImportError:
        pass
    py = os.path.join(VENV, "bin", "python")
    if os.path.abspath(sys.executable) == os.path.abspath(py):
        sys.exit("torch is not importable inside .venv-torch; remove it and retry")
    if not os.path.exists(py):
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
        with open(os.path.join(VENV, ".gitignore"), "w") as f:
            f.write("*\n")
        req = os.path.join(ROOT, "scripts", "golden", "requirements-torch.txt")
        subprocess.check_call([py, "-m", "pip", "install", "--quiet", "-r", req])
    os.execv(py, [py] + sys.argv)


def build_modules():
    import torch
    from torch import nn

    class AtomEncoder(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.atom_embedding_list = nn.ModuleList()
            for rows in ATOM_VOCAB:
                emb = nn.Embedding(rows, dim)
                nn.init.xavier_uniform_(emb.weight.data)
                self.atom_embedding_list.append(emb)

        def forward(self, x):
            out = 0
            for c in range(x.shape[1]):
                out = out + self.atom_embedding_list[c](x[:, c])
            return out

    class BondEncoder(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.bond_embedding_list = nn.ModuleList()
            for rows in BOND_VOCAB:
                emb = nn.Embedding(rows, dim)
                nn.init.xavier_uniform_(emb.weight.data)
                self.bond_embedding_list.append(emb)

        def forward(self, e):
            out = 0
            for c in range(e.shape[1]):
                out = out + self.bond_embedding_list[c](e[:, c])
            return out

    class GINConv(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.mlp = nn.Sequential(
                nn.Linear(dim, 2 * dim), nn.BatchNorm1d(2 * dim), nn.ReLU(), nn.Linear(2 * dim, dim)
            )
            self.eps = nn.Parameter(torch.Tensor([0]))
            self.bond_encoder = BondEncoder(dim)

        def forward(self, x, edge_index, edge_attr):
            e = self.bond_encoder(edge_attr)
            src, dst = edge_index[0], edge_index[1]
            msg = torch.relu(x.index_select(0, src) + e)
            agg = torch.zeros_like(x).index_add_(0, dst, msg)
            return self.mlp((1 + self.eps) * x + agg)

    class GNN(nn.Module):
        def __init__(self, num_layer, dim):
            super().__init__()
            self.num_layer = num_layer
            self.atom_encoder = AtomEncoder(dim)
            self.gnns = nn.ModuleList([GINConv(dim) for _ in range(num_layer)])
            self.batch_norms = nn.ModuleList([nn.BatchNorm1d(dim) for _ in range(num_layer)])

        def forward(self, x, edge_index, edge_attr):
            h = self.atom_encoder(x)
            for layer in range(self.num_layer):
                h = self.batch_norms[layer](self.gnns[layer](h, edge_index, edge_attr))
                if layer != self.num_layer - 1:
                    h = torch.relu(h)
            return h

    class GraphPred(nn.Module):
        """MoleculeSTM's wrapper: the GNN as `molecule_node_model` plus an (ignored) head."""

        def __init__(self, num_layer, dim):
            super().__init__()
            self.molecule_node_model = GNN(num_layer, dim)
            self.graph_pred_linear = nn.Linear(dim, 1)

    return GraphPred


def make_model(dim, num_layer=5, seed=0):
    """A MoleculeSTM-shaped GIN with random weights, non-trivial BatchNorm statistics and eps."""
    import torch

    torch.manual_seed(seed)
    model = build_modules()(num_layer, dim)
    with torch.no_grad():
        for name, mod in model.named_modules():
            if isinstance(mod, torch.nn.BatchNorm1d):
                n = mod.num_features
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.normal_(0.0, 0.1)
                mod.running_mean.normal_(0.0, 0.2)
                mod.running_var.uniform_(0.5, 2.0)
                mod.num_batches_tracked.fill_(7)
                assert n > 0, name
        for conv in model.molecule_node_model.gnns:
            conv.eps.uniform_(-0.2, 0.5)
    model.eval()
    return model


def load_feature_rows(path, source=None):
    """Featurized rows of tests/data/golden/features.jsonl (rows RDKit rejected are skipped)."""
    rows = []
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            if "atoms" not in r or (source is not None and r["source"] != source):
                continue
            atoms = r["atoms"]
            bonds = r["bonds"]
            node_feat = [[atoms[i], atoms[i + 1]] for i in range(0, len(atoms), 2)]
            src, dst, edge_feat = [], [], []
            for k in range(0, len(bonds), 4):
                i, j, t, d = bonds[k : k + 4]
                src += [i, j]
                dst += [j, i]
                edge_feat += [[t, d], [t, d]]
            rows.append(
                {
                    "smiles": r["smiles"],
                    "node_feat": node_feat,
                    "edge_index": [src, dst],
                    "edge_feat": edge_feat,
                }
            )
    return rows


def collate(graphs):
    """Concatenate graphs: node features, offset edge indices, edge features (torch tensors)."""
    import torch

    x, src, dst, e = [], [], [], []
    off = 0
    for g in graphs:
        x += g["node_feat"]
        src += [s + off for s in g["edge_index"][0]]
        dst += [d + off for d in g["edge_index"][1]]
        e += g["edge_feat"]
        off += len(g["node_feat"])
    return (
        torch.tensor(x, dtype=torch.long).reshape(-1, 2),
        torch.tensor([src, dst], dtype=torch.long).reshape(2, -1),
        torch.tensor(e, dtype=torch.long).reshape(-1, 2),
    )
