"""Pure aggregation: job records -> the GLUE table (selection, mean +- std, scores, parameter cost).

Selection follows Houlsby et al.: per task and method configuration (a family with its structural parameters:
full, houlsby m=8, lora r=8 a=16, ...; see `method_config`), the setting (learning rate, epochs, other
hyperparameters) with the best mean (or, `--aggregate median`, median) dev task score over its seeds; ties go
to more seeds, then the smaller learning rate, then fewer epochs. A cell is the mean (or median) +- std (sample
std, ddof=1; 0 for one seed) over the chosen setting's seeds, in percent, and each task score has a 95% bootstrap
interval over those seeds (`report.stats.seed_interval`). Which evaluation of a job chooses and which is
reported is the protocol's (`report.protocols`); jobs that ASHA pruned are kept out of selection.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from glue_bench.method_config import MethodConfig
from glue_bench.report.collect import JobRecord, read_dev_labels
from glue_bench.results import schemas
from glue_bench.tasks import GLUE_TASKS, TASKS, glue_score

# (column, task, split, metric)
COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    ("CoLA", "cola", "dev", "matthews_correlation"),
    ("SST-2", "sst2", "dev", "accuracy"),
    ("MRPC F1", "mrpc", "dev", "f1"),
    ("MRPC acc", "mrpc", "dev", "accuracy"),
    ("STS-B P", "stsb", "dev", "pearson"),
    ("STS-B S", "stsb", "dev", "spearman"),
    ("QQP F1", "qqp", "dev", "f1"),
    ("QQP acc", "qqp", "dev", "accuracy"),
    ("MNLI-m", "mnli", "dev_matched", "accuracy"),
    ("MNLI-mm", "mnli", "dev_mismatched", "accuracy"),
    ("QNLI", "qnli", "dev", "accuracy"),
    ("RTE", "rte", "dev", "accuracy"),
    ("WNLI", "wnli", "dev", "accuracy"),
)
# Houlsby et al.'s "Total": the plain mean of these nine columns (WNLI left out).
PAPER_TOTAL_COLUMNS = ("CoLA", "SST-2", "MRPC F1", "STS-B S", "QQP F1", "MNLI-m", "MNLI-mm", "QNLI", "RTE")
BEST_M = "houlsby (best m per task)"  # MethodConfig.best_size_label of houlsby
MAJORITY = "majority class"


@dataclass(frozen=True, slots=True)
class Cell:
    """One metric over the seeds of a selected setting, in percent."""

    mean: float
    std: float
    n: int
    median: float | None = None
    """The median over seeds (None: as `mean`)."""
    aggregate: str = "mean"
    """What the table shows: `mean` or `median`."""

    @property
    def shown(self) -> float:
        """The value the table shows (the mean, or the median under `--aggregate median`)."""
        return self.median if self.aggregate == "median" and self.median is not None else self.mean


@dataclass(frozen=True, slots=True)
class Selection:
    """The setting chosen for one (task, configuration)."""

    task: str
    config: str
    learning_rate: float
    epochs: int
    setting: str
    mean_score: float
    """The choosing score over seeds (the mean, or the median under `--aggregate median`)."""
    records: tuple[JobRecord, ...]
    method: MethodConfig
    reported_score: float | None = None
    """The reported score over seeds, the same aggregate (differs from `mean_score` under `held-out`; None: as it)."""
    complete: bool = True
    """No seed of this setting was pruned by ASHA."""

    @property
    def shown_score(self) -> float:
        """What the table shows for this selection (0..1)."""
        return self.mean_score if self.reported_score is None else self.reported_score

    @property
    def budget_parameters(self) -> int | None:
        """Trainable parameters without the head (see `JobRecord.budget_parameters`)."""
        return self.records[0].budget_parameters

    @property
    def base_model(self) -> int | None:
        return self.records[0].base_model

    @property
    def best_seed(self) -> JobRecord:
        """The seed with the best dev task score (ties: the smaller seed)."""
        return max(self.records, key=lambda r: (r.task_score, -r.seed))


@dataclass
class Row:
    label: str
    kind: str  # "method", "best-size" or "baseline"
    method: MethodConfig | None = None
    """The configuration of a method row (None for best-size and baseline rows)."""
    family: str | None = None
    """The method family of a method or best-size row."""
    cells: dict[str, Cell] = field(default_factory=dict)
    task_scores: dict[str, float] = field(default_factory=dict)
    selections: dict[str, Selection] = field(default_factory=dict)
    trainable: dict[str, int] = field(default_factory=dict)
    trainable_percent: dict[str, float] = field(default_factory=dict)
    delta_vs_full: float | None = None
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Per task, the 95% bootstrap interval of the task score over the selected setting's seeds (2+ seeds)."""
    seed_scores: dict[str, dict[int, float]] = field(default_factory=dict)
    """Per task, the reported task score of each seed of the selected setting (percent)."""

    @property
    def glue_score(self) -> float | None:
        """Official GLUE score of the row (`tasks.glue_score`)."""
        return glue_score(self.task_scores)

    @property
    def paper_total(self) -> float | None:
        """Houlsby et al.'s Total (None unless all nine columns exist)."""
        return paper_total({c: cell.shown for c, cell in self.cells.items()})

    @property
    def missing_tasks(self) -> list[str]:
        return [t for t in GLUE_TASKS if t not in self.task_scores]


