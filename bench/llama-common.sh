# Sourced by bench/quantize.sh, bench/compat.sh, bench/decode.sh, bench/speed-matrix.sh (llama.cpp side of the quantization benchmarks).
# Sets: REPO ZOO_BIN LLAMA_BIN LLAMA_SRC SMOL_Q41 SMOL_HF SMOL_F16 REF_JSON W; defines zoo_has, median_time.
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ZOO_BIN="${ZOO_BIN:-$REPO/target/release/zoo}"
case "$ZOO_BIN" in /*) ;; *) ZOO_BIN="$REPO/$ZOO_BIN" ;; esac
LLAMA_ROOT="${ZOO_LLAMA_CPP:-$REPO/.cache/llama.cpp}"
if [ ! -f "$LLAMA_ROOT/env.sh" ] || [ ! -x "$LLAMA_ROOT/bin/llama-greedy" ]; then
  echo "building llama.cpp (scripts/llama-cpp.sh; ~15-20 min on 2 cores the first time)..." >&2
  "$REPO/scripts/llama-cpp.sh" >/dev/null
fi
source "$LLAMA_ROOT/env.sh"
# LLAMA_COMMON_SMOLLM2=0: leave SMOL_* unset (bench/speed-matrix.sh makes its own; scripts/smollm2.sh needs the
# .venv-ref torch venv).
if [ "${LLAMA_COMMON_SMOLLM2:-1}" != 0 ]; then
  { read -r SMOL_Q41; read -r SMOL_HF; read -r SMOL_F16; } < <("$REPO/scripts/smollm2.sh")
fi
REF_JSON="${SMOLLM2_FIXTURES:-$REPO/tests/fixtures/reference/smollm2}/reference.json"
W="${ZOO_BENCH_DIR:-/tmp/zoo-bench-llama}"
mkdir -p "$W"
THREADS="${THREADS:-2}"

# zoo_has SUBCOMMAND: the zoo binary exists and knows the subcommand.
zoo_has() { [ -x "$ZOO_BIN" ] && "$ZOO_BIN" "$1" --help >/dev/null 2>&1; }
ZOO_MISSING="zoo: not built / command missing"

# median_time N OUTFILE -- CMD...: run CMD N times (OUTFILE removed before each run, page cache warmed by the
# previous run / an untimed first read of the inputs by the caller), print the median wall seconds.
median_time() {
  local n=$1 out=$2; shift 3
  local ts=() i s e
  for ((i = 0; i < n; i++)); do
    rm -rf "$out"; sync
    s=$(date +%s.%N)
    "$@" >"$W/last.log" 2>&1 || { echo "FAILED: $* (see $W/last.log)" >&2; tail -5 "$W/last.log" >&2; return 1; }
    e=$(date +%s.%N)
    ts+=("$(awk -v a="$s" -v b="$e" 'BEGIN {printf "%.4f", b - a}')")
  done
  printf '%s\n' "${ts[@]}" | sort -g | awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2; printf "%.3f\n", m}'
}

# load_note: print the 1-minute load average; warn when other work shares the cores (2-core machine: timings with
# 2 threads degrade a lot under contention, OpenMP/ggml threads spin at barriers).
load_note() {
  local l; l=$(cut -d' ' -f1 /proc/loadavg)
  echo "load average (1 min) before the run: $l ($(nproc) cores)"
  awk -v l="$l" 'BEGIN {exit !(l > 0.5)}' && echo "WARNING: the machine is busy; these timings are not clean" || true
}
