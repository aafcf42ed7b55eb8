#!/usr/bin/env bash
# Benchmark: `zoo delta apply` vs FastChat's apply_delta vs the raw I/O floor, on a
# LLaMA-7B-shaped checkpoint with 2 layers (hidden 4096, intermediate 11008, vocab 32000,
# 32 heads, f16: ~1.33 GB per side).
#
#   bench/delta.sh
#
# Environment:
#   ZOO_BIN         zoo binary (default: target/release/zoo; row skipped when missing)
#   ZOO_BENCH_DIR   work dir (default /tmp/zoo-bench-delta; inputs are generated once (~35 s)
#                   and reused; ~4 GB of inputs + ~5 GB of outputs, left there after the run)
#   ZOO_REF_VENV    reference venv (made by scripts/ref-venv.sh)
#
# Fairness: every row starts with the same page-cache state (all inputs read once right before
# it, the previous outputs deleted and the disk synced), and every timed command ends with an
# fsync of the files it wrote (zoo fsyncs its outputs by design; FastChat's save_pretrained does
# not, so `sync FILES` is added to its timed command; the floor uses dd conv=fsync).
# Peak RSS is GNU time's "Maximum resident set size" of the timed command's process tree.
# FastChat's rows include Python's start-up (importing torch/transformers/fastchat, ~7 s here):
# that is what a user of `python -m fastchat.model.apply_delta` waits for, and the
# fastchat-import-only row shows it separately. After the timing, every output is checked bit for
# bit against torch's own base + delta (not timed).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
W="${ZOO_BENCH_DIR:-/tmp/zoo-bench-delta}"
ZOO_BIN="${ZOO_BIN:-$REPO/target/release/zoo}"

VENV="$("$REPO/scripts/ref-venv.sh" | tail -n1)"
PY="$VENV/bin/python"

if ! /usr/bin/time -v true >/dev/null 2>&1; then
  echo "installing Debian 'time' (GNU time) for /usr/bin/time -v" >&2
  apt-get install -y -q time >&2 || { apt-get update -q >&2 && apt-get install -y -q time >&2; }
fi

mkdir -p "$W"
"$PY" "$REPO/bench/delta_ref.py" gen "$W"

B="$W/base"           # f16 sharded safetensors + index
BB="$W/base-bin"      # same weights, sharded .bin + index (for FastChat --low-cpu-mem)
D="$W/delta"          # f16 sharded .bin + index + tokenizer

# Size of the target = size of the base's tensors (same shapes, same dtype).
TARGET_BYTES="$(stat -c %s "$B"/*.safetensors | awk '{s+=$1} END {print s}')"
IN_BYTES="$(cat "$B"/*.safetensors "$D"/*.bin | wc -c)"

