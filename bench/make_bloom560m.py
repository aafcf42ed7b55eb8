#!/usr/bin/env python3
"""Write a random-weight model shaped like bigscience/bloom-560m, for speed benchmarks only.

    nice -n 19 .venv-ref/bin/python bench/make_bloom560m.py DEST

Writes DEST/ (config.json + model.safetensors, f32, ~2.2 GB) and DEST-bf16/ (the same weights rounded
to bf16, ~1.1 GB), loadable by transformers' BloomForCausalLM and by our loader (tied lm_head: no
`lm_head.weight` in the file, as save_pretrained writes it). Shapes: BloomConfig hidden 1024, 24 layers,
16 heads, vocab 250880. Weights: seeded N(0, 0.02) for every matrix (as transformers' own init),
LayerNorm weights 1 and all biases 0. Deterministic (fixed seed). Generated at benchmark time; never
commit the output (it belongs under .cache/ or /tmp).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import safetensors.torch
import torch
from transformers import BloomConfig, BloomForCausalLM

SEED = 560
STD = 0.02


def config(dtype: str) -> BloomConfig:
    return BloomConfig(
        vocab_size=250880, hidden_size=1024, n_layer=24, n_head=16, layer_norm_epsilon=1e-5,
        tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=3,
        architectures=["BloomForCausalLM"], dtype=dtype,
    )


def shapes(cfg: BloomConfig) -> dict[str, tuple[int, ...]]:
    """Names/shapes of the parameters save_pretrained would write (tied lm_head appears once, as the
    embedding), in transformers' order."""
    with torch.device("meta"):
        model = BloomForCausalLM(cfg)
    return {k: tuple(p.shape) for k, p in model.named_parameters()}


def weights(cfg: BloomConfig) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(SEED)
    out = {}
    for name, shape in shapes(cfg).items():
        if name.endswith(".bias"):
            out[name] = torch.zeros(shape)
        elif "layernorm" in name or "ln_f" in name:
            out[name] = torch.ones(shape)
        else:
            out[name] = torch.randn(shape, generator=gen) * STD
    return out


def write(dest: Path, tensors: dict[str, torch.Tensor], cfg: BloomConfig) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    cfg.save_pretrained(dest)
    safetensors.torch.save_file(tensors, dest / "model.safetensors", metadata={"format": "pt"})
    size = (dest / "model.safetensors").stat().st_size
    print(f"{dest}: {len(tensors)} tensors, {sum(t.numel() for t in tensors.values()) / 1e6:.1f} M params, "
          f"{size / 2**30:.2f} GiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dest", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    dest = args.dest.resolve()
    f32 = weights(config("float32"))
    write(dest, f32, config("float32"))
    bf16 = {k: v.to(torch.bfloat16) for k, v in f32.items()}
    del f32
    write(dest.with_name(dest.name + "-bf16"), bf16, config("bfloat16"))


if __name__ == "__main__":
    main()
