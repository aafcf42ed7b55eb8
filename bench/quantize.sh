#!/usr/bin/env bash
# Benchmark: `zoo quantize` vs llama.cpp's `llama-quantize` on SmolLM2-135M-Instruct, 2 threads, Q4_0 and Q4_K_M.
#
#   bench/quantize.sh            (RUNS=3 THREADS=2 by default)
#
# Inputs (made by scripts/smollm2.sh, cached under ${ZOO_CACHE:-.cache}/smollm2):
#   zoo:            `zoo quantize --in hf/ --out X.gguf --type q4_0|q4_k_m --threads 2` (reads the f32 safetensors folder)
#   llama-quantize: `llama-quantize SmolLM2-135M-Instruct.F16.gguf out.gguf Q4_0|Q4_K_M 2` (its best case: F16 GGUF in,
#                   no safetensors parsing, no HF->GGUF conversion)
# Note the inputs differ (f32 safetensors 538 MB vs F16 GGUF 271 MB): zoo's row includes reading/converting the HF
# folder, which is the job it does; llama.cpp's full HF path would be convert_hf_to_gguf.py + llama-quantize.
# Each row: median wall time of RUNS runs; the output file is deleted (and the disk synced) before each run; one
# untimed run first warms the page cache. Ratio = zoo / llama-quantize (<1: zoo faster).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/llama-common.sh"
RUNS="${RUNS:-3}"
OUT="$W/quantize"; mkdir -p "$OUT"
echo "SmolLM2-135M-Instruct, $THREADS threads, median of $RUNS; llama.cpp from llama-cpp-python $LLAMA_CPP_PYTHON_VERSION"
load_note
printf '%-10s %14s %18s %10s\n' type "zoo (s)" "llama-quantize (s)" "zoo/llama"
for t in q4_0 q4_k_m; do
  T=$(echo "$t" | tr a-z A-Z)
  "$LLAMA_BIN/llama-quantize" "$SMOL_F16" "$OUT/llama.$t.gguf" "$T" "$THREADS" >/dev/null 2>&1   # warm-up
  lq=$(median_time "$RUNS" "$OUT/llama.$t.gguf" -- "$LLAMA_BIN/llama-quantize" "$SMOL_F16" "$OUT/llama.$t.gguf" "$T" "$THREADS")
  if zoo_has quantize; then
    "$ZOO_BIN" quantize --in "$SMOL_HF" --out "$OUT/zoo.$t.gguf" --type "$t" --threads "$THREADS" --overwrite >/dev/null 2>&1 || true
    zq=$(median_time "$RUNS" "$OUT/zoo.$t.gguf" -- "$ZOO_BIN" quantize --in "$SMOL_HF" --out "$OUT/zoo.$t.gguf" --type "$t" --threads "$THREADS") || zq=FAILED
  else
    zq=""
  fi
  if [ -z "$zq" ]; then
    printf '%-10s %14s %18s %10s\n' "$T" "-" "$lq" "-"
  else
    ratio=$(awk -v z="$zq" -v l="$lq" 'BEGIN {if (z+0 > 0) printf "%.2f", z / l; else print "-"}')
    printf '%-10s %14s %18s %10s\n' "$T" "$zq" "$lq" "$ratio"
  fi
done
zoo_has quantize || echo "$ZOO_MISSING ($ZOO_BIN quantize)"
ls -l "$OUT"/*.gguf | awk '{printf "  %10d  %s\n", $5, $NF}'
