#!/usr/bin/env python3
"""A LLaMA-architecture Hugging Face folder with random weights (7B-shaped by default, N layers), for the
speed matrix (bench/speed-matrix.sh) and quantizer memory checks. Standard library only.

    python3 bench/make_llama_shaped.py --out DIR [--layers 4] [--hidden 4096] [--ffn 11008] [--heads 32]
        [--kv-heads 32] [--dtype f16|bf16] [--seed 0]

Writes DIR/config.json, generation_config.json, the SmolLM2 tokenizer (tests/fixtures/reference/smollm2: vocab
49152), model-0000X-of-0000Y.safetensors shards (<= 2 GB each) and model.safetensors.index.json. The weights are
seeded random bytes (random.Random(seed).randbytes) whose high byte per 16-bit value goes through a 256-entry
table: the sign and low mantissa bits stay random, the exponent is pinned so every value is finite with
|x| in about 0.002..0.03 (std ~0.018, like a 0.02-std init); norm weights are 1.0..1.05. Same arguments, same
bytes. Written to DIR.tmp, renamed to DIR at the end; prints DIR. 4 layers of 7B shape: ~2.4 GB.
"""
import argparse
import json
import os
import random
import shutil
import struct
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOL = os.path.join(REPO, "tests", "fixtures", "reference", "smollm2")
VOCAB = 49152
SHARD_MAX = 2_000_000_000
CHUNK = 1 << 24  # bytes of random data per randbytes call


def weight_table(dtype):
    """256-entry translation for the high (second, little-endian) byte of each 16-bit value."""
    out = bytearray(256)
    for b in range(256):
        sign = b & 0x80
        if dtype == "f16":
            # f16 high byte: sign | 5 exponent bits | 2 top mantissa bits. Biased exponent 7, 8 or 9
            # (2^-8, 2^-7, 2^-6: |x| in [0.0039, 0.031)), weighted 1:1:2 by the random exponent bits.
            r = (b >> 2) & 0x1F
            exp = 7 if r < 8 else 8 if r < 16 else 9
            out[b] = sign | (exp << 2) | (b & 0x03)
        else:
            # bf16 high byte: sign | top 7 of 8 exponent bits (the lowest one is in the low byte, random).
            # 59 -> exponent 118/119 (2^-9, 2^-8), 60 -> 120/121 (2^-7, 2^-6); 1:3.
            r = b & 0x7F
            out[b] = sign | (59 if r < 32 else 60)
    return bytes(out)


def norm_bytes(rng, n_values, dtype):
    """n_values 16-bit values in [1.0, 1.05)."""
    lo = bytearray(rng.randbytes(n_values))
    if dtype == "f16":  # 0x3C00 = 1.0; low byte keeps 5 random mantissa bits (+ up to 31/1024)
        lo = lo.translate(bytes(i & 0x1F for i in range(256)))
        hi = 0x3C
    else:  # 0x3F80 = 1.0; low byte 0x80 | 3 random mantissa bits (+ up to 7/128)
        lo = lo.translate(bytes(0x80 | (i & 0x07) for i in range(256)))
        hi = 0x3F
    out = bytearray(2 * n_values)
    out[0::2] = lo
    out[1::2] = bytes([hi]) * n_values
    return bytes(out)


