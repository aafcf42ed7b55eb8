#!/usr/bin/env bash
# The speed matrix (issue #18): zoo vs llama.cpp per model, quantization type and maker of the file.
#   1. MATRIX=1: for each model of MODELS
#        smollm2  SmolLM2-135M-Instruct: the real Q4_1 GGUF (tests/fixtures/reference/smollm2/fetch.sh $SMOL_DIR)
#                 turned into an f32 Hugging Face folder by `zoo dequantize`
#        llama7b  a LLaMA-7B-shaped model (hidden 4096, ffn 11008, 32 heads, vocab 49152) with LAYERS layers of
#                 random f16 weights (bench/make_llama_shaped.py)
#      and each type of TYPES, the GGUF made by `zoo quantize -t TYPE` and the one made by `llama-quantize` (from
#      zoo's F32 GGUF for SmolLM2, zoo's F16 GGUF for llama7b; f16/bf16/f32 only from zoo), each file timed with
#      both engines on $THREADS threads: prefill 128, prefill 512, decode 64.
#        zoo        `zoo run FILE --token-ids <128 ids> --max-tokens 65 --json` (prompt_tokens_per_s, and
#                   tokens_per_s as the decode rate) and `--token-ids <512 ids> --max-tokens 1` (prefill 512)
#        llama.cpp  `llama-bench -m FILE -p 128,512 -n 64 -r 1 --repack 1,0 -o json` (avg_ts per test, the faster of
#                   repacking on and off)
#      Targets: every zoo/llama.cpp ratio >= 1.0; llama7b Q4_K_M and Q4_0 decode >= 1.2.
#   2. LOAD=1: load and one token on the llama7b Q4_K_M (llama-quantize's file) and F16 (zoo's) files, wall time
#      and peak RSS (/usr/bin/time): `zoo run FILE --token-ids 1 --max-tokens 1` vs llama-greedy (token ids,
#      the same threads, a context the size of the prompt; else llama-simple / llama-completion).
#      Target: zoo's peak RSS <= 1.10x llama.cpp's.
#   3. QUANT_MEM=1: peak RSS of `zoo quantize -t q4_0` and `-t q4_k_m` on 4- and 8-layer llama7b inputs
#      (QUANT_LAYERS), next to the input size. Target: does not grow with the number of layers.
#
# The repetitions are paired as in bench/decode.sh: zoo and llama.cpp back to back on the same file, in ABBA order
# (zoo first in even pairs). Printed per engine: the median of REPS; per ratio: the median of the REPS paired ratios.
#
#   bench/speed-matrix.sh        REPS=3 THREADS=2 LAYERS=4 MODELS="smollm2 llama7b"
#                                TYPES="q4_0 q4_1 q5_0 q5_1 q8_0 q4_k_m q5_k_m q6_k f16 bf16 f32"
#                                MATRIX=1 LOAD=1 QUANT_MEM=1 (0 skips a part)
#   MODELS=smollm2 TYPES="q4_0 f16" REPS=1 LOAD=0 QUANT_MEM=0 bench/speed-matrix.sh      a quick try
#   (on AMX Xeons scripts/llama-cpp.sh builds llama.cpp without its AMX kernels, which crash there: LLAMA_NO_AMX)
#
# Everything lives in ${ZOO_BENCH_DIR:-/tmp/zoo-speed-matrix} ($W): the inputs (llama7b-L4/, smollm2-hf/), the made
# files (MODEL/zoo-TYPE.gguf, MODEL/llama-TYPE.gguf; cached, remade when older than their input), each run's
# output (runs/), and the results: speed-matrix.md (the table) and speed-matrix.jsonl (one JSON object per file,
# load and quantizer-memory row). Disk: ~25 GB for the defaults (llama7b's F32 file alone is 4.8 GB).
# Needs a release build of zoo (ZOO_BIN), llama.cpp (scripts/llama-cpp.sh, via bench/llama-common.sh), python3.
# Timed on an otherwise idle machine only; the full default run takes about two hours on 2 cores.
set -euo pipefail
shopt -s inherit_errexit
export ZOO_BENCH_DIR="${ZOO_BENCH_DIR:-/tmp/zoo-speed-matrix}"
LLAMA_COMMON_SMOLLM2=0   # no scripts/smollm2.sh (it needs the torch venv): SmolLM2's folder is made below
source "$(dirname "${BASH_SOURCE[0]}")/llama-common.sh"
REPS="${REPS:-3}"
LAYERS="${LAYERS:-4}"
read -r -a MODELS <<<"${MODELS:-smollm2 llama7b}"
read -r -a TYPES <<<"${TYPES:-q4_0 q4_1 q5_0 q5_1 q8_0 q4_k_m q5_k_m q6_k f16 bf16 f32}"
read -r -a QUANT_LAYERS <<<"${QUANT_LAYERS:-4 8}"
SMOL_DIR="${SMOL_DIR:-${ZOO_CACHE:-$REPO/.cache}/smollm2}"
R=$W/runs
mkdir -p "$R"
[ -x "$ZOO_BIN" ] || { echo "build zoo first: cargo build --release (or set ZOO_BIN)" >&2; exit 1; }
[ -x "$LLAMA_BIN/llama-bench" ] && [ -x "$LLAMA_BIN/llama-quantize" ] \
  || { echo "llama-bench / llama-quantize missing in $LLAMA_BIN: run scripts/llama-cpp.sh" >&2; exit 1; }

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores;" \
  "flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|avx512|avx_vnni|amx)' | sort | tr '\n' ' ' || true)"
