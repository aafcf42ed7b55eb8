#!/usr/bin/env bash
# Key-to-frame latency of `zoo tui` while a quantize job runs (issue #16: a key press is drawn
# within 50 ms while a quantize or pull job runs).
#
# Runs tui/examples/latency.rs: the dashboard's real event loop on a current-thread tokio
# runtime (as `zoo tui` runs it) drawing a 100x30 screen (--width/--height) through the crossterm backend into a
# sink. Keys (↓ ↓ 6 1 ↑ 3: moves and screen changes, each redraws) are sent into the loop's
# channel every INTERVAL ms from another thread, stamped when sent; a key's latency is the time
# until the frame after it is flushed. First idle (a third of the keys), then while zoo-ops
# quantizes a LLaMA checkpoint with SmolLM2-135M's shapes and LAYERS layers (random bf16
# weights; 120 layers = 0.5 B parameters, 1 GiB) to Q4_0 on every core: the job's worker threads
# compete with the UI for both cores. Only keys sent while the job ran count for "during".
# Prints p50/p90/p99/max and the keys over 50 ms, then p99 / 50 ms (the target holds below 1).
#
# Usage: bench/tui_latency.sh [--layers N] [--keys N] [--interval-ms M] [--threads N] [--width W] [--height H]
# Env:   CARGO_TARGET_DIR (the example is built there with --release).
set -euo pipefail
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
for a in "$@"; do [[ $a == -h || $a == --help ]] && { usage; exit 0; }; done
cd "$(dirname "$0")/.."
echo "cpu: $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores" >&2
cargo build --release -q -p zoo-tui --example latency
bin="${CARGO_TARGET_DIR:-target}/release/examples/latency"
out="$("$bin" "$@" | tee /dev/stderr)"
p99=$(sed -n 's/^during quantize:.* p99 \([0-9.]*\) ms.*/\1/p' <<<"$out")
[[ -n $p99 ]] || { echo "error: no figure for the keys during the job (did it end before they came?)" >&2; exit 1; }
awk -v p="$p99" 'BEGIN { printf "p99 during quantize / 50 ms target = %.3f (%s)\n", p / 50, (p < 50 ? "met" : "NOT met") }'
