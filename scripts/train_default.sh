#!/usr/bin/env bash
# The exact commands that made the shipped default model and its report
# (assets/model/default.pt, assets/model/REPORT.md). About two hours on a 2-core CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
air3d=.venv/bin/air3d

# Test sets: 1000 in-distribution scenes (0..3 objects) and 1000 with one object more.
$air3d make-data --n 1000 --seed 1234 --out data/test
$air3d make-data --n 1000 --seed 1235 --count 4 --out data/test4

# AIR (sleep warm start, then ELBO) and the supervised baseline, same sleep budget. (The
# shipped base model was trained before `extra_steps` existed: 3 steps, presence trained up
# to the step after the count; today's defaults train 3 + 3 steps, every one.)
$air3d train --config configs/default.yaml --resume
$air3d train --config configs/supervised.yaml --resume

# Seed robustness at a smaller budget.
for seed in 1 2 3; do
  $air3d train --config configs/default.yaml --resume seed=$seed out=runs/seed$seed \
    pool_size=20000 sleep_steps=3000 elbo_steps=50
done

mkdir -p reports
ev() { $air3d evaluate --no-progress "$@"; }
ev --checkpoint runs/default/model.pt --data data/test --out reports/air
ev --checkpoint runs/default/sleep.pt --data data/test --out reports/air-sleep-only
ev --checkpoint runs/supervised/model.pt --data data/test --out reports/supervised
ev --checkpoint runs/default/model.pt --data data/test4 --max-objects 4 --out reports/air-4objects
for seed in 1 2 3; do
  ev --checkpoint runs/seed$seed/model.pt --data data/test --out reports/seed$seed
done
ev --abs --data data/test --limit 20 --out reports/abs   # ~25 s per image

# Learning to stop and robustness to look (issue 10, items 1 and 5): the model above,
# fine-tuned in two rounds with 3 extra steps trained "absent" and varied looks
# (configs/finetune.yaml: 4,000 steps at lr 3e-4 on a 30,000-scene pool; then 3,000 steps
# at lr 1e-4 on a fresh 60,000-scene pool; ~45 minutes together), measured against it.
$air3d train --config configs/finetune.yaml --resume init_from=runs/default/model.pt
$air3d train --config configs/finetune.yaml --resume init_from=runs/finetune/model.pt \
  out=runs/finetune2 seed=11 lr=1.0e-4 sleep_steps=3000 pool_size=60000
ev --checkpoint runs/finetune2/model.pt --data data/test --out reports/stop-look-air
ev --checkpoint runs/finetune2/model.pt --data data/test4 --max-objects 4 \
  --out reports/stop-look-air-4objects
ev --checkpoint runs/finetune2/model.pt --data data/test --max-objects 6 \
  --out reports/stop-look-air-6steps
.venv/bin/python scripts/measure_stop_look.py --checkpoint runs/default/model.pt \
  runs/finetune2/model.pt --labels before after --data data/test --data4 data/test4 \
  --out reports/stop-look
cp runs/finetune2/model.pt assets/model/default.pt
