"""What pruning the grid would have saved: ASHA replayed on a finished sweep's recorded dev curves
(`report --replay-pruning`, pruning.json). Pure (no torch).

The rule is the one a live run applies (`glue_bench.pruning`, `run --prune asha`): jobs compete within their group
(the same task and method configuration: the jobs that compete for selection), rungs are after
min_epochs x reduction^k epochs, and a job goes on from a rung when its dev task score there is at least the
k-th best of the scores its group has reached at that rung so far, k = max(1, n // reduction).

Order of arrival: each job reaches a rung when its history recorded that evaluation, so the replay sees the
order the unpruned run had. A live pruned run differs in one way: a pruned job frees its slot, so later jobs
start (and reach their rungs) earlier, and may meet fewer scores at a rung than in the replay. With every job
of a group running at once, or the group's jobs started together, the two orders are the same.

Savings: a pruned job saves its device time after the rung (the time from that evaluation to its last, times its
devices). Selection: the report's selection is made again as on a live pruned sweep (the pruned jobs out; a
setting that kept all its seeds goes before one that lost some); what changed is the chosen setting and its
reported score.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from glue_bench.pruning import DEFAULT_MIN_EPOCHS, DEFAULT_REDUCTION, promotes, rung_epochs
from glue_bench.report.aggregate import select
from glue_bench.report.collect import JobRecord
from glue_bench.report.tuning import device_seconds
from glue_bench.tasks import GLUE_TASKS


@dataclass(frozen=True, slots=True)
class Pruned:
    """A job the replay stopped."""

    job_id: str
    epoch: int
    """The rung (epochs done) at which it stopped."""
    score: float
    """Its dev task score there (0..1)."""
    saved_seconds: float
    """Device-seconds after the rung."""


def rung_score(evaluation: dict, protocol: str = "best-epoch") -> float:
    """The score a rung ranks by: the protocol's choosing score (under `held-out` the held-out training rows, or
    dev half a, so the reporting half never decides what survives); the whole dev set otherwise."""
    if protocol == "held-out":
        for key in ("eval/heldout/task_score", "eval/half_a/task_score"):
            if key in evaluation:
                return float(evaluation[key])
    return float(evaluation["eval/task_score"])


def _time_at(record: JobRecord, epoch: int, protocol: str = "best-epoch") -> tuple[float, float] | None:
    """(time, rung score) of the job's evaluation after `epoch` epochs."""
    for e in record.evaluations:
        if math.isclose(float(e.get("epoch", -1)), epoch) and "time" in e:
            return float(e["time"]), rung_score(e, protocol)
    return None


def replay_group(records: list[JobRecord], reduction: int = DEFAULT_REDUCTION,
                 min_epochs: int = DEFAULT_MIN_EPOCHS, protocol: str = "best-epoch") -> list[Pruned]:
    """The jobs of one group that ASHA would have stopped, given their recorded curves. A job's evaluation at a rung
    epoch counts as an arrival there even when it is the job's last (a shorter job's final score competes, as it
    does live, where the other jobs read it from its history); a job is stopped only before its last epoch."""
    arrivals = []  # (time, job order, epoch, score, record)
    for order, r in enumerate(records):
        for epoch in rung_epochs(r.epochs + 1, min_epochs, reduction):
            at = _time_at(r, epoch, protocol)
            if at is not None:
                arrivals.append((at[0], order, epoch, at[1], r))
    seen: dict[int, list[float]] = {}
    stopped: dict[str, Pruned] = {}
    for _, _, epoch, score, r in sorted(arrivals, key=lambda a: (a[0], a[1])):
        if r.job_id in stopped:
            continue
        seen.setdefault(epoch, []).append(score)
        if epoch < r.epochs and not promotes(score, seen[epoch], reduction):
            last = max((float(e["time"]) for e in r.evaluations if "time" in e), default=0.0)
            at = _time_at(r, epoch, protocol)
            saved = max(0.0, last - at[0]) * r.world_size if at else 0.0
            if r.wall_seconds:  # an interruption between the rung and the end is no device time
                saved = min(saved, device_seconds(r))
            stopped[r.job_id] = Pruned(r.job_id, epoch, score, saved)
    return list(stopped.values())