echo "zoo: $ZOO_BIN ($("$ZOO_BIN" --version 2>/dev/null || echo '?'))   llama.cpp: $LLAMA_BIN (llama-cpp-python ${LLAMA_CPP_PYTHON_VERSION:-?})"
echo "threads $THREADS, $REPS paired runs per file, results in $W"
load_note

# ---------------------------------------------------------------------------------------------------------------
# Inputs.

# smol_hf: SmolLM2-135M-Instruct as an f32 Hugging Face folder (`zoo dequantize` of the real Q4_1 GGUF); prints it.
smol_hf() {
  local q41 hf=$W/smollm2-hf
  q41=$("$REPO/tests/fixtures/reference/smollm2/fetch.sh" "$SMOL_DIR")
  if [ ! -f "$hf/config.json" ] || [ "$q41" -nt "$hf/config.json" ]; then
    echo "making $hf (zoo dequantize $q41, f32)..." >&2
    rm -rf "$hf.tmp"
    "$ZOO_BIN" dequantize "$q41" --out "$hf.tmp" --dtype f32 --progress off >&2
    rm -rf "$hf"; mv "$hf.tmp" "$hf"
  fi
  echo "$hf"
}

# llama7b_hf LAYERS: the 7B-shaped random f16 folder with LAYERS layers (bench/make_llama_shaped.py); prints it.
llama7b_hf() {
  local hf=$W/llama7b-L$1
  if [ ! -f "$hf/config.json" ]; then
    echo "making $hf (bench/make_llama_shaped.py, $1 layers, ~$((400 * $1 + 800)) MB)..." >&2
    python3 "$REPO/bench/make_llama_shaped.py" --out "$hf" --layers "$1" >/dev/null
  fi
  echo "$hf"
}

# model_hf MODEL: the Hugging Face folder for MODEL (smollm2 | llama7b).
model_hf() {
  case "$1" in
    smollm2) smol_hf ;;
    llama7b) llama7b_hf "$LAYERS" ;;
    *) echo "unknown model $1 (smollm2 | llama7b)" >&2; return 1 ;;
  esac
}

# The type of zoo's GGUF that llama-quantize starts from: F32 for SmolLM2 (f32 weights), F16 for the f16 7B.
base_type() { case "$1" in smollm2) echo f32 ;; *) echo f16 ;; esac; }

# make_zoo MODEL HF TYPE: $W/MODEL/zoo-TYPE.gguf by `zoo quantize` (kept while newer than HF/config.json).
# Returns 3 when zoo does not know the type, 1 on another failure (log in $R/make-zoo-MODEL-TYPE.log).
make_zoo() {
  local m=$1 hf=$2 t=$3 out=$W/$1/zoo-$3.gguf log=$R/make-zoo-$1-$3.log
  [ -f "$out" ] && [ "$out" -nt "$hf/config.json" ] && return 0
  mkdir -p "$W/$m"; rm -f "$out"
  echo "making $out (zoo quantize -t $t)..." >&2
  if "$ZOO_BIN" quantize --in "$hf" --out "$W/$m/zoo-$t.tmp.gguf" -t "$t" --progress off --overwrite >"$log" 2>&1; then
    mv "$W/$m/zoo-$t.tmp.gguf" "$out"; return 0
  fi
  rm -f "$W/$m/zoo-$t.tmp.gguf"
  grep -qi "unknown type" "$log" && return 3
  tail -3 "$log" >&2; return 1
}