def paper_total(values: dict[str, float]) -> float | None:
    """Mean of CoLA, SST-2, MRPC F1, STS-B Spearman, QQP F1, MNLI-m, MNLI-mm, QNLI and RTE."""
    if not all(c in values for c in PAPER_TOTAL_COLUMNS):
        return None
    return statistics.fmean(values[c] for c in PAPER_TOTAL_COLUMNS)


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def center(values, aggregate: str = "mean") -> float:
    """The mean or the median of `values`."""
    values = list(values)
    return statistics.median(values) if aggregate == "median" else statistics.fmean(values)


def selectable(records: list[JobRecord]) -> list[JobRecord]:
    """Done jobs with a score that ASHA did not prune and the protocol could score."""
    return [r for r in records if r.done and r.task_score is not None and not r.pruned and not r.unscored]


def _with_pruned_seeds(records: list[JobRecord]) -> set[str]:
    """The settings (`JobSpec.setting_key`) that lost a seed to ASHA."""
    return {r.setting for r in records if r.done and r.pruned}


def settings(records: list[JobRecord]) -> dict[tuple, list[JobRecord]]:
    """The selectable jobs grouped by (task, configuration, learning rate, epochs, setting): a setting's seeds."""
    groups: dict[tuple, list[JobRecord]] = {}
    for r in selectable(records):
        groups.setdefault((r.task, r.config, r.learning_rate, r.epochs, r.setting), []).append(r)
    return groups


def select(records: list[JobRecord], aggregate: str = "mean") -> list[Selection]:
    """Per (task, configuration), the setting with the best mean (or median) dev task score over seeds."""
    best: dict[tuple[str, str], Selection] = {}
    # A setting whose weaker seeds ASHA stopped would compete with its luckier ones only: settings that kept every
    # seed go first, and one that lost a seed is chosen only where no setting kept them all.
    lost = _with_pruned_seeds(records)
    for (task, config, lr, epochs, setting), group in settings(records).items():
        candidate = Selection(task, config, lr, epochs, setting, center((r.task_score for r in group), aggregate),
                              tuple(sorted(group, key=lambda r: r.seed)), group[0].method_config,
                              center((r.score for r in group), aggregate), setting not in lost)
        current = best.get((task, config))
        if current is None or _rank(candidate) > _rank(current):
            best[(task, config)] = candidate
    return sorted(best.values(), key=lambda s: (GLUE_TASKS.index(s.task), s.method.order))


