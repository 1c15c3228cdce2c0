#!/usr/bin/env bash
# The adaptation benchmark behind benchmarks/RESULTS.md ("air3d adapt: ...") and the
# "Adapting to another renderer" section of assets/model/REPORT.md: the shipped model on
# tabletop scenes drawn by MuJoCo in another look, before and after `air3d adapt` on 1000
# unlabeled MuJoCo images (other seeds than the test set). CPU, one torch thread.
# Needs the [mujoco] extra and OSMesa (apt-get install libosmesa6).
set -euo pipefail
cd "$(dirname "$0")/.."
air3d=${AIR3D:-.venv/bin/air3d}
look=configs/look-mujoco.yaml
out=reports/adapt-mujoco

$air3d make-data --renderer mujoco --look $look --n 500 --seed 4321 --out data/mujoco-test
$air3d make-data --renderer mujoco --look $look --n 1000 --seed 8765 --out data/mujoco-train

# the images alone: adapt never reads scenes.jsonl
$air3d adapt --checkpoint assets/model/default.pt --images data/mujoco-train/images \
  --out runs/adapt-mujoco/adapted.pt --minutes 30 --num-threads 1 --no-progress
cp runs/adapt-mujoco/adapted.pt reports/adapted-mujoco.pt

ev() { OMP_NUM_THREADS=1 $air3d evaluate --data data/mujoco-test --timing-calls 0 --no-progress "$@"; }
mkdir -p $out
ev --checkpoint reports/sleep-stage-only.pt --out $out/sleep
ev --checkpoint assets/model/default.pt --out $out/elbo
for stage in runs/adapt-mujoco/adapted.adapt/stage*.pt; do
  ev --checkpoint "$stage" --out "$out/$(basename "$stage" .pt)"
done
ev --checkpoint reports/adapted-mujoco.pt --out $out/adapted