@dataclass
class GroupSaving:
    """One (task, configuration): what the replay stopped, saved and changed."""

    task: str
    config: str
    jobs: int
    pruned: list[Pruned] = field(default_factory=list)
    device_seconds: float = 0.0
    """Device-seconds of the whole group as it ran."""
    selected: str | None = None
    """The selected setting without pruning (learning rate, epochs)."""
    selected_pruned: str | None = None
    """The selected setting with the pruned jobs left out."""
    score: float | None = None
    """The selected setting's reported score without pruning (percent)."""
    score_pruned: float | None = None
    setting_keys: tuple[str | None, str | None] = (None, None)
    """`JobSpec.setting_key` of the two selections (what `changed` compares)."""

    @property
    def saved_seconds(self) -> float:
        return sum(p.saved_seconds for p in self.pruned)

    @property
    def saved_share(self) -> float | None:
        return self.saved_seconds / self.device_seconds if self.device_seconds else None

    @property
    def changed(self) -> bool:
        return self.setting_keys[0] != self.setting_keys[1]

    @property
    def score_change(self) -> float | None:
        return None if self.score is None or self.score_pruned is None else self.score_pruned - self.score

    def to_dict(self) -> dict:
        return {"task": self.task, "config": self.config, "jobs": self.jobs, "pruned": len(self.pruned),
                "pruned_jobs": [{"job": p.job_id, "epoch": p.epoch, "score": round(p.score, 6),
                                 "saved_device_hours": round(p.saved_seconds / 3600, 6)} for p in self.pruned],
                "device_hours": round(self.device_seconds / 3600, 6),
                "saved_device_hours": round(self.saved_seconds / 3600, 6),
                "saved_share": None if self.saved_share is None else round(self.saved_share, 6),
                "selected": self.selected, "selected_with_pruning": self.selected_pruned,
                "selection_changed": self.changed,
                "score": None if self.score is None else round(self.score, 4),
                "score_with_pruning": None if self.score_pruned is None else round(self.score_pruned, 4),
                "score_change": None if self.score_change is None else round(self.score_change, 4)}


def _setting(s) -> str:
    return f"lr {s.learning_rate:g}, {s.epochs} epochs"


def replay(records: list[JobRecord], reduction: int = DEFAULT_REDUCTION, min_epochs: int = DEFAULT_MIN_EPOCHS,
           aggregate: str = "mean", protocol: str = "best-epoch") -> list[GroupSaving]:
    """ASHA replayed on every group of done, unpruned jobs; `records` as scored by the report's `protocol`, whose
    choosing score the rungs rank by (`rung_score`)."""
    if reduction < 2 or min_epochs < 1:
        raise ValueError("reduction must be 2 or more and min_epochs 1 or more")
    ran = [r for r in records if r.done and r.task_score is not None and not r.pruned and not r.unscored]
    groups: dict[tuple[str, str], list[JobRecord]] = {}
    for r in ran:
        groups.setdefault((r.task, r.config), []).append(r)
    stopped = {p.job_id: p for g in groups.values() for p in replay_group(g, reduction, min_epochs, protocol)}
    before = {(s.task, s.config): s for s in select(ran, aggregate)}
    replayed = [dataclasses.replace(r, pruned={"epoch": stopped[r.job_id].epoch}) if r.job_id in stopped else r
                for r in ran]  # pruned as a live run would have left them (select knows which settings lost seeds)
    after = {(s.task, s.config): s for s in select(replayed, aggregate)}
    out = []
    for (task, config), group in groups.items():
        saving = GroupSaving(task, config, len(group), [stopped[r.job_id] for r in group if r.job_id in stopped],
                             sum(device_seconds(r) for r in group))
        chosen_pair = (before.get((task, config)), after.get((task, config)))
        saving.setting_keys = tuple(c.setting if c is not None else None for c in chosen_pair)
        for chosen, name in zip(chosen_pair, ("", "_pruned"), strict=True):
            if chosen is not None:
                setattr(saving, "selected" + name, _setting(chosen))
                setattr(saving, "score" + name, 100 * chosen.shown_score)
        out.append(saving)
    return sorted(out, key=lambda g: (GLUE_TASKS.index(g.task), g.config))
