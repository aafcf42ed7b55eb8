#!/usr/bin/env bash
# Decode/prefill speed on SmolLM2-135M-Instruct Q4_1 (the real GGUF), 2 threads: llama-bench -p 128 -n 64.
#
#   bench/decode.sh        (REPS=3 by default: llama-bench's -r; it reports mean ± stddev tokens/s)
#
# zoo row: skeleton; prints "not built" until zoo has a generation/bench subcommand (ZOO_DECODE_CMD may name it,
# it is then run as: $ZOO_BIN $ZOO_DECODE_CMD MODEL.gguf --threads 2 --prompt-tokens 128 --gen-tokens 64).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/llama-common.sh"
REPS="${REPS:-3}"
echo "SmolLM2-135M-Instruct Q4_1, $THREADS threads, prefill 128 / decode 64 tokens; llama.cpp from llama-cpp-python $LLAMA_CPP_PYTHON_VERSION"
load_note
"$LLAMA_BIN/llama-bench" -m "$SMOL_Q41" -t "$THREADS" -p 128 -n 64 -r "$REPS" -o json 2>"$W/llama-bench.err" >"$W/llama-bench.json" \
  || { tail -5 "$W/llama-bench.err" >&2; exit 1; }
python3 - "$W/llama-bench.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1])):
    kind = "prefill" if r["n_prompt"] else "decode"
    n = r["n_prompt"] or r["n_gen"]
    print(f"llama.cpp  {kind:<8} {n:>4} tok  {r['avg_ts']:8.1f} ± {r['stddev_ts']:.1f} tok/s   ({r.get('build_commit', '?')}, {r.get('cpu_info', '').strip()})")
PY
cmd="${ZOO_DECODE_CMD:-}"
if [ -n "$cmd" ] && zoo_has "${cmd%% *}"; then
  # shellcheck disable=SC2086
  "$ZOO_BIN" $cmd "$SMOL_Q41" --threads "$THREADS" --prompt-tokens 128 --gen-tokens 64
else
  echo "zoo        not built / command missing"
fi
