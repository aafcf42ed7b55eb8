#!/usr/bin/env bash
# Prefill and decode speed, side by side, one run:
#   1. SmolLM2-135M-Instruct Q4_1 GGUF (the real model), 128-token prompt then 64 new tokens, $THREADS threads:
#      zoo (`zoo run --token-ids ... --json`, its own timers) vs llama.cpp (`llama-bench -p 128 -n 64`)
#      vs transformers (f32 weights dequantized from the same GGUF, bench/decode_hf.py).
#   2. BLOOM-560m-shaped random model (bench/make_bloom560m.py), f32 and bf16: zoo vs transformers, with
#      the bytes each decode step streams and the machine's read bandwidth (bench/membw.c, needs gcc):
#      the ceiling any engine's decode can reach here.
#
# The repetitions are paired: zoo and the peer back to back, so each pair sees the same minutes of this
# shared machine (whose memory bandwidth moves by ±20% from minute to minute), in ABBA order (zoo first in
# even pairs, the peer first in odd ones). Printed per engine: the
# median of REPS; per comparison: the median ratio over the REPS pairs, with its range.
#
#   bench/decode.sh                 REPS=3, THREADS=2, SKIP_BLOOM=1 to skip part 2
#
# Needs a release build (cargo build --release), scripts/llama-cpp.sh (built on first use), the .venv-ref venv
# (scripts/ref-venv.sh). Peak RSS from /usr/bin/time. Timed on an otherwise idle machine only.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/llama-common.sh"
REPS="${REPS:-3}"
PY="${ZOO_PY:-$REPO/.venv-ref/bin/python}"
[ -x "$ZOO_BIN" ] || { echo "build zoo first: cargo build --release" >&2; exit 1; }
load_note

# zoo_once LABEL MODEL VOCAB_MAX I: one `zoo run` (128 seeded random prompt ids below VOCAB_MAX, 64 new
# tokens) into $W/zoo-LABEL.I.json, its peak RSS (KiB) into $W/zoo-LABEL.I.rss.
zoo_once() {
  local label=$1 model=$2 vmax=$3 i=$4 pids
  pids=$(python3 -c "import random; r=random.Random(128); print(','.join(str(r.randrange(100, $vmax)) for _ in range(128)))")
  /usr/bin/time -f "%M" -o "$W/zoo-$label.$i.rss" "$ZOO_BIN" run "$model" --token-ids "$pids" --max-tokens 65 \
    --greedy --ignore-eos --threads "$THREADS" --json >"$W/zoo-$label.$i.json" 2>"$W/zoo.err" \
    || { cat "$W/zoo.err" >&2; return 1; }
}

# hf_once LABEL MODEL DTYPE I: one bench/decode_hf.py process (one timed round) into $W/hf-LABEL.I.json.
hf_once() {
  OMP_NUM_THREADS=$THREADS "$PY" "$REPO/bench/decode_hf.py" --model "$2" --threads "$THREADS" --dtype "$3" \
    --rounds 1 --name "$1" 2>/dev/null | tail -1 >"$W/hf-$1.$4.json"
}

# llama_once I: one `llama-bench -r 1` into $W/llama.I.json ({prefill_tok_s, decode_tok_s}).
llama_once() {
  "$LLAMA_BIN/llama-bench" -m "$SMOL_Q41" -t "$THREADS" -p 128 -n 64 -r 1 -o json 2>"$W/llama-bench.err" \
    >"$W/llama-bench.json" || { tail -5 "$W/llama-bench.err" >&2; return 1; }
  python3 - "$W/llama-bench.json" >"$W/llama.$1.json" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))
get = lambda k: next(r["avg_ts"] for r in rows if (r["n_prompt"] if k == "p" else r["n_gen"]) and not (r["n_gen"] if k == "p" else r["n_prompt"]))
print(json.dumps({"engine": "llama.cpp", "prefill_tok_s": get("p"), "decode_tok_s": get("n"), "build": rows[0].get("build_commit")}))
PY
}

