"""Fixed prediction files and the reference implementations' metric values on them.

Writes, under tests/data/golden/:
  metrics_<task>.jsonl      one prediction per line: {"id", "prediction", "reference", ...}
                            (tasks: chebi20 bace bbbp hiv qm9 retrosynthesis forward reagent)
  metrics_expected.json     every metric of every task, as the reference code computes it
  metrics_wordnet/          the part of WordNet 3.0 the ChEBI-20 METEOR golden touches (index and
                            exception lines as in the full files, data lines cut after their
                            words), so the tests need no WordNet install

Reference code (InstructMol llava/eval, MolT5 evaluation):
  ChEBI-20   SciBERT uncased WordPiece (tokenizers' BertWordPiece = transformers 4's
             BertTokenizerFast), truncation 512, [PAD]/[CLS]/[SEP] dropped; nltk corpus_bleu
             (.5,.5) and (.25,)*4; nltk meteor_score per sample, averaged; rouge-score
             rouge1/rouge2/rougeL F-measure (no stemmer) on the raw strings, averaged.
  bace/...   answers parsed as MoleculeNet_classification.convert_label_to_int; sklearn
             roc_auc_score on the hard labels (invalid = -1) and on prob_yes.
  qm9        Python float() of the answer; non-numbers and non-finite values are counted as
             invalid and left out; sklearn mean_absolute_error per property.
  reactions  selfies.decoder -> RDKit MolFromSmiles -> MolToSmiles(isomericSmiles=False);
             invalid (or empty) predictions dropped; nltk corpus_bleu over SELFIES characters;
             Levenshtein.distance over canonical SMILES; exact = canonical SMILES equality
             (InChI equality, the reference's rule, is stored beside it for information).

Run (both venvs are described in scripts/golden/README.md):
  bash scripts/setup_wordnet.sh
  PY_TORCH scripts/golden/metrics_golden.py --chem-python PY_RDKIT
Deterministic: a rerun gives byte-identical files.
"""

import argparse
import csv
import gzip
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import warnings

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DATA = os.environ.get("INSTRUCTMOL_DATA", "/work/shared/data")
OUT = os.path.join(ROOT, "tests", "data", "golden")
VOCAB = os.path.join(ROOT, "assets", "scibert_scivocab_uncased_vocab.txt")
WORDNET = os.path.join(ROOT, "assets", "wordnet")
N = 300


# --------------------------------------------------------------------------- chem helper
# Runs in the RDKit + selfies venv: `python metrics_golden.py --chem-helper` with JSON on stdin.


def chem_helper():
    import selfies as sf
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    req = json.load(sys.stdin)

    def decode(s):
        try:
            return sf.decoder(s)
        except Exception:
            return None

    def canon(smi):
        if smi is None:
            return None
        m = Chem.MolFromSmiles(smi)
        if m is None:
            return None
        return Chem.MolToSmiles(m, isomericSmiles=False, canonical=True)

    if req["op"] == "encode":
        out = []
        for i, smi in enumerate(req["smiles"]):
            m = Chem.MolFromSmiles(smi)
            rnd = Chem.MolToRandomSmilesVect(m, 1, randomSeed=1000 + i)[0]
            out.append({"selfies": sf.encoder(smi), "random_selfies": sf.encoder(rnd)})
    else:
        out = []
        for pred, gt in req["pairs"]:
            p = canon(decode(pred))
            g = canon(decode(gt))
            inchi_equal = None
            if p is not None and g is not None:
                try:
                    inchi_equal = Chem.MolToInchi(Chem.MolFromSmiles(p)) == Chem.MolToInchi(
                        Chem.MolFromSmiles(g)
                    )
                except Exception:
                    inchi_equal = None
            out.append({"pred_smi": p, "gt_smi": g, "inchi_equal": inchi_equal})
    json.dump(out, sys.stdout)


