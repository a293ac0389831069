"""`python -m glue_bench.executors.slurm_task ...`: what Slurm scripts written before the move call; the task
itself is `glue_bench.run.slurm_task`."""

import runpy

if __name__ == "__main__":
    runpy.run_module("glue_bench.run.slurm_task", run_name="__main__", alter_sys=True)