# make_llama MODEL BASE TYPE: $W/MODEL/llama-TYPE.gguf by `llama-quantize BASE OUT TYPE` (kept while newer than BASE).
make_llama() {
  local m=$1 base=$2 t=$3 out=$W/$1/llama-$3.gguf log=$R/make-llama-$1-$3.log
  [ -f "$out" ] && [ "$out" -nt "$base" ] && return 0
  rm -f "$out"
  echo "making $out (llama-quantize ${t^^})..." >&2
  if "$LLAMA_BIN/llama-quantize" "$base" "$W/$m/llama-$t.tmp.gguf" "${t^^}" "$THREADS" >"$log" 2>&1; then
    mv "$W/$m/llama-$t.tmp.gguf" "$out"; return 0
  fi
  rm -f "$W/$m/llama-$t.tmp.gguf"
  tail -3 "$log" >&2; return 1
}

# ---------------------------------------------------------------------------------------------------------------
# Part 1: the matrix.

# ids SEED N: N seeded random token ids in [100, 49000) (both models have a 49152-token vocabulary).
ids() { python3 -c "import random; r=random.Random($1); print(','.join(str(r.randrange(100, 49000)) for _ in range($2)))"; }
P128=$(ids 128 128)
P512=$(ids 512 512)

# zoo_once FILE BASE: prefill 128 + decode 64 into BASE.zoo128.json, prefill 512 into BASE.zoo512.json.
zoo_once() {
  "$ZOO_BIN" run "$1" --token-ids "$P128" --max-tokens 65 --greedy --ignore-eos --threads "$THREADS" --json \
    >"$2.zoo128.json" 2>"$2.zoo.err" || return 1
  "$ZOO_BIN" run "$1" --token-ids "$P512" --max-tokens 1 --greedy --ignore-eos --threads "$THREADS" --json \
    >"$2.zoo512.json" 2>>"$2.zoo.err" || return 1
}

# llama_once FILE BASE: one llama-bench (pp128, pp512, tg64) into BASE.llama.json, with its weight repacking on and
# off (`--repack 1,0`): the table takes the faster of the two per test, as neither wins everywhere (on an AMX Xeon,
# llama.cpp's repacked Q4_K prompt was 0.65x its plain one, its repacked Q4_0 1.5x). Where llama-bench dies (the
# pinned llama.cpp's AMX kernels take SIGSEGV on `ldtilecfg` on some AMX Xeons, in every prompt of more than 32
# tokens; scripts/llama-cpp.sh LLAMA_NO_AMX=1 builds a copy without them), it runs again with `--repack 0` only, and
# BASE.llama.norepack marks the run so that the table says so.
llama_once() {
  local rc=0
  "$LLAMA_BIN/llama-bench" -m "$1" -t "$THREADS" -p 128,512 -n 64 -r 1 --repack 1,0 -o json >"$2.llama.json" \
    2>"$2.llama.err" || rc=$?
  ((rc == 0)) && return 0
  echo "llama-bench exited $rc; again with --repack 0" >>"$2.llama.err"
  touch "$2.llama.norepack"
  "$LLAMA_BIN/llama-bench" -m "$1" -t "$THREADS" -p 128,512 -n 64 -r 1 -o json --repack 0 >"$2.llama.json" 2>>"$2.llama.err"
}

