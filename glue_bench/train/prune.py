"""ASHA while a sweep runs (`run --prune asha`): at each rung a job compares its dev score with the scores its
group has reached there so far, read from the other jobs' folders, and stops when it is not in the top
1/reduction (the rule in `glue_bench.pruning`, shared with the report's replay; docs/pruning.md).

A job's group is the jobs that compete with it for selection: the same task and method configuration, in the
same sweep's results folder. The folders are the only shared state, so the rule works the same under the local
executor and under Slurm (one shared filesystem).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from glue_bench.errors import GlueBenchError
from glue_bench.method_config import MethodConfig
from glue_bench.pruning import promotes, rung_epochs
from glue_bench.results.job_folder import JobDir
from glue_bench.spec import JobSpec

log = logging.getLogger(__name__)


def rung_scores(results_dir: Path, spec: JobSpec, epoch: int) -> list[float]:
    """The task scores that the other jobs of `spec`'s group recorded after `epoch` epochs."""
    config = MethodConfig.of(spec)
    scores = []
    for folder in Path(results_dir).iterdir():
        if folder.name == spec.job_id or ".old-" in folder.name or not folder.name.startswith(f"{spec.task}-"):
            continue
        job = JobDir(folder)
        try:
            other = job.read_spec()
        except GlueBenchError:
            continue
        if other is None or other.task != spec.task or MethodConfig.of(other) != config:
            continue
        for record in job.evaluations():
            if math.isclose(float(record.get("epoch", -1)), epoch):
                scores.append(float(record["eval/task_score"]))
                break
    return scores


def decide(spec: JobSpec, output_dir: Path, epoch: int, score: float) -> dict | None:
    """After `epoch` epochs with dev task score `score`: None to go on, or the record of where the job was pruned
    (also None when `spec.prune` is `none` or `epoch` is no rung)."""
    if spec.prune != "asha":
        return None
    rungs = rung_epochs(spec.epochs, spec.prune_min_epochs, spec.prune_reduction)
    if epoch not in rungs:
        return None
    competing = [*rung_scores(Path(output_dir).parent, spec, epoch), score]
    if promotes(score, competing, spec.prune_reduction):
        return None
    return {"rung": rungs.index(epoch), "epoch": epoch, "score": score, "competing": sorted(competing, reverse=True),
            "reduction": spec.prune_reduction}


def decide_or_go_on(spec: JobSpec, output_dir: Path, epoch: int, score: float) -> dict | None:
    """`decide`, failing open: a folder that cannot be read makes the job go on (said in its log), never fail or
    leave the other ranks waiting for a decision."""
    try:
        return decide(spec, output_dir, epoch, score)
    except Exception as e:  # noqa: BLE001 - pruning is an optimisation; the job is sound without it
        log.warning("ASHA could not read the group's scores (%s: %s): the job goes on", type(e).__name__, e)
        return None
