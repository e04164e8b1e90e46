"""Tokenizer golden: transformers' tokenizer for the SmolLM2 GGUF -> tests/data/golden/tokenizer_smollm2.json.

Ids for the first 1,000 ChEBI-20 test descriptions plus tricky strings (unicode, digits, whitespace
runs, special tokens), and chat templates rendered by `apply_chat_template`.
Venv: /work/wt/model/.venv-torch (transformers 5.23 + gguf). Run from the repo root:
    python scripts/golden/tokenizer_golden.py [--data ../shared/data] [--gguf models/SmolLM2-135M-Instruct.Q4_1.gguf]
"""
import argparse, csv, json, os

from transformers import AutoTokenizer

ap = argparse.ArgumentParser()
ap.add_argument("--data", default="../shared/data")
ap.add_argument("--gguf", default="models/SmolLM2-135M-Instruct.Q4_1.gguf")
ap.add_argument("--out", default="tests/data/golden/tokenizer_smollm2.json")
args = ap.parse_args()

tok = AutoTokenizer.from_pretrained(os.path.dirname(args.gguf) or ".", gguf_file=os.path.basename(args.gguf))

texts = []
with open(os.path.join(args.data, "chebi20/test.txt"), newline="") as f:
    for row in csv.DictReader(f, delimiter="\t"):
        texts.append(row["description"])
        if len(texts) == 1000:
            break

tricky = [
    "", " ", "  leading and trailing  ", "tabs\tand\nnewlines\r\n\n\n  end",
    "12345678901234567890 and 3.14159e-10, 2,3-dimethyl-1H-indole",
    "C1=CC=C(C=C1)C(=O)O [Na+].[Cl-] CC(C)(C)OC(=O)N[C@@H](Cc1ccccc1)C(=O)O",
    "Unicode: café naïve Ω≈ç√∫ 漢字かな 한국어 emoji 🧪🧬😀 αβγ-δ",
    "combining e\u0301 and zero\u200bwidth, nbsp\u00a0here",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>text after<|endoftext|>",
    "<|im_start|>not closed <|im_end",
    "I'm you're they'll we've she'd it's DON'T",
    "                                                 many spaces",
    "!!!???...,,,;;;:::---___===+++",
    "\u0000\u0001\u007f control bytes",
]

def render(messages, add_generation_prompt):
    return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

conversations = [
    ([{"role": "user", "content": "What is aspirin?"}], True),
    ([{"role": "system", "content": "You are a chemist."},
      {"role": "user", "content": "Describe C1=CC=CC=C1."},
      {"role": "assistant", "content": "Benzene."},
      {"role": "user", "content": "And its boiling point?"}], True),
    ([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}], False),
]

out = {
    "source": os.path.basename(args.gguf),
    "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id,
    "vocab_size": len(tok),
    "cases": [{"text": t, "ids": tok.encode(t, add_special_tokens=False)} for t in texts + tricky],
    "chat": [{"messages": m, "add_generation_prompt": g, "rendered": render(m, g)} for m, g in conversations],
}
with open(args.out, "w") as f:
    json.dump(out, f, ensure_ascii=False, separators=(",", ":"))
    f.write("\n")
print("wrote", args.out, os.path.getsize(args.out), "bytes")
