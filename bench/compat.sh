#!/usr/bin/env bash
# Compatibility check: do llama.cpp's loaders accept zoo's GGUFs and generate like the reference?
#
#   bench/compat.sh             (exit 1 when a model fails to load, or when zoo's Q8_0/Q4_0 first greedy token differs
#                               from llama.cpp's own Q8_0/Q4_0's: see bench/compat_report.py)
#
# Steps: zoo dequantize SmolLM2's Q4_1 GGUF -> safetensors folder; zoo quantize that folder -> Q8_0 and Q4_0;
# llama-quantize the F16 GGUF (scripts/smollm2.sh) -> Q8_0. Then, for every case of the fixtures' reference.json,
# llama.cpp (llama-greedy: libllama, greedy argmax from the case's prompt ids, no chat templating, 2 threads)
# prints the first 8 greedy ids on
#   (a) zoo's Q8_0, (b) zoo's Q4_0, (c) llama.cpp's own Q8_0 from the F16 GGUF, (c4) llama.cpp's own Q4_0 (note:
#   llama-quantize keeps the tied token_embd/output at Q8_0 in a Q4_0 file: Q6_K falls back, 576 % 256 != 0),
#   (o) the original Q4_1 GGUF,
# next to (d) the reference (transformers on the dequantized Q4_1 weights), and whether the first token matches;
# under each llama.cpp row, zoo's own runner (`zoo run FILE --token-ids ... --greedy`) on the same file: its first
# token must equal llama.cpp's (exit 1 otherwise).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/llama-common.sh"
N="${N:-8}"
OUT="$W/compat"; mkdir -p "$OUT"
a="-$ZOO_MISSING"; b="-$ZOO_MISSING"
if zoo_has dequantize && zoo_has quantize; then
  if "$ZOO_BIN" dequantize "$SMOL_Q41" --out "$OUT/zoo-hf" --overwrite >"$OUT/zoo-dequantize.log" 2>&1; then
    "$ZOO_BIN" quantize --in "$OUT/zoo-hf" --out "$OUT/zoo.q8_0.gguf" --type q8_0 --threads "$THREADS" --overwrite \
      >"$OUT/zoo-q8_0.log" 2>&1 && a="$OUT/zoo.q8_0.gguf" || a="-zoo quantize q8_0 FAILED: $(tail -1 "$OUT/zoo-q8_0.log")"
    "$ZOO_BIN" quantize --in "$OUT/zoo-hf" --out "$OUT/zoo.q4_0.gguf" --type q4_0 --threads "$THREADS" --overwrite \
      >"$OUT/zoo-q4_0.log" 2>&1 && b="$OUT/zoo.q4_0.gguf" || b="-zoo quantize q4_0 FAILED: $(tail -1 "$OUT/zoo-q4_0.log")"
  else
    a="-zoo dequantize FAILED: $(tail -1 "$OUT/zoo-dequantize.log")"; b="$a"
  fi
fi
for t in q8_0 q4_0; do
  if [ ! -f "$OUT/llama.$t.gguf" ] || [ "$SMOL_F16" -nt "$OUT/llama.$t.gguf" ]; then
    "$LLAMA_BIN/llama-quantize" "$SMOL_F16" "$OUT/llama.$t.gguf" "${t^^}" "$THREADS" >"$OUT/llama-quantize.$t.log" 2>&1
  fi
done
echo "llama.cpp from llama-cpp-python $LLAMA_CPP_PYTHON_VERSION, first $N greedy ids per case"
ZOO_BIN="$ZOO_BIN" python3 "$REPO/bench/compat_report.py" "$REF_JSON" "$LLAMA_BIN/llama-greedy" "$N" "$THREADS" \
  "(c) llama.cpp Q8_0 (from F16)=$OUT/llama.q8_0.gguf" "(c4) llama.cpp Q4_0 (from F16)=$OUT/llama.q4_0.gguf" \
  "(a) zoo Q8_0=$a" "(b) zoo Q4_0=$b" "(o) original Q4_1 GGUF=$SMOL_Q41"
