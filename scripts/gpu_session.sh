#!/usr/bin/env bash
# One lent-GPU call (the device tool's `run`, about 9 minutes): check the CUDA path, time
# it, then resume the committed CLEVR q run on the GPU until the deadline. Run from the
# repository root there, with the wheels of ../shared/tools/device-wheels in .whl, the run
# to resume in runs/clevr-spatial (checkpoint.pt, metrics.csv) and a labelled image set in
# data/clevr-blender-cal; everything it writes goes to $OUT (logs, checkpoint, curve).
#   usage: scripts/gpu_session.sh SECONDS   (the whole script's budget)
set -uo pipefail
budget=${1:-540}
deadline=$(( $(date +%s) + budget ))
out=${OUT:-/tmp/gpu-out}; mkdir -p "$out"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
scripts/link_package.sh /tmp/pkg
export PYTHONPATH=/tmp/site:/tmp/pkg
nvidia-smi -L; python3 -c "import torch, pytorch3d; print(torch.__version__, pytorch3d.__version__, torch.cuda.get_device_name())"
# -P: the checkout's own air3d/ folder (the CLI's part alone) must not shadow /tmp/pkg's
{
  [ -n "${SKIP_BENCH:-}" ] || {
  echo "## q on CUDA"; timeout 60 python3 benchmarks/q.py --checkpoint assets/model/clevr.pt --device cuda --batch 64 --repeats 50
  echo "## training throughput on CUDA"
  timeout 90 python3 benchmarks/train_throughput.py --world clevr --device cuda --batches 32,256 --where spatial --threads 4
  echo "## renderer on CUDA"; timeout 60 python3 benchmarks/render.py --world clevr --device cuda --batches 1,32,256
  }
  echo "## evaluate on CUDA (120 Blender validation images)"
  timeout 120 python3 -P -m air3d.cli evaluate --world clevr --data data/clevr-blender-cal \
    --scenes data/clevr-blender-cal/clevr_scenes.json --device cuda --batch-size 64 \
    --no-progress --timing-calls 30 --out "$out/eval-cuda"
} 2>&1 | tee "$out/bench.log"
# The q run, resumed on the GPU while the tests run beside it (their timings are not read)
left=$(( deadline - $(date +%s) - 25 ))
echo "## training for ${left} s"
timeout -s TERM "$left" python3 -P -m air3d.cli train --config configs/clevr-spatial.yaml --resume \
  num_threads=8 > "$out/train.log" 2>&1 &
training=$!
timeout 150 python3 -P -m pytest -q --import-mode=append -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$out/pytest.log"
wait $training; echo "training exit $?"
tail -5 "$out/train.log"
cp runs/clevr-spatial/checkpoint.pt runs/clevr-spatial/metrics.csv "$out/"
ls -la "$out"
