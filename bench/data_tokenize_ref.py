#!/usr/bin/env python3
"""Single-thread speed of Python `tokenizers` (the Rust library transformers' fast tokenizers
use) on the first N records of a ShareGPT file, each record's turn texts joined by line
breaks: the reference figure next to `zoo data stats --tokenizer --threads 1` in
docs/BENCHMARKS.md. Needs a python with `tokenizers`.
Usage: RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false data_tokenize_ref.py TOKENIZER.json FILE [N=4000]"""
import json
import sys
import time

import tokenizers

tok = tokenizers.Tokenizer.from_file(sys.argv[1])
text = open(sys.argv[2], encoding="utf-8").read()
limit = int(sys.argv[3]) if len(sys.argv) > 3 else 4000
dec, i, records = json.JSONDecoder(), text.index("[") + 1, []
while len(records) < limit:
    while text[i] in " \t\r\n,":
        i += 1
    try:
        v, i = dec.raw_decode(text, i)
    except json.JSONDecodeError:
        break
    records.append("\n".join(t["value"] for t in v["conversations"] if isinstance(t.get("value"), str)))
start, n = time.time(), 0
for r in records:
    n += len(tok.encode(r).ids)
dt = time.time() - start
print(f"{n} tokens in {dt:.1f} s: {n / dt / 1e3:.0f}k tokens/s on one thread (tokenizers {tokenizers.__version__})")
