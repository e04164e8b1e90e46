"""Decoding-penalty golden -> tests/data/golden/penalties.json.

`processor`: seeded random logits (vocab 64) with prompt ids and generated ids, penalized by
transformers' `RepetitionPenaltyLogitsProcessor` (over prompt + generated ids), then by the
OpenAI frequency/presence penalties over the generated ids as vLLM applies them in f32
(`logits -= frequency * counts; logits -= presence * (counts > 0)`).
`generate`: greedy `model.generate(..., repetition_penalty=...)` of tests/data/tiny_model
(transformers, f32) from a chat-templated prompt: the new ids, with and without the penalty.
`smollm2`: the same for the SmolLM2 GGUF (dequantized, f32), when models/ holds it.
Venv with torch + transformers 5.x (e.g. /work/venv-torch). Run from the repo root:
    python scripts/golden/penalties_golden.py
"""
import json
import os

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor

OUT = "tests/data/golden/penalties.json"
GGUF = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
VOCAB = 64
torch.manual_seed(0)
gen = torch.Generator().manual_seed(20240611)

processor = []
for rep, freq, pres in [
    (1.3, 0.0, 0.0),
    (0.7, 0.0, 0.0),
    (1.0, 0.5, 0.25),
    (1.2, -0.4, 1.5),
    (2.0, 2.0, -2.0),
]:
    logits = (torch.randn(VOCAB, generator=gen) * 3).float()
    prompt = torch.randint(0, VOCAB, (12,), generator=gen)
    generated = torch.randint(0, VOCAB, (9,), generator=gen)
    scores = logits.clone().unsqueeze(0)
    if rep != 1.0:
        ids = torch.cat([prompt, generated]).unsqueeze(0)
        scores = RepetitionPenaltyLogitsProcessor(rep)(ids, scores)
    scores = scores[0]
    counts = torch.bincount(generated, minlength=VOCAB)
    scores = scores - torch.tensor(freq, dtype=torch.float32) * counts.float()
    scores = scores - torch.tensor(pres, dtype=torch.float32) * (counts > 0).float()
    processor.append(
        {
            "repetition_penalty": rep,
            "frequency_penalty": freq,
            "presence_penalty": pres,
            "logits": logits.tolist(),
            "prompt_ids": prompt.tolist(),
            "generated_ids": generated.tolist(),
            "penalized": scores.tolist(),
        }
    )



def greedy(model, tok, question, rep, max_new_tokens):
    """Greedy new ids with and without the repetition penalty, from a chat-templated prompt."""
    text = tok.apply_chat_template(
        [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
    )
    ids = tok(text, add_special_tokens=False, return_tensors="pt").input_ids
    runs = {}
    for key, penalty in [("new_ids", rep), ("plain_new_ids", 1.0)]:
        with torch.no_grad():
            out = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                do_sample=False,
                repetition_penalty=penalty,
                max_new_tokens=max_new_tokens,
                pad_token_id=tok.pad_token_id,
            )
        runs[key] = out[0, ids.shape[1]:].tolist()
    return {"question": question, "repetition_penalty": rep, "prompt_ids": ids[0].tolist(), **runs}


tiny_dir = "tests/data/tiny_model"
tok = AutoTokenizer.from_pretrained(tiny_dir)
model = AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32).eval()
generate = [
    greedy(model, tok, "Describe the molecule.", 3.0, 24),
    greedy(model, tok, "What is water?", 10.0, 24),
]
smollm2 = []
if os.path.exists(GGUF):
    d, f = os.path.dirname(GGUF), os.path.basename(GGUF)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32).eval()
    smollm2.append(greedy(model, tok, "Describe caffeine in one paragraph.", 1.3, 40))
else:
    print(f"no {GGUF}: the SmolLM2 case is left out")

with open(OUT, "w") as f:
    json.dump({"processor": processor, "generate": generate, "smollm2": smollm2}, f)
    f.write("\n")
print(f"wrote {OUT}")
