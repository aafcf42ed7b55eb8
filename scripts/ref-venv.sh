#!/usr/bin/env bash
# Create (or bring up to date) the Python venv used by the delta-weights reference tools:
#   tests/fixtures/make_delta_cases.py   (writes tests/fixtures/delta-cases/)
#   bench/delta.sh                       (zoo vs FastChat apply_delta benchmark)
#
# Usage: scripts/ref-venv.sh            -> prints the venv path on the last line of stdout
#        ZOO_REF_VENV=/some/dir scripts/ref-venv.sh
#
# Idempotent: when the venv exists and was built from exactly the pins below, it does nothing.
# Only PyPI is used (plain `pip install`); torch comes from PyPI's default wheel (CPU use is fine).
# Never run by CI.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ZOO_REF_VENV:-$REPO/.venv-ref}"
PYTHON="${ZOO_REF_PYTHON:-python3}"

# Pinned versions. transformers/accelerate/sentencepiece/protobuf are the versions checked to
# run fschat 0.2.36's `python -m fastchat.model.apply_delta` (default and --low-cpu-mem modes)
# end to end with torch 2.15 (see bench/delta.sh). transformers 4.57.6 (last 4.x) rather than 5.x:
# 5.24 also runs apply_delta (with protobuf 7.36), but it turns the delta's slow sentencepiece
# tokenizer into a fast one and saves tokenizer.json instead of tokenizer.model, which is not what
# FastChat did in its time; with protobuf 5.x, 5.24 cannot load the sentencepiece tokenizer at all.
PINS=(
  "torch==2.15.0"
  "safetensors==0.8.0"
  "numpy==2.4.6"
  "fschat==0.2.36"
  "transformers==4.57.6"
  "accelerate==1.15.0"
  "sentencepiece==0.2.3"
  "protobuf==5.29.6"
)

STAMP="$VENV/.zoo-ref-pins"
WANT="$(printf '%s\n' "${PINS[@]}")"

if [[ -x "$VENV/bin/python" && -f "$STAMP" ]] && [[ "$(cat "$STAMP")" == "$WANT" ]]; then
  echo "ref venv up to date: $VENV" >&2
  echo "$VENV"
  exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "creating venv $VENV" >&2
  "$PYTHON" -m venv "$VENV"
fi

echo "installing pinned packages into $VENV (torch is large: this takes a while)" >&2
"$VENV/bin/python" -m pip install --disable-pip-version-check "${PINS[@]}" >&2

# Smoke check: the imports the reference scripts and FastChat's apply_delta need.
"$VENV/bin/python" - >&2 <<'PY'
import numpy, safetensors, sentencepiece, google.protobuf, torch, transformers, accelerate
import fastchat.model.apply_delta  # imports fastchat.model.model_adapter and all it pulls in
print("torch", torch.__version__, "| transformers", transformers.__version__,
      "| accelerate", accelerate.__version__, "| safetensors", safetensors.__version__,
      "| numpy", numpy.__version__, "| sentencepiece", sentencepiece.__version__,
      "| protobuf", google.protobuf.__version__)
PY

printf '%s\n' "$WANT" > "$STAMP"
echo "ref venv ready: $VENV" >&2
echo "$VENV"
