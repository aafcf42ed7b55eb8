#!/usr/bin/env python3
"""The peer of `zoo data render` in bench/data.sh: LLM Zoo's rendering (its rule as
tests/fixtures/data/make_render_cases.py writes it: transformers' tokenizer prepared as LLM Zoo
prepares it, every span boundary tokenized on its own) over a whole file, one process, written
as JSON lines like zoo's output. Needs a python with transformers (no torch).
Usage: data_render_ref.py TOKENIZER_DIR INPUT.json OUT.jsonl MAX_LENGTH"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "data"))
from make_render_cases import prepare, render  # noqa: E402
from transformers import PreTrainedTokenizerFast  # noqa: E402

folder, src, dst, max_length = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
cfg = json.load(open(os.path.join(folder, "tokenizer_config.json")))
names = {k: cfg[k] for k in ("bos_token", "eos_token", "pad_token", "unk_token") if isinstance(cfg.get(k), str)}
tok = prepare(PreTrainedTokenizerFast(tokenizer_file=os.path.join(folder, "tokenizer.json"), **names), max_length)
with open(dst, "w", encoding="utf-8") as out:
    for i, r in enumerate(json.load(open(src, encoding="utf-8"))):
        if r.get("conversations"):
            _, ids, labels = render(tok, r["conversations"])
            out.write(json.dumps({"record": i, "input_ids": ids, "labels": labels}) + "\n")
