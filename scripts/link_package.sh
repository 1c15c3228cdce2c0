#!/usr/bin/env bash
# Make the `air3d` import namespace from this checkout without building it: a folder that
# links each of pyproject.toml's package-dir entries (for a machine with no setuptools or
# package index, such as the lent GPU machine). usage: scripts/link_package.sh DIR, then
# PYTHONPATH=DIR python3 -m air3d.cli ...
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
target="$1/air3d"
mkdir -p "$target"
for entry in "$root"/air3d/*; do ln -sfn "$entry" "$target/"; done
for part in renderer model service evaluation batch assets; do ln -sfn "$root/$part" "$target/$part"; done
