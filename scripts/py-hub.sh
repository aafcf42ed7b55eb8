#!/usr/bin/env bash
# Install Python huggingface_hub (pinned) into DEST, for the zoo-testhub interoperability tests:
#   crates/zoo-testhub/tests/integration/python_client.rs runs `python3` with PYTHONPATH=DEST.
#
# Usage: scripts/py-hub.sh DEST        -> prints DEST on the last line of stdout
#
# Idempotent: does nothing when DEST/.done names the pinned version. Safe to run in parallel (the
# tests do): an flock on DEST/.lock lets one process install while the others wait. A failed or
# interrupted install leaves no .done, and the next run starts from an empty DEST. Only PyPI is used.
set -euo pipefail

VERSION="2.4.0"
PYTHON="${ZOO_PY_HUB_PYTHON:-python3}"

if [ $# -ne 1 ] || [ -z "$1" ]; then
  echo "usage: $0 DEST" >&2
  exit 2
fi
DEST="$1"

if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "error: $PYTHON not found; the huggingface_hub interop tests need Python 3.9+ with pip" >&2
  exit 1
fi

fill() {
  if ! "$PYTHON" -m pip install --quiet --disable-pip-version-check --target "$DEST" \
      "huggingface_hub==$VERSION" >&2; then
    echo "error: pip could not install huggingface_hub==$VERSION into $DEST" >&2
    echo "hint: it needs network access to PyPI; check \`$PYTHON -m pip --version\` and your proxy" >&2
    exit 1
  fi
}

# shellcheck source=lib/install-once.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/install-once.sh"
install_once "$DEST" "huggingface_hub==$VERSION" fill

echo "$DEST"
