#!/usr/bin/env bash
# Prefill and decode speed, side by side, one run:
#   1. SmolLM2-135M-Instruct Q4_1 GGUF (the real model), 128-token prompt then 64 new tokens, $THREADS threads:
#      zoo (`zoo run --token-ids ... --json`, its own timers) vs llama.cpp (`llama-bench -p 128 -n 64`)
#      vs transformers (f32 weights dequantized from the same GGUF, bench/decode_hf.py).
#   2. BLOOM-560m-shaped random model (bench/make_bloom560m.py), f32 and bf16: zoo vs transformers, with
#      the bytes each decode step streams and the machine's read bandwidth (bench/membw.c, needs gcc):
#      the ceiling any engine's decode can reach here.
#
#   bench/decode.sh                 REPS=3 (medians), THREADS=2, SKIP_BLOOM=1 to skip part 2
#
# Needs a release build (cargo build --release), scripts/llama-cpp.sh (built on first use), the .venv-ref venv
# (scripts/ref-venv.sh). Peak RSS from /usr/bin/time. Timed on an otherwise idle machine only.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/llama-common.sh"
REPS="${REPS:-3}"
PY="${ZOO_PY:-$REPO/.venv-ref/bin/python}"
[ -x "$ZOO_BIN" ] || { echo "build zoo first: cargo build --release" >&2; exit 1; }
load_note


# zoo_bench LABEL MODEL VOCAB_MAX: REPS runs of `zoo run`, median prefill/decode tok/s and peak RSS.
zoo_bench() {
  local label=$1 model=$2 vmax=$3 i
  local pids
  pids=$(python3 -c "import random; r=random.Random(128); print(','.join(str(r.randrange(100, $vmax)) for _ in range(128)))")
  for ((i = 0; i < REPS; i++)); do
    /usr/bin/time -f "%M" -o "$W/zoo.rss" "$ZOO_BIN" run "$model" --token-ids "$pids" --max-tokens 65 --greedy \
      --ignore-eos --threads "$THREADS" --json >"$W/zoo.$i.json" 2>"$W/zoo.err" || { cat "$W/zoo.err" >&2; return 1; }
    cat "$W/zoo.rss" >"$W/zoo.$i.rss"
  done
  python3 - "$label" "$W" "$REPS" <<'PY'
import json, statistics, sys
label, w, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
runs = [json.load(open(f"{w}/zoo.{i}.json")) for i in range(n)]
rss = max(int(open(f"{w}/zoo.{i}.rss").read().strip() or 0) for i in range(n)) / 1024
p = statistics.median(r["prompt_tokens_per_s"] for r in runs)
d = statistics.median(r["tokens_per_s"] for r in runs)
print(json.dumps({"engine": "zoo", "model": label, "prefill_tok_s": round(p, 1), "decode_tok_s": round(d, 1), "peak_rss_mib": round(rss)}))
PY
}

echo "== SmolLM2-135M-Instruct Q4_1, $THREADS threads, prefill 128 / decode 64 (medians of $REPS)"
"$LLAMA_BIN/llama-bench" -m "$SMOL_Q41" -t "$THREADS" -p 128 -n 64 -r "$REPS" -o json 2>"$W/llama-bench.err" >"$W/llama-bench.json" \
  || { tail -5 "$W/llama-bench.err" >&2; exit 1; }
python3 - "$W/llama-bench.json" >"$W/llama.json" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))
get = lambda k: next(r["avg_ts"] for r in rows if (r["n_prompt"] if k == "p" else r["n_gen"]) and not (r["n_gen"] if k == "p" else r["n_prompt"]))
print(json.dumps({"engine": "llama.cpp", "model": "smollm2-q4_1", "prefill_tok_s": round(get("p"), 1), "decode_tok_s": round(get("n"), 1), "build": rows[0].get("build_commit")}))
PY
zoo_bench smollm2-q4_1 "$SMOL_Q41" 49000 >"$W/zoo-smol.json"
OMP_NUM_THREADS=$THREADS "$PY" "$REPO/bench/decode_hf.py" --model "$SMOL_HF" --threads "$THREADS" --dtype f32 \
  --rounds "$REPS" --name smollm2-f32 2>/dev/null | tail -1 >"$W/hf-smol.json"
