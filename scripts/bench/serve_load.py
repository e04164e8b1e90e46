#!/usr/bin/env python3
"""Bounded load test of a running `instructmol serve` on loopback (standard library only).

    python3 scripts/bench/serve_load.py [--url http://127.0.0.1:8080] [--model NAME] [--n 32]
        [--max-tokens 64] [--levels 1,4,16] [--api-key KEY]
    python3 scripts/bench/serve_load.py --soak 600 --pid $(pgrep -f 'instructmol serve')

Throughput mode: the same N requests (prompts about the first N ChEBI-20 test molecules that
the server accepts, `Describe this molecule.`, greedy, max_tokens 64, non-streamed) are sent one
at a time, then by 1, 4 and 16 concurrent clients (threads, one keep-alive connection each,
taking the next request from a shared queue). Per level: completion tokens/s (sum of
usage.completion_tokens over the wall time), requests/s, p50/p95 latency, the throughput ratio
vs one at a time, and how many answers equal the one-at-a-time answers (greedy decoding should
not depend on what else is in flight).

Soak mode (--soak SECONDS): 16 clients stay busy for SECONDS while the server's resident memory
(VmRSS in /proc/PID/status, --pid) is sampled every 10 s; prints the samples and min/max, to show
that memory stays bounded. Exits non-zero if any request fails.
"""

import argparse
import http.client
import json
import os
import queue
import sys
import threading
import time
import urllib.parse

CLIENT_LEVELS = "1,4,16"
QUESTION = "Describe this molecule."


class Client:
    """One keep-alive HTTP/1.1 connection to the server."""

    def __init__(self, url, api_key, timeout):
        u = urllib.parse.urlsplit(url)
        if u.scheme != "http":
            sys.exit(f"serve_load: only http:// URLs (got {url})")
        self.host = u.hostname
        self.port = u.port or 80
        self.prefix = u.path.rstrip("/")
        self.timeout = timeout
        self.headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self.conn = None

    def request(self, method, path, body=None):
        """(status, parsed JSON or text). Reconnects once if a reused connection was closed."""
        data = None if body is None else json.dumps(body).encode()
        for attempt in (0, 1):
            fresh = self.conn is None
            if fresh:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, self.prefix + path, body=data, headers=self.headers)
                resp = self.conn.getresponse()
                raw = resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    self.close()
                try:
                    return resp.status, json.loads(raw)
                except ValueError:
                    return resp.status, raw.decode("utf-8", "replace")
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    http.client.CannotSendRequest):
                self.close()
                if fresh or attempt == 1:
                    raise
        raise AssertionError("unreachable")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def error_text(status, body):
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        e = body["error"]
        return f"HTTP {status} {e.get('type')}: {e.get('message')}"
    return f"HTTP {status}: {str(body)[:200]}"


