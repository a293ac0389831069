"""Checks of a job's inputs that need no torch, run before anything heavy starts or anything is written.

A bad model path, a missing data file or an unusable output folder is a one-line error within a second,
instead of minutes of imports, a DeepSpeed op build and a wandb run first.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from glue_bench.encoders import BY_MODEL_TYPE, check_fits, config_dict
from glue_bench.errors import GlueBenchError
from glue_bench.model_source import go_offline_if_unreachable, in_hub_cache, is_model_path, resolve_model
from glue_bench.spec import JobSpec
from glue_bench.tasks import HUB_DATASET, TASKS

SUPPORTED_MODEL_TYPES = tuple(BY_MODEL_TYPE)
"""Encoders whose layout glue-bench declares (`glue_bench.encoders`)."""
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def check_model(model: str, weights_needed: bool = True) -> None:
    """A model folder must exist, hold a readable config.json and be a supported encoder; anything else
    must at least look like a hub id (`name` or `namespace/name`) and, offline (HF_HUB_OFFLINE=1, or the hub
    unreachable), be in the local hub cache, unless `weights_needed` is off (pricing a known configuration)."""
    model = resolve_model(model)  # a packaged hub id: its installed folder (else the hub id itself)
    if not is_model_path(model):
        if not HUB_ID.match(model) or "--" in model or ".." in model:
            raise GlueBenchError(f"model {model!r}: neither a model folder nor a hub id (namespace/name)")
        if weights_needed and go_offline_if_unreachable(model) and not in_hub_cache(model):
            raise GlueBenchError(f"model {model!r}: offline (HF_HUB_OFFLINE=1 or the hub unreachable) and not in "
                                 "the local hub cache; give a model folder, or download it where the hub is "
                                 "reachable")
        return
    folder = Path(model).expanduser()
    if not folder.is_dir():
        raise GlueBenchError(f"model {model!r}: no such folder")
    try:
        config = json.loads((folder / "config.json").read_text())
    except OSError:
        raise GlueBenchError(f"model {model!r}: the folder has no config.json (not a model folder)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise GlueBenchError(f"model {model!r}: config.json is not valid JSON ({e})") from None
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise GlueBenchError(f"model {model!r}: model_type {model_type!r} is not a supported encoder "
                             f"(choose {', '.join(SUPPORTED_MODEL_TYPES)})")


def data_folder(source: str) -> Path | None:
    """The glue_data folder a job reads (None: the hub)."""
    if source == "auto":
        source = os.environ.get("GLUE_DATA_DIR") or "hub"
    return None if source == "hub" else Path(source)


def missing_files(task: str, folder: Path, predict_test: bool) -> list[str]:
    """The task's files a job needs that `folder` lacks (train, dev splits, test splits if predicted)."""
    t = TASKS[task]
    splits = ("train", *t.dev_splits, *(t.test_splits if predict_test else ()))
    return [t.layouts[s].path for s in splits if not (folder / t.layouts[s].path).is_file()]


def check_data(spec: JobSpec) -> None:
    folder = data_folder(spec.data)
    if folder is None:
        problem = hub_data_problem(spec.task)
        if problem:
            raise GlueBenchError(f"{TASKS[spec.task].display}: {problem}")
        return
    if not folder.is_dir():
        raise GlueBenchError(f"data folder {folder} does not exist")
    missing = missing_files(spec.task, folder, spec.predict_test)
    if missing:
        raise GlueBenchError(f"{TASKS[spec.task].display}: missing {', '.join(missing)} in {folder}")


def hub_data_problem(task: str) -> str | None:
    """Why a task's GLUE data cannot come from the hub here (None: it can): offline, it must be in the local
    datasets cache; online, the hub must know it. Offline is decided once, at once, not after retries."""
    go_offline_if_unreachable(f"the GLUE dataset ({HUB_DATASET})")
    try:
        import datasets

        datasets.disable_progress_bars()
        datasets.load_dataset_builder(HUB_DATASET, task)
    except Exception as e:  # unreachable hub, not in the cache, or no such config
        return f"cannot reach {HUB_DATASET}/{task} on the Hugging Face hub ({type(e).__name__}); use a glue_data folder"
    return None


def check_output_dir(out: Path) -> None:
    """The results folder can be made and written: no file in its place, a writable parent."""
    out = Path(out)
    for parent in (out, *out.parents):
        if parent.exists():
            if not parent.is_dir():
                raise GlueBenchError(f"output folder {out}: {parent} is not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise GlueBenchError(f"output folder {out}: {parent} is not writable")
            return


POSITION_OFFSET = {"roberta": 2, "xlm-roberta": 2, "camembert": 2}
"""Position ids these encoders reserve (for the padding index) out of `max_position_embeddings`."""


def check_methods_fit(specs) -> None:
    """Each method configuration of `specs` can work on its model (`glue_bench.encoders.check_fits`), where the
    model's config can be read without torch; a model whose config is not here is checked when its job starts."""
    seen = set()
    for spec in specs:
        key = (spec.model, spec.method, spec.target_modules)
        if key in seen:
            continue
        seen.add(key)
        config = config_dict(spec.model)
        if config is not None and config.get("model_type") in BY_MODEL_TYPE:
            check_fits(config, spec)


def check_model_limits(spec: JobSpec) -> None:
    """The job's settings within the model's own limits, read from its config: `max_seq_length` no longer than
    its position embeddings allow."""
    config = config_dict(spec.model)
    if config is None or not isinstance(config.get("max_position_embeddings"), int):
        return
    limit = config["max_position_embeddings"] - POSITION_OFFSET.get(config.get("model_type"), 0)
    if spec.max_seq_length > limit:
        raise GlueBenchError(f"max_seq_length {spec.max_seq_length}: {spec.model} takes at most {limit} tokens "
                             "(its max_position_embeddings)")


def check_job(spec: JobSpec, out: Path | None = None) -> None:
    """Every check of a job's inputs that needs no torch; raises the first problem as one line."""
    check_model(spec.model)
    check_model_limits(spec)
    check_methods_fit([spec])
    check_data(spec)
    if out is not None:
        check_output_dir(out)
