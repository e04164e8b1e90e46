"""A Vicuna-7B-shaped model with random bf16 weights, for load-time and peak-memory measurements.

Writes OUT/safetensors/ and OUT/bin/, each with the config.json of lmsys/vicuna-7b-v1.3 (32
layers, d 4096, ffn 11008, 32 heads, vocab 32000, untied), the sentencepiece tokenizer files
(tokenizer.model from tests/data/llama_spm, tokenizer_config.json, special_tokens_map.json; no
tokenizer.json) and the weights (6.74 B parameters, 13.5 GB per layout):
  safetensors/  model-0000k-of-00002.safetensors + model.safetensors.index.json
  bin/          pytorch_model-0000k-of-00002.bin + pytorch_model.bin.index.json  (torch.save, zip)
Shards are cut as transformers' save_pretrained(max_shard_size="10GB") does (state-dict order),
which gives lmsys' two files. Both layouts hold the same tensors.

Never committed, never needed by CI: it needs torch (~5 GB; e.g. a venv at /work/venv-torch
outside the repository), about 27 GB of disk and about 11 GB of memory.
    /work/venv-torch/bin/python scripts/make_vicuna7b_shaped.py OUT [--layers 32] [--layouts safetensors,bin]
Then: /usr/bin/time -v target/release/instructmol tokenize --model OUT/bin ... or any command
that loads the model (e.g. `generate --model OUT/safetensors --dtype bf16`).
"""

import argparse
import json
import os
import shutil

import torch
from safetensors.torch import save_file

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--layers", type=int, default=32, help="fewer layers for a smaller model of the same width")
ap.add_argument("--layouts", default="safetensors,bin")
ap.add_argument("--max-shard-gb", type=float, default=10.0)
args = ap.parse_args()

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CONFIG = {
    "_name_or_path": "vicuna-7b-v1.3",
    "architectures": ["LlamaForCausalLM"],
    "bos_token_id": 1,
    "eos_token_id": 2,
    "hidden_act": "silu",
    "hidden_size": 4096,
    "initializer_range": 0.02,
    "intermediate_size": 11008,
    "max_position_embeddings": 2048,
    "model_type": "llama",
    "num_attention_heads": 32,
    "num_hidden_layers": args.layers,
    "pad_token_id": 0,
    "rms_norm_eps": 1e-06,
    "tie_word_embeddings": False,
    "torch_dtype": "float16",
    "transformers_version": "4.28.1",
    "use_cache": True,
    "vocab_size": 32000,
}
D, F, V = CONFIG["hidden_size"], CONFIG["intermediate_size"], CONFIG["vocab_size"]
shapes = [("model.embed_tokens.weight", (V, D))]
for i in range(args.layers):
    p = f"model.layers.{i}"
    shapes += [
        (f"{p}.self_attn.q_proj.weight", (D, D)),
        (f"{p}.self_attn.k_proj.weight", (D, D)),
        (f"{p}.self_attn.v_proj.weight", (D, D)),
        (f"{p}.self_attn.o_proj.weight", (D, D)),
        (f"{p}.mlp.gate_proj.weight", (F, D)),
        (f"{p}.mlp.up_proj.weight", (F, D)),
        (f"{p}.mlp.down_proj.weight", (D, F)),
        (f"{p}.input_layernorm.weight", (D,)),
        (f"{p}.post_attention_layernorm.weight", (D,)),
    ]
shapes += [("model.norm.weight", (D,)), ("lm_head.weight", (V, D))]

nbytes = lambda shape: 2 * int(torch.Size(shape).numel())
limit = int(args.max_shard_gb * 1e9)
groups, size = [[]], 0
for name, shape in shapes:
    if groups[-1] and size + nbytes(shape) > limit:
        groups.append([])
        size = 0
    groups[-1].append((name, shape))
    size += nbytes(shape)
total = sum(nbytes(s) for _, s in shapes)
print(f"{sum(torch.Size(s).numel() for _, s in shapes) / 1e9:.2f} B parameters, {total / 1e9:.2f} GB in bf16, "
      f"{len(groups)} shards")

layouts = args.layouts.split(",")
for layout in layouts:
    d = os.path.join(args.out, layout)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2)
    for name in ["tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"]:
        shutil.copy(os.path.join(REPO, "tests/data/llama_spm", name), os.path.join(d, name))

gen = torch.Generator().manual_seed(0)
maps = {layout: {} for layout in layouts}
for j, group in enumerate(groups):
    shard = {}
    for name, shape in group:
        if len(shape) == 1:
            shard[name] = torch.ones(shape, dtype=torch.bfloat16)
        else:
            shard[name] = torch.empty(shape, dtype=torch.bfloat16).normal_(0.0, 0.02, generator=gen)
    for layout in layouts:
        d = os.path.join(args.out, layout)
        if layout == "safetensors":
            file = f"model-{j + 1:05d}-of-{len(groups):05d}.safetensors"
            save_file(shard, os.path.join(d, file), metadata={"format": "pt"})
        else:
            file = f"pytorch_model-{j + 1:05d}-of-{len(groups):05d}.bin"
            torch.save(shard, os.path.join(d, file))
        maps[layout].update({name: file for name in shard})
        print(f"  {layout}/{file}: {len(shard)} tensors")
    del shard

for layout in layouts:
    index = "model.safetensors.index.json" if layout == "safetensors" else "pytorch_model.bin.index.json"
    with open(os.path.join(args.out, layout, index), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": maps[layout]}, f, indent=2)
print("done:", ", ".join(os.path.join(args.out, layout) for layout in layouts))