# time_file MODEL TYPE MAKER FILE: REPS paired runs (ABBA); appends one JSON line to speed-matrix.jsonl and prints it.
time_file() {
  local m=$1 t=$2 by=$3 f=$4 i b zerr=0 lerr=0
  for ((i = 0; i < REPS; i++)); do
    b=$R/$m-$by-$t.$i
    rm -f "$b".*
    if ((i % 2 == 0)); then
      ((zerr)) || zoo_once "$f" "$b" || zerr=1
      ((lerr)) || llama_once "$f" "$b" || lerr=1
    else
      ((lerr)) || llama_once "$f" "$b" || lerr=1
      ((zerr)) || zoo_once "$f" "$b" || zerr=1
    fi
  done
  python3 - "$R/$m-$by-$t" "$REPS" "$m" "$t" "$by" "$f" "$W/speed-matrix.jsonl" <<'PY'
import json, os, statistics as st, sys
b, n, model, typ, by, path, out = sys.argv[1], int(sys.argv[2]), *sys.argv[3:]

def load(p):
    try:
        return json.load(open(p))
    except (OSError, ValueError):
        return None

def err(p):
    try:
        lines = [l for l in open(p).read().splitlines() if l.strip()]
        return lines[-1][:300] if lines else "failed"
    except OSError:
        return "failed"

def bench(rows, pp, tg):
    # the faster of the repack settings llama-bench ran
    return max((r["avg_ts"] for r in rows if r["n_prompt"] == pp and r["n_gen"] == tg), default=None)

zoo = {"pp128": [], "pp512": [], "tg64": []}
llama = {"pp128": [], "pp512": [], "tg64": []}
for i in range(n):
    z128, z512, lb = load(f"{b}.{i}.zoo128.json"), load(f"{b}.{i}.zoo512.json"), load(f"{b}.{i}.llama.json")
    if z128 and z512:
        zoo["pp128"].append(z128["prompt_tokens_per_s"]); zoo["tg64"].append(z128["tokens_per_s"])
        zoo["pp512"].append(z512["prompt_tokens_per_s"])
    if lb:
        for k, (pp, tg) in {"pp128": (128, 0), "pp512": (512, 0), "tg64": (0, 64)}.items():
            v = bench(lb, pp, tg)
            if v is not None:
                llama[k].append(v)
rec = {"part": "matrix", "model": model, "type": typ, "made_by": by, "file": path,
       "size_bytes": os.path.getsize(path), "reps": n, "zoo": zoo, "llama": llama}
if not zoo["tg64"]:
    rec["zoo_error"] = err(f"{b}.0.zoo.err")
if not llama["tg64"]:
    rec["llama_error"] = err(f"{b}.0.llama.err")
if any(os.path.exists(f"{b}.{i}.llama.norepack") for i in range(n)):
    rec["llama_note"] = "llama-bench crashed with its defaults (AMX); measured with --repack 0"
for k in zoo:
    a, c = zoo[k], llama[k]
    rec[f"zoo_{k}"] = st.median(a) if a else None
    rec[f"llama_{k}"] = st.median(c) if c else None
    # paired ratios; the ratio of the medians when an engine missed a repetition
    pairs = [x / y for x, y in zip(a, c) if y] if len(a) == len(c) else [st.median(a) / st.median(c)] if a and c else []
    rec[f"ratio_{k}"] = st.median(pairs) if pairs else None
open(out, "a").write(json.dumps(rec) + "\n")
f = lambda v, d=1: "-" if v is None else f"{v:.{d}f}"
cells = "   ".join(f"{k} {f(rec['zoo_' + k])} / {f(rec['llama_' + k])} = {f(rec['ratio_' + k], 2)}" for k in zoo)
errs = "".join(f"   [{e}: {rec[e]}]" for e in ("zoo_error", "llama_error", "llama_note") if e in rec)
print(f"  {model} {typ} ({by}, {rec['size_bytes'] / 2**20:.0f} MiB): {cells}{errs}")
PY
}

# note MODEL TYPE MAKER STATUS: a file that was not made (one JSON line).
note() {
  python3 -c 'import json, sys; print(json.dumps({"part": "matrix", "model": sys.argv[1], "type": sys.argv[2], "made_by": sys.argv[3], "status": sys.argv[4]}))' \
    "$@" >>"$W/speed-matrix.jsonl"
  echo "  $1 $2 ($3): $4"
}

