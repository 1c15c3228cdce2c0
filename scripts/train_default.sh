#!/usr/bin/env bash
# The exact commands that made the shipped default model and its report
# (assets/model/default.pt, assets/model/REPORT.md). About an hour and a half on a 2-core CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
air3d=.venv/bin/air3d

# Test sets: 1000 in-distribution scenes (0..3 objects) and 1000 with one object more.
$air3d make-data --n 1000 --seed 1234 --out data/test
$air3d make-data --n 1000 --seed 1235 --count 4 --out data/test4

# AIR (sleep warm start, then ELBO) and the supervised baseline, same sleep budget.
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
# fine-tuned with 3 extra steps trained "absent" and varied looks (configs/finetune.yaml,
# init_from runs/default/model.pt; ~25 minutes), measured against it.
$air3d train --config configs/finetune.yaml --resume init_from=runs/default/model.pt
ev --checkpoint runs/finetune/model.pt --data data/test --out reports/stop-look-air
ev --checkpoint runs/finetune/model.pt --data data/test4 --max-objects 4 \
  --out reports/stop-look-air-4objects
ev --checkpoint runs/finetune/model.pt --data data/test --max-objects 6 \
  --out reports/stop-look-air-6steps
.venv/bin/python scripts/measure_stop_look.py --checkpoint runs/default/model.pt \
  runs/finetune/model.pt --labels before after --data data/test --data4 data/test4 \
  --out reports/stop-look
cp runs/finetune/model.pt assets/model/default.pt
