#!/usr/bin/env bash
# Installs air3d into .venv (scripts/install.sh, idempotent), then serves the shipped default
# model on 127.0.0.1:8000 (AIR3D_* variables and `air3d serve` flags change that; see README).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
exec .venv/bin/air3d serve "$@"
