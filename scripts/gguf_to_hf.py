#!/usr/bin/env python3
"""Dequantize a llama-architecture GGUF (e.g. SmolLM2-135M-Instruct Q4_1) into a Hugging Face folder
(model.safetensors + config/tokenizer files), using llama.cpp's own gguf-py (vendored in llama-cpp-python's sdist).

    PYTHONPATH=$LLAMA_SRC/gguf-py python scripts/gguf_to_hf.py IN.gguf OUT_DIR --hf-files DIR [--dtype float32|float16|bfloat16]

Tensors are dequantized with gguf.quants.dequantize (numpy reference), the Q/K rows are un-permuted (inverse of
convert_hf_to_gguf.py's LlamaModel.permute), names mapped back to transformers' LlamaForCausalLM names. --hf-files
supplies config.json / tokenizer files (copied; config's torch_dtype set to --dtype).
"""
import argparse, json, re, shutil, sys
from pathlib import Path
import numpy as np
import gguf
import torch
from safetensors.torch import save_file

NAMES = {
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
}

def unpermute(w, n_head):
    # convert_hf_to_gguf: w.reshape(n_head, 2, rows//n_head//2, cols).swapaxes(1, 2).reshape(w.shape)
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

def field(r, key):
    f = r.fields.get(key)
    return None if f is None else f.contents()

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf"); ap.add_argument("out")
    ap.add_argument("--hf-files", help="folder with config.json, tokenizer.json, tokenizer_config.json, ...")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    a = ap.parse_args()
    r = gguf.GGUFReader(a.gguf)
    arch = field(r, "general.architecture")
    if arch != "llama":
        sys.exit(f"gguf_to_hf: only llama architecture handled, got {arch}")
    n_head = int(field(r, "llama.attention.head_count"))
    n_kv = int(field(r, "llama.attention.head_count_kv") or n_head)
    dt = getattr(torch, a.dtype)
    out = {}
    for t in r.tensors:
        w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        w = w.reshape([int(x) for x in reversed(t.shape)])  # GGUF ne is reversed (numpy row-major shape)
        if t.name == "token_embd.weight": name = "model.embed_tokens.weight"
        elif t.name == "output_norm.weight": name = "model.norm.weight"
        elif t.name == "output.weight": name = "lm_head.weight"
        else:
            m = re.fullmatch(r"blk\.(\d+)\.(\w+)\.weight", t.name)
            if not m or m.group(2) not in NAMES:
                sys.exit(f"gguf_to_hf: unexpected tensor {t.name}")
            name = f"model.layers.{m.group(1)}.{NAMES[m.group(2)]}.weight"
            if m.group(2) == "attn_q": w = unpermute(w, n_head)
            if m.group(2) == "attn_k": w = unpermute(w, n_kv)
        out[name] = torch.from_numpy(np.ascontiguousarray(w)).to(dt)
    o = Path(a.out); o.mkdir(parents=True, exist_ok=True)
    save_file(out, str(o / "model.safetensors"), metadata={"format": "pt", "source": Path(a.gguf).name})
    if a.hf_files:
        for f in Path(a.hf_files).iterdir():
            if f.is_file() and f.name not in ("model.safetensors",) and (f.suffix in (".json", ".jinja", ".txt", ".model") and f.name != "reference.json"):
                shutil.copyfile(f, o / f.name)
        cfg = o / "config.json"
        if cfg.exists():
            c = json.loads(cfg.read_text()); c["torch_dtype"] = a.dtype
            c["tie_word_embeddings"] = "lm_head.weight" not in out
            cfg.write_text(json.dumps(c, indent=2) + "\n")
        tc = o / "tokenizer_config.json"
        if tc.exists():  # transformers>=5 writes tokenizer_class "TokenizersBackend", unknown to 4.x (and convert_hf_to_gguf)
            c = json.loads(tc.read_text())
            if c.get("tokenizer_class") == "TokenizersBackend":
                c["tokenizer_class"] = "PreTrainedTokenizerFast"
                tc.write_text(json.dumps(c, indent=2) + "\n")
    print(f"{o}: {len(out)} tensors, {sum(v.numel() for v in out.values())} params, {a.dtype}")

if __name__ == "__main__":
    main()
