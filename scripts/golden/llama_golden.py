"""Goldens for the LLaMA decoder and LoRA (tests/model_llama.rs).

Builds two tiny random LlamaForCausalLM models (one with tied embeddings and rope theta 10000,
one untied with theta 500000 and GQA 4:1), saves each in Hugging Face layout under
tests/data/golden/llama_<name>/ (config.json + model.safetensors), attaches a peft LoRA
(r=8, alpha=16, all seven modules, dropout 0, init_lora_weights=False so B is random), saves
that initial adapter in PEFT format (adapter/), and runs one training step on a fixed batch of
two right-padded sequences fed as inputs_embeds (token embeddings with a few rows from a random
"projector" Linear). golden.safetensors holds the inputs, logits, loss, the gradients of
inputs_embeds and of every LoRA tensor, and the LoRA tensors after one AdamW step
(lr 1e-3, weight decay 0.01).

Run: /work/wt/model/.venv-torch/bin/python scripts/golden/llama_golden.py
"""

import json
import os
import shutil

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "golden")

MODELS = {
    "tied": dict(
        hidden_size=48,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=256,
        rope_theta=10000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
    ),
    "untied": dict(
        hidden_size=32,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=1,
        vocab_size=200,
        rope_theta=500000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
    ),
}
SEQ = 12
LENGTHS = [12, 9]  # row 1 is right-padded
GRAPH_ROWS = [1, 2, 3]  # positions filled by the projector
MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def build(name, spec, seed):
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        architectures=["LlamaForCausalLM"],
        max_position_embeddings=64,
        bos_token_id=1,
        eos_token_id=2,
        attn_implementation="eager",
        **spec,
    )
    model = LlamaForCausalLM(cfg).float().eval()
    # Non-trivial norm gains, so that norm weights are really exercised.
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "norm" in n:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
    out = os.path.join(ROOT, f"llama_{name}")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    model.save_pretrained(out, safe_serialization=True)
    # Keep config.json explicit and independent of the transformers version's spelling.
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(
            dict(
                architectures=["LlamaForCausalLM"],
                model_type="llama",
                hidden_act="silu",
                max_position_embeddings=64,
                bos_token_id=1,
                eos_token_id=2,
                **spec,
            ),
            f,
            indent=1,
        )
    for extra in ["generation_config.json"]:
        p = os.path.join(out, extra)
        if os.path.exists(p):
            os.remove(p)
    return model, out


def step(name, model, out, seed):
    torch.manual_seed(seed + 1)
    lcfg = LoraConfig(
        r=8,
        lora_alpha=16,
        lora_dropout=0.0,
        target_modules=MODULES,
        bias="none",
        task_type="CAUSAL_LM",
        init_lora_weights=False,
    )
    pm = get_peft_model(model, lcfg)
    pm.save_pretrained(os.path.join(out, "adapter"))
    os.remove(os.path.join(out, "adapter", "README.md"))
    d = model.config.hidden_size
    v = model.config.vocab_size
    ids = torch.randint(3, v, (2, SEQ))
    mask = torch.zeros(2, SEQ, dtype=torch.long)
    for r, n in enumerate(LENGTHS):
        mask[r, :n] = 1
    labels = ids.clone()
    labels[:, :4] = -100
    labels[mask == 0] = -100
    proj = torch.nn.Linear(10, d)
    graph = torch.randn(2, len(GRAPH_ROWS), 10)
    with torch.no_grad():
        emb = pm.get_input_embeddings()(ids)
        g = proj(graph)
        emb[:, GRAPH_ROWS, :] = g
    inputs_embeds = emb.detach().clone().requires_grad_(True)
    pm.train()
    res = pm(inputs_embeds=inputs_embeds, attention_mask=mask, labels=labels)
    res.loss.backward()
    tensors = {
        "inputs_embeds": inputs_embeds.detach().clone(),
        "attention_mask": mask.float(),
        "labels": labels.clone(),
        "logits": res.logits.detach().clone(),
        "loss": res.loss.detach().reshape(1).clone(),
        "grad.inputs_embeds": inputs_embeds.grad.detach().clone(),
    }
    lora = {n: p for n, p in pm.named_parameters() if p.requires_grad}
    for n, p in lora.items():
        key = n.replace(".default", "")
        tensors["grad." + key] = p.grad.detach().clone()
    opt = torch.optim.AdamW(list(lora.values()), lr=1e-3, weight_decay=0.01)
    opt.step()
    for n, p in lora.items():
        tensors["after." + n.replace(".default", "")] = p.detach().clone()
    save_file({k: t.contiguous() for k, t in tensors.items()}, os.path.join(out, "golden.safetensors"))
    print(name, "loss", float(res.loss), "lora tensors", len(lora))


def main():
    for i, (name, spec) in enumerate(MODELS.items()):
        model, out = build(name, spec, 1234 + i)
        step(name, model, out, 1234 + i)


if __name__ == "__main__":
    main()
