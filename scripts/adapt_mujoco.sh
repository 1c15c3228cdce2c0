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

ev() { OMP_NUM_THREADS=1 $air3d evaluate --timing-calls 0 --no-progress --data data/mujoco-test "$@"; }
mkdir -p $out
ev --checkpoint reports/sleep-stage-only.pt --out $out/sleep
ev --checkpoint assets/model/default.pt --out $out/elbo
for stage in runs/adapt-mujoco/adapted.adapt/stage*.pt; do
  ev --checkpoint "$stage" --out "$out/$(basename "$stage" .pt)"
done
ev --checkpoint reports/adapted-mujoco.pt --out $out/adapted

# the same scenes drawn by MuJoCo in our own look (shadows and anti-aliasing only)
$air3d make-data --renderer mujoco --n 500 --seed 4321 --out data/mujoco-plain
ev --checkpoint assets/model/default.pt --data data/mujoco-plain --out $out/elbo-plain-look
# the adapted checkpoint on our own renders in the shipped look
$air3d make-data --n 500 --seed 4321 --out data/ours-test
ev --checkpoint reports/adapted-mujoco.pt --data data/ours-test --out $out/adapted-on-our-renders
# ablation: θ without cast shadows
$air3d adapt --checkpoint assets/model/default.pt --images data/mujoco-train/images \
  --out runs/adapt-mujoco-noshadow/adapted.pt --minutes 30 --num-threads 1 --no-progress \
  --learn light colors ground background tone
ev --checkpoint runs/adapt-mujoco-noshadow/adapted.pt --out $out/adapted-without-shadows