def tensors(args):
    """(name, shape, kind) in file order; kind is 'w' (random weight) or 'n' (norm)."""
    h, f, hd = args.hidden, args.ffn, args.hidden // args.heads
    kv = args.kv_heads * hd
    yield "model.embed_tokens.weight", [VOCAB, h], "w"
    for i in range(args.layers):
        p = f"model.layers.{i}."
        yield p + "input_layernorm.weight", [h], "n"
        yield p + "self_attn.q_proj.weight", [h, h], "w"
        yield p + "self_attn.k_proj.weight", [kv, h], "w"
        yield p + "self_attn.v_proj.weight", [kv, h], "w"
        yield p + "self_attn.o_proj.weight", [h, h], "w"
        yield p + "post_attention_layernorm.weight", [h], "n"
        yield p + "mlp.gate_proj.weight", [f, h], "w"
        yield p + "mlp.up_proj.weight", [f, h], "w"
        yield p + "mlp.down_proj.weight", [h, f], "w"
    yield "model.norm.weight", [h], "n"
    yield "lm_head.weight", [VOCAB, h], "w"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=4096)
    ap.add_argument("--ffn", type=int, default=11008)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--kv-heads", type=int, default=32)
    ap.add_argument("--dtype", choices=["f16", "bf16"], default="f16")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.hidden % args.heads or args.heads % args.kv_heads:
        ap.error("hidden must be a multiple of heads, heads a multiple of kv-heads")
    out = os.path.abspath(args.out)
    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)

    smol = json.load(open(os.path.join(SMOL, "config.json")))
    torch_dtype = {"f16": "float16", "bf16": "bfloat16"}[args.dtype]
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": args.hidden,
        "intermediate_size": args.ffn,
        "num_hidden_layers": args.layers,
        "num_attention_heads": args.heads,
        "num_key_value_heads": args.kv_heads,
        "head_dim": args.hidden // args.heads,
        "hidden_act": "silu",
        "vocab_size": VOCAB,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": False,
        "bos_token_id": smol["bos_token_id"],
        "eos_token_id": smol["eos_token_id"],
        "torch_dtype": torch_dtype,
        "initializer_range": 0.02,
        "use_cache": True,
    }
    with open(os.path.join(tmp, "config.json"), "w") as fh:
        json.dump(config, fh, indent=2)
    with open(os.path.join(tmp, "generation_config.json"), "w") as fh:
        json.dump({"bos_token_id": smol["bos_token_id"], "eos_token_id": smol["eos_token_id"]}, fh, indent=2)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if os.path.exists(os.path.join(SMOL, name)):
            shutil.copy(os.path.join(SMOL, name), os.path.join(tmp, name))

    # Plan the shards: tensors in order, a new shard when the next tensor would pass SHARD_MAX.
    shards, cur, cur_size = [], [], 0
    for name, shape, kind in tensors(args):
        nbytes = 2
        for d in shape:
            nbytes *= d
        if cur and cur_size + nbytes > SHARD_MAX:
            shards.append(cur)
            cur, cur_size = [], 0
        cur.append((name, shape, kind, nbytes))
        cur_size += nbytes
    shards.append(cur)

    rng = random.Random(args.seed)
    table = weight_table(args.dtype)
    st_dtype = {"f16": "F16", "bf16": "BF16"}[args.dtype]
    weight_map, total = {}, 0
    for si, shard in enumerate(shards):
        fname = f"model-{si + 1:05d}-of-{len(shards):05d}.safetensors"
        header, off = {"__metadata__": {"format": "pt"}}, 0
        for name, shape, _, nbytes in shard:
            header[name] = {"dtype": st_dtype, "shape": shape, "data_offsets": [off, off + nbytes]}
            off += nbytes
            weight_map[name] = fname
        hjson = json.dumps(header, separators=(",", ":")).encode()
        hjson += b" " * (-len(hjson) % 8)
        with open(os.path.join(tmp, fname), "wb") as fh:
            fh.write(struct.pack("<Q", len(hjson)))
            fh.write(hjson)
            for name, shape, kind, nbytes in shard:
                if kind == "n":
                    fh.write(norm_bytes(rng, nbytes // 2, args.dtype))
                    continue
                left = nbytes
                while left:
                    n = min(CHUNK, left)
                    buf = bytearray(rng.randbytes(n))
                    buf[1::2] = buf[1::2].translate(table)
                    fh.write(buf)
                    left -= n
        total += off
        print(f"wrote {fname} ({off / 1e9:.2f} GB)", file=sys.stderr)
    with open(os.path.join(tmp, "model.safetensors.index.json"), "w") as fh:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, fh, indent=2)

    shutil.rmtree(out, ignore_errors=True)
    os.rename(tmp, out)
    print(out)


if __name__ == "__main__":
    main()
