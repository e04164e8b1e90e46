"""ChEBI-20 text metrics: our `instructmol eval` against the reference Python stack
(tokenizers BertWordPiece + nltk corpus_bleu/meteor_score + rouge-score), same machine.

  bash scripts/setup_wordnet.sh
  cargo build --release
  PY_TORCH scripts/bench/eval_metrics.py [--bin target/release/instructmol] [--data /work/shared/data]

PY_TORCH: a python with nltk, rouge-score, tokenizers (scripts/golden/README.md). The
predictions are the 3,300 ChEBI-20 test descriptions with every fourth word dropped.
Prints wall-clock seconds of both and checks that the metrics agree.
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "instructmol"))
    ap.add_argument("--data", default=os.environ.get("INSTRUCTMOL_DATA", "/work/shared/data"))
    args = ap.parse_args()

    with open(os.path.join(args.data, "chebi20", "test.txt"), encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    preds = []
    for r in rows:
        words = r["description"].split()
        pred = " ".join(w for i, w in enumerate(words) if i % 4 != 3)
        preds.append({"id": r["CID"], "prediction": pred, "reference": r["description"]})
    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "chebi20.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for p in preds:
            f.write(json.dumps(p) + "\n")

    t0 = time.perf_counter()
    out = subprocess.run([args.bin, "eval", "--task", "chebi20", "--predictions", path],
                         capture_output=True, text=True, check=True)
    ours_s = time.perf_counter() - t0
    ours = json.loads(out.stdout)["metrics"]

    t0 = time.perf_counter()
    import nltk
    import numpy as np

    os.makedirs(os.path.join(tmp, "corpora"))
    os.symlink(os.path.join(ROOT, "assets", "wordnet"), os.path.join(tmp, "corpora", "wordnet"))
    nltk.data.path.insert(0, tmp)
    nltk.data.path.append(os.path.join(ROOT, "assets", "wordnet"))
    from nltk.translate.bleu_score import corpus_bleu
    from nltk.translate.meteor_score import meteor_score
    from rouge_score import rouge_scorer
    from tokenizers import BertWordPieceTokenizer

    tok = BertWordPieceTokenizer(os.path.join(ROOT, "assets", "scibert_scivocab_uncased_vocab.txt"),
                                 lowercase=True)
    tok.enable_truncation(max_length=512)
    drop = {"[PAD]", "[CLS]", "[SEP]"}
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"])
    hyps, refs, met, r1, r2, rl = [], [], [], [], [], []
    for p in preds:
        h = [t for t in tok.encode(p["prediction"], add_special_tokens=False).tokens if t not in drop]
        g = [t for t in tok.encode(p["reference"], add_special_tokens=False).tokens if t not in drop]
        hyps.append(h)
        refs.append([g])
        met.append(meteor_score([g], h))
        s = scorer.score(p["reference"], p["prediction"])
        r1.append(s["rouge1"].fmeasure)
        r2.append(s["rouge2"].fmeasure)
        rl.append(s["rougeL"].fmeasure)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = {
            "bleu2": corpus_bleu(refs, hyps, weights=(0.5, 0.5)),
            "bleu4": corpus_bleu(refs, hyps),
            "meteor": float(np.mean(met)),
            "rouge1": float(np.mean(r1)),
            "rouge2": float(np.mean(r2)),
            "rougeL": float(np.mean(rl)),
        }
    py_s = time.perf_counter() - t0

    print(f"rows: {len(preds)}")
    print(f"instructmol eval: {ours_s:.2f} s   python reference: {py_s:.2f} s   speed-up x{py_s / ours_s:.1f}")
    worst = max(abs(ours[k] - v) for k, v in ref.items())
    for k, v in ref.items():
        print(f"  {k:7s} ours {ours[k]:.6f}  reference {v:.6f}")
    print(f"largest difference: {worst:.2e}")
    sys.exit(0 if worst < 1e-4 else 1)


if __name__ == "__main__":
    main()
