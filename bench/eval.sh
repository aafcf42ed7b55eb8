#!/usr/bin/env bash
# Benchmark + agreement check: `zoo eval mcq --mode loglik --prompt mmlu-classic` on MMLU-Medical (6 subjects,
# 1,089 questions) with SmolLM2-135M-Instruct, against the transformers script that made the reference
# (tests/fixtures/eval/make_mmlu_reference.py: batch 1, no padding), both on THREADS threads, in one run.
#   bench/eval.sh                  (THREADS=2 LIMIT=1089 BATCH=16)
# Prints questions/s of each and the ratio (zoo / transformers, >1: zoo faster), with the weights dequantized to
# f32 (the same weights for both) and with the Q4_1 GGUF (zoo only; transformers runs f32), plus each run's accuracy
# and how many per-question predictions agree with transformers'.
# Needs: a release build of zoo (cargo build --release) and Python with torch and transformers: REF_PYTHON=BIN, else
# the reference venv that scripts/ref-venv.sh makes.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ZOO_BIN="${ZOO_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/release/zoo}"
THREADS="${THREADS:-2}"
LIMIT="${LIMIT:-1089}"
BATCH="${BATCH:-16}"
W="${ZOO_BENCH_DIR:-/tmp/zoo-bench-eval}"
[ -x "$ZOO_BIN" ] || { echo "build zoo first: cargo build --release" >&2; exit 1; }
PY="${REF_PYTHON:-$("$REPO/scripts/ref-venv.sh" | tail -1)/bin/python}"
mkdir -p "$W"
Q="$REPO/tests/fixtures/eval/mmlu-medical-6.jsonl"
export ZOO_DB="$W/registry.db" HF_ENDPOINT="${HF_ENDPOINT:-http://127.0.0.1:9}"
GGUF="$("$ZOO_BIN" pull smollm2-135m-instruct --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["snapshot"])')/SmolLM2-135M-Instruct.Q4_1.gguf"
HF="$W/smollm2-f32"
[ -f "$HF/model.safetensors" ] || "$ZOO_BIN" dequantize "$GGUF" --out "$HF" --dtype f32 >/dev/null

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $THREADS threads; load $(cut -d' ' -f1 /proc/loadavg)"
"$PY" "$REPO/tests/fixtures/eval/make_mmlu_reference.py" "$HF" "$Q" "$W/transformers.json" \
  --threads "$THREADS" --limit "$LIMIT" 2>/dev/null
for m in f32 q4_1; do
  model=$([ "$m" = f32 ] && echo "$HF" || echo "$GGUF")
  "$ZOO_BIN" eval mcq "$Q" -m "$model" --limit "$LIMIT" --batch "$BATCH" --threads "$THREADS" --restart \
    --predictions "$W/zoo.$m.jsonl" --json --progress off >"$W/zoo.$m.json"
done
python3 - "$W" <<'PY'
import json, sys
w = sys.argv[1]
t = json.load(open(f"{w}/transformers.json"))
ref = {p["index"]: p["pred"] for p in t["predictions"]}
print(f"{'run':<22} {'questions/s':>12} {'accuracy %':>11} {'same pred':>10} {'vs transformers':>16}")
print(f"{'transformers f32':<22} {t['questions_per_s']:>12.2f} {t['accuracy']:>11.2f} {'-':>10} {'1.00x':>16}")
for m in ["f32", "q4_1"]:
    z = json.load(open(f"{w}/zoo.{m}.json"))
    preds = [json.loads(l) for l in open(f"{w}/zoo.{m}.jsonl")]
    same = sum(ref.get(p["index"]) == p["pred"] for p in preds)
    ratio = z["questions_per_s"] / t["questions_per_s"]
    print(f"{'zoo ' + m:<22} {z['questions_per_s']:>12.2f} {z['overall']:>11.2f} {same:>5}/{len(preds):<4} {ratio:>15.2f}x")
PY
