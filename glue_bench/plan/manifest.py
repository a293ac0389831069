"""Plan a sweep: one JSON spec per job under jobs/<name>/ and a manifest that `run` follows (no torch).

Planning is idempotent: an unchanged sweep rewrites nothing; a new seed adds jobs and keeps the rest; specs
that left the sweep move to jobs/<name>/retired/ and leave the manifest (their results stay).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from glue_bench.errors import GlueBenchError
from glue_bench.plan.sweep_file import Sweep, expand_sweep, job_size, load_sweep
from glue_bench.results import schemas
from glue_bench.results.job_folder import JobDir, atomic_write_json, atomic_write_text, read_json
from glue_bench.spec import JobSpec
from glue_bench.tasks import TASKS
from glue_bench.train.preflight import (
    check_methods_fit,
    check_model,
    check_model_limits,
    data_folder,
    hub_data_problem,
    missing_files,
)

MANIFEST = "manifest.json"


@dataclass
class Plan:
    """What planning did (or, with dry_run, would do)."""

    sweep: Sweep
    """The sweep file as read."""
    jobs_dir: Path
    results_dir: Path
    jobs: list[JobSpec]
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    left_out: dict[str, str] = field(default_factory=dict)
    """Job id -> why it is not planned though its task is (it starts from a job of a skipped task)."""
    manifest_changed: bool = False
    notes: list[str] = field(default_factory=list)
    """What a dry run could not check and goes on without (a hub model not on this machine)."""


def missing_data(sweep: Sweep, specs: list[JobSpec]) -> dict[str, str]:
    """Task -> why its data is not available in the sweep's source (empty when everything is there)."""
    folder = data_folder(sweep.data)
    problems = {}
    for task in dict.fromkeys(s.task for s in specs):
        if folder is None:
            problem = hub_data_problem(task)
        elif not folder.is_dir():
            problem = f"data folder {folder} does not exist"
        else:
            missing = missing_files(task, folder, any(s.predict_test for s in specs if s.task == task))
            problem = f"missing {', '.join(missing)} in {folder}" if missing else None
        if problem:
            problems[task] = problem
    return problems


def check_inputs(sweep: Sweep, specs: list[JobSpec], jobs_dir: Path, skip_missing: bool,
                 weights_needed: bool) -> dict[str, str]:
    """What the jobs would find when they start, checked before anything is written: the model and its limits,
    the data (task -> why it is missing, when `skip_missing` allows that), and the jobs folder's own sweep."""
    check_model(sweep.model, weights_needed)
    if specs:  # the longest sequences the sweep asks for, within the model's limits (one config read)
        check_model_limits(max(specs, key=lambda s: s.max_seq_length))
        check_methods_fit(specs)
    problems = missing_data(sweep, specs)
    if problems and not skip_missing:
        task, why = next(iter(problems.items()))
        raise GlueBenchError(f"{TASKS[task].display}: {why} (fix the data, or plan with --skip-missing)")
    made_by = (read_json(jobs_dir / MANIFEST) or {}).get("sweep_file")
    if made_by and sweep.source and made_by != sweep.source:  # replanning would retire the other sweep's jobs
        raise GlueBenchError(f"{jobs_dir} was planned from {made_by}, not {sweep.source}: give this sweep another "
                             "`name`, or plan it into another --jobs-dir")
    return problems


