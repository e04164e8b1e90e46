"""PyTorch `.bin` checkpoints of the tiny untied LLaMA, for tests/model_checkpoint.rs (issue 15).

Reads tests/data/golden/llama_untied/model.safetensors (made by llama_golden.py) and writes
tests/data/golden/llama_bin/:
  config.json                 copy of llama_untied/config.json (vocab 200)
  tokenizer.model             a 200-piece sentencepiece BPE model (<unk> <s> </s>, letters, words)
  tokenizer_config.json       Vicuna style (add_bos_token true)
  f32/pytorch_model.bin       torch.save of the state dict, float32      (single file)
  f16/pytorch_model.bin       the same in float16                        (single file)
  bf16/pytorch_model-0000k-of-00003.bin + pytorch_model.bin.index.json  bfloat16, three shards
                              split as transformers' save_pretrained does (in state-dict order,
                              a new shard when the next tensor would pass the size limit)
The tests load each and compare with the safetensors tensors cast to that dtype: exact equality.

torch.save writes the zip format (PyTorch >= 1.6), as transformers does for pytorch_model.bin.
Run: /work/venv-torch/bin/python scripts/golden/llama_bin_golden.py   (torch, safetensors,
sentencepiece + protobuf; e.g. pip install -r scripts/golden/requirements-torch.txt safetensors
sentencepiece protobuf)
"""

import json
import os
import shutil

import torch
from safetensors.torch import load_file
from sentencepiece import sentencepiece_model_pb2 as pb

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "golden")
SRC = os.path.join(ROOT, "llama_untied")
OUT = os.path.join(ROOT, "llama_bin")

# transformers' order: embeddings, the layers, the final norm, lm_head.
PARTS = [
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj", "input_layernorm", "post_attention_layernorm",
]

state = load_file(os.path.join(SRC, "model.safetensors"))
cfg = json.load(open(os.path.join(SRC, "config.json")))
order = ["model.embed_tokens.weight"]
for i in range(cfg["num_hidden_layers"]):
    order += [f"model.layers.{i}.{p}.weight" for p in PARTS]
order += ["model.norm.weight", "lm_head.weight"]
assert sorted(order) == sorted(state), set(order) ^ set(state)

shutil.rmtree(OUT, ignore_errors=True)
os.makedirs(OUT)
shutil.copy(os.path.join(SRC, "config.json"), os.path.join(OUT, "config.json"))


def save(sub, dtype, shards):
    d = os.path.join(OUT, sub)
    os.makedirs(d)
    sd = {k: state[k].to(dtype).contiguous() for k in order}
    if shards == 1:
        torch.save(sd, os.path.join(d, "pytorch_model.bin"))
        return
    total = sum(t.numel() * t.element_size() for t in sd.values())
    limit = total // shards + 1
    groups, size = [[]], 0
    for k in order:
        n = sd[k].numel() * sd[k].element_size()
        if groups[-1] and size + n > limit:
            groups.append([])
            size = 0
        groups[-1].append(k)
        size += n
    weight_map = {}
    for j, keys in enumerate(groups):
        name = f"pytorch_model-{j + 1:05d}-of-{len(groups):05d}.bin"
        torch.save({k: sd[k] for k in keys}, os.path.join(d, name))
        weight_map.update({k: name for k in keys})
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    with open(os.path.join(d, "pytorch_model.bin.index.json"), "w") as f:
        json.dump(index, f, indent=2, sort_keys=True)
        f.write("\n")


save("f32", torch.float32, 1)
save("f16", torch.float16, 1)
save("bf16", torch.bfloat16, 2)  # a third shard: lm_head does not fit the second

# A 200-piece sentencepiece BPE vocabulary (the model's vocab_size): specials, letters, words.
model = pb.ModelProto()
model.trainer_spec.model_type = pb.TrainerSpec.BPE
model.trainer_spec.vocab_size = cfg["vocab_size"]
model.normalizer_spec.name = "identity"
model.normalizer_spec.add_dummy_prefix = True
model.normalizer_spec.remove_extra_whitespaces = False
pieces = [("<unk>", 0.0, 2), ("<s>", 0.0, 3), ("</s>", 0.0, 3)]
letters = list("▁abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,()-=#[]@+")
words = ["▁t", "he", "▁the", "▁m", "ol", "ec", "ul", "▁mol", "ule", "▁molec", "▁molecule", "▁i", "s", "▁is",
         "▁a", "▁an", "ac", "id", "▁acid", "in", "▁in", "er", "on", "at", "es", "en", "ed", "▁c", "▁of", "▁o", "f"]
seen = set()
for w in words:
    if w not in seen and w not in letters:
        seen.add(w)
        pieces.append((w, -float(len(pieces)), 1))
for c in letters:
    pieces.append((c, -float(len(pieces)), 1))
n = 0
while len(pieces) < cfg["vocab_size"]:
    pieces.append((f"▁w{n}", -float(len(pieces)), 1))
    n += 1
for text, score, kind in pieces:
    p = model.pieces.add()
    p.piece, p.score, p.type = text, score, kind
with open(os.path.join(OUT, "tokenizer.model"), "wb") as f:
    f.write(model.SerializeToString())
with open(os.path.join(OUT, "tokenizer_config.json"), "w") as f:
    json.dump({"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>",
               "unk_token": "<unk>", "tokenizer_class": "LlamaTokenizer"}, f, indent=2)
    f.write("\n")
for root, _, files in sorted(os.walk(OUT)):
    for name in sorted(files):
        p = os.path.join(root, name)
        print(f"{os.path.relpath(p, OUT):55s} {os.path.getsize(p):8d} bytes")