warm_all() {
  # the same warm page cache for every row: read every input of every row once
  cat "$B"/* "$BB"/* "$D"/* > /dev/null
}

LOAD0="$(cut -d' ' -f1-3 /proc/loadavg)"
declare -a NAMES WALL RSS CMDS NOTES
run_row() {  # run_row NAME OUTDIR COMMAND
  local name="$1" out="$2" cmd="$3" tf="$W/time-$1.txt"
  rm -rf "$out"
  sync
  warm_all
  echo "== $name: $cmd" >&2
  local rc=0
  # shellcheck disable=SC2016
  /usr/bin/time -v -o "$tf" bash -c "$cmd"' && find "$0" -type f -exec sync {} +' "$out" \
    > "$W/log-$name.txt" 2>&1 || rc=$?
  local wall rss
  wall="$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$tf")"
  rss="$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$tf")"
  NAMES+=("$name"); WALL+=("$wall"); RSS+=("$rss"); CMDS+=("$cmd")
  if [[ $rc -ne 0 ]]; then
    NOTES+=("FAILED (exit $rc), see $W/log-$name.txt")
    echo "   failed (exit $rc); last lines of $W/log-$name.txt:" >&2
    tail -n 5 "$W/log-$name.txt" >&2
  else
    NOTES+=("")
  fi
  echo "   ${wall} s, ${rss} MiB" >&2
}

O_ZOO="$W/out-zoo" O_FC="$W/out-fastchat" O_FCL="$W/out-fastchat-lowmem" O_FLOOR="$W/out-floor"

ZOO_ROW=0
[[ -x "$ZOO_BIN" ]] && ZOO_ROW=1 || echo "zoo: not built ($ZOO_BIN missing; cargo build --release)" >&2

run_row fastchat "$O_FC" \
  "'$PY' -m fastchat.model.apply_delta --base-model-path '$B' --target-model-path '$O_FC' --delta-path '$D'"

# --low-cpu-mem globs only pytorch_model-*.bin: given the safetensors base it writes an index with
# no weights and exits 0, so this row gets the same base weights as .bin shards.
run_row fastchat-low-cpu-mem "$O_FCL" \
  "'$PY' -m fastchat.model.apply_delta --base-model-path '$BB' --target-model-path '$O_FCL' --delta-path '$D' --low-cpu-mem"

# Not a competitor: how much of the FastChat rows is only Python importing fastchat.model.apply_delta
# (torch, transformers, accelerate, FastChat's model adapters). Left out of every ratio.
run_row fastchat-import-only "$W/out-import" \
  "mkdir -p '$W/out-import' && '$PY' -c 'import fastchat.model.apply_delta'"
NOTES[${#NOTES[@]}-1]="${NOTES[${#NOTES[@]}-1]:-information only: python -m startup of the FastChat rows}"

MIB=$(( 1 << 20 ))
# zoo and the floor are close and this machine's disk is noisy: run them alternately ROUNDS
# times and compare medians.
ROUNDS="${ROUNDS:-3}"
for ((r = 1; r <= ROUNDS; r++)); do
  if [[ $ZOO_ROW -eq 1 ]]; then
    run_row zoo "$O_ZOO" \
      "'$ZOO_BIN' delta apply --base '$B' --delta '$D' --out '$O_ZOO' --algorithm fastchat --progress off"
  fi
  run_row floor "$O_FLOOR" \
    "mkdir -p '$O_FLOOR' && cat '$B'/*.safetensors '$D'/*.bin > /dev/null && dd if=/dev/zero of='$O_FLOOR/target.bin' bs=$MIB count=$(( (TARGET_BYTES + MIB - 1) / MIB )) conv=fsync status=none"
done

# ---- correctness (not timed) ------------------------------------------------------------------
echo "== checking outputs (not timed)" >&2
check() { "$PY" "$REPO/bench/delta_ref.py" "$@" 2>&1 | tail -n1 || true; }
CHECK_FC="$(check check "$B" "$D" "$O_FC")"
CHECK_FCL="$(check compare "$O_FC" "$O_FCL")"
CHECK_ZOO="not run"
if [[ $ZOO_ROW -eq 1 ]]; then
  CHECK_ZOO="$(check check "$B" "$D" "$O_ZOO")"
fi

# ---- table ------------------------------------------------------------------------------------
idx() { local i; for i in "${!NAMES[@]}"; do [[ "${NAMES[$i]}" == "$1" ]] && { echo "$i"; return; }; done; echo -1; }
# Median wall time and largest RSS over every row called NAME.
median_wall() { local i; for i in "${!NAMES[@]}"; do [[ "${NAMES[$i]}" == "$1" ]] && echo "${WALL[$i]}"; done | sort -g | awk '{a[NR]=$1} END { if (NR) print (NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2) }'; }
max_rss() { local i; for i in "${!NAMES[@]}"; do [[ "${NAMES[$i]}" == "$1" ]] && echo "${RSS[$i]}"; done | sort -g | tail -n1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }

echo
echo "delta apply, LLaMA-7B-shaped x 2 layers, f16: inputs $(( IN_BYTES / MIB )) MiB, target $(( TARGET_BYTES / MIB )) MiB"
echo "load average before the runs: $LOAD0 (other work on the machine skews wall times)"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $("$PY" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'), fschat 0.2.36"
echo
printf '%-22s %10s %14s  %s\n' "name" "wall s" "peak RSS MiB" "note"
if [[ $ZOO_ROW -eq 0 ]]; then printf '%-22s %10s %14s  %s\n' "zoo" "-" "-" "zoo: not built"; fi
for i in "${!NAMES[@]}"; do
  printf '%-22s %10s %14s  %s\n' "${NAMES[$i]}" "${WALL[$i]}" "${RSS[$i]}" "${NOTES[$i]}"
done
echo
ifc="$(idx fastchat)" il="$(idx fastchat-low-cpu-mem)"
zw="$(median_wall zoo)" zr="$(max_rss zoo)" flw="$(median_wall floor)"
echo "medians over $ROUNDS alternating rounds: zoo ${zw:-n/a} s (peak RSS ${zr:-n/a} MiB), floor ${flw} s"
echo "zoo time / floor time:                 $(ratio "$zw" "$flw")"
echo "FastChat time / zoo time:              $(ratio "${WALL[$ifc]}" "$zw")"
echo "FastChat RSS / zoo RSS:                $(ratio "${RSS[$ifc]}" "$zr")"
echo "FastChat --low-cpu-mem time / zoo:     $(ratio "${WALL[$il]}" "$zw")"
echo "FastChat --low-cpu-mem RSS / zoo:      $(ratio "${RSS[$il]}" "$zr")"
echo "FastChat time / floor time:            $(ratio "${WALL[$ifc]}" "$flw")"
echo
echo "output check, FastChat:                $CHECK_FC"
echo "output check, FastChat --low-cpu-mem:  vs FastChat's output: $CHECK_FCL"
echo "output check, zoo:                     $CHECK_ZOO"
echo
echo "commands (each timed as: /usr/bin/time -v bash -c 'COMMAND && find OUT -type f -exec sync {} +'):"
for i in "${!NAMES[@]}"; do echo "  ${NAMES[$i]}: ${CMDS[$i]}"; done
echo "before each row: rm -rf OUT; sync; cat $B/* $BB/* $D/* > /dev/null"
