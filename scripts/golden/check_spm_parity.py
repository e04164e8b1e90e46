"""Whole-corpus parity of `instructmol tokenize` with sentencepiece (and transformers, llama.cpp).

Not a golden maker: it runs the release binary on every ChEBI-20 description and SMILES of the
shared data folder (test + validation, 13,202 strings) and on llama.cpp's test cases, and counts
the strings whose ids (BOS first) and decoded text equal the references':
  - the `sentencepiece` library on tests/data/llama_spm/tokenizer.model;
  - transformers' LlamaTokenizer from that directory (slow in 4.31: the LLaVA/InstructMol
    reference; in 5.x the tokenizers-based one);
  - llama.cpp's ggml-vocab-llama-spm.gguf.out ids, with the GGUF itself as --model (--llamacpp).
Run in the venv of llama_spm_golden.sh after `cargo build --release`:
    target/venv-spm/bin/python scripts/golden/check_spm_parity.py [--data ../shared/data] [--llamacpp DIR]
"""

import argparse
import csv
import json
import os
import subprocess

import sentencepiece as spm

ap = argparse.ArgumentParser()
ap.add_argument("--data", default="../shared/data")
ap.add_argument("--bin", default=os.environ.get("CARGO_TARGET_DIR", "target") + "/release/instructmol")
ap.add_argument("--llamacpp", help="an unpacked llama.cpp tree (models/ggml-vocab-llama-spm.gguf{,.inp,.out})")
ap.add_argument("--no-transformers", action="store_true")
args = ap.parse_args()
MODEL = "tests/data/llama_spm"


def tokenize(model, lines, decode=False):
    inp = "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines)
    cmd = [args.bin, "tokenize", "--model", model] + (["--decode"] if decode else [])
    out = subprocess.run(cmd, input=inp.encode(), capture_output=True, check=True).stdout.decode()
    return [json.loads(l) for l in out.splitlines()]


texts = []
for split in ["test", "validation"]:
    with open(os.path.join(args.data, f"chebi20/{split}.txt"), newline="") as f:
        for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            texts += [row["description"], row["SMILES"]]

sp = spm.SentencePieceProcessor(model_file=os.path.join(MODEL, "tokenizer.model"))
ours = tokenize(MODEL, [{"text": t} for t in texts])
want = [[1] + sp.encode(t) for t in texts]
same = sum(o["ids"] == w for o, w in zip(ours, want))
print(f"ids equal to sentencepiece: {same}/{len(texts)} ChEBI-20 descriptions and SMILES")
dec = tokenize(MODEL, [{"ids": w} for w in want], decode=True)
same_dec = sum(d["text"] == sp.decode(w[1:]) for d, w in zip(dec, want))
print(f"decoded text equal to sentencepiece's decode: {same_dec}/{len(texts)}")

if not args.no_transformers:
    import transformers
    from transformers import LlamaTokenizer

    hf = LlamaTokenizer.from_pretrained(MODEL)
    same_hf = sum(o["ids"] == hf.encode(t) for o, t in zip(ours, texts))
    print(f"ids equal to transformers {transformers.__version__} {type(hf).__name__}: {same_hf}/{len(texts)}")

if args.llamacpp:
    base = os.path.join(args.llamacpp, "models/ggml-vocab-llama-spm.gguf")
    cases = open(base + ".inp", encoding="utf-8").read().split("\n__ggml_vocab_test__\n")[:-1]
    outs = open(base + ".out", encoding="utf-8").read().split("\n")[: len(cases)]
    got = tokenize(base, [{"text": t} for t in cases])
    ok = sum(g["ids"] == [1] + [int(x) for x in o.split()] for g, o in zip(got, outs))
    print(f"llama.cpp cases, GGUF vocabulary as --model: {ok}/{len(cases)} equal to the .out ids (BOS first)")
