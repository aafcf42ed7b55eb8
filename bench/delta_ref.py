#!/usr/bin/env python3
"""Helper of bench/delta.sh (run with the reference venv from scripts/ref-venv.sh).

    delta_ref.py gen WORKDIR        make the LLaMA-7B-shaped, 2-layer checkpoints (reused if present)
    delta_ref.py count DIR          print how many tensors a checkpoint folder holds
    delta_ref.py compare A B        compare two checkpoint folders tensor by tensor, bit for bit
    delta_ref.py check BASE DELTA OUT   check OUT == torch's BASE + DELTA (fastchat rule), bitwise

`gen` writes, with transformers' own save_pretrained (the real on-disk formats):
    WORKDIR/base/      f16, sharded safetensors + model.safetensors.index.json, config.json
    WORKDIR/base-bin/  the same base weights as sharded PyTorch .bin + pytorch_model.bin.index.json
                       (FastChat's --low-cpu-mem path only globs pytorch_model-*.bin)
    WORKDIR/delta/     f16, sharded PyTorch .bin + index, config.json, and a LLaMA-style slow
                       tokenizer (sentencepiece tokenizer.model + tokenizer_config.json), because
                       FastChat loads the delta tokenizer with use_fast=False
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

GEN_VERSION = "zoo-bench-delta v1"
SEED = 7
SHARD = "700MB"

SHAPE = dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=2,
             num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=2048,
             rms_norm_eps=1e-6, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
             pad_token_id=0)


def log(msg: str) -> None:
    print(f"[gen] {msg}", file=sys.stderr, flush=True)


def train_tokenizer(out_dir: Path, tmp: Path) -> None:
    """Train a small LLaMA-style sentencepiece model (BPE, byte fallback, <unk>/<s>/</s> = 0/1/2)
    on local text (Python's standard library sources), then let transformers' slow LlamaTokenizer
    write tokenizer.model + tokenizer_config.json + special_tokens_map.json the way it always does.
    Its vocabulary (2,000 pieces) is smaller than the model's 32,000 rows: apply_delta only loads
    and re-saves the tokenizer, it never looks at the vocabulary size."""
    import sentencepiece as spm
    import sysconfig
    from transformers import LlamaTokenizer

    corpus = tmp / "corpus.txt"
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    with corpus.open("w", encoding="utf-8") as f:
        n = 0
        for p in sorted(stdlib.glob("*.py")):
            text = p.read_text(encoding="utf-8", errors="ignore")
            f.write(text)
            n += len(text)
            if n > 4_000_000:
                break
    prefix = tmp / "llama-style"
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(prefix), vocab_size=2000, model_type="bpe",
        byte_fallback=True, split_digits=True, add_dummy_prefix=True,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, character_coverage=0.9995,
        input_sentence_size=200000, shuffle_input_sentence=True, minloglevel=2,
        num_threads=2)
    tok = LlamaTokenizer(vocab_file=str(prefix) + ".model", legacy=True)
    tok.save_pretrained(out_dir)
    back = LlamaTokenizer.from_pretrained(out_dir)
    ids = back("def apply_delta(base, delta):")["input_ids"]
    assert ids[0] == 1 and len(ids) > 3, ids


def fill_(model, gen, std_matrix: float, norm_mean: float) -> None:
    import torch
    with torch.no_grad():
        for name, p in model.named_parameters():
            t = torch.randn(p.shape, generator=gen, dtype=torch.float32).mul_(std_matrix)
            if name.endswith("norm.weight"):
                t.add_(norm_mean)
            p.copy_(t)
            del t


def gen(work: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    stamp = work / ".complete"
    want = json.dumps({"v": GEN_VERSION, "seed": SEED, "shape": SHAPE, "shard": SHARD},
                      sort_keys=True)
    if stamp.exists() and stamp.read_text() == want:
        log(f"reusing {work}")
        return
    t0 = time.time()
    work.mkdir(parents=True, exist_ok=True)
    for sub in ("base", "base-bin", "delta", "tmp"):
        d = work / sub
        if d.exists():
            import shutil
            shutil.rmtree(d)
    cfg = LlamaConfig(**SHAPE, torch_dtype=torch.float16)
    with torch.device("meta"):
        model = LlamaForCausalLM(cfg)
    model = model.to(torch.float16).to_empty(device="cpu")
    g = torch.Generator().manual_seed(SEED)

    log("base weights (f16, N(0, 0.02), norms ~1)")
    fill_(model, g, 0.02, 1.0)
    model.save_pretrained(work / "base", safe_serialization=True, max_shard_size=SHARD)
    model.save_pretrained(work / "base-bin", safe_serialization=False, max_shard_size=SHARD)

    log("delta weights (f16, N(0, 0.002))")
    fill_(model, g, 0.002, 0.0)
    model.save_pretrained(work / "delta", safe_serialization=False, max_shard_size=SHARD)
    del model

    log("LLaMA-style sentencepiece tokenizer for the delta")
    (work / "tmp").mkdir()
    train_tokenizer(work / "delta", work / "tmp")
    import shutil
    shutil.rmtree(work / "tmp")
    os.sync()
    stamp.write_text(want)
    log(f"done in {time.time() - t0:.1f} s")


def load_dir(d: Path):
    import safetensors.torch
    import torch
    out = {}
    for f in sorted(d.glob("*.safetensors")):
        out.update(safetensors.torch.load_file(f))
    for f in sorted(d.glob("*.bin")):
        out.update(torch.load(f, map_location="cpu", weights_only=True, mmap=True))
    return out


def count(d: Path) -> None:
    print(len(load_dir(d)))


def compare(a: Path, b: Path) -> int:
    import torch
    ta, tb = load_dir(a), load_dir(b)
    if set(ta) != set(tb):
        print(f"different tensor names: only in {a.name}: {sorted(set(ta) - set(tb))[:5]}; "
              f"only in {b.name}: {sorted(set(tb) - set(ta))[:5]}")
        return 1
    bad = []
    for k in ta:
        x, y = ta[k], tb[k]
        if x.dtype != y.dtype or x.shape != y.shape:
            bad.append(f"{k}: {x.dtype}{list(x.shape)} vs {y.dtype}{list(y.shape)}")
            continue
        iv = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[x.element_size()]
        n = int((x.contiguous().view(iv) != y.contiguous().view(iv)).sum())
        if n:
            bad.append(f"{k}: {n} elements differ")
    if bad:
        print(f"{len(bad)} of {len(ta)} tensors differ: " + "; ".join(bad[:5]))
        return 1
    print(f"bit-identical ({len(ta)} tensors)")
    return 0


def check(base: Path, delta: Path, out: Path) -> int:
    """Independent of FastChat's code path: torch's own f16 add of the two inputs, per tensor."""
    import torch
    tb, td, to = load_dir(base), load_dir(delta), load_dir(out)
    bad = [k for k in td if k not in to] + [k for k in to if k not in td]
    for k, d in td.items():
        if k not in to or k not in tb:
            continue
        b = tb[k]
        want = d.clone()
        want[: b.shape[0]] += b
        got = to[k]
        if got.dtype != want.dtype or got.shape != want.shape or not torch.equal(
                got.contiguous().view(torch.int16), want.view(torch.int16)):
            bad.append(k)
    if bad:
        print(f"{len(bad)} tensors differ from torch's base + delta: {bad[:5]}")
        return 1
    print(f"bit-identical to torch's base + delta ({len(td)} tensors)")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "gen":
        gen(Path(argv[1]))
        return 0
    if len(argv) == 2 and argv[0] == "count":
        count(Path(argv[1]))
        return 0
    if len(argv) == 4 and argv[0] == "check":
        return check(Path(argv[1]), Path(argv[2]), Path(argv[3]))
    if len(argv) == 3 and argv[0] == "compare":
        return compare(Path(argv[1]), Path(argv[2]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
