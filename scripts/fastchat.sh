#!/usr/bin/env bash
# Install FastChat (fschat 0.2.36) into a virtual environment at DEST, without torch or
# transformers: enough for its controller (`python -m fastchat.serve.controller`), its OpenAI
# server (`python -m fastchat.serve.openai_api_server`) and the `openai` Python client, which
# the zoo-serve interoperability tests run against our controller and workers.
#
# Usage: scripts/fastchat.sh DEST        -> prints DEST on the last line of stdout
#
# Not covered: `fastchat.serve.test_message` and `model_worker` import
# `fastchat.model.model_adapter`, which imports torch, transformers, accelerate and psutil at
# the top, so they fail even for `--help` here. `scripts/fastchat_test_message.py` does what
# test_message does with a named conversation template instead.
#
# Why these pins: pydantic must stay 1.x, because fschat 0.2.36's streaming endpoints call
# `.json(ensure_ascii=False)`, which pydantic 2 rejects (the SSE stream dies after its headers);
# fastapi 0.115 is a line that still supports pydantic 1. numpy (the controller's dispatch),
# aiohttp, httpx, shortuuid and tiktoken are imported at start-up; fschat's other declared
# dependencies (rich, prompt_toolkit, markdown2, nh3) are only for its CLI and web UI, so fschat
# is installed with --no-deps. Every transitive dependency is pinned through a constraints file.
#
# FastChat writes `<name>.log` into $LOGDIR (default: the current directory); run it with
# LOGDIR= (empty) to keep it from writing log files.
#
# Idempotent: does nothing when DEST/.done names this exact set of pins. Safe to run in parallel:
# an flock on DEST/.lock lets one process install while the others wait. A failed or interrupted
# install leaves no .done, and the next run starts from an empty DEST. Only PyPI is used.
set -euo pipefail

PYTHON="${ZOO_FASTCHAT_PYTHON:-python3}"

# What the controller, the OpenAI server and our tests import.
REQUIREMENTS=(
  "fastapi==0.115.14"
  "pydantic==1.10.27"
  "uvicorn==0.55.0"
  "requests==2.34.2"
  "numpy==2.4.6"
  "aiohttp==3.14.5"
  "httpx==0.29.0"
  "shortuuid==1.0.13"
  "tiktoken==0.14.0"
  "openai==1.109.1"
)
FSCHAT="fschat==0.2.36"
# Their dependencies, as resolved and tested together.
CONSTRAINTS=(
  "aiohappyeyeballs==2.7.1"
  "aiosignal==1.4.0"
  "anyio==4.16.0"
  "attrs==26.1.0"
  "certifi==2026.10.19.post1"
  "charset-normalizer==3.5.3"
  "click==8.5.1"
  "distro==1.9.0"
  "frozenlist==1.8.0"
  "h11==0.16.0"
  "httpcore==1.0.9"
  "idna==3.21"
  "jiter==0.19.0"
  "multidict==7.2.1"
  "propcache==0.5.4"
  "regex==2026.12.2"
  "sniffio==1.3.1"
  "starlette==0.46.2"
  "tqdm==4.70.1"
  "typing_extensions==4.16.0"
  "urllib3==2.8.0"
  "yarl==1.25.1"
)
MARKER="$FSCHAT ${REQUIREMENTS[*]} ${CONSTRAINTS[*]}"

if [ $# -ne 1 ] || [ -z "$1" ]; then
  echo "usage: $0 DEST" >&2
  exit 2
fi
DEST="$1"

if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "error: $PYTHON not found; the FastChat interop tests need Python 3.11+ with venv and pip" >&2
  exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "error: $PYTHON is $("$PYTHON" -c 'import platform; print(platform.python_version())'); numpy==2.4.6 needs Python 3.11+" >&2
  echo "hint: point ZOO_FASTCHAT_PYTHON at a newer python3" >&2
  exit 1
fi

fill() {
  if ! "$PYTHON" -m venv "$DEST" >&2; then
    echo "error: $PYTHON -m venv $DEST failed" >&2
    echo "hint: on Debian/Ubuntu the venv module is the python3-venv package" >&2
    exit 1
  fi
  printf '%s\n' "${CONSTRAINTS[@]}" >"$DEST/constraints.txt"
  pip=("$DEST/bin/python" -m pip install --quiet --disable-pip-version-check)
  # fschat last and alone with --no-deps: its CLI/web-UI dependencies are not wanted.
  if ! "${pip[@]}" --constraint "$DEST/constraints.txt" "${REQUIREMENTS[@]}" >&2 \
      || ! "${pip[@]}" --no-deps "$FSCHAT" >&2; then
    echo "error: pip could not install $FSCHAT and its server dependencies into $DEST" >&2
    echo "hint: it needs network access to PyPI; check \`$PYTHON -m pip --version\` and your proxy" >&2
    exit 1
  fi
  # Fail here, not in a test, when an import is missing.
  if ! LOGDIR= "$DEST/bin/python" -c \
      'import fastchat.serve.controller, fastchat.serve.openai_api_server, openai' >&2; then
    echo "error: FastChat's controller or OpenAI server does not import in $DEST" >&2
    exit 1
  fi
}

# shellcheck source=lib/install-once.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/install-once.sh"
install_once "$DEST" "$MARKER" fill

echo "$DEST"
