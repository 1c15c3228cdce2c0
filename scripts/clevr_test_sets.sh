#!/usr/bin/env bash
# The CLEVR test sets of issue 17 and the shipped model's figures on them
# (assets/model/REPORT-clevr.md, "The world as CLEVR draws it"): the same 500 prior scenes
# (seed 2026) with full-size cubes, each from its own jittered camera, drawn by Blender's
# Cycles (CLEVR's lamps jittered per image) and by our renderer. About an hour of Blender on
# 2 shared CPU cores; --resume continues an interrupted run.
set -euo pipefail
cd "$(dirname "$0")/.."
air3d=.venv/bin/air3d

$air3d make-data --world clevr --renderer blender --n 500 --seed 2026 --samples 32 --denoise \
  --batch-size 4 --out data/clevr-blender-test --resume
$air3d make-data --world clevr --n 500 --seed 2026 --out data/clevr-ours-test
# the same scenes by our renderer at Blender's 320 x 240, where the refiner and finder read
.venv/bin/python benchmarks/full_frame.py --data data/clevr-ours-test --out data/clevr-ours320-test

# Our renderer against Blender on the same scenes, and the REPORT's sheet of 16 of them.
.venv/bin/python benchmarks/blender_sheet.py --data data/clevr-blender-test \
  --sheet reports/clevr/blender-vs-ours-16.png --rows 16

# The shipped clevr.pt was trained in the world before issue 17 (smaller cubes, a fixed
# camera, one light), and `evaluate` refuses a data set whose meta.json names another world.
# Its figures are taken as on foreign images: the images and CLEVR's ground truth without
# meta.json. (The truth's cube centres are then read at the model's cube height, 0.49 for a
# large cube instead of 0.7: AP counts a cube's height error as none.)
mkdir -p reports/clevr
for set in blender ours; do
  mkdir -p "data/$set-foreign"
  ln -sfn "../clevr-$set-test/images" "data/$set-foreign/images"
  cp "data/clevr-$set-test/clevr_scenes.json" "data/$set-foreign/"
  $air3d evaluate --world clevr --data "data/$set-foreign" --no-progress --timing-calls 10 \
    --scenes "data/$set-foreign/clevr_scenes.json" --out "reports/clevr/shipped-jittered-$set"
done