def _rank(s: Selection) -> tuple:
    return (s.complete, s.mean_score, len(s.records), -s.learning_rate, -s.epochs)


def _fill(row: Row, selection: Selection, aggregate: str = "mean") -> None:
    from glue_bench.report.stats import seed_interval

    task = selection.task
    row.selections[task] = selection
    scores = {r.seed: 100 * r.score for r in selection.records}
    row.seed_scores[task] = scores
    row.task_scores[task] = 100 * selection.shown_score
    interval = seed_interval(list(scores.values()), statistic=aggregate)
    if interval is not None:
        row.intervals[task] = interval
    for column, t, split, metric in COLUMNS:
        if t == task:
            values = [100 * r.dev[split][metric] for r in selection.records]
            row.cells[column] = Cell(*mean_std(values), len(values), statistics.median(values), aggregate)
    first = selection.records[0]
    if first.trainable is not None and first.base_model:
        row.trainable[selection.task] = first.trainable
        row.trainable_percent[selection.task] = 100 * first.trainable / first.base_model


def build_rows(records: list[JobRecord], aggregate: str = "mean") -> list[Row]:
    """The table's rows: each configuration (families in `FAMILIES` order, then by size), a "best size per
    task" row for each family swept at several sizes (`houlsby (best m per task)`, `lora (best r per task)`),
    and the majority-class baseline. `records` are scored by a protocol already (`report.protocols.apply`)."""
    selections = select(records, aggregate)
    rows: dict[MethodConfig, Row] = {}
    for s in selections:
        rows.setdefault(s.method, Row(label=s.config, kind="method", method=s.method, family=s.method.family))
        _fill(rows[s.method], s, aggregate)
    ordered = [rows[c] for c in sorted(rows, key=lambda c: c.order)]
    groups: dict[tuple, list[Selection]] = {}
    for s in selections:
        if s.method.size_group is not None:
            groups.setdefault(s.method.size_group, []).append(s)
    for group in sorted(groups.values(), key=lambda g: g[0].method.order):
        if len({s.method.size for s in group}) < 2:
            continue
        best = Row(label=group[0].method.best_size_label, kind="best-size", family=group[0].method.family)
        for task in GLUE_TASKS:
            options = [s for s in group if s.task == task]
            if options:  # the best configuration on dev; ties go to the smaller size
                _fill(best, max(options, key=lambda s: (s.mean_score, -s.method.size)), aggregate)
        at = max(i for i, row in enumerate(ordered) if row.method is not None
                 and row.method.size_group == group[0].method.size_group)
        ordered.insert(at + 1, best)
    baseline = majority_row(records)
    if baseline.task_scores:
        ordered.append(baseline)
    full = rows.get(MethodConfig("full"))
    for row in ordered:
        if full is not None and row is not full:
            shared = [t for t in row.task_scores if t in full.task_scores]
            if shared:
                row.delta_vs_full = statistics.fmean(row.task_scores[t] - full.task_scores[t] for t in shared)
    return ordered


def majority_row(records: list[JobRecord]) -> Row:
    """Predict the training set's majority class (STS-B: its mean score) on each task's dev labels."""
    import numpy as np

    from glue_bench.results.metrics import compute_metrics, dev_half_a

    row = Row(label=MAJORITY, kind="baseline")
    for task_name in GLUE_TASKS:
        done = [r for r in records if r.task == task_name and r.done and r.train_label_distribution]
        if not done:
            continue
        task, first = TASKS[task_name], done[0]
        half_b = any(r.example_half == "b" for r in done)  # held-out: the baseline on the half the rows report
        dist = first.train_label_distribution
        constant = dist["mean"] if task.is_regression else int(np.argmax(dist["counts"]))
        dev: dict[str, dict[str, float]] = {}
        for split in task.dev_splits:
            labels = np.asarray(read_dev_labels(first, split))
            if half_b:
                labels = labels[~dev_half_a(len(labels))]
            dev[split] = compute_metrics(task, split, np.full(len(labels), constant), labels)
        row.task_scores[task_name] = 100 * statistics.fmean(dev[s][m] for s, m in task.score)
        for column, t, split, metric in COLUMNS:
            if t == task_name:
                row.cells[column] = Cell(100 * dev[split][metric], 0.0, 1)
    return row


