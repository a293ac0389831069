"""Sweep files: a YAML grid of tasks x methods x hyperparameters x seeds, expanded into job specs.

Pure functions, no torch. The sweep file's keys are documented in docs/sweeps.md; every grid key takes a
scalar or a list, method sections override the top level, and `task_overrides` override both per task.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from glue_bench import choices
from glue_bench.choices import WandbMode
from glue_bench.errors import GlueBenchError, SpecFieldError
from glue_bench.method_config import FAMILIES, METHOD_PARAMS, METHODS
from glue_bench.model_source import is_model_path
from glue_bench.spec import GRID_FIELDS, JobSpec, field_kind
from glue_bench.tasks import GLUE_TASKS, TASKS, get_task

# Sweep keys that become job spec fields (sweep key -> spec field), from the spec's field metadata.
GRID_KEYS = GRID_FIELDS
FLOAT_FIELDS = {name for name in set(GRID_KEYS.values()) if field_kind(name) is float}
# Keys that say where or how jobs run (one value for the whole sweep).
RUN_KEYS = {"gpus_per_job", "procs_per_job", "jobs_per_gpu", "wandb"}
PEFT_OPTION = "peft_options."
"""Grid keys of the `peft` section that are the tuner's own (`peft_options.r`): gathered into `peft_options`."""
TOP_KEYS = {"name", "model", "data", "tasks", "methods", "task_overrides", "tags", *GRID_KEYS, *RUN_KEYS}


@dataclass(frozen=True, slots=True, kw_only=True)
class Sweep:
    """A validated sweep file."""

    name: str
    """Sweep name: jobs/<name>/, results/<name>/, the wandb group."""
    model: str
    """Hub id or model folder (a folder is made absolute)."""
    data: str = "auto"
    """`auto`, `hub`, or a glue_data folder (made absolute)."""
    tasks: tuple[str, ...] = GLUE_TASKS
    """Tasks of the grid."""
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Method -> its grid keys."""
    grid: dict[str, Any] = field(default_factory=dict)
    """Top-level grid keys."""
    task_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Task -> grid keys that win for that task."""
    gpus_per_job: int | str = "auto"
    """GPUs per job (0 = CPU jobs); `auto`: the local executor decides at run time (one GPU per job when GPUs
    are visible, else CPU slots), on Slurm one GPU per job; `run --gpus-per-job` overrides; not in job ids."""
    procs_per_job: int = 1
    """CPU processes per job when gpus_per_job is 0."""
    jobs_per_gpu: int = 1
    """Jobs sharing each GPU (or each group of gpus_per_job GPUs); `run --jobs-per-gpu` overrides."""
    wandb: dict[str, Any] = field(default_factory=dict)
    """Tracking section (project, entity, tags, mode)."""
    tags: tuple[str, ...] = ()
    """Tags given to every job."""
    source: str | None = None
    """The file the sweep was read from."""


def _bad(key: str, value: Any, why: str) -> GlueBenchError:
    return GlueBenchError(f"sweep key {key}: bad value {value!r} ({why})")


def _as_list(key: str, value: Any) -> list:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise _bad(key, value, "empty list")
    for v in values:
        if isinstance(v, dict | list):
            raise _bad(key, value, "expected a scalar or a list of scalars")
    return values


def _check_grid(where: str, grid: Any) -> dict[str, list]:
    if grid is None:
        return {}
    if not isinstance(grid, dict):
        raise _bad(where, grid, "expected a mapping of grid keys")
    out = {}
    for key, value in grid.items():
        if key not in GRID_KEYS:
            raise GlueBenchError(f"sweep key {where}{key}: unknown key; grid keys are {', '.join(sorted(GRID_KEYS))}")
        values = _as_list(f"{where}{key}", value)
        if GRID_KEYS[key] in FLOAT_FIELDS:
            values = [None if v is None else _number(f"{where}{key}", v) for v in values]
        out[GRID_KEYS[key]] = values
    return out


