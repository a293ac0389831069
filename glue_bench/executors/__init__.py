"""Kept for Slurm batch scripts written before the executors moved to `glue_bench.run`."""
