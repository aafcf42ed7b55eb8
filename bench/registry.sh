#!/usr/bin/env bash
# Registry speed: `zoo list --json` on the bundled catalog (target < 30 ms wall) and a filtered
# query over a generated 10,000-model catalog (target < 50 ms). Release build, warm cache.
# Usage: bench/registry.sh [N]   (N runs each, default 30)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-30}
cargo build --release --quiet
ZOO=${ZOO_BIN:-target/release/zoo}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export HOME=$WORK HF_HOME=$WORK/hf NO_COLOR=1

python3 bench/gen_catalog.py "$WORK/catalog10k" 10000 >/dev/null
"$ZOO" --db "$WORK/bundled.db" list --json >/dev/null 2>&1          # first use: create + sync
s=$(date +%s%N)
"$ZOO" --db "$WORK/big.db" --catalog "$WORK/catalog10k" registry sync >/dev/null
echo "sync of the 10,000-model catalog into a new database: $(( ($(date +%s%N) - s) / 1000000 )) ms (once)"
echo "models in big.db: $("$ZOO" --db "$WORK/big.db" --catalog "$WORK/catalog10k" list --json | python3 -c 'import json,sys;print(len(json.load(sys.stdin)))')"
echo
python3 bench/time_cmd.py "$N" "zoo list --json (bundled, $("$ZOO" --db "$WORK/bundled.db" list --json | python3 -c 'import json,sys;print(len(json.load(sys.stdin)))') models)" -- \
  "$ZOO" --db "$WORK/bundled.db" list --json
python3 bench/time_cmd.py "$N" "zoo list (table, bundled)" -- "$ZOO" --db "$WORK/bundled.db" list
python3 bench/time_cmd.py "$N" "query 10k: --family --lang --sort params" -- \
  "$ZOO" --db "$WORK/big.db" --catalog "$WORK/catalog10k" registry query --family fam7 --lang zh --sort params -r --limit 20 --json
python3 bench/time_cmd.py "$N" "query 10k: --lang --kind (all matches, json)" -- \
  "$ZOO" --db "$WORK/big.db" --catalog "$WORK/catalog10k" registry query --lang zh --kind delta --json
python3 bench/time_cmd.py "$N" "zoo --version (process floor)" -- "$ZOO" --version
echo
echo "targets: list --json < 30 ms; filtered 10k query < 50 ms"