def plan_sweep(sweep: Sweep, jobs_root: Path = Path("jobs"), results_root: Path = Path("results"),
               skip_missing: bool = False, dry_run: bool = False, weights_needed: bool = True) -> Plan:
    """Write (or with `dry_run` only say) the sweep's job specs and manifest, after checking everything the jobs
    would check when they start. `weights_needed` off: a hub model need not be on this machine (a dry run that
    only prices the sweep from a known configuration)."""
    specs = expand_sweep(sweep)
    jobs_dir = Path(jobs_root) / sweep.name
    notes = []
    if not weights_needed:  # a dry run: a hub model that is not here is said, not an error
        try:
            check_model(sweep.model, True)
        except GlueBenchError as e:
            notes.append(f"{e} (the jobs need it when they run)")
    problems = check_inputs(sweep, specs, jobs_dir, skip_missing, weights_needed)
    specs = [s for s in specs if s.task not in problems]
    planned = {s.job_id for s in specs}
    left_out = {s.job_id: f"it starts from {s.init_from}, whose task {TASKS[s.init_from_task].display} is skipped"
                for s in specs if s.init_from and s.init_from not in planned}
    specs = [s for s in specs if s.job_id not in left_out]
    plan = Plan(sweep=sweep, jobs_dir=jobs_dir, results_dir=(Path(results_root) / sweep.name).resolve(), jobs=specs,
                skipped=problems, left_out=left_out, notes=notes)
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
        "schema_version": schemas.MANIFEST,
        "name": sweep.name,
        "sweep_file": sweep.source,
        "results_dir": str(plan.results_dir),
        "gpus_per_job": sweep.gpus_per_job,
        "procs_per_job": sweep.procs_per_job,
        "jobs_per_gpu": sweep.jobs_per_gpu,
        "wandb": sweep.wandb,
        "skipped": problems,
        "jobs": [{"id": s.job_id, "task": s.task, "method": s.method, "bottleneck": s.bottleneck,
                  "size": job_size(s), **({"after": s.init_from} if s.init_from else {})} for s in specs],
    }
    plan.manifest_changed = read_json(jobs_dir / MANIFEST) != manifest
    if plan.manifest_changed and not dry_run:
        atomic_write_json(jobs_dir / MANIFEST, manifest)
    return plan


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One job of a planned sweep."""

    id: str
    task: str
    method: str
    bottleneck: int | None
    size: int
    """Training examples x epochs (largest first)."""
    after: str | None = None
    """The job this one starts from (`init_from`): it runs first; this one waits until it is done."""


@dataclass(frozen=True, slots=True)
class Manifest:
    """jobs/<sweep>/manifest.json: what `run` follows, read in one place (`load_manifest`)."""

    name: str
    results_dir: Path
    jobs: tuple[ManifestEntry, ...]
    gpus_per_job: int | str = "auto"
    procs_per_job: int = 1
    jobs_per_gpu: int = 1
    """Jobs sharing each GPU (the sweep's `jobs_per_gpu`; `run --jobs-per-gpu` overrides)."""
    sweep_file: str | None = None
    wandb: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)

    @property
    def by_size(self) -> list[str]:
        """Job ids, largest first (stable for equal sizes), the jobs others start from before those others."""
        return [e.id for e in sorted(self.jobs, key=lambda e: (e.after is not None, -e.size))]

    @property
    def entries(self) -> dict[str, ManifestEntry]:
        return {e.id: e for e in self.jobs}

    def job_dir(self, job_id: str) -> JobDir:
        return JobDir(self.results_dir / job_id)


def read_sweep_file(path: Path) -> Sweep:
    """The sweep file `plan` and `sweep` were given; a planned sweep's folder given instead says what to do."""
    if Path(path).is_dir() and (Path(path) / MANIFEST).is_file():
        raise GlueBenchError(f"{path} is a planned sweep, not a sweep file: run it with `glue-bench run {path}`, "
                             "or give the YAML file it was planned from")
    return load_sweep(path)


def load_manifest(jobs_dir: Path) -> Manifest:
    """The manifest of a planned sweep, or a one-line error saying how to make one."""
    data = read_json(Path(jobs_dir) / MANIFEST)
    try:
        return Manifest(name=data["name"], results_dir=Path(data["results_dir"]),
                        jobs=tuple(ManifestEntry(e["id"], e["task"], e["method"], e.get("bottleneck"),
                                                 int(e.get("size", 0)), e.get("after")) for e in data["jobs"]),
                        gpus_per_job=data.get("gpus_per_job", 1), procs_per_job=data.get("procs_per_job", 1),
                        jobs_per_gpu=int(data.get("jobs_per_gpu", 1)),
                        sweep_file=data.get("sweep_file"), wandb=data.get("wandb") or {},
                        skipped=data.get("skipped") or {})
    except (TypeError, KeyError, ValueError):
        raise GlueBenchError(f"{jobs_dir} has no valid {MANIFEST}: run `glue-bench plan SWEEP.yaml` first") from None


def load_job(jobs_dir: Path, job_id: str) -> JobSpec:
    return JobSpec.load(Path(jobs_dir) / f"{job_id}.json")


def describe(plan: Plan) -> str:
    """One-paragraph summary of a plan for the terminal."""
    by_task: dict[str, int] = {}
    for s in plan.jobs:
        by_task[s.task] = by_task.get(s.task, 0) + 1
    seeds = sorted({s.seed for s in plan.jobs})
    parts = [f"{len(plan.jobs)} jobs in {plan.jobs_dir} ({', '.join(f'{t} {n}' for t, n in by_task.items())}; "
             f"seed{'s' if len(seeds) != 1 else ''} {', '.join(map(str, seeds))})",
             f"{len(plan.written)} new or changed, {len(plan.unchanged)} unchanged, {len(plan.retired)} retired",
             f"results go to {plan.results_dir}"]
    parts += [f"skipped {TASKS[t].display}: {why}" for t, why in plan.skipped.items()]
    parts += [f"note: {note}" for note in plan.notes]
    if plan.left_out:
        parts.append(f"left out {len(plan.left_out)} job(s) of planned tasks: {next(iter(plan.left_out.values()))}")
    return "; ".join(parts[:3]) + ("\n" + "\n".join(parts[3:]) if parts[3:] else "")
