#!/usr/bin/env python3
"""Drives a running `instructmol serve` with the official `openai` Python client.

    python3 -m venv /tmp/venv-openai && /tmp/venv-openai/bin/pip install openai
    /tmp/venv-openai/bin/python scripts/serve_openai_client.py [--url http://127.0.0.1:8080] [--api-key KEY]

Run by hand (not by CI). It lists the models, then asks the chosen model (the first listed
unless --model) about a molecule four ways: non-streamed and streamed with the molecule as a
content part ({"type": "molecule", "smiles": ...}), string-only with the molecule in the extra
body field `molecule` (extra_body=), and, when a yes/no model is listed, with `prob_yes`
(non-streamed and streamed). It also checks two errors (unknown model -> 404, invalid SMILES
-> 400, both as OpenAI error JSON). Prints every answer; exits non-zero if anything fails.
"""

import argparse
import os
import sys
import time

try:
    import openai
except ImportError:
    sys.exit("serve_openai_client: needs the openai package (pip install openai)")

CAFFEINE = "CN1C=NC2=C1C(=O)N(C(=O)N2C)C"
# The yes/no questions the runs are trained on (src/data/prompts.rs).
YES_NO_QUESTIONS = {
    "bbbp": "Evaluate whether the given molecule is able to enter the blood-brain barrier.",
    "bace": "Evaluate whether the given molecule is able to inhibit human beta-secretase 1 (BACE-1).",
    "hiv": "Evaluate whether the given molecule is able to inhibit HIV replication.",
}

failures = []


def fail(what):
    failures.append(what)
    print(f"FAIL {what}", flush=True)


def ok(what):
    print(f"ok   {what}", flush=True)


def extra(obj, name):
    """A field outside the OpenAI schema (pydantic keeps it in model_extra)."""
    value = getattr(obj, name, None)
    if value is None and getattr(obj, "model_extra", None):
        value = obj.model_extra.get(name)
    return value


def check_prob(p, where):
    if isinstance(p, (int, float)) and 0.0 <= p <= 1.0:
        ok(f"{where}: prob_yes = {p:.4f}")
    else:
        fail(f"{where}: prob_yes missing or out of [0, 1]: {p!r}")


def non_streamed(client, model, messages, max_tokens, where, **kw):
    t0 = time.perf_counter()
    r = client.chat.completions.create(
        model=model, messages=messages, max_tokens=max_tokens, temperature=0, **kw
    )
    secs = time.perf_counter() - t0
    choice = r.choices[0]
    text = choice.message.content or ""
    usage = r.usage
    print(f"---- {where} ({secs:.2f} s, finish_reason={choice.finish_reason}, "
          f"usage={usage.prompt_tokens if usage else '?'}+{usage.completion_tokens if usage else '?'} tokens)")
    print(text)
    print("----")
    if not text.strip():
        fail(f"{where}: empty answer")
    else:
        ok(f"{where}: {len(text)} characters")
    if choice.finish_reason not in ("stop", "length"):
        fail(f"{where}: finish_reason {choice.finish_reason!r}")
    return text, choice


def streamed(client, model, messages, max_tokens, where, **kw):
    t0 = time.perf_counter()
    first = None
    pieces = []
    finish = None
    final_choice = None
    chunks = 0
    print(f"---- {where} (streamed)")
    stream = client.chat.completions.create(
        model=model, messages=messages, max_tokens=max_tokens, temperature=0, stream=True, **kw
    )
    for chunk in stream:
        chunks += 1
        if not chunk.choices:
            continue
        c = chunk.choices[0]
        if c.delta and c.delta.content:
            if first is None:
                first = time.perf_counter() - t0
            pieces.append(c.delta.content)
            print(c.delta.content, end="", flush=True)
        if c.finish_reason:
            finish = c.finish_reason
            final_choice = c
    secs = time.perf_counter() - t0
    text = "".join(pieces)
    print()
    first_s = f"{first:.2f} s" if first is not None else "none"
    print(f"---- {chunks} chunks, {len(pieces)} with text, first text after {first_s}, "
          f"{secs:.2f} s in all, finish_reason={finish}")
    if not text.strip():
        fail(f"{where}: no streamed text")
    else:
        ok(f"{where}: {len(pieces)} text chunks")
    if finish is None:
        fail(f"{where}: no chunk carried a finish_reason")
    return text, final_choice


