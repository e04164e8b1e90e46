"""SmolLM2 golden: transformers loading the SmolLM2 GGUF (dequantized, f32) -> tests/data/golden/smollm2_logits.json.

For three raw prompts: the prompt ids, the top-50 last-position logits and the last-position
logits at every 97th vocabulary id; for one chat-templated prompt, the greedy 32-token
continuation of `generate(do_sample=False)`.
Venv: /work/wt/model/.venv-torch (torch, transformers 5.23, gguf). Run from the repo root:
    python scripts/golden/smollm2_golden.py [--gguf models/SmolLM2-135M-Instruct.Q4_1.gguf]
"""
import argparse, json, os

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ap = argparse.ArgumentParser()
ap.add_argument("--gguf", default="models/SmolLM2-135M-Instruct.Q4_1.gguf")
ap.add_argument("--out", default="tests/data/golden/smollm2_logits.json")
args = ap.parse_args()
torch.set_num_threads(2)
d, f = os.path.dirname(args.gguf) or ".", os.path.basename(args.gguf)
tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32).eval()

prompts = [
    "The molecule is a steroid ester that is",
    "Aspirin, also known as acetylsalicylic acid, is a medication used to",
    "C1=CC=C(C=C1)C(=O)O is the SMILES of benzoic acid. Its molecular weight is",
]
STRIDE = 97
cases = []
with torch.no_grad():
    for p in prompts:
        ids = tok.encode(p, add_special_tokens=False)
        logits = model(torch.tensor([ids])).logits[0, -1].double()
        top = torch.topk(logits, 50)
        cases.append({
            "prompt": p, "ids": ids,
            "top_ids": top.indices.tolist(), "top_values": [round(v, 6) for v in top.values.tolist()],
            "stride": STRIDE, "strided_values": [round(v, 6) for v in logits[::STRIDE].tolist()],
        })
    messages = [{"role": "user", "content": "What is the chemical formula of water? Answer briefly."}]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tok.encode(text, add_special_tokens=False)
    gen = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                         do_sample=False, max_new_tokens=32, pad_token_id=tok.pad_token_id)
    new = gen[0, len(ids):].tolist()

out = {
    "source": f, "dtype": "float32", "logits": cases,
    "greedy": {"messages": messages, "rendered": text, "prompt_ids": ids, "new_ids": new,
               "new_text": tok.decode(new, skip_special_tokens=True), "max_new_tokens": 32},
}
with open(args.out, "w") as fh:
    json.dump(out, fh, ensure_ascii=False, indent=None, separators=(",", ":"))
    fh.write("\n")
print("wrote", args.out, os.path.getsize(args.out), "bytes;", repr(out["greedy"]["new_text"]))
