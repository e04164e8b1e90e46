#!/usr/bin/env python3
"""GIN forward throughput: plain PyTorch vs our candle encoder, same machine, one run.

    python3 scripts/bench/gin.py [--batch 64] [--seconds 10] [--threads N]

MoleculeSTM's size (hidden 300, 5 layers) with random weights, written once as a
MoleculeSTM-style .pth that both sides load. Graphs: the 1,200 HIV molecules of
tests/data/sample.tsv as RDKit featurized them (tests/data/golden/features.jsonl), batched
64 at a time; each timed step assembles a batch and runs the eval-mode forward pass (PyTorch
under no_grad). Runs in .venv-torch (created by scripts/golden/torch_gin.py on first use);
builds the Rust side with `cargo build --release --example bench_gin`.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden"))
import torch_gin  # noqa: E402

torch_gin.ensure_torch_venv()

import torch  # noqa: E402


def torch_rate(gnn, chunks, seconds):
    with torch.no_grad():
        first = float(gnn(*torch_gin.collate(chunks[0])).sum())
        start = time.perf_counter()
        done = 0
        while time.perf_counter() - start < seconds:
            for chunk in chunks:
                gnn(*torch_gin.collate(chunk))
                done += len(chunk)
        elapsed = time.perf_counter() - start
    return done / elapsed, first


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    feats = os.path.join(torch_gin.ROOT, "tests", "data", "golden", "features.jsonl")
    graphs = torch_gin.load_feature_rows(feats, source="hiv")
    chunks = [graphs[i : i + args.batch] for i in range(0, len(graphs), args.batch)]
    chunks = [c for c in chunks if len(c) == args.batch]
    model = torch_gin.make_model(300, seed=3)

    with tempfile.TemporaryDirectory() as tmp:
        pth = os.path.join(tmp, "gin300.pth")
        torch.save(model.state_dict(), pth)
        gjson = os.path.join(tmp, "graphs.json")
        with open(gjson, "w") as f:
            json.dump([{k: g[k] for k in ("node_feat", "edge_index", "edge_feat")} for g in graphs], f)

        subprocess.check_call(
            ["cargo", "build", "--quiet", "--release", "--example", "bench_gin"], cwd=torch_gin.ROOT
        )
        theirs, first_torch = torch_rate(model.molecule_node_model, chunks, args.seconds)
        env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
        exe = os.path.join(torch_gin.ROOT, "target", "release", "examples", "bench_gin")
        line = subprocess.check_output(
            [exe, pth, gjson, str(args.batch), str(args.seconds)], env=env, text=True
        )
        ours = json.loads(line)

    n_nodes = sum(len(g["node_feat"]) for c in chunks for g in c)
    print(f"graphs: {len(chunks) * args.batch} HIV molecules ({n_nodes} atoms), batch {args.batch}, "
          f"hidden 300, 5 layers, {args.threads} threads, torch {torch.__version__}")
    print(f"first-batch embedding sum: torch {first_torch:.4f}, ours {ours['first_batch_sum']:.4f}")
    print(f"PyTorch : {theirs:10.1f} graphs/s")
    print(f"ours    : {ours['graphs_per_s']:10.1f} graphs/s")
    print(f"ratio ours/PyTorch throughput: {ours['graphs_per_s'] / theirs:.2f}x")


if __name__ == "__main__":
    main()