: >"$W/speed-matrix.jsonl"   # this run's rows only
if [ "${MATRIX:-1}" = 1 ]; then
  for m in "${MODELS[@]}"; do
    hf=$(model_hf "$m")
    bt=$(base_type "$m")
    echo "== $m ($hf), prefill 128 / prefill 512 / decode 64, zoo / llama.cpp = ratio (tok/s)"
    base=""
    if make_zoo "$m" "$hf" "$bt"; then base=$W/$m/zoo-$bt.gguf; else echo "no zoo $bt GGUF: llama-quantize has no input" >&2; fi
    for t in "${TYPES[@]}"; do
      rc=0; make_zoo "$m" "$hf" "$t" || rc=$?
      case $rc in
        0) time_file "$m" "$t" zoo "$W/$m/zoo-$t.gguf" ;;
        3) note "$m" "$t" zoo "not made (zoo lacks the type)" ;;
        *) note "$m" "$t" zoo "not made (zoo quantize failed, $R/make-zoo-$m-$t.log)" ;;
      esac
      case $t in f16 | bf16 | f32) continue ;; esac   # llama-quantize would only copy them
      if [ -z "$base" ]; then
        note "$m" "$t" llama-quantize "not made (no zoo $bt GGUF to start from)"
      elif make_llama "$m" "$base" "$t"; then
        time_file "$m" "$t" llama-quantize "$W/$m/llama-$t.gguf"
      else
        note "$m" "$t" llama-quantize "not made (llama-quantize failed, $R/make-llama-$m-$t.log)"
      fi
    done
  done

  # The table (stdout and speed-matrix.md) and the cells below their targets.
  python3 - "$W" "$THREADS" "$REPS" <<'PY'
import json, sys
w, threads, reps = sys.argv[1], sys.argv[2], sys.argv[3]
rows = [json.loads(l) for l in open(f"{w}/speed-matrix.jsonl") if l.strip()]
rows = [r for r in rows if r.get("part") == "matrix"]
cells = (("pp128", "prefill 128"), ("pp512", "prefill 512"), ("tg64", "decode 64"))
f = lambda v, d=1: "-" if v is None else f"{v:.{d}f}"
size = lambda r: f"{r['size_bytes'] / 2**20:.0f} MiB" if "size_bytes" in r else "-"
def target(r, k):
    return 1.2 if r["model"] == "llama7b" and r["type"] in ("q4_k_m", "q4_0") and k == "tg64" else 1.0

head = ["model", "type", "made by", "size"] + [f"{n} {e}" for _, n in cells for e in ("zoo", "llama.cpp", "zoo/llama")]
short = ["model", "type", "made by", "size"] + [x for k, _ in cells for x in (f"{k} zoo", "llama", "ratio")]
timed, table = [], []   # table: (row, None) for a timed file, (first three columns, status) for one not made
for r in rows:
    if "status" in r:
        table.append(([r["model"], r["type"], r["made_by"]], r["status"]))
        continue
    line = [r["model"], r["type"], r["made_by"], size(r)]
    for k, _ in cells:
        line += [f(r[f"zoo_{k}"]), f(r[f"llama_{k}"]), f(r[f"ratio_{k}"], 2)]
    table.append((line, None))
    timed.append(line)
widths = [max(len(x) for x in col) for col in zip(short, *timed)] if timed else [len(h) for h in short]
for row, st_ in table:
    for i in range(3):
        widths[i] = max(widths[i], len(row[i]))

print(f"\n== speed matrix: tok/s, {threads} threads, median of {reps}; pp = prefill, tg = decode;"
      " ratio = zoo / llama.cpp (median of paired ratios)")
print("  ".join(h.rjust(wd) if i >= 3 else h.ljust(wd) for i, (h, wd) in enumerate(zip(short, widths))))
for row, st_ in table:
    if st_:
        print("  ".join(x.ljust(wd) for x, wd in zip(row, widths)) + "  " + st_)
    else:
        print("  ".join(x.rjust(wd) if i >= 3 else x.ljust(wd) for i, (x, wd) in enumerate(zip(row, widths))))

md = [f"Speed matrix: tok/s, {threads} threads, median of {reps} paired runs; ratio = zoo / llama.cpp.", "",
      "| " + " | ".join(head) + " |", "|" + "|".join("---" if i < 3 else "---:" for i in range(len(head))) + "|"]
for row, st_ in table:
    md.append("| " + " | ".join(row + ([st_] + [""] * (len(head) - 4) if st_ else [])) + " |")

below, missing = [], []
for r in rows:
    name = f"{r['model']} {r['type']} ({r['made_by']})"
    if "status" in r:
        missing.append(f"{name}: {r['status']}")
        continue
    for e in ("zoo_error", "llama_error"):
        if e in r:
            missing.append(f"{name}: {e.split('_')[0]} failed: {r[e]}")
    if "llama_note" in r:
        missing.append(f"{name}: {r['llama_note']}")
    for k, n in cells:
        v, tg = r[f"ratio_{k}"], target(r, k)
        if v is not None and v < tg:
            below.append(f"{name} {n}: {v:.2f} < {tg}")
