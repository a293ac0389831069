"""The papers' protocols: which evaluation of a job chooses, and which one is reported. Pure (no torch).

- `best-epoch` (the default): each job is scored at its best dev evaluation, and the setting with the best score
  over its seeds is chosen on dev (with `--aggregate median`, the LoRA / VeRA / FourierFT protocol).
- `last-epoch`: each job is scored at its last evaluation (`run_glue`'s).
- `held-out`: the evaluation and the setting are chosen on one half of dev and the score is reported on the other
  (ReFT, RED, PSOFT). Jobs record dev metrics on both fixed halves at every evaluation
  (`results.metrics.dev_half_a`). A job with `heldout_train_rows` chooses on those training rows instead and
  reports the whole dev set (the papers' rule for MNLI, QQP and QNLI).

`apply` returns each done job as the protocol sees it: `task_score` is what chooses (the evaluation and the
setting), `dev` and `reported_score` are what the table reports, and `chosen_step` says which evaluation that
was, so the per-example tests read that evaluation's predictions.
"""

from __future__ import annotations

import dataclasses

from glue_bench import choices
from glue_bench.choices import Protocol
from glue_bench.report.collect import JobRecord
from glue_bench.tasks import TASKS

DEFAULT = "best-epoch"
DESCRIPTIONS = {
    "best-epoch": "each run at its best dev evaluation, the setting chosen on dev",
    "last-epoch": "each run at its last dev evaluation, the setting chosen on dev",
    "held-out": "evaluation and setting chosen on dev half a (MNLI, QQP, QNLI: on held-out training rows where the "
                "jobs kept them), the score reported on dev half b (on the whole dev set)",
}


def _metrics(evaluation: dict, task_name: str, prefix: str) -> dict[str, dict[str, float]]:
    """Per dev split, the task's metrics recorded under `eval/<prefix>` in one history record."""
    task = TASKS[task_name]
    out: dict[str, dict[str, float]] = {}
    for split, metric in task.metrics:
        key = f"eval/{prefix}{metric}" if len(task.dev_splits) == 1 else f"eval/{prefix}{split}/{metric}"
        if key in evaluation:
            out.setdefault(split, {})[metric] = float(evaluation[key])
    return out


def _choose(record: JobRecord, key: str) -> dict | None:
    """The evaluation with the best value of `key` (ties: the earliest), or None when no evaluation has it."""
    scored = [e for e in record.evaluations if key in e]
    return max(scored, key=lambda e: (e[key], -e["step"])) if scored else None


def score(record: JobRecord, protocol: str) -> JobRecord | None:
    """`record` as `protocol` scores it; None when its job did not record what the protocol needs."""
    if protocol == "best-epoch":
        return record
    if protocol == "last-epoch":
        if not record.evaluations:
            return None
        last = record.evaluations[-1]
        dev = _metrics(last, record.task, "")
        return dataclasses.replace(record, task_score=float(last["eval/task_score"]), dev=dev,
                                   reported_score=float(last["eval/task_score"]), chosen_step=last["step"])
    chosen = _choose(record, "eval/heldout/task_score")
    if chosen is not None:  # held-out training rows choose; the whole dev set reports
        return dataclasses.replace(record, task_score=float(chosen["eval/heldout/task_score"]),
                                   dev=_metrics(chosen, record.task, ""),
                                   reported_score=float(chosen["eval/task_score"]), chosen_step=chosen["step"])
    chosen = _choose(record, "eval/half_a/task_score")
    if chosen is None:
        return None
    return dataclasses.replace(record, task_score=float(chosen["eval/half_a/task_score"]),
                               dev=_metrics(chosen, record.task, "half_b/"),
                               reported_score=float(chosen["eval/half_b/task_score"]), chosen_step=chosen["step"],
                               example_half="b")


def apply(records: list[JobRecord], protocol: str) -> tuple[list[JobRecord], list[str]]:
    """Every record as `protocol` scores it (jobs that are not done pass through unchanged), and the ids of done
    jobs it could not score because they did not record what it needs (e.g. written before jobs scored the dev
    halves): those stay in, marked `unscored`, and are never selected."""
    choices.check(Protocol, protocol, "--protocol")
    out, left_out = [], []
    for record in records:
        if not record.done or record.task_score is None:
            out.append(record)
            continue
        scored = score(record, protocol)
        if scored is None:  # still a job of the sweep (its counts, its device-hours), never selected
            left_out.append(record.job_id)
            out.append(dataclasses.replace(record, unscored=True))
        else:
            out.append(scored)
    return out, left_out