def _number(key: str, value: Any) -> float:
    """YAML 1.1 reads `3e-4` (no dot) as a string: accept it as the number it spells."""
    if isinstance(value, bool):
        raise _bad(key, value, "expected a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise _bad(key, value, "expected a number") from None


def _absolute_if_path(value: str, base: Path) -> str:
    path = Path(value).expanduser()
    candidate = path if path.is_absolute() else base / path
    if is_model_path(value) or candidate.is_dir():  # relative folders are relative to the sweep file
        return str(candidate.resolve())
    return value


def parse_sweep(data: Any, source: str | None = None, base: Path | None = None) -> Sweep:
    """Validate a loaded sweep mapping; every error names the key and the bad value."""
    base = base or Path.cwd()
    if not isinstance(data, dict):
        raise GlueBenchError("sweep file: expected a mapping of keys at the top level")
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise GlueBenchError(f"sweep key {unknown[0]}: unknown key; see docs/sweeps.md")
    for key in ("name", "model", "methods"):
        if key not in data:
            raise GlueBenchError(f"sweep key {key}: missing")
    name, model, data_source = _identity(data, base)
    task_names = _tasks(data.get("tasks", "all"))
    method_grids = _methods(data["methods"])
    task_grids = _task_overrides(data.get("task_overrides") or {}, task_names)
    gpus, procs, jobs_per_gpu = _placement(data)
    wandb = _wandb(data.get("wandb") or {})
    tags = data.get("tags") or []
    top = _check_grid("", {k: v for k, v in data.items() if k in GRID_KEYS})
    # a method parameter outside a method section is for the sweep's methods that have it: refuse it if none has
    for where, grid in (("", top), *((f"task_overrides.{t}.", g) for t, g in task_grids.items())):
        for key in grid:
            if key in METHOD_PARAMS and not any(key in FAMILIES[m].params for m in method_grids):
                value = grid[key][0] if len(grid[key]) == 1 else grid[key]
                raise _bad(where + key, value, _not_a_parameter(key, ", ".join(method_grids)))
    return Sweep(name=name, model=_absolute_if_path(model, base), data=data_source, tasks=task_names,
                 methods=method_grids, grid=top, task_overrides=task_grids, gpus_per_job=gpus,
                 procs_per_job=procs, jobs_per_gpu=jobs_per_gpu, wandb=wandb,
                 tags=tuple(_as_list("tags", tags)) if tags else (), source=source)


def _identity(data: dict, base: Path) -> tuple[str, str, str]:
    """The sweep's name, model and data source (a relative folder starts from the sweep file's folder)."""
    name = data["name"]
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise _bad("name", name, "a folder name without '/'")
    model = data["model"]
    if not isinstance(model, str) or not model:
        raise _bad("model", model, "a hub id or a model folder")
    data_source = data.get("data", "auto")
    if not isinstance(data_source, str):
        raise _bad("data", data_source, "auto, hub or a glue_data folder")
    if data_source not in ("auto", "hub"):
        data_source = _absolute_if_path(data_source, base)
    return name, model, data_source


def _tasks(tasks: Any) -> tuple[str, ...]:
    if tasks == "all":
        tasks = list(GLUE_TASKS)
    names = _as_list("tasks", tasks)  # its own error names the key
    try:
        task_names = tuple(dict.fromkeys(get_task(t).name for t in names))
    except GlueBenchError as e:
        raise _bad("tasks", tasks, str(e)) from None
    if "ax" in task_names:
        raise _bad("tasks", tasks, "AX is predicted by the MNLI jobs, not trained")
    return task_names


def _methods(methods: Any) -> dict[str, dict[str, list]]:
    """Method -> its grid; a method parameter in the section of a method without it is refused."""
    if isinstance(methods, list):
        if not all(isinstance(m, str) for m in methods):
            raise _bad("methods", methods, f"method names ({', '.join(METHODS)}), or a mapping of them to grid keys")
        methods = dict.fromkeys(methods)
    if not isinstance(methods, dict) or not methods:
        raise _bad("methods", methods, f"a mapping of methods ({', '.join(METHODS)}) to their grid keys")
    method_grids = {}
    for method, grid in methods.items():
        if method not in METHODS:
            raise _bad("methods", method, f"choose from {', '.join(METHODS)}")
        passed = {}
        if method == "peft" and isinstance(grid, dict):  # the tuner's own keys pass through, each a grid axis
            ours = {k for k in grid if k in GRID_KEYS and (GRID_KEYS[k] not in METHOD_PARAMS
                                                            or GRID_KEYS[k] in FAMILIES["peft"].params)}
            passed = {PEFT_OPTION + str(k): _as_list(f"methods.peft.{k}", v) for k, v in grid.items() if k not in ours}
            grid = {k: v for k, v in grid.items() if k in ours}
        method_grids[method] = {**_check_grid(f"methods.{method}.", grid), **passed}
        for key in method_grids[method]:
            if key in METHOD_PARAMS and key not in FAMILIES[method].params:
                raise _bad(f"methods.{method}.{key}", grid[key], _not_a_parameter(key, method))
    return method_grids


def _task_overrides(overrides: Any, task_names: tuple[str, ...]) -> dict[str, dict[str, list]]:
    if not isinstance(overrides, dict):
        raise _bad("task_overrides", overrides, "a mapping of task -> grid keys")
    task_grids = {}
    for task, grid in overrides.items():
        if str(task).lower() not in TASKS:
            raise _bad("task_overrides", task, "not a GLUE task")
        if get_task(str(task)).name not in task_names:
            raise _bad("task_overrides", task, f"not a task of this sweep ({', '.join(task_names)})")
        task_grids[get_task(str(task)).name] = _check_grid(f"task_overrides.{task}.", grid)
    return task_grids


def _placement(data: dict) -> tuple[int | str, int, int]:
    """gpus_per_job (`auto` or 0 and more), procs_per_job and jobs_per_gpu (1 and more)."""
    gpus = data.get("gpus_per_job", "auto")
    if gpus != "auto" and (not isinstance(gpus, int) or isinstance(gpus, bool) or gpus < 0):
        raise _bad("gpus_per_job", gpus, "auto, 0 for CPU jobs, or a positive integer")
    procs = data.get("procs_per_job", 1)
    if not isinstance(procs, int) or isinstance(procs, bool) or procs < 1:
        raise _bad("procs_per_job", procs, "a positive integer")
    jobs_per_gpu = data.get("jobs_per_gpu", 1)
    if not isinstance(jobs_per_gpu, int) or isinstance(jobs_per_gpu, bool) or jobs_per_gpu < 1:
        raise _bad("jobs_per_gpu", jobs_per_gpu, "a positive integer: jobs sharing each GPU")
    return gpus, procs, jobs_per_gpu


def _wandb(wandb: Any) -> dict:
    if not isinstance(wandb, dict):
        raise _bad("wandb", wandb, "a mapping (project, entity, tags, mode)")
    for key, value in wandb.items():
        if key not in ("project", "entity", "tags", "mode"):
            raise GlueBenchError(f"sweep key wandb.{key}: unknown key; use project, entity, tags, mode")
        if key == "mode" and value not in choices.values(WandbMode):
            raise _bad("wandb.mode", value, choices.one_of(WandbMode))
        if key == "tags":
            wandb = {**wandb, "tags": tuple(_as_list("wandb.tags", value))}
    return wandb


def load_sweep(path: str | os.PathLike) -> Sweep:
    path = Path(path)
    if path.is_dir():
        raise GlueBenchError(f"{path} is a folder: give a sweep YAML file (see docs/sweeps.md)")
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise GlueBenchError(f"no sweep file at {path}") from None
    except UnicodeDecodeError:
        raise GlueBenchError(f"{path} is not a text file: give a sweep YAML file") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise GlueBenchError(f"{path}:{where} not valid YAML ({getattr(e, 'problem', e)})") from None
    return parse_sweep(data, source=str(path.resolve()), base=path.resolve().parent)


def expand_sweep(sweep: Sweep) -> list[JobSpec]:
    """Every job of the grid, in a stable order (task, method, then the grid), without duplicates."""
    jobs: dict[str, JobSpec] = {}
    for task in sweep.tasks:
        for method, method_grid in sweep.methods.items():
            grid = {**sweep.grid, **method_grid, **sweep.task_overrides.get(task, {})}
            for name in METHOD_PARAMS:  # a top-level method parameter is for the methods that have it
                if name not in FAMILIES[method].params and name not in method_grid:
                    grid.pop(name, None)
            keys = sorted(grid)
            for values in itertools.product(*(grid[k] for k in keys)):
                fields = dict(zip(keys, values, strict=True))
                options = tuple((k[len(PEFT_OPTION):], fields.pop(k))
                                for k in list(fields) if k.startswith(PEFT_OPTION))
                if options:
                    fields["peft_options"] = tuple(sorted(options))
                if fields.get("init_from") == task:  # the source task's own jobs start from the pretrained model
                    fields.pop("init_from")
                try:
                    spec = JobSpec(task=task, model=sweep.model, method=method, data=sweep.data,
                                   num_gpus=planned_gpus(sweep.gpus_per_job), num_procs=sweep.procs_per_job,
                                   tags=sweep.tags + tuple(sweep.wandb.get("tags", ())),
                                   wandb=sweep.wandb.get("mode", "auto"),
                                   wandb_project=sweep.wandb.get("project", "glue-bench"),
                                   wandb_entity=sweep.wandb.get("entity"), wandb_group=sweep.name, **fields)
                except SpecFieldError as e:
                    raise _bad(_key_of(sweep, task, method, e.field), e.value, e.why) from None
                jobs.setdefault(spec.job_id, spec)
    return resolve_init_from(sweep, list(jobs.values()))


def resolve_init_from(sweep: Sweep, specs: list[JobSpec]) -> list[JobSpec]:
    """`init_from: mnli` -> the id of the sweep's MNLI job with the same model, method configuration and seed
    (exactly one must match), and that job's setting; the dependent job's id changes with its source's."""
    from glue_bench.method_config import MethodConfig

    def key(spec: JobSpec) -> tuple:
        return spec.model, MethodConfig.of(spec.replace(init_from=None)), spec.seed

    sources: dict[tuple, dict[str, list[JobSpec]]] = {}
    for spec in specs:
        if spec.init_from is None:
            sources.setdefault(key(spec), {}).setdefault(spec.task, []).append(spec)
    out: dict[str, JobSpec] = {}
    for spec in specs:
        task = spec.init_from
        if task is None or task not in TASKS:  # none, or already a job id
            out.setdefault(spec.job_id, spec)
            continue
        if task not in sweep.tasks:
            raise _bad(_key_of(sweep, spec.task, spec.method, "init_from"), task,
                       f"the sweep has no {TASKS[task].display} jobs to start from: add {task} to its tasks")
        found = sources.get(key(spec), {}).get(task, [])
        config = MethodConfig.of(spec.replace(init_from=None)).label
        if len(found) != 1:
            why = "none" if not found else f"{len(found)} ({', '.join(s.job_id for s in found)})"
            raise _bad(_key_of(sweep, spec.task, spec.method, "init_from"), task,
                       f"{spec.task} {config} seed {spec.seed} needs one {TASKS[task].display} job of the same "
                       f"configuration and seed to start from, and the sweep has {why}: give {task} one setting of "
                       "it (task_overrides)")
        source = found[0]
        dependent = spec.replace(init_from=source.job_id, init_from_setting=source.setting_key)
        out.setdefault(dependent.job_id, dependent)
    return list(out.values())


def _not_a_parameter(name: str, methods: str) -> str:
    takes = ", ".join(f.name for f in FAMILIES.values() if name in f.params)
    return f"{name} is not a parameter of {methods}; it applies to {takes}"


def planned_gpus(gpus_per_job: int | str) -> int:
    """`num_gpus` of a planned spec: `auto` plans one GPU, which the local executor turns into CPU slots at
    run time on a machine without GPUs (num_gpus is not part of job ids, so ids do not depend on it)."""
    return 1 if gpus_per_job == "auto" else int(gpus_per_job)


def _key_of(sweep: Sweep, task: str, method: str, field_name: str) -> str:
    """The sweep key that set a job spec field (the most specific one)."""
    names = [k for k, v in GRID_KEYS.items() if v == field_name] or [field_name]
    for where, grid in ((f"task_overrides.{task}.", sweep.task_overrides.get(task, {})),
                        (f"methods.{method}.", sweep.methods.get(method, {})), ("", sweep.grid)):
        if field_name in grid:
            return where + names[0]
    return {"num_gpus": "gpus_per_job", "num_procs": "procs_per_job"}.get(field_name, field_name)


def job_size(spec: JobSpec) -> int:
    """Training examples x epochs: the scheduler starts the largest jobs first."""
    n = TASKS[spec.task].sizes.get("train", 0)
    if spec.max_train_samples is not None:
        n = min(n, spec.max_train_samples)
    return n * spec.epochs
