"""Benchmark: `instructmol generate` vs transformers `generate` on the same model (default: the
SmolLM2 GGUF, dequantized, f32), greedy, same prompts, same number of new tokens, same threads.

Two measurements:
  1. one long prompt: prompt tokens/s (prefill) and decode tokens/s (single-token steps);
  2. a file of short chat prompts at each batch size (default 1 and 8): generated tokens/s over
     the whole run (prefill included, model load excluded). Every row generates exactly --new
     tokens on both sides (transformers: min_new_tokens; ours: --ignore-eos), left padding.

Venv: /work/wt/model/.venv-torch (torch, transformers, gguf). Build first: cargo build --release.
Run from the repo root:
    python scripts/bench/generate.py [--bin target/release/instructmol] [--model models/SmolLM2-135M-Instruct.Q4_1.gguf]
        [--new 128] [--batches 1,8] [--prompts 8] [--threads 2]
Quick check of the script itself (seconds): --bin target/debug/instructmol --model tests/data/tiny_model --new 8
"""
import argparse, json, os, re, subprocess, tempfile, time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ap = argparse.ArgumentParser()
ap.add_argument("--bin", default="target/release/instructmol")
ap.add_argument("--model", "--gguf", dest="model", default="models/SmolLM2-135M-Instruct.Q4_1.gguf",
                help="a .gguf file or a Hugging Face model directory")
ap.add_argument("--new", type=int, default=128, help="tokens to generate per row")
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--batches", default="1,8", help="batch sizes of the prompt-file measurement")
ap.add_argument("--prompts", type=int, default=8, help="rows in the prompt file")
ap.add_argument("--skip-long", action="store_true", help="skip the single long-prompt measurement")
args = ap.parse_args()
torch.set_num_threads(args.threads)
env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))

LONG = (
    "Here is a description of a molecule: The molecule is a steroid ester that is methyl (17E)-pregna-4,17-dien-21-oate "
    "substituted by oxo groups at positions 3 and 11. It is a 3-oxo-Delta(4) steroid, an 11-oxo steroid, a steroid ester "
    "and a methyl ester. It derives from a hydride of a pregnane. Explain, step by step and in detail, what each part of "
    "this description means for a chemistry student, and list ten related molecules with one sentence about each."
)
SHORT = [
    "What is caffeine?",
    "Explain what a covalent bond is.",
    "Describe the structure of benzene in a few sentences.",
    "Why is water a good solvent for salts?",
    "What does an enzyme do?",
    "Give three uses of ethanol.",
    "What is the difference between an acid and a base?",
    "How do vaccines train the immune system? Answer briefly.",
    "What is a polymer?",
    "Name the noble gases.",
    "What is aspirin used for?",
    "Explain oxidation in one paragraph.",
]

if args.model.endswith(".gguf"):
    d, f = os.path.dirname(args.model) or ".", os.path.basename(args.model)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32).eval()
else:
    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id


def chat_ids(text):
    rendered = tok.apply_chat_template([{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True)
    return tok.encode(rendered, add_special_tokens=False)


def ours(cmd):
    res = subprocess.run([args.bin, "generate", "--model", args.model, *cmd], capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise SystemExit(f"instructmol failed: {res.stderr}")
    return res


# 1. One long prompt: prefill and decode speed.
if not args.skip_long:
    ids = torch.tensor([chat_ids(LONG)])
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        model(ids[:, :8])  # warm-up
        t0 = time.perf_counter()
        model(ids, use_cache=True)
        t_prefill = time.perf_counter() - t0
        t0 = time.perf_counter()
        model.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=1, pad_token_id=pad_id)
        t_first = time.perf_counter() - t0  # prefill + first token, inside generate
        t0 = time.perf_counter()
        out = model.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=args.new,
                             min_new_tokens=args.new, pad_token_id=pad_id)
        t_gen = time.perf_counter() - t0
    n_new = out.shape[1] - ids.shape[1]
    pt_prompt = ids.shape[1] / t_prefill
    pt_decode = (n_new - 1) / max(t_gen - t_first, 1e-9)
    print(f"long prompt, transformers: prompt {ids.shape[1]} tokens {pt_prompt:.1f} tok/s; decode {n_new} tokens {pt_decode:.1f} tok/s")
    res = ours(["--prompt", LONG, "--max-new-tokens", str(args.new), "--temperature", "0", "--ignore-eos"])
    m = re.search(r"prompt (\d+) tokens in [\d.]+ s \(([\d.]+) tok/s\); generated (\d+) tokens, decode ([\d.]+) tok/s", res.stderr)
    if not m:
        raise SystemExit(f"cannot parse the timing line in: {res.stderr}")
    ours_prompt, ours_decode = float(m.group(2)), float(m.group(4))
    print(f"long prompt, instructmol:  prompt {m.group(1)} tokens {ours_prompt:.1f} tok/s; decode {m.group(3)} tokens {ours_decode:.1f} tok/s")
    print(f"long prompt, ratio ours/transformers (higher is better): prompt {ours_prompt / pt_prompt:.2f}x, decode {ours_decode / pt_decode:.2f}x")

# 2. A file of short prompts at each batch size.
prompts = [SHORT[i % len(SHORT)] for i in range(args.prompts)]
encoded = [chat_ids(p) for p in prompts]
with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "prompts.jsonl")
    with open(path, "w") as fh:
        for i, p in enumerate(prompts):
            fh.write(json.dumps({"id": i, "prompt": p}) + "\n")
    for b in [int(x) for x in args.batches.split(",")]:
        # transformers: left-padded batches, greedy, exactly --new tokens per row.
        with torch.inference_mode():
            model(torch.tensor([encoded[0][:8]]))  # warm-up
            total, t0 = 0, time.perf_counter()
            for s in range(0, len(encoded), b):
                chunk = encoded[s:s + b]
                width = max(len(e) for e in chunk)
                ids = torch.tensor([[pad_id] * (width - len(e)) + e for e in chunk])
                mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in chunk])
                out = model.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=args.new,
                                     min_new_tokens=args.new, pad_token_id=pad_id)
                total += (out.shape[1] - width) * len(chunk)
            t_pt = time.perf_counter() - t0
        pt_rate = total / t_pt
        res = ours(["--input", path, "--output", os.path.join(tmp, f"out{b}.jsonl"), "--batch-size", str(b),
                    "--max-new-tokens", str(args.new), "--temperature", "0", "--ignore-eos"])
        m = re.search(r"(\d+) rows in ([\d.]+) s, (\d+) tokens generated \(([\d.]+) tok/s\)", res.stderr)
        if not m:
            raise SystemExit(f"cannot parse the summary line in: {res.stderr}")
        our_rate = float(m.group(4))
        print(f"batch {b}: transformers {total} tokens in {t_pt:.2f} s = {pt_rate:.1f} tok/s; "
              f"instructmol {m.group(3)} tokens in {float(m.group(2)):.2f} s = {our_rate:.1f} tok/s; "
              f"ratio ours/transformers {our_rate / pt_rate:.2f}x")
