#!/usr/bin/env bash
# Prints the path of a headless-capable Chromium binary, installing Debian's `chromium` when
# none is found and we are root. Idempotent: a second run finds the first run's install.
# Used by crates/zoo-report/tests/html_chromium.rs, which renders report pages in a real browser.
# Exit codes: 0 found (path on stdout), 2 missing and cannot install (not root), 1 install failed.
set -euo pipefail

find_browser() {
    local name
    for name in chromium chromium-browser google-chrome google-chrome-stable; do
        if command -v "$name" >/dev/null 2>&1; then
            command -v "$name"
            return 0
        fi
    done
    return 1
}

if path=$(find_browser); then
    echo "$path"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "chromium.sh: no Chromium found (chromium, chromium-browser, google-chrome) and not root;" >&2
    echo "chromium.sh: install it with: sudo apt-get install -y chromium" >&2
    exit 2
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "chromium.sh: no Chromium found and no apt-get to install it with; install Chromium by hand" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# Package logs go to stderr so that stdout carries only the path.
# A stale or absent package list makes the first install fail; refresh it then and retry once.
if ! apt-get install -y -qq chromium >&2; then
    apt-get update -qq >&2
    apt-get install -y -qq chromium >&2
fi

if path=$(find_browser); then
    echo "$path"
    exit 0
fi
echo "chromium.sh: installed the chromium package but found no binary on PATH" >&2
exit 1
