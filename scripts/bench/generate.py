"""Benchmark: `instructmol generate` vs transformers `generate` on the SmolLM2 GGUF (dequantized, f32, 2 threads).

Reports prompt tokens/s (prefill) and decode tokens/s (single-token steps) for both, and the ratios.
Venv: /work/wt/model/.venv-torch (torch, transformers, gguf). Build first: cargo build --release. Run from the repo root:
    python scripts/bench/generate.py [--bin target/release/instructmol] [--gguf models/SmolLM2-135M-Instruct.Q4_1.gguf]
"""
import argparse, os, re, subprocess, time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ap = argparse.ArgumentParser()
ap.add_argument("--bin", default="target/release/instructmol")
ap.add_argument("--gguf", default="models/SmolLM2-135M-Instruct.Q4_1.gguf")
ap.add_argument("--new", type=int, default=128, help="tokens to generate")
ap.add_argument("--threads", type=int, default=2)
args = ap.parse_args()
torch.set_num_threads(args.threads)

prompt = (
    "Here is a description of a molecule: The molecule is a steroid ester that is methyl (17E)-pregna-4,17-dien-21-oate "
    "substituted by oxo groups at positions 3 and 11. It is a 3-oxo-Delta(4) steroid, an 11-oxo steroid, a steroid ester "
    "and a methyl ester. It derives from a hydride of a pregnane. Explain, step by step and in detail, what each part of "
    "this description means for a chemistry student, and list ten related molecules with one sentence about each."
)

d, f = os.path.dirname(args.gguf) or ".", os.path.basename(args.gguf)
tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32).eval()
text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
ids = torch.tensor([tok.encode(text, add_special_tokens=False)])
mask = torch.ones_like(ids)

with torch.inference_mode():
    model(ids[:, :8])  # warm-up
    t0 = time.perf_counter()
    model(ids, use_cache=True)
    t_prefill = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = model.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=args.new,
                         min_new_tokens=args.new, pad_token_id=tok.pad_token_id)
    t_gen = time.perf_counter() - t0
n_new = out.shape[1] - ids.shape[1]
pt_prompt = ids.shape[1] / t_prefill
pt_decode = (n_new - 1) / max(t_gen - t_prefill, 1e-9)
print(f"transformers: prompt {ids.shape[1]} tokens {pt_prompt:.1f} tok/s; decode {n_new} tokens {pt_decode:.1f} tok/s")

env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
res = subprocess.run([args.bin, "generate", "--model", args.gguf, "--prompt", prompt, "--max-new-tokens", str(args.new)],
                     capture_output=True, text=True, env=env)
if res.returncode != 0:
    raise SystemExit(f"instructmol failed: {res.stderr}")
m = re.search(r"prompt (\d+) tokens in [\d.]+ s \(([\d.]+) tok/s\); generated (\d+) tokens, decode ([\d.]+) tok/s", res.stderr)
if not m:
    raise SystemExit(f"cannot parse the timing line in: {res.stderr}")
ours_prompt, ours_decode = float(m.group(2)), float(m.group(4))
print(f"instructmol:  prompt {m.group(1)} tokens {ours_prompt:.1f} tok/s; decode {m.group(3)} tokens {ours_decode:.1f} tok/s")
print(f"ratio ours/transformers (higher is better): prompt {ours_prompt / pt_prompt:.2f}x, decode {ours_decode / pt_decode:.2f}x")
