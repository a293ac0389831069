"""glue-bench benchmarks: `python -m benchmarks --help`."""
