#!/usr/bin/env python3
"""One LoRA training step on SmolLM2-135M's shapes: PyTorch + peft vs `instructmol bench train`.

    python scripts/bench/lora_step.py [--batch 4] [--seq 128] [--rank 64] [--steps 5]
                                      [--threads 2] [--rust target/release/instructmol]
                                      [--preset smollm2-135m|vicuna-7b|tiny]
                                      [--device cpu|cuda] [--dtype f32|bf16|f16]

PyTorch side: LlamaForCausalLM built from SmolLM2-135M's config (d 576, ffn 1536, 30 blocks,
9/3 heads, vocab 49152, tied, theta 1e5; or `--preset vicuna-7b`: d 4096, ffn 11008, 32 blocks,
32/32 heads, vocab 32000, untied, theta 1e4, eps 1e-6) with random weights made on `--device`
in `--dtype` (a bf16/f16 base keeps peft's f32 adapters, as ours does; on a GPU each step
ends with torch.cuda.synchronize() and the peak is torch.cuda.max_memory_allocated), peft LoRA (r 64, alpha 16,
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


PRESETS = {
    "smollm2-135m": dict(
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
    ),
    "vicuna-7b": dict(
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        vocab_size=32000,
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        max_position_embeddings=2048,
    ),
    "tiny": dict(
        hidden_size=64,
        intermediate_size=160,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=512,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=True,
    ),
}
DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def torch_side(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    cfg = LlamaConfig(**PRESETS[args.preset])
    # Made on the device in its dtype (a 7B model never exists in f32 on the host).
    torch.set_default_dtype(DTYPES[args.dtype])
    with device:
        model = LlamaForCausalLM(cfg)
    torch.set_default_dtype(torch.float32)
    lcfg = LoraConfig(
        r=args.rank,
        lora_alpha=16,
        lora_dropout=0.0,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        bias="none",
        task_type="CAUSAL_LM",
    )
    # peft's default autocast_adapter_dtype=True keeps the adapters in f32 on a bf16/f16 base.
    pm = get_peft_model(model, lcfg)
    pm.train()
    params = [p for p in pm.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    times = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for step in range(args.steps + 1):
        ids = torch.randint(0, cfg.vocab_size, (args.batch, args.seq), device=device)
        sync(device)
        t0 = time.perf_counter()
        out = pm(input_ids=ids, labels=ids)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(device)
        dt = time.perf_counter() - t0
        print(f"torch step {step}: {dt:.3f} s, loss {out.loss.item():.4f}", flush=True)
        if step > 0:
            times.append(dt)
    mean = sum(times) / len(times)
    res = {
        "side": "pytorch",
        "torch": torch.__version__,
        "preset": args.preset,
        "device": args.device,
        "dtype": args.dtype,
        "batch": args.batch,
        "seq": args.seq,
        "attn_implementation": getattr(model.config, "_attn_implementation", None),
        "threads": torch.get_num_threads(),
        "step_s_mean": mean,
        "step_s_min": min(times),
        "tokens_per_s": args.batch * args.seq / mean,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "lora_params": sum(p.numel() for p in params),
        "lora_dtype": str(params[0].dtype),
    }
    if device.type == "cuda":
        res["gpu"] = torch.cuda.get_device_name(device)
        res["max_memory_allocated_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return res


def rust_side(args):
    cmd = [
        args.rust, "bench", "train", "--preset", args.preset,
        "--batch", str(args.batch), "--seq", str(args.seq), "--rank", str(args.rank),
        "--steps", str(args.steps), "--threads", str(args.threads),
        "--device", args.device, "--dtype", args.dtype,
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
    ap.add_argument("--preset", default="smollm2-135m", choices=sorted(PRESETS))
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--dtype", default="f32", choices=sorted(DTYPES))
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
