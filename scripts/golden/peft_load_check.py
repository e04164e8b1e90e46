"""Checks that peft loads an adapter directory written by `Llama::save_peft`.

    /work/wt/model/.venv-torch/bin/python scripts/golden/peft_load_check.py BASE_MODEL_DIR ADAPTER_DIR

Loads the Hugging Face model from BASE_MODEL_DIR, attaches the adapter with
`PeftModel.from_pretrained`, and verifies that every LoRA tensor peft holds equals the one in
adapter_model.safetensors and that r / alpha / target modules were read. Exit status 0 on success.
"""
import sys

import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import LlamaForCausalLM


def main(base_dir, adapter_dir):
    base = LlamaForCausalLM.from_pretrained(base_dir, torch_dtype=torch.float32)
    model = PeftModel.from_pretrained(base, adapter_dir)
    saved = load_file(f"{adapter_dir}/adapter_model.safetensors")
    held = {
        n.replace(".default", ""): p
        for n, p in model.named_parameters()
        if "lora_" in n
    }
    assert set(held) == set(saved), (sorted(set(held) ^ set(saved)))[:5]
    for k, t in saved.items():
        assert torch.equal(held[k].detach(), t), k
    cfg = model.peft_config["default"]
    print(f"ok: {len(saved)} tensors, r={cfg.r}, alpha={cfg.lora_alpha}, modules={sorted(cfg.target_modules)}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
