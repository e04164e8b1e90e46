#!/usr/bin/env python3
"""Paired comparison of two training runs' held-out losses, example by example.

Reads `eval_examples.jsonl` (id, loss, tokens) from two run directories, written by the
trainer's final evaluation, and prints one Markdown table row: the token-weighted loss of each
run, the mean per-example difference (B - A; positive means A is better), its 95% bootstrap
interval, how many examples A wins, and the two-sided sign-test p-value. Standard library only.

    scripts/ablation_compare.py runs/ablation/s12-graph runs/ablation/s12-zero
"""
import json
import math
import random
import sys
from pathlib import Path


def load(run):
    path = Path(run) / "eval_examples.jsonl"
    rows = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"{path}:{n}: not JSON ({e})")
            if r.get("tokens", 0) > 0 and r.get("loss") is not None:
                rows[r["id"]] = (float(r["loss"]), int(r["tokens"]))
    return rows


def sign_test(wins, losses):
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: ablation_compare.py RUN_A RUN_B")
    a, b = load(sys.argv[1]), load(sys.argv[2])
    ids = sorted(set(a) & set(b))
    if not ids:
        sys.exit("the two runs share no evaluated example id")
    if len(ids) != len(a) or len(ids) != len(b):
        print(f"warning: {len(a)} vs {len(b)} examples, {len(ids)} shared", file=sys.stderr)
    weighted = lambda r: sum(r[i][0] * r[i][1] for i in ids) / sum(r[i][1] for i in ids)
    diffs = [b[i][0] - a[i][0] for i in ids]
    mean = sum(diffs) / len(diffs)
    rng = random.Random(0)
    boots = sorted(
        sum(rng.choice(diffs) for _ in diffs) / len(diffs) for _ in range(10000)
    )
    lo, hi = boots[249], boots[9749]
    wins = sum(d > 0 for d in diffs)
    losses = sum(d < 0 for d in diffs)
    p = sign_test(wins, losses)
    name = lambda r: Path(r).name
    print(
        f"| {name(sys.argv[1])} vs {name(sys.argv[2])} | {weighted(a):.4f} | {weighted(b):.4f} "
        f"| {mean:+.4f} [{lo:+.4f}, {hi:+.4f}] | {wins}/{len(ids)} | {p:.2g} |"
    )


if __name__ == "__main__":
    main()
