"""Plan a sweep: one JSON spec per job under jobs/<name>/ and a manifest that `run` follows (no torch).

Planning is idempotent: an unchanged sweep rewrites nothing; a new seed adds jobs and keeps the rest; specs
that left the sweep move to jobs/<name>/retired/ and leave the manifest (their results stay).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from glue_bench.errors import GlueBenchError
from glue_bench.results import atomic_write_json, atomic_write_text, read_json
from glue_bench.spec import JobSpec
from glue_bench.sweep import Sweep, expand_sweep, job_size
from glue_bench.tasks import HUB_DATASET, TASKS

MANIFEST = "manifest.json"


@dataclass
class Plan:
    """What planning did (or, with dry_run, would do)."""

    jobs_dir: Path
    results_dir: Path
    jobs: list[JobSpec]
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    manifest_changed: bool = False


def required_splits(task: str, predict_test: bool) -> tuple[str, ...]:
    t = TASKS[task]
    return ("train", *t.dev_splits, *(t.test_splits if predict_test else ()))


def missing_data(sweep: Sweep, specs: list[JobSpec]) -> dict[str, str]:
    """Task -> why its data is not available in the sweep's source (empty when everything is there)."""
    source = sweep.data
    if source == "auto":
        source = os.environ.get("GLUE_DATA_DIR") or "hub"
    problems = {}
    for task in dict.fromkeys(s.task for s in specs):
        predict_test = any(s.predict_test for s in specs if s.task == task)
        splits = required_splits(task, predict_test)
        if source == "hub":
            problem = _hub_problem(task)
        elif not Path(source).is_dir():
            problem = f"data folder {source} does not exist"
        else:
            layouts = TASKS[task].layouts
            missing = [layouts[s].path for s in splits if not (Path(source) / layouts[s].path).is_file()]
            problem = f"missing {', '.join(missing)} in {source}" if missing else None
        if problem:
            problems[task] = problem
    return problems


def _hub_problem(task: str) -> str | None:
    try:
        import datasets

        datasets.load_dataset_builder(HUB_DATASET, task)
    except Exception as e:  # unreachable hub or no such config
        return f"cannot reach {HUB_DATASET}/{task} on the Hugging Face hub ({type(e).__name__}); use a glue_data folder"
    return None


def plan_sweep(sweep: Sweep, jobs_root: Path = Path("jobs"), results_root: Path = Path("results"),
               skip_missing: bool = False, dry_run: bool = False) -> Plan:
    specs = expand_sweep(sweep)
    problems = missing_data(sweep, specs)
    if problems and not skip_missing:
        task, why = next(iter(problems.items()))
        raise GlueBenchError(f"{TASKS[task].display}: {why} (fix the data, or plan with --skip-missing)")
    specs = [s for s in specs if s.task not in problems]
    jobs_dir = Path(jobs_root) / sweep.name
    plan = Plan(jobs_dir=jobs_dir, results_dir=(Path(results_root) / sweep.name).resolve(), jobs=specs,
                skipped=problems)
    wanted = {s.job_id for s in specs}
    for spec in specs:
        path = jobs_dir / f"{spec.job_id}.json"
        if path.is_file() and path.read_text() == spec.to_json():
            plan.unchanged.append(spec.job_id)
            continue
        plan.written.append(spec.job_id)
        if not dry_run:
            atomic_write_text(path, spec.to_json())
    for path in sorted(jobs_dir.glob("*.json")):
        if path.name != MANIFEST and path.stem not in wanted:
            plan.retired.append(path.stem)
            if not dry_run:
                (jobs_dir / "retired").mkdir(parents=True, exist_ok=True)
                path.replace(jobs_dir / "retired" / path.name)
    manifest = {
        "schema_version": 1,
        "name": sweep.name,
        "sweep_file": sweep.source,
        "results_dir": str(plan.results_dir),
        "gpus_per_job": sweep.gpus_per_job,
        "procs_per_job": sweep.procs_per_job,
        "wandb": sweep.wandb,
        "skipped": problems,
        "jobs": [{"id": s.job_id, "task": s.task, "method": s.method, "bottleneck": s.bottleneck,
                  "size": job_size(s)} for s in specs],
    }
    plan.manifest_changed = read_json(jobs_dir / MANIFEST) != manifest
    if plan.manifest_changed and not dry_run:
        atomic_write_json(jobs_dir / MANIFEST, manifest)
    return plan


def load_manifest(jobs_dir: Path) -> dict:
    """The manifest of a planned sweep, or a one-line error saying how to make one."""
    manifest = read_json(Path(jobs_dir) / MANIFEST)
    if not isinstance(manifest, dict) or "jobs" not in manifest:
        raise GlueBenchError(f"{jobs_dir} has no valid {MANIFEST}: run `glue-bench plan SWEEP.yaml` first")
    return manifest


def load_job(jobs_dir: Path, job_id: str) -> JobSpec:
    return JobSpec.load(Path(jobs_dir) / f"{job_id}.json")


def describe(plan: Plan) -> str:
    """One-paragraph summary of a plan for the terminal."""
    by_task: dict[str, int] = {}
    for s in plan.jobs:
        by_task[s.task] = by_task.get(s.task, 0) + 1
    parts = [f"{len(plan.jobs)} jobs in {plan.jobs_dir} ({', '.join(f'{t} {n}' for t, n in by_task.items())})",
             f"{len(plan.written)} new or changed, {len(plan.unchanged)} unchanged, {len(plan.retired)} retired",
             f"results go to {plan.results_dir}"]
    parts += [f"skipped {TASKS[t].display}: {why}" for t, why in plan.skipped.items()]
    return "; ".join(parts[:3]) + ("\n" + "\n".join(parts[3:]) if parts[3:] else "")