summary = ["", f"Below target ({len(below)}; every cell >= 1.0, llama7b Q4_K_M and Q4_0 decode >= 1.2):"]
summary += [f"  {b}" for b in below] or ["  none"]
if missing:
    summary += ["Not made, not run, or run otherwise:"] + [f"  {m}" for m in missing]
print("\n".join(summary))
md += [("- " + x.strip()) if x.startswith("  ") else x for x in summary]
open(f"{w}/speed-matrix.md", "w").write("\n".join(md) + "\n")
print(f"\n(table: {w}/speed-matrix.md, raw: {w}/speed-matrix.jsonl)")
PY
fi

# ---------------------------------------------------------------------------------------------------------------
# Part 2: load time and peak RSS, one token.

# llama_cmd FILE: the llama.cpp side into LCMD. llama-greedy takes token ids and threads like zoo and sizes its
# context to the prompt; llama-simple / llama-completion (text prompt) where it is missing.
llama_cmd() {
  if [ -x "$LLAMA_BIN/llama-greedy" ]; then LCMD=("$LLAMA_BIN/llama-greedy" -m "$1" -n 1 -t "$THREADS" 1)
  elif [ -x "$LLAMA_BIN/llama-simple" ]; then LCMD=("$LLAMA_BIN/llama-simple" -m "$1" -n 1 Hello)
  else LCMD=("$LLAMA_BIN/llama-completion" -m "$1" -no-cnv --temp 0 -n 1 -t "$THREADS" -c 64 -p Hello)
  fi
}

# load_once ENGINE FILE BASE: /usr/bin/time's "%e %M" into BASE.time, stdout into BASE.out.
load_once() {
  local cmd
  if [ "$1" = zoo ]; then
    cmd=("$ZOO_BIN" run "$2" --token-ids 1 --max-tokens 1 --greedy --ignore-eos --threads "$THREADS" --json)
  else
    llama_cmd "$2"; cmd=("${LCMD[@]}")
  fi
  /usr/bin/time -f '%e %M' -o "$3.time" "${cmd[@]}" >"$3.out" 2>"$3.err" \
    || { echo "failed: ${cmd[*]}" >&2; tail -3 "$3.err" >&2; return 1; }
}

if [ "${LOAD:-1}" = 1 ]; then
  hf=$(llama7b_hf "$LAYERS")
  llama_cmd x
  echo
  echo "== load + 1 token, llama7b ($LAYERS layers), $THREADS threads, $REPS paired runs, page cache warm;" \
    "zoo run vs $(basename "${LCMD[0]}")"
  make_zoo llama7b "$hf" f16 || { echo "zoo cannot make the F16 file" >&2; exit 1; }
  make_llama llama7b "$W/llama7b/zoo-f16.gguf" q4_k_m
  for spec in "q4_k_m llama-quantize $W/llama7b/llama-q4_k_m.gguf" "f16 zoo $W/llama7b/zoo-f16.gguf"; do
    read -r t by f <<<"$spec"
    cat "$f" >/dev/null   # into the page cache: both engines map the file, neither pays the first read
    for ((i = 0; i < REPS; i++)); do
      b=$R/load-$t.$i
      if ((i % 2 == 0)); then load_once zoo "$f" "$b.zoo"; load_once llama "$f" "$b.llama"
      else load_once llama "$f" "$b.llama"; load_once zoo "$f" "$b.zoo"; fi
    done
    python3 - "$R/load-$t" "$REPS" "$t" "$by" "$f" "$W/speed-matrix.jsonl" <<'PY'
import json, os, statistics as st, sys
b, n, typ, by, path, out = sys.argv[1], int(sys.argv[2]), *sys.argv[3:]
t = lambda e, i: [float(x) for x in open(f"{b}.{i}.{e}.time").read().split()[-2:]]
rec = {"part": "load", "model": "llama7b", "type": typ, "made_by": by, "file": path, "size_bytes": os.path.getsize(path)}
for e in ("zoo", "llama"):
    v = [t(e, i) for i in range(n)]
    rec[f"{e}_wall_s"] = st.median(x[0] for x in v)
    rec[f"{e}_rss_mib"] = st.median(x[1] for x in v) / 1024
