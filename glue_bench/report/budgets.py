"""Equal budgets: per budget of trainable parameters, the best configuration of each task within it. Pure.

A configuration's budget parameters are its trainable parameters without the task head (every method
trains a head of the same size; Hu et al. count it out too), as a percentage of the base model. Within a
budget, per task, the configuration with the best selected dev score wins (the same selection as the rest
of the report); ties go to fewer parameters. A column's GLUE score needs all nine tasks; its mean is over
the tasks every column has (`shared_tasks`), and says how many.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from glue_bench.errors import GlueBenchError
from glue_bench.report.aggregate import Selection
from glue_bench.tasks import GLUE_TASKS, glue_score

DEFAULT_BUDGETS = (0.1, 0.5, 1.0, 3.0, 100.0)
"""Percent of the base model."""


def parse_budgets(text: str) -> tuple[float, ...]:
    """`0.1,0.5,1,3,100` (a `%` is allowed) -> sorted percentages."""
    values = []
    for part in text.split(","):
        part = part.strip().removesuffix("%")
        try:
            value = float(part)
        except ValueError:
            raise GlueBenchError(f"--budgets {text!r}: give comma-separated percentages, e.g. 0.1,1,100") from None
        if not value > 0:
            raise GlueBenchError(f"--budgets {text!r}: a budget is a positive percentage")
        values.append(value)
    return tuple(sorted(set(values)))


def budget_percent(s: Selection) -> float | None:
    params, base = s.budget_parameters, s.base_model
    return None if params is None or not base else 100.0 * params / base


@dataclass(frozen=True, slots=True)
class Choice:
    """The best configuration of one task within one budget."""

    task: str
    config: str
    score: float
    """Mean dev task score of its selected setting, percent."""
    percent: float
    """Its budget parameters, percent of the base model."""


@dataclass
class BudgetColumn:
    budget: float
    choices: dict[str, Choice] = field(default_factory=dict)

    @property
    def glue_score(self) -> float | None:
        return glue_score({t: c.score for t, c in self.choices.items()})

    @property
    def mean(self) -> float | None:
        """The mean over the tasks this column has (`mean_over` for a mean comparable across columns)."""
        return statistics.fmean(c.score for c in self.choices.values()) if self.choices else None

    def mean_over(self, tasks: list[str]) -> float | None:
        """The mean over `tasks` (None if the column lacks one of them, or `tasks` is empty)."""
        if not tasks or not all(t in self.choices for t in tasks):
            return None
        return statistics.fmean(self.choices[t].score for t in tasks)


def shared_tasks(columns: list[BudgetColumn]) -> list[str]:
    """The tasks every column has a choice for: the tasks a row's mean may average."""
    filled = [c for c in columns if c.choices]  # a budget nothing fits says "-" and does not empty the mean
    return [t for t in GLUE_TASKS if filled and all(t in c.choices for c in filled)]


def budget_table(selections: list[Selection], budgets: tuple[float, ...] = DEFAULT_BUDGETS) -> list[BudgetColumn]:
    columns = []
    for budget in budgets:
        column = BudgetColumn(budget)
        for task in GLUE_TASKS:
            within = [(s, p) for s in selections if s.task == task
                      for p in [budget_percent(s)] if p is not None and p <= budget * (1 + 1e-9)]
            if within:
                s, p = max(within, key=lambda sp: (sp[0].mean_score, -sp[1]))  # chosen by the choosing score
                column.choices[task] = Choice(task, s.config, 100 * s.shown_score, p)
        columns.append(column)
    return columns


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats with as few or fewer parameters (x) and a higher score (y), by x."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or y > front[-1][1]:
            front.append((x, y))
    return front


def budget_data(columns: list[BudgetColumn]) -> list[dict]:
    """The budget table as plain data (report.json's `budgets`)."""
    shared = shared_tasks(columns)
    return [{"budget_percent": c.budget, "glue_score": c.glue_score, "mean": c.mean_over(shared),
             "mean_tasks": shared,
             "tasks": {t: {"config": ch.config, "score": round(ch.score, 4), "percent": round(ch.percent, 4)}
                       for t, ch in c.choices.items()}} for c in columns]
