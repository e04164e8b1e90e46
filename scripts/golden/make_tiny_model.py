"""Make tests/data/tiny_model/: a tiny random LLaMA in Hugging Face layout for training tests.

A byte-level BPE tokenizer (vocab 512, SmolLM2's special tokens and chat template, trained on
ChEBI-20 descriptions) and a 2-block LlamaForCausalLM with seeded random weights. Deterministic.
Venv: /work/wt/model/.venv-torch style (torch, transformers, tokenizers, gguf); run from the repo root:
    python scripts/golden/make_tiny_model.py [--data ../shared/data] [--gguf models/SmolLM2-135M-Instruct.Q4_1.gguf]
"""
import argparse, csv, json, os

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
from transformers import LlamaConfig, LlamaForCausalLM

ap = argparse.ArgumentParser()
ap.add_argument("--data", default="../shared/data")
ap.add_argument("--gguf", default="models/SmolLM2-135M-Instruct.Q4_1.gguf")
ap.add_argument("--out", default="tests/data/tiny_model")
args = ap.parse_args()
os.makedirs(args.out, exist_ok=True)

texts = []
with open(os.path.join(args.data, "chebi20/validation.txt"), newline="") as f:
    for row in csv.DictReader(f, delimiter="\t"):
        texts.append(row["description"])

special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.Sequence([
    pre_tokenizers.Digits(individual_digits=True),
    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
])
tok.decoder = decoders.ByteLevel()
trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=special, show_progress=False,
                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
tok.train_from_iterator(texts, trainer=trainer)
tok.save(os.path.join(args.out, "tokenizer.json"))

# SmolLM2's chat template, read from the embedded default model's metadata.
from gguf import GGUFReader
reader = GGUFReader(args.gguf)
field = reader.fields["tokenizer.chat_template"]
template = bytes(field.parts[field.data[0]]).decode("utf-8")
json.dump({
    "bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "pad_token": "<|im_end|>",
    "unk_token": "<|endoftext|>", "chat_template": template, "model_max_length": 2048,
    "tokenizer_class": "GPT2Tokenizer", "add_prefix_space": False,
}, open(os.path.join(args.out, "tokenizer_config.json"), "w"), indent=1)

torch.manual_seed(0)
cfg = LlamaConfig(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5,
                  rope_theta=10000.0, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2,
                  pad_token_id=2, max_position_embeddings=2048)
model = LlamaForCausalLM(cfg).eval()
model.save_pretrained(args.out, safe_serialization=True)
for extra in ["generation_config.json"]:
    p = os.path.join(args.out, extra)
    if os.path.exists(p):
        os.remove(p)
print("wrote", sorted(os.listdir(args.out)))
