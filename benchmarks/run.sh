#!/usr/bin/env bash
# Benchmarks ferrule against peer WSGI servers: creates benchmarks/.venv on first use, then runs
# run.py with it (run.py installs the peers and builds ferrule in release mode into that venv).
# Options are run.py's: benchmarks/run.sh --help. Method and results: benchmarks/README.md.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    echo "creating $venv with $("$python" --version 2>&1)" >&2
    "$python" -m venv "$venv"
fi
exec "$venv/bin/python" "$here/run.py" "$@"
