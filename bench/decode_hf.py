#!/usr/bin/env python3
"""Prefill / decode speed of Hugging Face transformers on CPU: the transformers row of the decode benchmark.

    OMP_NUM_THREADS=2 nice -n 19 .venv-ref/bin/python bench/decode_hf.py --model DIR \\
        [--prompt-tokens 128] [--new-tokens 64] [--threads 2] [--dtype f32|bf16] [--rounds 3]

Loads DIR (a Hugging Face folder: config.json + safetensors) with AutoModelForCausalLM, eager attention,
in the requested dtype. The prompt is --prompt-tokens seeded random ids in [0, vocab) (no tokenizer).
Per round:
  prefill = one forward pass over the whole prompt (use_cache=True), timed alone;
  decode  = --new-tokens greedy steps, each one forward of one token with the KV cache (the first
            step feeds the token chosen by the prefill logits); prefill time not included.
One untimed warm-up (a short prefill + 2 steps) runs first. Prints one JSON line: the median over
--rounds of prefill tokens/s and decode tokens/s, and the process's peak RSS (MiB, ru_maxrss).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time

import torch
import transformers
from transformers import AutoModelForCausalLM

DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16}
SEED = 1234


@torch.inference_mode()
def run_round(model, ids: torch.Tensor, new_tokens: int) -> tuple[float, float, list[int]]:
    t0 = time.perf_counter()
    out = model(ids, use_cache=True)
    t1 = time.perf_counter()
    past = out.past_key_values
    tok = out.logits[0, -1].argmax()
    greedy = []
    t2 = time.perf_counter()
    for _ in range(new_tokens):
        out = model(tok.view(1, 1), past_key_values=past, use_cache=True)
        past = out.past_key_values
        tok = out.logits[0, -1].argmax()
        greedy.append(int(tok))
    t3 = time.perf_counter()
    return t1 - t0, t3 - t2, greedy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="Hugging Face model folder")
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="f32")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--name", help="model name for the JSON line (default: --model as given)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=DTYPES[args.dtype], attn_implementation="eager")
    model.eval()
    vocab = model.config.vocab_size
    gen = torch.Generator().manual_seed(SEED)
    ids = torch.randint(0, vocab, (1, args.prompt_tokens), generator=gen, dtype=torch.int64)

    run_round(model, ids[:, :16], 2)  # warm-up, untimed
    prefill, decode, first = [], [], None
    for _ in range(args.rounds):
        p, d, greedy = run_round(model, ids, args.new_tokens)
        prefill.append(args.prompt_tokens / p)
        decode.append(args.new_tokens / d)
        if first is None:
            first = greedy
        elif greedy != first:  # same prompt, same weights: the rounds must do identical work
            print("warning: greedy continuation differs between rounds", file=sys.stderr)

    print(json.dumps({
        "engine": "transformers",
        "model": args.name or args.model,
        "dtype": args.dtype,
        "prefill_tok_s": round(statistics.median(prefill), 2),
        "decode_tok_s": round(statistics.median(decode), 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "threads": args.threads,
        "prompt_tokens": args.prompt_tokens,
        "new_tokens": args.new_tokens,
        "rounds": args.rounds,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
