"""The schema version of every file glue-bench writes, in one place (docs/results.md, docs/report.md).

A reader refuses (or reads the old way) a file of another version; a change to a file's fields bumps its
number here and adds a reader for the previous one."""

METRICS = 1
"""`metrics.json` of a job (`glue_bench.results.record.MetricsRecord`)."""
REPORT = 3
"""`report.json` of a sweep; 2: rows carry `method`, best-size rows (was best-m), budgets, reference; 3: the
protocol, cells' `value` and `median`, intervals and per-seed scores, comparisons, ranking, expected validation
performance, device-hours and the pruning replay (`report.publish.read_report` reads 2 as 3)."""
MANIFEST = 1
"""`jobs/<sweep>/manifest.json` (`glue_bench.plan.manifest.Manifest`)."""
CALIBRATIONS = 1
"""`<cache>/calibrations.json` (`glue_bench.cost.calibration`)."""
