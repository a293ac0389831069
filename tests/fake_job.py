"""A stand-in for `python -m glue_bench.train` in executor tests: records the environment it was started with,
and either runs out of GPU memory (once, for the job named in FAKE_OOM_JOB) or writes a finished result."""

import json
import os
import sys
import time
from pathlib import Path

from glue_bench.results.job_folder import atomic_write_json, write_prediction_file
from glue_bench.spec import JobSpec
from glue_bench.tasks import TASKS

spec_path, out = Path(sys.argv[1]), Path(sys.argv[2])
spec = JobSpec.load(spec_path)
record = {"job": out.name, "pid": os.getpid(), "start": time.time(),
          **{k: os.environ.get(k) for k in ("CUDA_VISIBLE_DEVICES", "MASTER_PORT", "MASTER_ADDR", "RANK",
                                            "WORLD_SIZE", "LOCAL_RANK")}}
with open(os.environ["FAKE_STARTS"], "a") as f:
    f.write(json.dumps(record) + "\n")
time.sleep(float(os.environ.get("FAKE_SECONDS", "0.6")))
marker = out / "oom-once"
if out.name == os.environ.get("FAKE_OOM_JOB") and not marker.exists():
    marker.write_text("")
    print("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB", file=sys.stderr)
    sys.exit(1)
task = TASKS[spec.task]
files = {s: write_prediction_file(out / "predictions" / f"{s}.tsv", "idx\tprediction\tlabel", ["0\t1\t1"])
         for s in task.dev_splits}
atomic_write_json(out / "metrics.json", {
    "schema_version": 1, "job_id": spec.job_id, "task": spec.task, "method": spec.method, "dev": {},
    "task_score": 0.5, "predictions": {s: f["rows"] for s, f in files.items()}, "prediction_files": files,
    "spec": spec.to_dict()})
