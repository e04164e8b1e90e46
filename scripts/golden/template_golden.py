"""ChatML golden: SmolLM2's own chat template (Hugging Face `apply_chat_template`) on the tiny
byte-level tokenizer of tests/data/tiny_model, for text-only conversations taken from the
ChEBI-20 cut. For each conversation: the token ids of the full chat, the ids of the generation
prompt of its first question, and the supervised positions (tokens whose bytes overlap an
assistant answer or the `<|im_end|>` closing it, found from the fast tokenizer's offsets).

Run from the crate root with the torch venv (transformers + tokenizers):
    /work/wt/model/.venv-torch/bin/python scripts/golden/template_golden.py
Output: tests/data/golden/chatml_template.json
"""
import json

from transformers import AutoTokenizer

tok = AutoTokenizer.from_pretrained("tests/data/tiny_model")
rows = [l.rstrip("\n").split("\t") for l in open("tests/data/datasets/chebi20_test.txt")][1:]
questions = ["Describe this molecule.", "What can you tell me about this molecule?"]
cases = []
for i, (cid, smiles, text) in enumerate(rows):
    msgs = [{"role": "user", "content": questions[i % 2]}, {"role": "assistant", "content": text}]
    if i % 3 == 2:
        msgs += [{"role": "user", "content": "Is it an acid?"}, {"role": "assistant", "content": "Yes"}]
    chat = tok.apply_chat_template(msgs, tokenize=False)
    enc = tok(chat, add_special_tokens=False, return_offsets_mapping=True)
    spans, pos = [], 0
    for m in msgs:
        start = chat.index(m["content"], pos)
        pos = start + len(m["content"])
        if m["role"] == "assistant":
            spans.append((start, pos + len("<|im_end|>")))
    sup = [k for k, (s, e) in enumerate(enc["offset_mapping"])
           if e > s and any(s < b and e > a for a, b in spans)]
    prompt = tok.apply_chat_template(msgs[:1], tokenize=False, add_generation_prompt=True)
    cases.append({
        "turns": [[{"user": "human", "assistant": "gpt"}[m["role"]], m["content"]] for m in msgs],
        "ids": enc["input_ids"],
        "supervised": sup,
        "prompt_ids": tok(prompt, add_special_tokens=False)["input_ids"],
    })
with open("tests/data/golden/chatml_template.json", "w") as f:
    json.dump({"cases": cases}, f)
    f.write("\n")
