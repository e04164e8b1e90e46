#!/usr/bin/env python3
"""One LoRA training step on SmolLM2-135M's shapes: PyTorch + peft vs `instructmol bench train`.

    python scripts/bench/lora_step.py [--batch 4] [--seq 128] [--rank 64] [--steps 5]
                                      [--threads 2] [--rust target/release/instructmol]

PyTorch side: LlamaForCausalLM built from SmolLM2-135M's config (d 576, ffn 1536, 30 blocks,
9/3 heads, vocab 49152, tied, theta 1e5) with random weights, f32, peft LoRA (r 64, alpha 16,
dropout 0, all seven modules), gradient clipping at norm 1 and AdamW (lr 1e-4), as the trainer does, on random token ids with labels = ids; one
untimed warm-up step, then `--steps` timed steps; torch.set_num_threads(--threads).
Rust side (when --rust is given): the same step via `instructmol bench train`.
Prints one JSON line per side and the time ratio ours/PyTorch, with the load average.
Needs the torch venv (/work/wt/model/.venv-torch: torch, transformers, peft).
"""
import argparse
import json
import os
import resource
import subprocess
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM


def torch_side(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = LlamaConfig(
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        vocab_size=49152,
        rms_norm_eps=1e-5,
        rope_theta=100000.0,
        tie_word_embeddings=True,
        max_position_embeddings=8192,
    )
    model = LlamaForCausalLM(cfg).float()
    lcfg = LoraConfig(
        r=args.rank,
        lora_alpha=16,
        lora_dropout=0.0,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        bias="none",
        task_type="CAUSAL_LM",
    )
    pm = get_peft_model(model, lcfg)
    pm.train()
    params = [p for p in pm.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    times = []
    for step in range(args.steps + 1):
        ids = torch.randint(0, cfg.vocab_size, (args.batch, args.seq))
        t0 = time.perf_counter()
        out = pm(input_ids=ids, labels=ids)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        dt = time.perf_counter() - t0
        print(f"torch step {step}: {dt:.3f} s, loss {out.loss.item():.4f}", flush=True)
        if step > 0:
            times.append(dt)
    mean = sum(times) / len(times)
    return {
        "side": "pytorch",
        "threads": torch.get_num_threads(),
        "step_s_mean": mean,
        "step_s_min": min(times),
        "tokens_per_s": args.batch * args.seq / mean,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "lora_params": sum(p.numel() for p in params),
    }


def rust_side(args):
    cmd = [
        args.rust, "bench", "train", "--preset", "smollm2-135m",
        "--batch", str(args.batch), "--seq", str(args.seq), "--rank", str(args.rank),
        "--steps", str(args.steps), "--threads", str(args.threads),
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["side"] = "rust"
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--rank", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rust", default=None, help="path of the instructmol binary (release)")
    ap.add_argument("--skip-torch", action="store_true")
    args = ap.parse_args()
    results = {}
    if args.rust:
        results["rust"] = rust_side(args)
        print(json.dumps(results["rust"]), flush=True)
    if not args.skip_torch:
        results["pytorch"] = torch_side(args)
        print(json.dumps(results["pytorch"]), flush=True)
    if len(results) == 2:
        ratio = results["rust"]["step_s_mean"] / results["pytorch"]["step_s_mean"]
        print(json.dumps({"ratio_ours_over_pytorch": ratio, "loadavg": os.getloadavg()}))


if __name__ == "__main__":
    main()
