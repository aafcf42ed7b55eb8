#!/usr/bin/env python3
"""Load client for OpenAI-compatible chat servers (zoo serve, llama.cpp's llama-server). Standard library only.

Usage:
  python3 bench/serve_load.py --url http://127.0.0.1:PORT --model NAME --clients N --duration SECONDS
                              [--max-tokens 64] [--prompts K] [--seed S] [--warmup W] [--timeout 120] [--json]

N client threads each loop until the duration is over: POST /v1/chat/completions, streaming
  {"model", "messages": [{"role": "user", "content": PROMPT}], "stream": true, "max_tokens",
   "temperature": 0, "stream_options": {"include_usage": true}}
with a fixed list of short everyday questions (K of them, default 32; client c starts at prompt c, then the next
one, wrapping; --seed S shuffles the list), one fresh connection per request (Connection: close).
The SSE stream is read line by line (`data: {json}` ... `data: [DONE]`).

Measured per request:
  TTFT     from just before the request is sent (connect included) to the first chunk whose
           choices[0].delta.content is non-empty;
  tokens   the final usage.completion_tokens when the server sends it, else the number of content chunks;
  errors   non-200 status, an error object in the stream, a stream that ends without `data: [DONE]`,
           bad JSON, socket timeout (--timeout, default 120 s per socket operation) or any other exception.
A request started before the deadline is allowed to finish. Aggregate rate = completion tokens of all successful
requests / (last finish of any request - start). Percentiles are nearest-rank over the successful requests that
produced at least one content token.

Output: a human summary (stdout; stderr with --json) and, with --json, one JSON line on stdout:
  {clients, duration_s, requests, errors, completion_tokens, tokens_per_s, ttft_p50_ms, ttft_p99_ms, ttft_max_ms,
   first_errors: [..], ...a few extra fields (wall_s, ttft_mean_ms, latency_p50_ms, latency_p99_ms,
   tokens_per_request, usage_reported, client_cpu_s (this process's CPU seconds, all threads), ...)}
--warmup W sends W sequential requests first (not measured; a failed one is an error exit, code 2).
Exit code: 0, or 1 when any measured request failed.
"""
import argparse
import http.client
import json
import math
import random
import resource
import sys
import threading
import time
import urllib.parse

PROMPTS = [
    "What is the capital of France?",
    "How do I boil an egg?",
    "Why is the sky blue?",
    "What should I pack for a weekend trip to the beach?",
    "How many minutes are there in a day?",
    "Can you suggest a name for a pet cat?",
    "What is a good breakfast for a busy morning?",
    "How do I remove a coffee stain from a shirt?",
    "What is the difference between weather and climate?",
    "How often should I water a cactus?",
    "Give me three tips for sleeping better.",
    "What is the tallest mountain in the world?",
    "How do I make a cup of tea?",
    "Why do leaves change color in autumn?",
    "What is a simple way to save money each month?",
    "How long should I cook pasta?",
    "What are some fun things to do on a rainy day?",
    "How do plants make their food?",
    "What is the best way to learn a new language?",
    "How can I keep my kitchen clean?",
    "What is the boiling point of water?",
    "Why do cats purr?",
    "How do I write a polite email to my landlord?",
    "What is a healthy snack for the afternoon?",
    "How many legs does a spider have?",
    "What should I do if I feel stressed at work?",
    "How does a rainbow form?",
    "What is the largest ocean on Earth?",
    "How do I tie a tie?",
    "Can you recommend a good book for a long flight?",
    "Why do we have seasons?",
    "How do I start running as a beginner?",
]

MAX_KEPT_ERRORS = 5


def nearest_rank(sorted_vals, p):
    """Nearest-rank percentile (p in 0..100) of an ascending list; None when empty."""
    if not sorted_vals:
        return None
    k = max(1, math.ceil(p / 100.0 * len(sorted_vals)))
    return sorted_vals[min(k, len(sorted_vals)) - 1]


