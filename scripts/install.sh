#!/usr/bin/env bash
# Installs air3d and its dependencies into .venv (idempotent; about 3 GB, mostly torch).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'
