#!/usr/bin/env bash
# `make demo` as a newcomer runs it (issue #33): a clone in an empty folder, so no ../shared beside it,
# XLEXP_DATA_DIR and XLEXP_RESULTS_DIR unset (the quickstart reads the NusaX-senti copy embedded in the
# package), its own venv with the core install only. Then the README's quickstart numbers (and
# docs/models.md's) must be the ones this very demo measured: benchmarks/quickstart_numbers.py --check
# on the demo's results store. XLEXP_CACHE_DIR is kept, so the encoder built for the tests is reused
# (`xlexp build-model` rebuilds only what is missing); tokenized data is cached by content.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
D="$(mktemp -d)"
trap 'rm -rf "$D"' EXIT
git clone -q "$ROOT" "$D/xlexp"
cd "$D/xlexp"
start=$SECONDS
env -u XLEXP_DATA_DIR -u XLEXP_RESULTS_DIR make demo
echo "make demo: rc 0 in $((SECONDS - start)) s, in a clone with nothing beside it ($D/xlexp)"
"$ROOT/.venv/bin/python" "$ROOT/benchmarks/quickstart_numbers.py" --records "$D/xlexp/results" --experiment quickstart --check
echo "the README's quickstart numbers are this demo's"
