"""Run job specs one after another in this process (`python tests/job_runner.py jobs.json`): a list of
[spec dict, output folder]. Prints `<exit code> <folder>` per job. One process for many tiny jobs keeps the
start-up of torch, DeepSpeed and transformers to once."""

import json
import sys

from glue_bench.spec import JobSpec
from glue_bench.train.recipe import run_job


def main(path: str) -> None:
    for spec, out in json.loads(open(path).read()):
        print(int(run_job(JobSpec.from_dict(spec), out)), out, flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