def chat_body(model, smiles, max_tokens):
    return {
        "model": model,
        "messages": [{"role": "user", "content": [
            {"type": "molecule", "smiles": smiles},
            {"type": "text", "text": QUESTION},
        ]}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": False,
    }


def one(client, model, smiles, max_tokens):
    """One chat request -> dict(ok, latency, tokens, text, error)."""
    t0 = time.perf_counter()
    try:
        status, body = client.request("POST", "/v1/chat/completions", chat_body(model, smiles, max_tokens))
    except (OSError, http.client.HTTPException) as e:
        return {"ok": False, "latency": time.perf_counter() - t0, "tokens": 0, "text": None,
                "error": f"{type(e).__name__}: {e}"}
    latency = time.perf_counter() - t0
    if status != 200 or not isinstance(body, dict) or not body.get("choices"):
        return {"ok": False, "latency": latency, "tokens": 0, "text": None, "error": error_text(status, body)}
    usage = body.get("usage") or {}
    tokens = usage.get("completion_tokens")
    if not isinstance(tokens, int):
        return {"ok": False, "latency": latency, "tokens": 0, "text": None,
                "error": "the answer has no usage.completion_tokens"}
    return {"ok": True, "latency": latency, "tokens": tokens,
            "text": body["choices"][0].get("message", {}).get("content"), "error": None}


def percentile(values, q):
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(-(-q * len(v) // 100)) - 1))
    return v[k]


def read_molecules(path, n, client, limit_scan=400):
    """First n SMILES of a ChEBI-20 TSV (CID, SMILES, description) that the server accepts."""
    out, rejected = [], []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i == 0 and line.startswith("CID\t"):
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 3 or not fields[1].strip():
                continue
            smiles = fields[1].strip()
            status, body = client.request("POST", "/v1/molecules", {"smiles": smiles})
            if status != 200 or not isinstance(body, dict):
                sys.exit(f"serve_load: POST /v1/molecules: {error_text(status, body)}")
            if body.get("valid"):
                out.append((fields[0], smiles))
            else:
                rejected.append((fields[0], (body.get("error") or {}).get("message")))
            if len(out) == n or i > limit_scan:
                break
    if rejected:
        print(f"  skipped {len(rejected)} molecule(s) the server rejects, e.g. CID {rejected[0][0]}: {rejected[0][1]}")
    if len(out) < n:
        sys.exit(f"serve_load: only {len(out)} valid molecules in {path}")
    return out


def run_level(url, args, model, molecules, clients):
    """The N requests by `clients` threads (0 = one at a time in this thread)."""
    results = [None] * len(molecules)
    if clients == 0:
        c = Client(url, args.api_key, args.timeout)
        t0 = time.perf_counter()
        for i, (_, smi) in enumerate(molecules):
            results[i] = one(c, model, smi, args.max_tokens)
        wall = time.perf_counter() - t0
        c.close()
        return wall, results
    work = queue.Queue()
    for i in range(len(molecules)):
        work.put(i)
    start = threading.Barrier(clients + 1)

    def worker():
        c = Client(url, args.api_key, args.timeout)
        start.wait()
        while True:
            try:
                i = work.get_nowait()
            except queue.Empty:
                break
            results[i] = one(c, model, molecules[i][1], args.max_tokens)
        c.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, results


def rss_kib(pid):
    """VmRSS of pid in KiB, or None once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except FileNotFoundError:
        return None
    return None


def soak(url, args, model, molecules):
    if not args.pid:
        sys.exit("serve_load: --soak needs --pid (the server's process id)")
    if not os.path.exists(f"/proc/{args.pid}/status"):
        sys.exit(f"serve_load: no process {args.pid}")
    clients = args.soak_clients
    stop = threading.Event()
    lock = threading.Lock()
    counts = {"ok": 0, "failed": 0, "tokens": 0}
    errors = []
    latencies = []

    def worker(k):
        c = Client(url, args.api_key, args.timeout)
        i = k
        while not stop.is_set():
            r = one(c, model, molecules[i % len(molecules)][1], args.max_tokens)
            i += clients
            with lock:
                if r["ok"]:
                    counts["ok"] += 1
                    counts["tokens"] += r["tokens"]
                    latencies.append(r["latency"])
                else:
                    counts["failed"] += 1
                    if len(errors) < 5:
                        errors.append(r["error"])
        c.close()

    print(f"\nsoak: {clients} clients for {args.soak} s, VmRSS of pid {args.pid} every {args.sample_every} s")
    samples = [(0.0, rss_kib(args.pid))]
    print(f"  t={0:6.0f} s  VmRSS {samples[0][1] / 1024:8.1f} MiB  (before load)")
    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    next_sample = args.sample_every
    while True:
        now = time.perf_counter() - t0
        if now >= args.soak:
            break
        time.sleep(max(0.0, min(next_sample, args.soak) - now))
        now = time.perf_counter() - t0
        if now >= next_sample - 1e-3:
            kib = rss_kib(args.pid)
            if kib is None:
                print(f"  t={now:6.0f} s  the server process {args.pid} is gone (killed? see dmesg for the OOM killer)")
                stop.set()
                for t in threads:
                    t.join()
                return 1
            samples.append((now, kib))
            with lock:
                done, failed = counts["ok"], counts["failed"]
            print(f"  t={now:6.0f} s  VmRSS {kib / 1024:8.1f} MiB  ({done} answers, {failed} failed)", flush=True)
            next_sample += args.sample_every
    stop.set()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    end_kib = rss_kib(args.pid)
    if end_kib is None:
        print(f"  the server process {args.pid} is gone (killed? see dmesg for the OOM killer)")
        return 1
    samples.append((wall, end_kib))
    print(f"  t={wall:6.0f} s  VmRSS {end_kib / 1024:8.1f} MiB  (load stopped)")
    under_load = [k for t, k in samples[1:]]
    lo, hi = min(under_load), max(under_load)
    print(f"soak: {counts['ok']} answers ({counts['tokens']} completion tokens, "
          f"{counts['tokens'] / wall:.1f} tok/s; p50 {percentile(latencies, 50):.2f} s, "
          f"p95 {percentile(latencies, 95):.2f} s), {counts['failed']} failed")
    print(f"soak: VmRSS before load {samples[0][1] / 1024:.1f} MiB; under load min {lo / 1024:.1f} MiB, "
          f"max {hi / 1024:.1f} MiB; first sample under load {under_load[0] / 1024:.1f} MiB, "
          f"last {under_load[-1] / 1024:.1f} MiB")
    half = [k for t, k in samples[1:] if t >= wall / 2]
    first_half = [k for t, k in samples[1:] if t < wall / 2]
    if first_half and half:
        print(f"soak: max VmRSS first half {max(first_half) / 1024:.1f} MiB, second half {max(half) / 1024:.1f} MiB")
    for e in errors:
        print(f"  error: {e}")
    return 1 if counts["failed"] else 0


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default_data = os.path.join(os.environ.get("INSTRUCTMOL_DATA", os.path.join(here, "..", "..", "..", "shared", "data")),
                                "chebi20", "test.txt")
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", default=os.environ.get("INSTRUCTMOL_URL", "http://127.0.0.1:8080"))
    ap.add_argument("--api-key", default=os.environ.get("INSTRUCTMOL_API_KEY"))
    ap.add_argument("--model", help="model id (default: the first listed)")
    ap.add_argument("--data", default=default_data, help="ChEBI-20 TSV (default ../shared/data/chebi20/test.txt)")
    ap.add_argument("--n", type=int, default=32, help="requests per level")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--levels", default=CLIENT_LEVELS, help="concurrent clients per level, after one at a time")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per request")
    ap.add_argument("--soak", type=float, metavar="SECONDS", help="soak mode: keep clients busy this long")
    ap.add_argument("--soak-clients", type=int, default=16)
    ap.add_argument("--pid", type=int, help="server pid whose VmRSS the soak samples")
    ap.add_argument("--sample-every", type=float, default=10.0, help="seconds between RSS samples")
    args = ap.parse_args()
    url = args.url.rstrip("/")

    c = Client(url, args.api_key, args.timeout)
    status, body = c.request("GET", "/v1/models")
    if status != 200:
        sys.exit(f"serve_load: GET /v1/models: {error_text(status, body)}")
    ids = [m["id"] for m in body.get("data", [])]
    if not ids:
        sys.exit("serve_load: the server lists no model")
    model = args.model or ids[0]
    if model not in ids:
        sys.exit(f"serve_load: model {model} not listed ({', '.join(ids)})")
    print(f"server {url}, model {model}, {args.n} requests per level, max_tokens {args.max_tokens}, greedy")
    molecules = read_molecules(args.data, args.n, c)
    warm = one(c, model, molecules[0][1], 4)
    if not warm["ok"]:
        sys.exit(f"serve_load: warm-up request failed: {warm['error']}")
    c.close()

    if args.soak:
        return soak(url, args, model, molecules)

    levels = [0] + [int(x) for x in args.levels.split(",") if x.strip()]
    rows = []
    reference = None
    failed_any = False
    for clients in levels:
        label = "one at a time" if clients == 0 else f"{clients} client{'s' if clients > 1 else ''}"
        print(f"  {label}: sending {args.n} requests ...", flush=True)
        wall, results = run_level(url, args, model, molecules, clients)
        oks = [r for r in results if r["ok"]]
        errs = [r["error"] for r in results if not r["ok"]]
        if errs:
            failed_any = True
            print(f"    {len(errs)} failed, e.g. {errs[0]}")
        tokens = sum(r["tokens"] for r in oks)
        lat = [r["latency"] for r in oks]
        texts = [r["text"] for r in results]
        if clients == 0:
            reference = texts
        same = sum(1 for a, b in zip(texts, reference) if a is not None and a == b)
        rows.append({"label": label, "ok": len(oks), "wall": wall, "tokens": tokens,
                     "tps": tokens / wall if wall > 0 else 0.0, "rps": len(oks) / wall if wall > 0 else 0.0,
                     "p50": percentile(lat, 50), "p95": percentile(lat, 95), "same": same})
    base = rows[0]["tps"]
    print()
    print("| clients | answered | wall s | completion tokens | tokens/s | requests/s | p50 latency s | p95 latency s | tokens/s vs one at a time | answers = one at a time |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ratio = r["tps"] / base if base > 0 else float("nan")
        print(f"| {r['label']} | {r['ok']}/{args.n} | {r['wall']:.2f} | {r['tokens']} | {r['tps']:.1f} | "
              f"{r['rps']:.2f} | {r['p50']:.2f} | {r['p95']:.2f} | {ratio:.2f}x | {r['same']}/{args.n} |")
    return 1 if failed_any else 0


if __name__ == "__main__":
    sys.exit(main())
