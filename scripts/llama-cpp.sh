#!/usr/bin/env bash
# Build llama.cpp (CPU only, Release, GGML_NATIVE=ON) from the llama.cpp tree vendored
# in the llama-cpp-python source distribution on PyPI (GitHub is not reachable here).
# Idempotent: the sdist is cached, the unpacked tree and the cmake build are reused.
#
# Usage: scripts/llama-cpp.sh            # build (or re-use) and print the binaries' paths
#        ZOO_LLAMA_CPP=/some/dir JOBS=4 scripts/llama-cpp.sh
#        LLAMA_TARGETS="llama-server" scripts/llama-cpp.sh   # only these (the eval tests need the server)
#        LLAMA_NO_AMX=0|1 scripts/llama-cpp.sh   # with or without llama.cpp's AMX kernels (default: without on
#                                                 # AMX CPUs, where the pinned version's take SIGSEGV)
# Layout under ${ZOO_LLAMA_CPP:-$REPO/.cache/llama.cpp}:
#   sdist/     llama_cpp_python-<ver>.tar.gz      (pip download cache)
#   src/       unpacked sdist; llama.cpp is src/llama_cpp_python-<ver>/vendor/llama.cpp
#   build/     cmake build dir; binaries in build/bin/
#   bin/       symlinks to the tools we use (llama-quantize, llama-bench, llama-simple, ...)
#   env.sh     `source` it to get LLAMA_BIN, LLAMA_SRC (for gguf-py) exported
set -euo pipefail
PIN=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
# sha256 of the pinned sdist (checked when PIN is the default; vendored llama.cpp commit 0c1e570)
SHA256_0_3_36=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOT=${ZOO_LLAMA_CPP:-$REPO/.cache/llama.cpp}
JOBS=${JOBS:-2}
# llama-completion is the non-interactive CLI (`llama-completion -m M -no-cnv --temp 0 -p ...`), llama-server the
# OpenAI-compatible server (tests/eval_endpoint.rs), llama-greedy (scripts/llama_greedy.c) prints greedy token ids.
read -r -a TARGETS <<<"${LLAMA_TARGETS:-llama-quantize llama-bench llama-batched-bench llama-simple llama-completion llama-cli llama-gguf llama-tokenize llama-server}"
mkdir -p "$ROOT/sdist" "$ROOT/src" "$ROOT/bin"

if ! command -v cmake >/dev/null; then
  echo "llama-cpp.sh: installing cmake (apt-get)" >&2
  if [ "$(id -u)" != 0 ]; then echo "llama-cpp.sh: cmake missing and not root" >&2; exit 1; fi
  apt-get install -y -qq cmake >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq cmake; }
fi

sdist=$(ls "$ROOT"/sdist/llama_cpp_python-"$PIN".tar.gz 2>/dev/null || true)
if [ -z "$sdist" ]; then
  python3 -m pip download --quiet --no-deps --no-binary llama-cpp-python \
    -d "$ROOT/sdist" "llama-cpp-python==$PIN" >&2
  sdist=$(ls "$ROOT"/sdist/llama_cpp_python-"$PIN".tar.gz)
fi
if [ "$PIN" = 0.3.36 ] && [ "$(sha256sum "$sdist" | cut -d' ' -f1)" != "$SHA256_0_3_36" ]; then
  echo "llama-cpp.sh: sha256 mismatch for $sdist (delete it to re-download)" >&2; exit 1
fi
SRC=$ROOT/src/llama_cpp_python-$PIN
LLAMA_SRC=$SRC/vendor/llama.cpp
if [ ! -f "$LLAMA_SRC/CMakeLists.txt" ]; then
  rm -rf "$SRC" "$ROOT/src/.unpack"; mkdir -p "$ROOT/src/.unpack"
  tar -xzf "$sdist" -C "$ROOT/src/.unpack" && mv "$ROOT/src/.unpack/llama_cpp_python-$PIN" "$SRC" && rm -rf "$ROOT/src/.unpack"
fi
[ -f "$LLAMA_SRC/CMakeLists.txt" ] || { echo "llama-cpp.sh: no vendor/llama.cpp in $sdist" >&2; exit 1; }