class Result:
    __slots__ = ("start", "first", "end", "tokens", "usage", "error")

    def __init__(self, start):
        self.start = start
        self.first = None
        self.end = None
        self.tokens = 0
        self.usage = False  # completion_tokens came from a usage object
        self.error = None


def one_request(host, port, model, prompt, max_tokens, timeout):
    body = json.dumps({
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "stream": True,
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream_options": {"include_usage": True},
    }).encode()
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream", "Connection": "close"}
    r = Result(time.monotonic())
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("POST", "/v1/chat/completions", body=body, headers=headers)
        resp = conn.getresponse()
        if resp.status != 200:
            text = " ".join(resp.read(300).decode("utf-8", "replace").split())[:200]
            raise RuntimeError(f"HTTP {resp.status}: {text}")
        chunks, usage_tokens, done = 0, None, False
        while True:
            line = resp.readline()
            if not line:
                break
            line = line.strip()
            if not line.startswith(b"data:"):
                continue  # blank separators, `event:`/`id:`/`:` comment lines
            data = line[5:].strip()
            if data == b"[DONE]":
                done = True
                break
            obj = json.loads(data)
            if obj.get("error"):
                raise RuntimeError(f"error in stream: {json.dumps(obj['error'])[:200]}")
            choices = obj.get("choices") or []
            if choices:
                content = (choices[0].get("delta") or {}).get("content")
                if content:
                    chunks += 1
                    if r.first is None:
                        r.first = time.monotonic()
            usage = obj.get("usage")
            if usage and usage.get("completion_tokens") is not None:
                usage_tokens = int(usage["completion_tokens"])
        if not done:
            raise RuntimeError(f"stream ended without [DONE] after {chunks} content chunks")
        r.usage = usage_tokens is not None
        r.tokens = usage_tokens if usage_tokens is not None else chunks
    except Exception as e:  # noqa: BLE001 - every failure is a counted error
        r.error = f"{type(e).__name__}: {e}" if not isinstance(e, RuntimeError) else str(e)
    finally:
        r.end = time.monotonic()
        conn.close()
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True, help="server base URL, e.g. http://127.0.0.1:8080")
    ap.add_argument("--model", required=True, help="model name sent in each request")
    ap.add_argument("--clients", type=int, required=True, help="concurrent client threads")
    ap.add_argument("--duration", type=float, required=True, help="seconds during which new requests start")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--prompts", type=int, default=len(PROMPTS), help=f"distinct prompts used (1..{len(PROMPTS)})")
    ap.add_argument("--seed", type=int, default=None, help="shuffle the prompt list with this seed")
    ap.add_argument("--warmup", type=int, default=0, help="sequential unmeasured requests before the run")
    ap.add_argument("--timeout", type=float, default=120.0, help="per-request socket timeout, seconds")
    ap.add_argument("--json", action="store_true", help="print one JSON line on stdout (summary goes to stderr)")
    a = ap.parse_args()
    if a.clients < 1 or not 1 <= a.prompts <= len(PROMPTS) or a.duration < 0:
        ap.error(f"need --clients >= 1, --duration >= 0, 1 <= --prompts <= {len(PROMPTS)}")
    u = urllib.parse.urlsplit(a.url)
    if u.scheme != "http" or not u.hostname:
        ap.error("--url must be http://HOST[:PORT]")
    host, port = u.hostname, u.port or 80
    prompts = PROMPTS[:]
    if a.seed is not None:
        random.Random(a.seed).shuffle(prompts)
    prompts = prompts[:a.prompts]
    human = sys.stderr if a.json else sys.stdout

    for w in range(a.warmup):
        r = one_request(host, port, a.model, prompts[w % len(prompts)], a.max_tokens, a.timeout)
        if r.error:
            print(f"warm-up request failed: {r.error}", file=sys.stderr)
            sys.exit(2)

    results = [[] for _ in range(a.clients)]
    barrier = threading.Barrier(a.clients + 1)
    t = {}

    def client(c):
        barrier.wait()
        deadline = t["deadline"]
        i = c % len(prompts)
        while time.monotonic() < deadline:
            r = one_request(host, port, a.model, prompts[i], a.max_tokens, a.timeout)
            results[c].append(r)
            i = (i + 1) % len(prompts)
            if r.error:
                time.sleep(0.05)  # do not spin on a refusing / failing server (it shares the cores)

    threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(a.clients)]
    for th in threads:
        th.start()
    t["start"] = time.monotonic()
    t["deadline"] = t["start"] + a.duration
    barrier.wait()
    for th in threads:
        th.join()

    start = t["start"]
    allr = [r for rs in results for r in rs]
    ok = [r for r in allr if r.error is None]
    errs = [r for r in allr if r.error is not None]
    last = max((r.end for r in allr), default=start)
    wall = last - start
    tokens = sum(r.tokens for r in ok)
    ttft = sorted((r.first - r.start) * 1000.0 for r in ok if r.first is not None)
    lat = sorted((r.end - r.start) * 1000.0 for r in ok)
    first_errors = []
    for r in sorted(errs, key=lambda r: r.end):
        if len(first_errors) < MAX_KEPT_ERRORS and r.error not in first_errors:
            first_errors.append(r.error)

    def rnd(x, n=1):
        return None if x is None else round(x, n)

    out = {
        "clients": a.clients,
        "duration_s": a.duration,
        "requests": len(allr),
        "errors": len(errs),
        "completion_tokens": tokens,
        "tokens_per_s": rnd(tokens / wall if wall > 0 else 0.0, 2),
        "ttft_p50_ms": rnd(nearest_rank(ttft, 50)),
        "ttft_p99_ms": rnd(nearest_rank(ttft, 99)),
        "ttft_max_ms": rnd(ttft[-1] if ttft else None),
        "first_errors": first_errors,
        "wall_s": round(wall, 3),
        "ttft_mean_ms": rnd(sum(ttft) / len(ttft) if ttft else None),
        "latency_p50_ms": rnd(nearest_rank(lat, 50)),
        "latency_p99_ms": rnd(nearest_rank(lat, 99)),
        "tokens_per_request": rnd(tokens / len(ok) if ok else None, 2),
        "no_content_requests": sum(1 for r in ok if r.first is None),
        "usage_reported": sum(1 for r in ok if r.usage),
        "max_tokens": a.max_tokens,
        "prompts": len(prompts),
        "client_cpu_s": round(sum(getattr(resource.getrusage(resource.RUSAGE_SELF), f)
                                  for f in ("ru_utime", "ru_stime")), 3),
    }

    def ms(x, unit=" ms"):
        return "-" if x is None else f"{x:.1f}{unit}"

    print(f"{a.url}  model={a.model}  clients={a.clients}  duration={a.duration:g}s  max_tokens={a.max_tokens}  "
          f"prompts={len(prompts)}", file=human)
    print(f"  requests {len(allr)} ({len(errs)} errors), completion tokens {tokens} "
          f"({ms(out['tokens_per_request'], '')} per request; usage reported by {out['usage_reported']}/{len(ok)})",
          file=human)
    print(f"  aggregate {out['tokens_per_s']:.1f} tok/s over {wall:.2f} s (start to last finish)", file=human)
    print(f"  TTFT p50 {ms(out['ttft_p50_ms'])}, p99 {ms(out['ttft_p99_ms'])}, max {ms(out['ttft_max_ms'])}, "
          f"mean {ms(out['ttft_mean_ms'])}; request latency p50 {ms(out['latency_p50_ms'])}, "
          f"p99 {ms(out['latency_p99_ms'])}", file=human)
    for e in first_errors:
        print(f"  error: {e}", file=human)
    if a.json:
        print(json.dumps(out), flush=True)
    sys.exit(1 if errs else 0)


if __name__ == "__main__":
    main()
