#!/usr/bin/env python3
"""Write a synthetic catalog of N models (default 10,000) in 20 family files, valid for
`zoo registry check`, for bench/registry.sh. Deterministic: same N, same files."""
import os
import random
import sys

n = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = random.Random(42)
archs = ["llama", "bloom", "qwen2", "gemma", "baichuan", "mistral"]
langs = ["en", "zh", "fr", "es", "ar", "hi", "de", "ja", "ko", "pt", "ru", "it"]
kinds = ["full", "full", "full", "delta", "quantized", "api"]
families = 20
per = n // families
for f in range(families):
    lines = [f'[family]\nname = "fam{f}"\ntitle = "Family {f}"\n']
    for i in range(per):
        name = f"fam{f}-model-{i}"
        kind = rng.choice(kinds) if i > 0 else "full"
        lines.append("[[model]]")
        lines.append(f'name = "{name}"')
        lines.append(f'kind = "{kind}"')
        lines.append(f'hf_repo = "org{f}/model-{i}"')
        lines.append(f'arch = "{rng.choice(archs)}"')
        lines.append(f"params = {rng.choice([0.5, 1.8, 2, 6, 7, 13, 34, 72])}")
        lines.append(f'languages = [{", ".join(chr(34) + l + chr(34) for l in rng.sample(langs, rng.randint(1, 4)))}]')
        lines.append(f"context_length = {rng.choice([2048, 4096, 8192, 32768])}")
        lines.append(f'release_date = "2024-{rng.randint(1, 12):02d}"')
        lines.append(f'description = "Synthetic model {i} of family {f}."')
        if kind in ("delta", "quantized"):
            lines.append(f'base = "fam{f}-model-0"')
        if kind == "delta":
            lines.append('delta_algorithm = "fastchat"')
        if kind == "quantized":
            lines.append('[model.quantization]\nmethod = "gptq"\nbits = 4\ngroup_size = 128')
        lines.append("")
    with open(os.path.join(out, f"fam{f}.toml"), "w") as fh:
        fh.write("\n".join(lines))
print(f"wrote {families * per} models to {out}")