def expect_error(fn, status, where):
    try:
        fn()
    except openai.APIStatusError as e:
        body = e.body if isinstance(e.body, dict) else {}
        err = body.get("error", body) if isinstance(body, dict) else {}
        msg = err.get("message") if isinstance(err, dict) else None
        if e.status_code == status and msg:
            ok(f"{where}: HTTP {e.status_code}, type {err.get('type')!r}: {msg}")
        else:
            fail(f"{where}: expected HTTP {status} with an OpenAI error message, got HTTP {e.status_code}: {e.body!r}")
        return
    except openai.APIError as e:
        fail(f"{where}: expected HTTP {status}, got {type(e).__name__}: {e}")
        return
    fail(f"{where}: expected HTTP {status}, the request succeeded")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", default=os.environ.get("INSTRUCTMOL_URL", "http://127.0.0.1:8080"),
                    help="server address (the /v1 is added); default $INSTRUCTMOL_URL or http://127.0.0.1:8080")
    ap.add_argument("--api-key", default=os.environ.get("INSTRUCTMOL_API_KEY", "none"),
                    help="the server's --api-key (default $INSTRUCTMOL_API_KEY; any value when it has none)")
    ap.add_argument("--model", help="model id to ask (default: the first listed)")
    ap.add_argument("--smiles", default=CAFFEINE, help="molecule (default caffeine)")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per request")
    args = ap.parse_args()

    base = args.url.rstrip("/")
    if not base.endswith("/v1"):
        base += "/v1"
    client = openai.OpenAI(base_url=base, api_key=args.api_key, timeout=args.timeout, max_retries=0)
    print(f"server {base}, openai {openai.__version__}")

    try:
        models = list(client.models.list())
    except openai.APIError as e:
        fail(f"GET /v1/models: {type(e).__name__}: {e}")
        return 1
    if not models:
        fail("GET /v1/models lists no model")
        return 1
    for m in models:
        print(f"  model {m.id}: task={extra(m, 'task')!r} yes_no={extra(m, 'yes_no')!r} "
              f"base={extra(m, 'base')!r} owned_by={m.owned_by!r}")
        if extra(m, "yes_no") is None:
            fail(f"model {m.id}: no yes_no field")
    ok(f"GET /v1/models: {len(models)} model(s)")
    ids = [m.id for m in models]
    model = args.model or ids[0]
    if model not in ids:
        fail(f"--model {model} is not listed ({', '.join(ids)})")
        return 1
    yes_no_models = [m for m in models if extra(m, "yes_no")]

    question = "Describe this molecule."
    parts = [
        {"role": "user", "content": [
            {"type": "molecule", "smiles": args.smiles},
            {"type": "text", "text": question},
        ]},
    ]
    print(f"\nQ ({model}, {args.smiles}): {question}")
    try:
        a1, _ = non_streamed(client, model, parts, args.max_tokens, "non-streamed, molecule content part")
        a2, _ = streamed(client, model, parts, args.max_tokens, "streamed, molecule content part")
        if a1 == a2:
            ok("greedy: the streamed answer equals the non-streamed one")
        else:
            fail("greedy: the streamed answer differs from the non-streamed one")
        a3, _ = non_streamed(
            client, model, [{"role": "user", "content": question}], args.max_tokens,
            "string content, molecule in extra_body", extra_body={"molecule": args.smiles},
        )
        if a3 == a1:
            ok("extra_body molecule gives the same answer as the content part")
        else:
            fail("extra_body molecule gives another answer than the content part (same molecule, question, greedy)")
    except openai.APIError as e:
        fail(f"chat with {model}: {type(e).__name__}: {e}")

    if yes_no_models:
        yn = yes_no_models[0].id
        q = YES_NO_QUESTIONS.get(extra(yes_no_models[0], "task"), YES_NO_QUESTIONS["bbbp"])
        msgs = [{"role": "user", "content": [{"type": "molecule", "smiles": args.smiles},
                                              {"type": "text", "text": q}]}]
        print(f"\nQ ({yn}, yes/no, {args.smiles}): {q}")
        try:
            _, choice = non_streamed(client, yn, msgs, 8, "yes/no, non-streamed", extra_body={"prob_yes": True})
            p1 = extra(choice, "prob_yes")
            check_prob(p1, "yes/no, non-streamed")
            _, final = streamed(client, yn, msgs, 8, "yes/no", extra_body={"prob_yes": True})
            p2 = extra(final, "prob_yes") if final is not None else None
            check_prob(p2, "yes/no, streamed (final chunk)")
            if isinstance(p1, float) and isinstance(p2, float) and abs(p1 - p2) > 1e-4:
                fail(f"prob_yes differs between non-streamed ({p1}) and streamed ({p2})")
        except openai.APIError as e:
            fail(f"yes/no chat with {yn}: {type(e).__name__}: {e}")
    else:
        print("\n(no yes/no model listed: prob_yes not exercised)")

    print()
    expect_error(
        lambda: client.chat.completions.create(
            model="no-such-model", messages=parts, max_tokens=4, temperature=0),
        404, "unknown model")
    expect_error(
        lambda: client.chat.completions.create(
            model=model, max_tokens=4, temperature=0,
            messages=[{"role": "user", "content": [{"type": "molecule", "smiles": "CC(=O)O)C"},
                                                   {"type": "text", "text": question}]}]),
        400, "invalid SMILES")

    print()
    if failures:
        print(f"{len(failures)} check(s) failed:")
        for f in failures:
            print(f"  - {f}")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