rec["ratio_wall"] = rec["zoo_wall_s"] / rec["llama_wall_s"]
rec["ratio_rss"] = rec["zoo_rss_mib"] / rec["llama_rss_mib"]
# zoo's time to first token, if its JSON reports one (a key naming ttft / first token).
tt = []
for i in range(n):
    try:
        j = json.load(open(f"{b}.{i}.zoo.out"))
    except (OSError, ValueError):
        continue
    k = next((k for k in j if "ttft" in k or "first_token" in k), None)
    if k is not None:
        tt.append(float(j[k]) / (1000 if k.endswith("_ms") else 1))
rec["zoo_ttft_s"] = st.median(tt) if tt else None
open(out, "a").write(json.dumps(rec) + "\n")
ttft = f"{rec['zoo_ttft_s']:.2f} s" if tt else "not in zoo's JSON"
flag = "" if rec["ratio_rss"] <= 1.10 else "  ABOVE TARGET"
print(f"  {typ} ({by}, {rec['size_bytes'] / 2**20:.0f} MiB): wall zoo {rec['zoo_wall_s']:.2f} s, llama.cpp "
      f"{rec['llama_wall_s']:.2f} s = {rec['ratio_wall']:.2f}x; peak RSS zoo {rec['zoo_rss_mib']:.0f} MiB, llama.cpp "
      f"{rec['llama_rss_mib']:.0f} MiB = {rec['ratio_rss']:.2f}x (target <= 1.10){flag}; zoo time to first token: {ttft}")
PY
  done
fi

# ---------------------------------------------------------------------------------------------------------------
# Part 3: the quantizer's peak RSS against the number of layers.

if [ "${QUANT_MEM:-1}" = 1 ]; then
  echo
  echo "== zoo quantize peak RSS, llama7b-shaped inputs of ${QUANT_LAYERS[*]} layers (target: flat in the layers)"
  for L in "${QUANT_LAYERS[@]}"; do
    hf=$(llama7b_hf "$L")
    for t in q4_0 q4_k_m; do
      out=$W/qmem.tmp.gguf
      /usr/bin/time -f '%e %M' -o "$R/qmem-L$L-$t.time" "$ZOO_BIN" quantize --in "$hf" --out "$out" -t "$t" \
        --threads "$THREADS" --progress off --overwrite >"$R/qmem-L$L-$t.log" 2>&1 \
        || { echo "zoo quantize -t $t failed on $hf:" >&2; tail -3 "$R/qmem-L$L-$t.log" >&2; continue; }
      osz=$(stat -c %s "$out"); rm -f "$out"
      python3 - "$hf" "$L" "$t" "$R/qmem-L$L-$t.time" "$osz" "$W/speed-matrix.jsonl" <<'PY'
import json, os, sys
hf, layers, typ, tf, osz, out = sys.argv[1:]
wall, rss = [float(x) for x in open(tf).read().split()[-2:]]
size = sum(os.path.getsize(os.path.join(hf, f)) for f in os.listdir(hf) if f.endswith(".safetensors"))
rec = {"part": "quant_mem", "model": "llama7b", "layers": int(layers), "type": typ, "input_bytes": size,
       "output_bytes": int(osz), "wall_s": wall, "rss_mib": rss / 1024}
open(out, "a").write(json.dumps(rec) + "\n")
print(f"  {layers} layers  input {size / 1e9:.2f} GB  -t {typ:<7} {wall:6.1f} s  peak RSS {rss / 1024:6.0f} MiB"
      f"  ({rss * 1024 / size:.2f}x the input)")
PY
    done
  done
  python3 - "$W/speed-matrix.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rows = [r for r in rows if r.get("part") == "quant_mem"]
for t in ("q4_0", "q4_k_m"):
    by = sorted((r["layers"], r["rss_mib"]) for r in rows if r["type"] == t)
    if len(by) >= 2:
        (l0, a), (l1, b) = by[0], by[-1]
        print(f"  -t {t}: peak RSS {l1} layers / {l0} layers = {b / a:.2f}x"
              + ("" if b / a <= 1.10 else "  GROWS WITH THE LAYERS (target: flat)"))
PY
fi