BUILD=$ROOT/build
if [ -f "$BUILD/CMakeCache.txt" ] && ! grep -q "^CMAKE_HOME_DIRECTORY:INTERNAL=$LLAMA_SRC\$" "$BUILD/CMakeCache.txt"; then
  rm -rf "$BUILD"   # a build of another source tree
fi
# (Re)configure when new, or when an older build of this script had the server off.
# LLAMA_NO_AMX=1: -march=native less AMX (GCC keeps explicit -mno-* over -march), so no AMX buffer type exists. The
# default is 1 on CPUs with AMX-INT8: the pinned llama.cpp's AMX kernels take SIGSEGV there (on `ldtilecfg`, in
# llama-bench and in llama-server's warm-up; docs/BENCHMARKS.md round 9), 0 elsewhere.
if [ -z "${LLAMA_NO_AMX:-}" ]; then
  if grep -qw amx_int8 /proc/cpuinfo 2>/dev/null; then LLAMA_NO_AMX=1; else LLAMA_NO_AMX=0; fi
fi
FLAGS=""
[ "$LLAMA_NO_AMX" = 1 ] && FLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
HAVE_FLAGS=$(sed -n 's/^CMAKE_C_FLAGS:STRING=//p' "$BUILD/CMakeCache.txt" 2>/dev/null || true)
if [ ! -f "$BUILD/CMakeCache.txt" ] || ! grep -q "^LLAMA_BUILD_SERVER:BOOL=ON" "$BUILD/CMakeCache.txt" \
   || [ "$HAVE_FLAGS" != "$FLAGS" ]; then
  cmake -S "$LLAMA_SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
    "-DCMAKE_C_FLAGS=$FLAGS" "-DCMAKE_CXX_FLAGS=$FLAGS" \
    -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF -DGGML_OPENMP=ON \
    -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=ON \
    -DLLAMA_BUILD_EXAMPLES=ON -DLLAMA_BUILD_TOOLS=ON >&2
fi
# Only build the targets that exist in this version.
have=$(cmake --build "$BUILD" --target help 2>/dev/null | sed -n 's/^\.\.\. \([^ ]*\).*/\1/p')
want=()
for t in "${TARGETS[@]}"; do grep -qx "$t" <<<"$have" && want+=("$t"); done
start=$(date +%s)
cmake --build "$BUILD" --config Release -j"$JOBS" --target "${want[@]}" >&2
# llama-greedy: tiny C program against libllama (greedy ids from prompt ids, JSON out), see scripts/llama_greedy.c
if [ ! -x "$BUILD/bin/llama-greedy" ] || [ "$REPO/scripts/llama_greedy.c" -nt "$BUILD/bin/llama-greedy" ] \
   || [ "$BUILD/src/libllama.a" -nt "$BUILD/bin/llama-greedy" ]; then
  cc -O2 -std=gnu11 -I"$LLAMA_SRC/include" -I"$LLAMA_SRC/ggml/include" -c "$REPO/scripts/llama_greedy.c" -o "$BUILD/llama_greedy.o"
  c++ -o "$BUILD/bin/llama-greedy" "$BUILD/llama_greedy.o" \
    -Wl,--start-group "$BUILD/src/libllama.a" "$BUILD"/ggml/src/libggml*.a -Wl,--end-group \
    -fopenmp -lpthread -lm -ldl
fi
want+=(llama-greedy)
echo "llama-cpp.sh: build step took $(( $(date +%s) - start ))s" >&2

for t in "${want[@]}"; do ln -sf "$BUILD/bin/$t" "$ROOT/bin/$t"; done
cat > "$ROOT/env.sh" <<ENV
export LLAMA_BIN=$ROOT/bin
export LLAMA_SRC=$LLAMA_SRC
export LLAMA_CPP_PYTHON_VERSION=$PIN
export PYTHONPATH=$LLAMA_SRC/gguf-py\${PYTHONPATH:+:\$PYTHONPATH}
ENV
echo "llama.cpp (llama-cpp-python $PIN): $LLAMA_SRC" >&2
for t in "${want[@]}"; do echo "$ROOT/bin/$t"; done