python3 - "$W/zoo-smol.json" "$W/llama.json" "$W/hf-smol.json" <<'PY'
import json, sys
z, l, h = (json.load(open(p)) for p in sys.argv[1:])
for r in (z, l, h):
    print(f"{r['engine']:<13} {r['model']:<14} prefill {r['prefill_tok_s']:8.1f} tok/s   decode {r['decode_tok_s']:7.1f} tok/s" + (f"   peak RSS {r['peak_rss_mib']} MiB" if 'peak_rss_mib' in r else ""))
print(f"ratio zoo/llama.cpp: prefill {z['prefill_tok_s']/l['prefill_tok_s']:.2f}x  decode {z['decode_tok_s']/l['decode_tok_s']:.2f}x   (target >= 1.0)")
print(f"ratio zoo/transformers: prefill {z['prefill_tok_s']/h['prefill_tok_s']:.2f}x  decode {z['decode_tok_s']/h['decode_tok_s']:.2f}x")
PY

[ "${SKIP_BLOOM:-0}" = 1 ] && exit 0
B="${ZOO_CACHE:-$REPO/.cache}/bloom-560m-random"
if [ ! -f "$B/config.json" ] || [ ! -f "$B-bf16/config.json" ]; then
  echo "making $B (random BLOOM-560m shape, 2.1 GB f32 + 1.0 GB bf16)..." >&2
  "$PY" "$REPO/bench/make_bloom560m.py" "$B" >&2
fi
# The ceiling for weight-streaming decode: the machine's read bandwidth (bench/membw.c).
BW=""
if command -v gcc >/dev/null && gcc -O3 -march=native -fopenmp "$REPO/bench/membw.c" -o "$W/membw" 2>/dev/null; then
  BW=$(OMP_NUM_THREADS=$THREADS "$W/membw" | python3 -c "import json,sys; print(json.load(sys.stdin)['read_gb_s'])")
  echo "machine read bandwidth, $THREADS threads (bench/membw.c): $BW GB/s"
fi
echo "== BLOOM-560m-shaped random model, $THREADS threads, prefill 128 / decode 64 (medians of $REPS)"
for dt in f32 bf16; do
  dir=$B; [ "$dt" = bf16 ] && dir=$B-bf16
  zoo_bench "bloom560m-$dt" "$dir" 250000 >"$W/zoo-bloom-$dt.json"
  OMP_NUM_THREADS=$THREADS "$PY" "$REPO/bench/decode_hf.py" --model "$dir" --threads "$THREADS" --dtype "$dt" \
    --rounds "$REPS" --name "bloom560m-$dt" 2>/dev/null | tail -1 >"$W/hf-bloom-$dt.json"
  python3 - "$W/zoo-bloom-$dt.json" "$W/hf-bloom-$dt.json" "$dir" "$BW" <<'PY'
import json, os, sys
z, h = (json.load(open(p)) for p in sys.argv[1:3])
folder, bw = sys.argv[3], sys.argv[4]
for r in (z, h):
    print(f"{r['engine']:<13} {r['model']:<16} prefill {r['prefill_tok_s']:8.1f} tok/s   decode {r['decode_tok_s']:7.1f} tok/s   peak RSS {r.get('peak_rss_mib', '?')} MiB")
print(f"ratio zoo/transformers: prefill {z['prefill_tok_s']/h['prefill_tok_s']:.2f}x  decode {z['decode_tok_s']/h['decode_tok_s']:.2f}x   (decode target >= 2.0)")
# A decode step reads every weight once (the tied head included): bytes/token x tokens/s.
gb = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder) if f.endswith(".safetensors")) / 1e9
line = f"weights {gb:.2f} GB/token: zoo streams {gb * z['decode_tok_s']:.1f} GB/s, transformers {gb * h['decode_tok_s']:.1f} GB/s"
if bw:
    line += f"; ceiling {float(bw):.1f} GB/s = {float(bw) / gb:.1f} tok/s = {float(bw) / gb / h['decode_tok_s']:.2f}x transformers"
print(line)
PY
done
