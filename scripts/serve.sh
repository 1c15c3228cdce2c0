#!/usr/bin/env bash
# Serves the shipped default model on 127.0.0.1:8000 (AIR3D_* variables and `air3d serve`
# flags change that; see README). The first run creates .venv and installs air3d with its
# runtime dependencies only (several minutes, about 3 GB, mostly torch; the dev tools are
# scripts/install.sh's); later runs skip the install while pyproject.toml is unchanged
# (its hash is kept in .venv/.air3d-runtime).
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=.venv/.air3d-runtime
wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ -x .venv/bin/air3d ] && [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ]; then
    echo "serve.sh: .venv is up to date with pyproject.toml (install skipped)"
else
    if [ ! -x .venv/bin/python ]; then
        echo "serve.sh: creating .venv"
        python3 -m venv .venv
    fi
    echo "serve.sh: installing air3d and its runtime dependencies into .venv" \
        "(first time: several minutes, about 3 GB)"
    .venv/bin/python -m pip install --disable-pip-version-check --progress-bar off -e . \
        | grep -E --line-buffered '^(Collecting|Installing|Successfully)' || true
    echo "$wanted" > "$stamp"
fi
echo "serve.sh: starting air3d serve $* (loading the model)"
exec .venv/bin/air3d serve "$@"
