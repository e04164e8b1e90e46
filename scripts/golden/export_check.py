"""Proves that `instructmol export --format llava-graph` writes folders the official InstructMol
code loads, and writes the logits that loading gives as a golden for tests/official_files.rs.

    cargo build --release
    /work/venv-torch/bin/python scripts/golden/export_check.py     # from the repository root

Venv: torch, transformers, peft, rdkit (e.g. `pip install torch transformers peft rdkit`).

For the tiny test model (tests/data/tiny_model) and the model folder tests/data/official/ours
(projector, tuned GIN, LoRA adapter), this script
1. runs `instructmol export` twice: on the folder as it is (stage 2) and on a copy without the
   adapter (stage 1), into folders named as the official builder expects
   (`llava-...-lora` for stage 2);
2. loads each as IDEA-XL/InstructMol `llava/model/builder.py::load_pretrained_model` does,
   step by step: the base LLaMA with the folder's config, `mm_projector` and the MoleculeSTM
   graph tower (`graph_tower.molecule_node_model`) as modules of the inner model,
   `torch.load(non_lora_trainables.bin)` with its key rewrite and a non-strict
   `load_state_dict` (here also checked: no key left unused), then
   `PeftModel.from_pretrained(model, folder)` and `merge_and_unload()`; stage 1:
   `torch.load(mm_projector.bin)` and a non-strict `load_state_dict`;
3. computes the logits of one prompt about caffeine with the graph tokens (GIN on the
   reference featurization, projector) in place of the `<image>` slot, as
   `prepare_inputs_labels_for_multimodal` does;
4. writes tests/data/golden/export_logits.json: {"smiles", "ids", "image_position",
   "stage1": [flat logits], "stage2": [flat logits]}.
The Rust test loads the same exports with `InstructMol::load_official` and compares (<= 1e-4).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402
from peft import PeftModel  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

import oracle  # noqa: E402
import torch_gin  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
BIN = os.path.join(ROOT, "target", "release", "instructmol")
BASE = os.path.join(ROOT, "tests", "data", "tiny_model")
OURS = os.path.join(ROOT, "tests", "data", "official", "ours")
OUT = os.path.join(ROOT, "tests", "data", "golden", "export_logits.json")
SMILES = "CN1C=NC2=C1C(=O)N(C(=O)N2C)C"
IDS = [1, 0, 17, 99, 250, 3, 42]  # the graph tokens replace position 1
IMAGE_POSITION = 1


def export(src, out):
    subprocess.run([BIN, "export", "--format", "llava-graph", "--base", BASE, src, out],
                   check=True)


def official_model(folder):
    """The base model with the folder's config and the LLaVA-graph modules attached."""
    cfg = LlamaConfig.from_pretrained(folder)  # LlavaGraphConfig is a LlamaConfig
    model = LlamaForCausalLM.from_pretrained(BASE, config=cfg, torch_dtype=torch.float32)
    inner = model.model
    layers, hidden = cfg.gin_num_layers, cfg.gin_hidden_dim
    assert cfg.mm_projector_type == "linear", cfg.mm_projector_type
    inner.mm_projector = torch.nn.Linear(cfg.mm_hidden_size, cfg.hidden_size)
    inner.graph_tower = torch_gin.build_modules()(layers, hidden)  # GNN_graphpred's names
    return model


def load_non_strict(model, state):
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected, f"keys the official model has no place for: {unexpected[:5]}"
    return missing


def load_stage2(folder):
    """builder.py, `'llava' in name and 'lora' in name and model_base is not None`."""
    model = official_model(folder)
    non_lora = torch.load(os.path.join(folder, "non_lora_trainables.bin"), map_location="cpu",
                          weights_only=True)
    non_lora = {(k[11:] if k.startswith("base_model.") else k): v for k, v in non_lora.items()}
    if any(k.startswith("model.model.") for k in non_lora):
        non_lora = {(k[6:] if k.startswith("model.") else k): v for k, v in non_lora.items()}
    missing = load_non_strict(model, non_lora)
    assert not any("mm_projector" in k or "graph_tower.molecule_node_model" in k
                   for k in missing), missing
    saved = torch.load(os.path.join(folder, "adapter_model.bin"), map_location="cpu",
                       weights_only=True)
    model = PeftModel.from_pretrained(model, folder)
    held = {n.replace(".default", ""): p for n, p in model.named_parameters() if "lora_" in n}
    assert set(held) == set(saved), sorted(set(held) ^ set(saved))[:5]
    for k, t in saved.items():
        assert torch.equal(held[k].detach(), t), k
    print(f"stage 2: {len(non_lora)} non-LoRA tensors, {len(saved)} LoRA tensors loaded")
    return model.merge_and_unload()


def load_stage1(folder):
    """builder.py, `'llava' in name and model_base is not None` (projector only)."""
    model = official_model(folder)
    weights = torch.load(os.path.join(folder, "mm_projector.bin"), map_location="cpu",
                         weights_only=True)
    load_non_strict(model, weights)
    print(f"stage 1: {len(weights)} tensors loaded")
    return model


@torch.no_grad()
def logits(model):
    model.eval()
    g = oracle.smiles2graph(SMILES)
    graph = {"node_feat": g["node_feat"], "edge_index": g["edge_index"], "edge_feat": g["edge_feat"]}
    x, edge_index, edge_attr = torch_gin.collate([graph])
    inner = model.model
    nodes = inner.graph_tower.molecule_node_model(x, edge_index, edge_attr)
    tokens = inner.mm_projector(nodes)
    ids = torch.tensor(IDS)
    embed = inner.embed_tokens(ids)
    embeds = torch.cat([embed[:IMAGE_POSITION], tokens, embed[IMAGE_POSITION + 1:]])
    return model(inputs_embeds=embeds[None]).logits[0].flatten().tolist()


def main():
    if not os.path.exists(BIN):
        sys.exit(f"{BIN} not found: run `cargo build --release` first")
    with tempfile.TemporaryDirectory() as tmp:
        stage2 = os.path.join(tmp, "llava-moleculestm-tiny-lora")
        export(OURS, stage2)
        stage1_src = os.path.join(tmp, "ours-stage1")
        shutil.copytree(OURS, stage1_src, ignore=shutil.ignore_patterns("adapter"))
        stage1 = os.path.join(tmp, "llava-moleculestm-tiny-pretrain")
        export(stage1_src, stage1)
        out = {
            "smiles": SMILES,
            "ids": IDS,
            "image_position": IMAGE_POSITION,
            "stage1": logits(load_stage1(stage1)),
            "stage2": logits(load_stage2(stage2)),
        }
    with open(OUT, "w") as f:
        json.dump(out, f)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
