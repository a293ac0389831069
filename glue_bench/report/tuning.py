"""What tuning costs: expected validation performance against the number of settings tried (Dodge et al. 2019,
"Show your work"), and device-hours per configuration from the jobs' own records. Pure (no torch).

A configuration's grid is its settings (learning rate, epochs, other hyperparameters), each scored by its
choosing score over seeds (the protocol's, mean or median as the report's); the expected best of n settings
drawn from them (`stats.expected_max`) says how much of the grid a method needs: a method whose expected best
at n = 1 is close to its best needs little tuning.
"""

from __future__ import annotations

from dataclasses import dataclass

from glue_bench.report.aggregate import center, settings
from glue_bench.report.collect import JobRecord
from glue_bench.report.stats import expected_max
from glue_bench.tasks import GLUE_TASKS


@dataclass(frozen=True, slots=True)
class Curve:
    """Expected best dev task score (percent) of one configuration on one task, for 1..N settings tried."""

    task: str
    config: str
    expected: tuple[float, ...]
    """expected[n - 1]: the expected best of n settings drawn (with replacement) from the grid's N."""

    @property
    def settings(self) -> int:
        return len(self.expected)


def curves(records: list[JobRecord], aggregate: str = "mean") -> list[Curve]:
    """One curve per (task, configuration) with a done setting, in GLUE order."""
    values: dict[tuple[str, str], list[float]] = {}
    for (task, config, *_), group in settings(records).items():
        values.setdefault((task, config), []).append(100 * center((r.task_score for r in group), aggregate))
    out = [Curve(task, config, tuple(expected_max(v))) for (task, config), v in values.items()]
    return sorted(out, key=lambda c: (GLUE_TASKS.index(c.task), c.config))


def device_seconds(record: JobRecord) -> float:
    """A job's device-seconds: wall seconds x devices (GPUs, or CPU processes)."""
    return (record.wall_seconds or 0.0) * record.world_size


def device_hours(records: list[JobRecord]) -> dict[str, dict[str, float]]:
    """Per configuration, device-hours per task and in all, over every job that finished (pruned ones included)."""
    out: dict[str, dict[str, float]] = {}
    for r in records:
        if r.done and r.wall_seconds is not None:
            per = out.setdefault(r.config, {})
            per[r.task] = per.get(r.task, 0.0) + device_seconds(r) / 3600
            per["all"] = per.get("all", 0.0) + device_seconds(r) / 3600
    return out
