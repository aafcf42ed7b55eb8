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
if ! command -v flock >/dev/null 2>&1; then
  echo "error: flock not found (util-linux); it keeps parallel installs from racing" >&2
  exit 1
fi

done_matches() {
  [ -f "$DEST/.done" ] && [ "$(cat "$DEST/.done")" = "huggingface_hub==$VERSION" ]
}

if ! done_matches; then
  mkdir -p "$DEST"
  exec 9>"$DEST/.lock"
  flock 9
  # Another process may have finished the install while this one waited for the lock.
  if ! done_matches; then
    # Start clean: a half-written DEST from an interrupted install would make pip skip packages.
    find "$DEST" -mindepth 1 -maxdepth 1 ! -name .lock -exec rm -rf {} +
    if ! "$PYTHON" -m pip install --quiet --disable-pip-version-check --target "$DEST" \
        "huggingface_hub==$VERSION" >&2; then
      echo "error: pip could not install huggingface_hub==$VERSION into $DEST" >&2
      echo "hint: it needs network access to PyPI; check \`$PYTHON -m pip --version\` and your proxy" >&2
      exit 1
    fi
    echo "huggingface_hub==$VERSION" >"$DEST/.done"
  fi
  exec 9>&-
fi

echo "$DEST"
