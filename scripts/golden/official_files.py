"""Writes tests/data/official/: the files the official InstructMol code (IDEA-XL/InstructMol,
LLaVA-based) saves, made with torch.save exactly as its training script does, for the tiny test
model (tests/data/tiny_model, d=64, 2 layers) and the tiny GIN (tests/data/golden/gin_model.pth, hidden 16).

    /work/venv-torch/bin/python scripts/golden/official_files.py   # from the repository root

- stage1/: `mm_projector.bin` ({"model.mm_projector.weight", ".bias"}, what
  `get_mm_adapter_state` keeps) and the `config.json` of `model.config.save_pretrained`
  (model_type llava_graph, mm_* fields).
- stage2/: a PEFT folder (`adapter_config.json` as peft 0.4/0.5 writes it, `adapter_model.bin`
  with keys `base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight`),
  `non_lora_trainables.bin` (keys `base_model.model.model.mm_projector.*` and, as when the
  graph tower was tuned, `base_model.model.model.graph_tower.molecule_node_model.*`) and
  `config.json`.
- ours/: the same tensors in this project's own layout (projector.safetensors,
  gin.safetensors, adapter/adapter_model.safetensors): the Rust test loads both and compares.
"""
import json
import os

import torch
from safetensors.torch import save_file

ROOT = "tests/data/official"
D, LAYERS, R, ALPHA = 64, 2, 4, 8.0
MODULES = ["q_proj", "v_proj", "down_proj"]
SHAPES = {"q_proj": (64, 64), "v_proj": (32, 64), "down_proj": (64, 128)}


def llava_config(tuned_graph_tower):
    with open("tests/data/tiny_model/config.json") as f:
        cfg = json.load(f)
    cfg.update({
        "architectures": ["LlavaGraphLlamaForCausalLM"],
        "model_type": "llava_graph",
        "mm_graph_tower": "moleculestm",
        "mm_hidden_size": 16,
        "mm_projector_type": "linear",
        "use_mm_proj": True,
        "mm_use_im_start_end": False,
        "mm_use_im_patch_token": False,
        "tune_mm_mlp_adapter": False,
        "freeze_mm_mlp_adapter": False,
        "tune_graph_tower": tuned_graph_tower,
    })
    return cfg


def main():
    g = torch.Generator().manual_seed(20231127)
    proj_w = torch.randn(D, 16, generator=g) * 0.2
    proj_b = torch.randn(D, generator=g) * 0.05
    lora = {}
    for i in range(LAYERS):
        for m in MODULES:
            out, inp = SHAPES[m]
            parent = "mlp" if m == "down_proj" else "self_attn"
            base = f"base_model.model.model.layers.{i}.{parent}.{m}"
            lora[f"{base}.lora_A.weight"] = torch.randn(R, inp, generator=g) * 0.1
            lora[f"{base}.lora_B.weight"] = torch.randn(out, R, generator=g) * 0.1
    gin = torch.load("tests/data/golden/gin_model.pth", map_location="cpu")
    gin = {k[len("molecule_node_model."):] if k.startswith("molecule_node_model.") else k: v
           for k, v in gin.items() if not k.startswith("graph_pred")}
    # A "tuned" graph tower: the MoleculeSTM weights nudged, so that using them is visible.
    tuned = {k: (v + 0.01 if v.is_floating_point() else v) for k, v in gin.items()}

    s1 = os.path.join(ROOT, "stage1")
    os.makedirs(s1, exist_ok=True)
    torch.save({"model.mm_projector.weight": proj_w, "model.mm_projector.bias": proj_b},
               os.path.join(s1, "mm_projector.bin"))
    with open(os.path.join(s1, "config.json"), "w") as f:
        json.dump(llava_config(False), f, indent=2)

    s2 = os.path.join(ROOT, "stage2")
    os.makedirs(s2, exist_ok=True)
    torch.save(lora, os.path.join(s2, "adapter_model.bin"))
    peft_cfg = {
        "auto_mapping": None, "base_model_name_or_path": "lmsys/vicuna-7b-v1.3", "bias": "none",
        "fan_in_fan_out": False, "inference_mode": True, "init_lora_weights": True,
        "layers_pattern": None, "layers_to_transform": None, "lora_alpha": ALPHA,
        "lora_dropout": 0.05, "modules_to_save": None, "peft_type": "LORA", "r": R,
        "revision": None, "target_modules": MODULES, "task_type": "CAUSAL_LM",
    }
    with open(os.path.join(s2, "adapter_config.json"), "w") as f:
        json.dump(peft_cfg, f, indent=2)
    non_lora = {"base_model.model.model.mm_projector.weight": proj_w,
                "base_model.model.model.mm_projector.bias": proj_b}
    non_lora.update({f"base_model.model.model.graph_tower.molecule_node_model.{k}": v
                     for k, v in tuned.items()})
    torch.save(non_lora, os.path.join(s2, "non_lora_trainables.bin"))
    with open(os.path.join(s2, "config.json"), "w") as f:
        json.dump(llava_config(True), f, indent=2)

    ours = os.path.join(ROOT, "ours")
    os.makedirs(os.path.join(ours, "adapter"), exist_ok=True)
    save_file({"mm_projector.weight": proj_w.contiguous(), "mm_projector.bias": proj_b.contiguous()},
              os.path.join(ours, "projector.safetensors"))
    save_file({k: v.contiguous().float() if v.is_floating_point() else v.contiguous()
               for k, v in tuned.items()}, os.path.join(ours, "gin.safetensors"))
    save_file({k: v.contiguous() for k, v in lora.items()},
              os.path.join(ours, "adapter", "adapter_model.safetensors"))
    with open(os.path.join(ours, "adapter", "adapter_config.json"), "w") as f:
        json.dump(peft_cfg, f, indent=2)
    print("wrote", ROOT)


if __name__ == "__main__":
    main()
