#!/usr/bin/env bash
# `zoo verify` against coreutils `sha256sum` on the same files, side by side.
#
# Makes FILES random files of SIZE MiB (default 4 x 256 MiB = 1 GiB) in a temporary Hugging Face
# cache laid out as the hub does (models--org--bench/{blobs/<sha256>, snapshots/<commit>/* as
# relative links, refs/main}), then times, best of RUNS each:
#   sha256sum <every blob>                    one process, the usual way
#   xargs -P 2 sha256sum                      two processes, a peer for a multi-threaded zoo
#   zoo verify org/bench                      HF_HUB_CACHE pointing at the temporary cache
#   zoo verify org/bench --threads 1          the same on one thread, like for like
# and prints MB/s (1 MB = 10^6 bytes) of each and the ratios zoo / sha256sum.
#
# Page cache: nothing is dropped. Every tool reads the files from memory (they were just
# written and hashed once during setup, and total far less than RAM), so this compares hashing
# speed, not the disk. The target is zoo >= 0.9x sha256sum.
#
# Usage: bench/verify.sh [--files N] [--size-mib M] [--runs R]
# Env:   ZOO_BIN (default ${CARGO_TARGET_DIR:-target}/release/zoo, built if missing), TMPDIR.
set -euo pipefail

files=4
size_mib=256
runs=3
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --files) files="${2:?--files needs a number}"; shift 2 ;;
        --size-mib) size_mib="${2:?--size-mib needs a number}"; shift 2 ;;
        --runs) runs="${2:?--runs needs a number}"; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "error: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done
for v in files size_mib runs; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "error: --${v//_/-} must be a positive integer, got '${!v}'" >&2; exit 2; }
done

cd "$(dirname "$0")/.."
bin="${ZOO_BIN:-${CARGO_TARGET_DIR:-target}/release/zoo}"
if [[ ! -x $bin ]]; then
    echo "building $bin (cargo build --release) ..." >&2
    cargo build --release --bin zoo
fi
command -v sha256sum >/dev/null || { echo "error: sha256sum (coreutils) not found" >&2; exit 2; }

tmp="$(mktemp -d "${TMPDIR:-/tmp}/zoo-verify-bench.XXXXXX")"
cleanup() { rm -rf -- "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

bytes=$((files * size_mib * 1024 * 1024))
avail_kib=$(df -Pk "$tmp" | awk 'NR == 2 { print $4 }')
if ((avail_kib * 1024 < bytes + (64 << 20))); then
    echo "error: $tmp has $((avail_kib / 1024)) MiB free, the files need $((bytes >> 20)) MiB" >&2
    exit 2
fi

# The cache: blobs named by their sha256, snapshot links, refs/main. A private registry
# database keeps the user's own untouched.
root="$tmp/hub"
repo="$root/models--org--bench"
commit=0123456789abcdef0123456789abcdef01234567
mkdir -p "$repo/blobs" "$repo/snapshots/$commit" "$repo/refs"
printf '%s' "$commit" >"$repo/refs/main"
blobs=()
echo "setup: $files random files of $size_mib MiB in $root ..." >&2
for ((i = 1; i <= files; i++)); do
    part="$repo/blobs/new.incomplete"
    head -c "$((size_mib * 1024 * 1024))" /dev/urandom >"$part"
    sha="$(sha256sum "$part" | cut -d' ' -f1)"
    mv -- "$part" "$repo/blobs/$sha"
    ln -s "../../blobs/$sha" "$repo/snapshots/$commit/model-$(printf '%05d' "$i")-of-$(printf '%05d' "$files").bin"
    blobs+=("$repo/blobs/$sha")
done

# Best wall time of `runs` runs of "$@", in nanoseconds; any failure stops the script.
best_ns() {
    local best="" t0 t1 d i
    for ((i = 0; i < runs; i++)); do
        t0=$(date +%s%N)
        "$@" >/dev/null 2>&1 || { echo "error: failed: $*" >&2; exit 1; }
        t1=$(date +%s%N)
        d=$((t1 - t0))
        if [[ -z $best ]] || ((d < best)); then best=$d; fi
    done
    echo "$best"
}

sha256sum_all() { sha256sum -- "${blobs[@]}"; }
sha256sum_xargs() { printf '%s\0' "${blobs[@]}" | xargs -0 -n 1 -P 2 sha256sum --; }
zoo_verify() { HF_HUB_CACHE="$root" ZOO_DB="$tmp/registry.db" "$bin" verify org/bench; }
zoo_verify_1() { HF_HUB_CACHE="$root" ZOO_DB="$tmp/registry.db" "$bin" verify org/bench --threads 1; }

# One untimed run of zoo: it must pass (exit 0), and it creates its private registry database.
if ! out="$(zoo_verify 2>&1)"; then
    echo "error: zoo verify org/bench failed on a clean cache:" >&2
    echo "$out" >&2
    exit 1
fi

ns_sum=$(best_ns sha256sum_all)
ns_xargs=$(best_ns sha256sum_xargs)
ns_zoo=$(best_ns zoo_verify)
ns_zoo1=$(best_ns zoo_verify_1)

mbps() { awk -v b="$bytes" -v ns="$1" 'BEGIN { printf "%.0f", b / (ns / 1e9) / 1e6 }'; }
line() { printf '%-34s best of %d: %7.3f s  %6s MB/s\n' "$1" "$runs" "$(awk -v ns="$2" 'BEGIN { print ns / 1e9 }')" "$(mbps "$2")"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b / a }'; }

echo "$files x $size_mib MiB = $((bytes >> 20)) MiB, all from page cache; $(nproc) cores; $(sha256sum --version | head -n 1)"
line "sha256sum (1 process)" "$ns_sum"
line "sha256sum (xargs -P 2)" "$ns_xargs"
line "zoo verify org/bench" "$ns_zoo"
line "zoo verify org/bench --threads 1" "$ns_zoo1"
echo "zoo / sha256sum:             $(ratio "$ns_zoo" "$ns_sum")x   (target >= 0.9x)"
echo "zoo --threads 1 / sha256sum: $(ratio "$ns_zoo1" "$ns_sum")x"
echo "zoo / sha256sum (xargs -P 2): $(ratio "$ns_zoo" "$ns_xargs")x"
