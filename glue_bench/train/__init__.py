"""Train: THE recipe (`recipe.py`: setup -> fit -> finish) and what it uses: engine, checkpoints, data, models,
methods, runtime, predictions, history. The only stage that imports torch, transformers, deepspeed and peft, and
those lazily or below `recipe`/`engine`: importing this package (or `train.preflight`) stays light.

`python -m glue_bench.train --spec S --output-dir D` is the per-rank entry point (`__main__.py`)."""

from __future__ import annotations

from pathlib import Path


def rank_arguments(spec_path: Path, output_dir: Path, cache_dir: Path | None = None) -> list[str]:
    """What follows the Python interpreter (or torchrun) to start one rank of a job: the one place that spells
    the training entry point's command line."""
    args = ["-m", "glue_bench.train", "--spec", str(spec_path), "--output-dir", str(output_dir)]
    return args + ["--cache-dir", str(cache_dir)] if cache_dir is not None else args
