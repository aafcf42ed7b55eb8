#!/usr/bin/env bash
# Install the Node library playwright-core (pinned, no browsers) into DEST, for the headless-Chromium
# test of the `zoo serve` chat page: tests/web/chat_page.mjs is run as
#   PLAYWRIGHT_DIR=DEST node tests/web/chat_page.mjs http://127.0.0.1:PORT
# and loads playwright-core from DEST/node_modules (ES modules ignore NODE_PATH, so the test resolves
# the package itself from PLAYWRIGHT_DIR with createRequire). The browser is the system Chromium.
#
# Usage: scripts/playwright.sh DEST        -> prints DEST on the last line of stdout
#
# Idempotent: does nothing when DEST/.done names the pinned version. Safe to run in parallel: an
# flock on DEST/.lock lets one process install while the others wait. A failed or interrupted
# install leaves no .done, and the next run starts from an empty DEST. Only the npm registry is used;
# no browser is downloaded (PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1).
set -euo pipefail

VERSION="1.64.1"
NPM="${ZOO_PLAYWRIGHT_NPM:-npm}"

if [ $# -ne 1 ] || [ -z "$1" ]; then
  echo "usage: $0 DEST" >&2
  exit 2
fi
DEST="$1"

if ! command -v node >/dev/null 2>&1; then
  echo "error: node not found; the chat page test needs Node.js 20+ with npm" >&2
  exit 1
fi
if ! command -v "$NPM" >/dev/null 2>&1; then
  echo "error: $NPM not found; the chat page test needs npm to install playwright-core" >&2
  exit 1
fi

fill() {
  # Its own package.json keeps npm from walking up to a parent project.
  printf '{\n  "name": "zoo-playwright",\n  "private": true\n}\n' >"$DEST/package.json"
  if ! PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 "$NPM" install --prefix "$DEST" --no-audit --no-fund \
      --no-save --no-package-lock --loglevel=error "playwright-core@$VERSION" >&2; then
    echo "error: npm could not install playwright-core@$VERSION into $DEST" >&2
    echo "hint: it needs network access to the npm registry; check \`$NPM config get registry\` and your proxy" >&2
    exit 1
  fi
  if [ ! -f "$DEST/node_modules/playwright-core/package.json" ]; then
    echo "error: npm finished but $DEST/node_modules/playwright-core is missing" >&2
    exit 1
  fi
}

# shellcheck source=lib/install-once.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/install-once.sh"
install_once "$DEST" "playwright-core@$VERSION" fill

echo "$DEST"
