#!/usr/bin/env bash
# GPU measurements in one run (a few minutes on one GPU): the benchmark suite in bf16, 8 small MiniLM jobs
# sharing one GPU at --jobs-per-gpu 1, 2 and 4 (jobs/hour each), and `glue-bench calibrate` with the estimate
# of that sweep against its measured wall time.
#
#   bash benchmarks/gpu/run.sh [OUT_DIR]      # default: benchmarks/gpu/run-<date>; REPS=3 for 3 repetitions
#
# Needs the GLUE files (GLUE_DATA_DIR, default ../shared/glue_data) and the installed all-MiniLM-L6-v2 package.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-${OUT:-benchmarks/gpu/run-$(date +%Y%m%d-%H%M)}}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
DATA=$(cd "${GLUE_DATA_DIR:-../shared/glue_data}" && pwd)
export GLUE_DATA_DIR=$DATA HF_HUB_OFFLINE=1 WANDB_MODE=disabled TOKENIZERS_PARALLELISM=false
export GLUE_BENCH_CACHE=$OUT/cache
REPS=${REPS:-1}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.csv"

# 1. the suite with the current loops, bf16 (fp32 weights under autocast, as jobs run)
python -m benchmarks all --device cuda --precision bf16 --steps 50 --warmup 3 --reps "$REPS" \
    --data-dir "$DATA" --work-dir "$OUT/suite-work" --out "$OUT/all-bf16.json" 2>&1 | tail -40 > "$OUT/all-bf16.txt"

# 2. 8 small MiniLM jobs on one GPU, 1, 2 and 4 at a time
WORK=$OUT/shared-gpu
mkdir -p "$WORK"
cat > "$WORK/gpu8.yaml" <<YAML
name: gpu8
model: sentence-transformers/all-MiniLM-L6-v2
data: $DATA
tasks: [rte, mrpc, stsb, cola]
methods:
  full: {learning_rate: 5e-5}
  houlsby: {bottleneck: 64, learning_rate: 1e-3}
epochs: 1
batch_size: 32
max_train_samples: 1000
max_eval_samples: 500
predict_test: false
gpus_per_job: 1
wandb: {mode: disabled}
YAML
(cd "$WORK" && glue-bench plan gpu8.yaml > plan.txt)
python - "$DATA" <<'PY'  # tokenise the four tasks first: every N then starts from the same warm cache
import sys
from glue_bench.train.data import TokenCache
from glue_bench.train.models import load_tokenizer
from glue_bench.tasks import get_task
tokenizer, cache = load_tokenizer("sentence-transformers/all-MiniLM-L6-v2"), TokenCache()
for name in ("rte", "mrpc", "stsb", "cola"):
    task = get_task(name)
    for split in ("train", *task.dev_splits):
        cache.encoded(task, split, sys.argv[1], tokenizer, 128)
PY
echo '{' > "$OUT/jobs-per-gpu.json"
for N in 1 2 4; do
  (cd "$WORK" && glue-bench plan gpu8.yaml --results-dir "results-$N" > /dev/null)
  START=$(date +%s.%N)
  (cd "$WORK" && glue-bench run jobs/gpu8 --gpus 0 --jobs-per-gpu "$N" > "run-$N.txt" 2>&1)
  END=$(date +%s.%N)
  python - "$N" "$START" "$END" "$WORK" >> "$OUT/jobs-per-gpu.json" <<'PY'
import json, sys
from pathlib import Path
n, start, end, work = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), Path(sys.argv[4])
done = sum((p / "metrics.json").is_file() for p in (work / f"results-{n}" / "gpu8").iterdir())
ooms = sum('"event": "oom"' in line for line in (work / "jobs" / "gpu8" / "events.jsonl").read_text().splitlines())
wall = end - start
sep = "," if n != 4 else ""
print(f'"{n}": ' + json.dumps({"jobs_done": done, "wall_s": round(wall, 1), "jobs_per_hour": round(3600 * done / wall, 1),
                               "oom_events_so_far": ooms}) + sep)
PY
done
echo '}' >> "$OUT/jobs-per-gpu.json"

# 3. calibrate, then the estimate of the same sweep on this GPU against its measured wall time (jobs-per-gpu 1)
glue-bench calibrate --model sentence-transformers/all-MiniLM-L6-v2 --device cuda --task rte \
    --method full --method houlsby > "$OUT/calibrate.txt" 2>&1
GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | sed 's/NVIDIA //; s/ .*//')
(cd "$WORK" && glue-bench plan gpu8.yaml --dry-run --estimate --device cuda --gpu-type "$GPU") > "$OUT/estimate.txt"
cp "$GLUE_BENCH_CACHE/calibration.json" "$OUT/calibration.json"
rm -rf "$GLUE_BENCH_CACHE" "$OUT/suite-work" "$WORK"/results-* "$WORK"/jobs
echo "wrote $OUT"