def missing_jobs(records: list[JobRecord], planned: list[str] | None = None) -> dict[str, list[str]]:
    """Jobs that are not done: failed ones (with their error) and ones without results."""
    failed = [f"{r.job_id}: {r.error}" for r in records if not r.done and r.error]
    unfinished = [r.job_id for r in records if not r.done and not r.error]
    seen = {r.job_id for r in records}
    absent = [j for j in (planned or []) if j not in seen]
    return {"failed": failed, "unfinished": unfinished, "not started": absent}


def report_data(name: str, rows: list[Row], records: list[JobRecord], planned: list[str] | None = None) -> dict:
    """The report as plain data: the JSON file's content (schema in docs/report.md)."""
    def num(x: float | None) -> float | None:
        return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(x, 4)

    return {
        "schema_version": schemas.REPORT,
        "sweep": name,
        "columns": [c[0] for c in COLUMNS],
        "rows": [{
            "label": row.label,
            "kind": row.kind,
            "method": row.method.to_dict() if row.method else None,
            "cells": {c: {"value": num(cell.shown), "mean": num(cell.mean), "median": num(cell.median),
                          "std": num(cell.std), "n": cell.n} for c, cell in row.cells.items()},
            "intervals": {t: [num(lo), num(hi)] for t, (lo, hi) in row.intervals.items()},
            "seed_scores": {t: {str(seed): num(v) for seed, v in scores.items()}
                            for t, scores in row.seed_scores.items()},
            "task_scores": {t: num(v) for t, v in row.task_scores.items()},
            "glue_score": num(row.glue_score),
            "paper_total": num(row.paper_total),
            "trainable": row.trainable,
            "trainable_percent": {t: num(v) for t, v in row.trainable_percent.items()},
            "delta_vs_full": num(row.delta_vs_full),
            "missing_tasks": row.missing_tasks,
            "selection": {t: {"config": s.config, "learning_rate": s.learning_rate, "epochs": s.epochs,
                              "mean_task_score": num(100 * s.mean_score), "seeds": [r.seed for r in s.records],
                              "jobs": [r.job_id for r in s.records]} for t, s in row.selections.items()},
        } for row in rows],
        "jobs": {"total": len(records), "done": sum(r.done for r in records),
                 **missing_jobs(records, planned)},
    }


def matching_configs(records: list[JobRecord], method: str, params: dict | None = None) -> list[MethodConfig]:
    """The configurations of done jobs of family `method` whose structural parameters include `params`."""
    params = {k: v for k, v in (params or {}).items() if v is not None}
    found = {r.method_config for r in records if r.done and r.method == method}
    return sorted((c for c in found if all(_same(c.get(k, False if k == "train_pooler" else None), v)
                                           for k, v in params.items())), key=lambda c: c.order)


def _same(a, b) -> bool:
    return math.isclose(a, b) if isinstance(a, float) or isinstance(b, float) else a == b


def choose_for_submission(records: list[JobRecord], method: MethodConfig | None = None,
                          learning_rate: float | None = None) -> dict[str, Selection]:
    """Per task, the selection to submit: the best configuration on dev (default) or the one asked for."""
    if learning_rate is not None:
        records = [r for r in records if math.isclose(r.learning_rate, learning_rate, rel_tol=1e-9)]
    selections = select(records)
    if method is not None:
        return {s.task: s for s in selections if s.method == method}
    chosen: dict[str, Selection] = {}
    for s in selections:  # ties: the family listed first (full before the parameter-efficient ones)
        current = chosen.get(s.task)
        if current is None or (s.mean_score, -s.method.order[0]) > (current.mean_score, -current.method.order[0]):
            chosen[s.task] = s
    return chosen