# report LABEL PEER_PREFIX PEER_NAME TARGET [FOLDER BW]: medians of both engines, paired ratios, and (with
# FOLDER) the bandwidth each engine's decode draws against the machine's.
report() {
  python3 - "$W" "$REPS" "$@" <<'PY'
import json, os, statistics as st, sys
w, n, label, peer, name, target = sys.argv[1], int(sys.argv[2]), *sys.argv[3:7]
folder, bw = (sys.argv[7], sys.argv[8]) if len(sys.argv) > 8 else (None, "")
z = [json.load(open(f"{w}/zoo-{label}.{i}.json")) for i in range(n)]
p = [json.load(open(f"{w}/{peer}.{i}.json")) for i in range(n)]
rss = max(int(open(f"{w}/zoo-{label}.{i}.rss").read().strip() or 0) for i in range(n)) / 1024
zp, zd = [r["prompt_tokens_per_s"] for r in z], [r["tokens_per_s"] for r in z]
pp, pd = [r["prefill_tok_s"] for r in p], [r["decode_tok_s"] for r in p]
print(f"zoo           {label:<16} prefill {st.median(zp):8.1f} tok/s   decode {st.median(zd):7.1f} tok/s   peak RSS {rss:.0f} MiB")
prss = f"   peak RSS {max(r['peak_rss_mib'] for r in p):.0f} MiB" if "peak_rss_mib" in p[0] else ""
print(f"{name:<13} {label:<16} prefill {st.median(pp):8.1f} tok/s   decode {st.median(pd):7.1f} tok/s{prss}")
rp = sorted(a / b for a, b in zip(zp, pp))
rd = sorted(a / b for a, b in zip(zd, pd))
print(f"paired ratio zoo/{name}: prefill {st.median(rp):.2f}x ({rp[0]:.2f}-{rp[-1]:.2f})   "
      f"decode {st.median(rd):.2f}x ({rd[0]:.2f}-{rd[-1]:.2f})   (target {target})")
if folder:
    gb = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder) if f.endswith(".safetensors")) / 1e9
    cfg = json.load(open(os.path.join(folder, "config.json")))
    # Greedy decode reads half of the head (plus a few exact rows): an f32 head's upper 16-bit
    # plane, a bf16 head's code plane (zoo_kernels::greedy).
    dtype = cfg.get("dtype", cfg.get("torch_dtype"))
    width = {"float32": 4, "bfloat16": 2}.get(dtype, 0)
    zgb = gb - cfg["vocab_size"] * cfg["hidden_size"] * width / 2 / 1e9
    line = f"weights {gb:.2f} GB/token (zoo greedy reads {zgb:.2f}): zoo streams {zgb * st.median(zd):.1f} GB/s, {name} {gb * st.median(pd):.1f} GB/s"
    if bw:
        line += f"; ceiling {float(bw):.1f} GB/s = {float(bw) / zgb:.1f} tok/s = {float(bw) / zgb / st.median(pd):.2f}x {name}"
    print(line)
PY
}

echo "== SmolLM2-135M-Instruct Q4_1, $THREADS threads, prefill 128 / decode 64 ($REPS paired runs)"
for ((i = 0; i < REPS; i++)); do
  # ABBA order: which engine runs first in a pair alternates, so neither gains from going first.
  if ((i % 2 == 0)); then
    zoo_once smollm2-q4_1 "$SMOL_Q41" 49000 "$i"
    llama_once "$i"
  else
    llama_once "$i"
    zoo_once smollm2-q4_1 "$SMOL_Q41" 49000 "$i"
  fi
done
report smollm2-q4_1 llama llama.cpp ">= 1.0 for both"
OMP_NUM_THREADS=$THREADS "$PY" "$REPO/bench/decode_hf.py" --model "$SMOL_HF" --threads "$THREADS" --dtype f32 \
  --rounds "$REPS" --name smollm2-f32 2>/dev/null | tail -1 >"$W/hf-smol.json"
python3 - "$W/hf-smol.json" <<'PY'
import json, sys
h = json.load(open(sys.argv[1]))
print(f"transformers  {h['model']:<16} prefill {h['prefill_tok_s']:8.1f} tok/s   decode {h['decode_tok_s']:7.1f} tok/s   peak RSS {h['peak_rss_mib']:.0f} MiB (f32 weights dequantized from the GGUF; for scale)")
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
echo "== BLOOM-560m-shaped random model, $THREADS threads, prefill 128 / decode 64 ($REPS paired runs)"
for dt in f32 bf16; do
  dir=$B; [ "$dt" = bf16 ] && dir=$B-bf16
  for ((i = 0; i < REPS; i++)); do
    if ((i % 2 == 0)); then
      zoo_once "bloom560m-$dt" "$dir" 250000 "$i"
      hf_once "bloom560m-$dt" "$dir" "$dt" "$i"
    else
      hf_once "bloom560m-$dt" "$dir" "$dt" "$i"
      zoo_once "bloom560m-$dt" "$dir" 250000 "$i"
    fi
  done
  report "bloom560m-$dt" "hf-bloom560m-$dt" transformers "decode >= 2.0" "$dir" "$BW"
done
