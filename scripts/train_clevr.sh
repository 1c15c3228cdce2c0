#!/usr/bin/env bash
# The exact commands behind the shipped CLEVR model and its report
# (assets/model/clevr.pt, assets/model/REPORT-clevr.md). About 1.5 hours on a 2-core CPU,
# most of it Blender's Cycles drawing the test set and the sleep stage.
set -euo pipefail
cd "$(dirname "$0")/.."
air3d=.venv/bin/air3d

# Test sets: the same 500 prior scenes (seed 2026) drawn by Blender's Cycles (CLEVR's lamps
# jittered as CLEVR does, the camera fixed) and by our renderer; 200 more Blender images
# (seed 77), unlabeled, to adapt the look to.
$air3d make-data --world clevr --renderer blender --n 500 --seed 2026 --samples 32 \
  --lamp-jitter 1.0 --out data/clevr-blender-test --resume
$air3d make-data --world clevr --n 500 --seed 2026 --out data/clevr-ours-test
$air3d make-data --world clevr --renderer blender --n 200 --seed 77 --samples 32 \
  --lamp-jitter 1.0 --out data/clevr-blender-unlabeled --resume

# q: the sleep stage on our renderer's images (configs/clevr.yaml), then the look adapted
# to the unlabeled Blender images (no labels).
$air3d train --config configs/clevr.yaml --resume
$air3d adapt --checkpoint runs/clevr/model.pt --images data/clevr-blender-unlabeled/images \
  --out runs/clevr-adapted.pt --schedule theta:100,sleep:1500 --pool-size 3000 \
  --num-threads 1 --minutes 25 --resume
# The shipped model: 8,000 more sleep steps from the first run, then θ alone (the first
# adapt's sleep stage was not kept), then the fit score's calibration.
$air3d train --config configs/clevr.yaml init_from=runs/clevr/model.pt out=runs/clevr2 \
  sleep_steps=8000 lr=5.0e-4 --resume
$air3d adapt --checkpoint runs/clevr2/model.pt --images data/clevr-blender-unlabeled/images \
  --out runs/clevr2-adapted.pt --schedule theta:100 --num-threads 1 --minutes 6
cp runs/clevr2-adapted.pt assets/model/clevr.pt
$air3d calibrate --checkpoint assets/model/clevr.pt --n 500

mkdir -p reports/clevr
ev() { $air3d evaluate --world clevr --no-progress "$@"; }
for pair in sleep:runs/clevr/model.pt adapted:runs/clevr-adapted.pt \
  sleep2:runs/clevr2/model.pt adapted2:runs/clevr2-adapted.pt; do
  name=${pair%%:*} model=${pair#*:}
  for set in blender ours; do
    ev --checkpoint "$model" --data "data/clevr-$set-test" \
      --scenes "data/clevr-$set-test/clevr_scenes.json" --out "reports/clevr/$name-$set"
  done
done