def run_chem(python, req):
    res = subprocess.run(
        [python, os.path.abspath(__file__), "--chem-helper"],
        input=json.dumps(req),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(res.stdout)


# --------------------------------------------------------------------------- helpers


def write_jsonl(name, rows):
    with open(os.path.join(OUT, f"metrics_{name}.jsonl"), "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def f64(x):
    return None if x is None else float(x)


# --------------------------------------------------------------------------- ChEBI-20


def chebi_rows(rng):
    with open(os.path.join(DATA, "chebi20", "test.txt"), encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    picked = rng.sample(rows, N)
    others = [r["description"] for r in rows]
    out = []
    for i, r in enumerate(picked):
        ref = r["description"]
        words = ref.split()
        kind = i % 12
        if kind == 0:
            pred = ref
        elif kind == 1:  # drop a quarter of the words
            pred = " ".join(w for w in words if rng.random() > 0.25)
        elif kind == 2:  # shuffle a window (fragmentation)
            w = words[:]
            a = rng.randrange(max(1, len(w) - 6))
            seg = w[a : a + 6]
            rng.shuffle(seg)
            w[a : a + 6] = seg
            pred = " ".join(w)
        elif kind == 3:  # another molecule's description
            pred = rng.choice(others)
        elif kind == 4:  # inflections and synonyms, for the stem and WordNet stages
            swaps = {
                "is": "are", "has": "have", "acid": "acids", "role": "function",
                "derives": "derived", "molecule": "compound", "group": "groups",
                "conjugate": "conjugated", "obtained": "obtain", "substituted": "substituting",
                "found": "establish", "metabolite": "metabolites", "agent": "agents",
                "member": "members", "compound": "chemical", "contains": "containing",
                "functionally": "functional", "related": "relates", "base": "bases",
                "an": "a", "positions": "position", "species": "specie",
            }
            pred = " ".join(swaps.get(w, w) for w in words)
        elif kind == 5:  # truncated answer
            pred = " ".join(words[: max(1, len(words) // 3)])
        elif kind == 6:  # case, accents, CJK, special tokens, control characters
            pred = ref.upper().replace("E", "É", 3) + " 化合物 [CLS] [UNK]\u0007 naïve café"
        elif kind == 7:  # two descriptions glued (long)
            pred = ref + " " + rng.choice(others) + " " + rng.choice(others)
        elif kind == 8 and i % 24 == 8:
            pred = ""
        elif kind == 8:
            pred = "The molecule is a molecule."
        elif kind == 9:  # repetition (clipped counts)
            pred = " ".join(words[:5] * 6)
        elif kind == 10:  # punctuation-heavy chemistry text
            pred = ref.replace(" ", "  ").replace(",", " ,") + " (2S,3R)-2,3-dihydroxy-4-oxo"
        else:
            pred = " ".join(reversed(words))
        out.append({"id": r["CID"], "prediction": pred, "reference": ref})
    # very long texts: past the 512-token truncation on both sides
    long_ref = " ".join(o for o in others[:12])
    out[-1] = {"id": "long-1", "prediction": long_ref[::-1][:4000] + " " + long_ref, "reference": long_ref}
    out[-2] = {"id": "long-2", "prediction": long_ref, "reference": long_ref + " tail words"}
    return out


def chebi_metrics(rows):
    import nltk
    from nltk.translate.bleu_score import corpus_bleu
    from nltk.translate.meteor_score import meteor_score
    from rouge_score import rouge_scorer
    from tokenizers import BertWordPieceTokenizer

    tmp = tempfile.mkdtemp()
    os.makedirs(os.path.join(tmp, "corpora"))
    os.symlink(WORDNET, os.path.join(tmp, "corpora", "wordnet"))
    nltk.data.path.insert(0, tmp)
    nltk.data.path.append(WORDNET)
    from nltk.corpus import wordnet

    if wordnet.get_version() != "3.0":
        raise SystemExit("WordNet 3.0 expected: run scripts/setup_wordnet.sh")

    tok = BertWordPieceTokenizer(
        VOCAB, clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    tok.enable_truncation(max_length=512)
    drop = {"[PAD]", "[CLS]", "[SEP]"}

    def tokenize(text):
        return [t for t in tok.encode(text, add_special_tokens=False).tokens if t not in drop]

    class NoSynonyms:
        def synsets(self, _word):
            return []

    hyps, refs, meteors, meteors_nosyn, per_sample = [], [], [], [], []
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"])
    r1, r2, rl = [], [], []
    for r in rows:
        h = tokenize(r["prediction"])
        g = tokenize(r["reference"])
        hyps.append(h)
        refs.append([g])
        m = meteor_score([g], h)
        meteors.append(m)
        meteors_nosyn.append(meteor_score([g], h, wordnet=NoSynonyms()))
        s = scorer.score(r["reference"], r["prediction"])
        r1.append(s["rouge1"].fmeasure)
        r2.append(s["rouge2"].fmeasure)
        rl.append(s["rougeL"].fmeasure)
        per_sample.append(
            {"id": r["id"], "hyp_tokens": len(h), "ref_tokens": len(g), "meteor": m,
             "rouge1": s["rouge1"].fmeasure, "rouge2": s["rouge2"].fmeasure,
             "rougeL": s["rougeL"].fmeasure}
        )
    import numpy as np

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bleu2 = corpus_bleu(refs, hyps, weights=(0.5, 0.5))
        bleu4 = corpus_bleu(refs, hyps, weights=(0.25, 0.25, 0.25, 0.25))
    metrics = {
        "bleu2": float(bleu2),
        "bleu4": float(bleu4),
        "meteor": float(np.mean(meteors)),
        "rouge1": float(np.mean(r1)),
        "rouge2": float(np.mean(r2)),
        "rougeL": float(np.mean(rl)),
    }
    info = {
        "meteor_without_synonyms": float(np.mean(meteors_nosyn)),
        "samples": per_sample,
        "tokens_first_row": hyps[0][:50],
    }
    write_wordnet_subset(wordnet, {t.lower() for h in hyps for t in h})
    from nltk.stem.porter import PorterStemmer

    stemmer = PorterStemmer()
    vocab = sorted({t for h in hyps for t in h} | {t for r in refs for t in r[0]})
    info["porter"] = {w: stemmer.stem(w) for w in vocab}
    return metrics, info


def short_data_line(line):
    """A data line cut after its words (offset, lexfile, type, count, word/lex_id pairs):
    the pointers and gloss are not read by the synonym lookup."""
    f = line.split(" ")
    n = int(f[3], 16)
    return " ".join(f[: 4 + 2 * n]) + " 000 | \n"


def write_wordnet_subset(wn, words):
    """Index, data and exception lines for everything `synsets(word)` reads for `words`."""
    files = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}
    sub = os.path.join(OUT, "metrics_wordnet")
    os.makedirs(sub, exist_ok=True)
    for pos, name in files.items():
        exc = wn._exception_map[pos]
        forms, offsets, exc_words = set(), set(), set()
        for w in words:
            if w in exc:
                exc_words.add(w)
            for form in wn._morphy(w, pos):
                forms.add(form)
                offsets.update(wn._lemma_pos_offset_map[form].get(pos, []))
        with open(os.path.join(WORDNET, f"index.{name}"), encoding="utf-8") as f:
            idx = [l for l in f if not l.startswith(" ") and l.split(" ", 1)[0] in forms]
        with open(os.path.join(WORDNET, f"data.{name}"), encoding="utf-8") as f:
            data = [short_data_line(l) for l in f if not l.startswith(" ") and int(l[:8]) in offsets]
        with open(os.path.join(WORDNET, f"{name}.exc"), encoding="utf-8") as f:
            excl = [l for l in f if l.split(" ", 1)[0] in exc_words]
        for fname, lines in ((f"index.{name}", idx), (f"data.{name}", data), (f"{name}.exc", excl)):
            with open(os.path.join(sub, fname), "w", encoding="utf-8") as f:
                f.writelines(lines)


# --------------------------------------------------------------------------- classification

ANSWERS_YES = ["Yes", "yes", " YES ", "True", "active", "Active\n", "Yes"]
ANSWERS_NO = ["No", "no", "NO", "false", "inactive", " Inactive", "No"]
ANSWERS_BAD = ["Yes.", "No, it cannot.", "maybe", "", "Yes, it can", "The answer is yes", "n/a"]


def convert_label_to_int(label):
    label = label.strip()
    if label.lower() in ["active", "yes", "true"]:
        return 1
    if label.lower() in ["inactive", "no", "false"]:
        return 0
    return -1


def classification(task, rng):
    if task == "hiv":
        with gzip.open(os.path.join(DATA, "moleculenet", "hiv.csv.gz"), "rt") as f:
            rows = [(r["smiles"], int(r["HIV_active"])) for r in csv.DictReader(f)]
        # enough positives for a meaningful AUC
        pos = [r for r in rows if r[1] == 1]
        neg = [r for r in rows if r[1] == 0]
        rows = rng.sample(pos, 60) + rng.sample(neg, N + 60 - 60)
        rng.shuffle(rows)
    else:
        fname, col_s, col_y = {"bace": ("bace.csv", "mol", "Class"), "bbbp": ("bbbp.csv", "smiles", "p_np")}[task]
        with open(os.path.join(DATA, "moleculenet", fname)) as f:
            rows = [(r[col_s], int(r[col_y])) for r in csv.DictReader(f)]
        rows = rng.sample(rows, N)
    out = []
    for i, (smi, y) in enumerate(rows):
        # a noisy classifier: probability of "Yes" correlated with the label, ties on purpose
        p = min(1.0, max(0.0, rng.gauss(0.62 if y else 0.38, 0.22)))
        p = round(p, 2)
        u = rng.random()
        if u < 0.07:
            pred = rng.choice(ANSWERS_BAD)
        else:
            says_yes = p >= 0.5 if rng.random() < 0.85 else p < 0.5
            pred = rng.choice(ANSWERS_YES if says_yes else ANSWERS_NO)
        out.append({"id": f"{task}-{i}", "smiles": smi, "prediction": pred,
                    "reference": "Yes" if y else "No", "prob_yes": p})
    from sklearn.metrics import roc_auc_score

    gts = [convert_label_to_int(r["reference"]) for r in out]
    preds = [convert_label_to_int(r["prediction"]) for r in out]
    probs = [r["prob_yes"] for r in out]
    metrics = {
        "roc_auc_hard": float(roc_auc_score(gts, preds)),
        "roc_auc_prob": float(roc_auc_score(gts, probs)),
        "invalid": sum(1 for p in preds if p == -1),
        "total": len(out),
        "accuracy": sum(1 for p, g in zip(preds, gts) if p == g) / len(out),
    }
    return out, metrics


# --------------------------------------------------------------------------- QM9

JUNK = ["", "unknown", "The HOMO is -0.25", "nan", "inf", "-0.2.5", "0x10", "1,5", "e-3", "--0.1"]


def qm9(rng):
    with open(os.path.join(DATA, "qm9", "qm9_small.csv")) as f:
        rows = list(csv.DictReader(f))
    rows = rng.sample(rows, N)
    out = []
    for i, r in enumerate(rows):
        prop = ["homo", "lumo", "gap"][i % 3]
        gt = float(r[prop])
        u = rng.random()
        if u < 0.06:
            pred = rng.choice(JUNK)
        else:
            v = gt + rng.gauss(0, 0.008)
            fmt = rng.choice(["{:.4f}", "{:.4f}", " {:.5f} ", "{:.3e}", "{:+.4f}", "{:.4f}\n", "{}"])
            pred = fmt.format(v)
            if rng.random() < 0.05:
                pred = pred.strip() + "0"  # 0.12340: still a number
        out.append({"id": f"qm9-{r['mol_id']}-{prop}", "property": prop, "prediction": pred,
                    "reference": r[prop]})
    from sklearn.metrics import mean_absolute_error

    def parse(s):
        try:
            v = float(s)
        except ValueError:
            return None
        return v if math.isfinite(v) else None

    metrics = {"invalid": 0, "total": len(out)}
    maes = []
    all_t, all_p = [], []
    for prop in ["homo", "lumo", "gap"]:
        t, p = [], []
        for r in out:
            if r["property"] != prop:
                continue
            v = parse(r["prediction"])
            if v is None:
                metrics["invalid"] += 1
                continue
            t.append(float(r["reference"]))
            p.append(v)
        mae = float(mean_absolute_error(t, p))
        metrics[f"mae_{prop}"] = mae
        maes.append(mae)
        all_t += t
        all_p += p
    metrics["mae_average"] = sum(maes) / 3
    metrics["mae_all"] = float(mean_absolute_error(all_t, all_p))
    return out, metrics


# --------------------------------------------------------------------------- reactions


def uspto(kind, start):
    src = os.path.join(DATA, "uspto50k", f"liu2017_test_{kind}.txt")
    with open(src) as f:
        lines = f.read().splitlines()[start : start + N]
    out = []
    for line in lines:
        if line.startswith("<RX_"):
            line = line.split(" ", 1)[1]
        out.append(line.replace(" ", ""))
    return out


def reactions(task, rng, chem_python):
    kind, start = {"retrosynthesis": ("targets", 0), "forward": ("sources", 300),
                   "reagent": ("targets", 600)}[task]
    smiles = uspto(kind, start)
    enc = run_chem(chem_python, {"op": "encode", "smiles": smiles})
    rows = []
    for i, e in enumerate(enc):
        ref = e["selfies"]
        toks = ["[" + t for t in ref.split("[")[1:]]
        k = i % 10
        if k in (0, 1, 2):
            pred = ref
        elif k == 3:
            pred = e["random_selfies"]
        elif k == 4:  # drop a symbol
            j = rng.randrange(len(toks))
            pred = "".join(toks[:j] + toks[j + 1 :])
        elif k == 5:  # change a symbol
            j = rng.randrange(len(toks))
            pred = "".join(toks[:j] + [rng.choice(["[C]", "[N]", "[O]", "[=C]", "[Branch1]"])] + toks[j + 1 :])
        elif k == 6:
            pred = enc[(i + 7) % len(enc)]["selfies"]
        elif k == 7:
            pred = rng.choice(["[C][Xx][C]", "[C][=C", "CCO", "", "[C]" + "[Ring1]" * 3 + "[Q]",
                               "The product is [C][C][O]"])
        elif k == 8:  # truncated answer
            pred = "".join(toks[: max(1, len(toks) // 2)])
        else:
            pred = ref + "[C]"
        rows.append({"id": f"{task}-{i}", "prediction": pred, "reference": ref})
    scored = run_chem(chem_python, {"op": "score", "pairs": [[r["prediction"], r["reference"]] for r in rows]})

    import Levenshtein
    from nltk.translate.bleu_score import corpus_bleu

    kept = []
    for r, s in zip(rows, scored):
        if s["gt_smi"] is None:
            raise SystemExit(f"reference of {r['id']} does not decode")
        # empty predictions decode to an empty molecule in the reference; we count them invalid
        if s["pred_smi"] is None or s["pred_smi"] == "":
            continue
        kept.append((r, s))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bleu = corpus_bleu([[list(r["reference"])] for r, _ in kept], [list(r["prediction"]) for r, _ in kept])
    lev = [Levenshtein.distance(s["pred_smi"], s["gt_smi"]) for _, s in kept]
    metrics = {
        "valid": len(kept),
        "total": len(rows),
        "validity": len(kept) / len(rows),
        "exact": sum(1 for _, s in kept if s["pred_smi"] == s["gt_smi"]) / len(kept),
        "exact_inchi_reference": sum(1 for _, s in kept if s["inchi_equal"]) / len(kept),
        "bleu": float(bleu),
        "levenshtein": sum(lev) / len(lev),
    }
    canon = [{"id": r["id"], "pred": s["pred_smi"], "gt": s["gt_smi"]} for r, s in zip(rows, scored)]
    return rows, metrics, canon


# --------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chem-helper", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--chem-python", default=os.path.join(ROOT, ".venv-golden", "bin", "python"),
                    help="python with rdkit and selfies (scripts/golden/setup_venv.sh)")
    args = ap.parse_args()
    if args.chem_helper:
        chem_helper()
        return
    os.makedirs(OUT, exist_ok=True)
    expected = {}

    rng = random.Random(20231127)
    rows = chebi_rows(rng)
    write_jsonl("chebi20", rows)
    metrics, info = chebi_metrics(rows)
    expected["chebi20"] = {"metrics": metrics, "info": info}

    for task in ["bace", "bbbp", "hiv"]:
        rows, metrics = classification(task, random.Random(f"cls-{task}"))
        write_jsonl(task, rows)
        expected[task] = {"metrics": metrics}

    rows, metrics = qm9(random.Random("qm9"))
    write_jsonl("qm9", rows)
    expected["qm9"] = {"metrics": metrics}

    for task in ["retrosynthesis", "forward", "reagent"]:
        rows, metrics, canon = reactions(task, random.Random(f"rx-{task}"), args.chem_python)
        write_jsonl(task, rows)
        expected[task] = {"metrics": metrics, "info": {"canonical": canon}}

    with open(os.path.join(OUT, "metrics_expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, indent=1, ensure_ascii=False, sort_keys=True)
        f.write("\n")
    for task, e in expected.items():
        print(task, json.dumps(e["metrics"]), file=sys.stderr)


if __name__ == "__main__":
    main()
