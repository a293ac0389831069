"""Run: start a job's ranks (launch), the local and Slurm executors, and where a sweep stands (no torch)."""
