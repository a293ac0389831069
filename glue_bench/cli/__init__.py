"""The `glue-bench` command line: thin Typer commands over library functions.

Each command parses, calls one library function and prints. The library raises `GlueBenchError` for what a
user can fix; `command` turns it into one red line and exit 1. The sweep commands (glue_bench.cli.sweep) and
the result commands (glue_bench.cli.results) are plain functions registered here, through that one handler.
Nothing here imports torch at module level: `--help` and the table commands start fast.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from glue_bench.cli import results as cli_results
from glue_bench.cli import sweep as cli_sweep
from glue_bench.cli.output import configure_logging, console, err_console, say
from glue_bench.cli.train_options import train_command
from glue_bench.errors import GlueBenchError, os_error_line
from glue_bench.method_config import METHODS
from glue_bench.process import ExitCode
from glue_bench.tasks import GLUE_TASKS, TASKS, splits_present

app = typer.Typer(no_args_is_help=True, add_completion=False, context_settings={"help_option_names": ["-h", "--help"]},
                  help="Parameter-efficient methods vs full fine-tuning on GLUE, under DeepSpeed.")


def _print_version(asked: bool) -> None:
    if asked:
        from importlib.metadata import PackageNotFoundError, version

        try:
            say(f"glue-bench {version('glue-bench')}")
        except PackageNotFoundError:
            say("glue-bench (not installed as a package)")
        raise typer.Exit()


@app.callback()
def _options(version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                                   help="Print glue-bench's version and exit.")] = False) -> None:
    """Parameter-efficient methods vs full fine-tuning on GLUE, under DeepSpeed."""


def fail(message: str) -> typer.Exit:
    """One red line on stderr (the message is printed as it is, never read as markup; a character that would break
    the line, from a file's key or value, is printed escaped) and exit 1."""
    err_console.print("[red]error:[/red] ", end="", highlight=False)
    line = "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in str(message))
    err_console.print(line, highlight=False, soft_wrap=True, markup=False)
    return typer.Exit(ExitCode.FAILED)


def command(name: str | None = None):
    """Register a command; a `GlueBenchError` or an operating-system error it raises becomes one red line and
    exit 1 (the one handler: no traceback for a problem the user can fix)."""
    def register(fn):
        @functools.wraps(fn)
        def run(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except GlueBenchError as e:
                raise fail(str(e)) from None
            except OSError as e:
                raise fail(os_error_line(e)) from None
        app.command(name)(run)
        return fn
    return register


@command()
def tasks(data_dir: Annotated[Optional[Path], typer.Option(help="glue_data folder to check for splits")] = None):
    """Print the GLUE tasks (fields, labels, metrics, sizes) and which splits DATA_DIR holds.

    Example: glue-bench tasks --data-dir ../shared/glue_data
    """
    columns = ["task", "text fields", "labels", "metrics", "splits (official size)", "submission"]
    if data_dir is not None:
        columns.append(f"in {data_dir}")
    rows = []
    for name in (*GLUE_TASKS, "ax"):
        t = TASKS[name]
        labels = "regression 0..5" if t.is_regression else ", ".join(f"{i} {n}" for i, n in enumerate(t.label_names))
        metrics = ", ".join(f"{m}" + (f" ({s})" if s != "dev" else "") for s, m in t.metrics) or "-"
        sizes = ", ".join(f"{s} {n:,}" for s, n in t.sizes.items())
        row = [t.display, ", ".join(t.text_fields), labels, metrics, sizes, ", ".join(t.submission_files.values())]
        if data_dir is not None:
            present = splits_present(t, data_dir)
            row.append(", ".join(f"{s} {'yes' if ok else '[red]missing[/red]'}" for s, ok in present.items()))
        rows.append(row)
    if console.is_terminal and console.width >= 140:  # the table needs the width; else one block per task
        table = Table(title="GLUE tasks")
        for col in columns:
            table.add_column(col)
        for row in rows:
            table.add_row(*row)
        console.print(table)
        return
    import textwrap

    width = min(console.width, 80) if console.is_terminal else 80
    for row in rows:
        console.print(f"[bold]{row[0]}[/bold]", highlight=False)
        for col, value in zip(columns[1:], row[1:], strict=True):
            text = textwrap.fill(f"{col}: {value}", width, initial_indent="  ", subsequent_indent="    ",
                                 break_on_hyphens=False)
            console.print(text, highlight=False)


def train(spec_file: Optional[Path], output_dir: Optional[Path], cache_dir: Optional[Path], force: bool,
          dry_run: bool, **fields):
    """Fine-tune one GLUE job ({methods}) under DeepSpeed.

    Example: glue-bench train --model sentence-transformers/all-MiniLM-L6-v2 --task rte --method houlsby --bottleneck 64 --learning-rate 1e-3
    """
    from glue_bench.results.job_folder import JobDir
    from glue_bench.run.launch import launch_outcome, torchrun_command
    from glue_bench.spec import spec_from_flags
    from glue_bench.train.preflight import check_job

    configure_logging()
    spec = spec_from_flags(spec_file, fields)
    out = output_dir or Path("results") / "train" / spec.job_id
    check_job(spec, out)  # within a second, before torch, DeepSpeed or wandb start and before any write
    if dry_run:
        console.print_json(spec.to_json())
        how = "in this process" if spec.world_size == 1 else " ".join(
            torchrun_command(JobDir(out).spec_path, out, spec.world_size, 0, cache_dir))
        say(f"would run {spec.job_id} into {out} ({spec.world_size} rank(s)) {how}; nothing was written")
        return
    done, aside = JobDir(out).prepare_run(spec, force)
    if done:
        say(f"{spec.job_id} is already done in {out} (use --force to rerun)")
        return
    if aside is not None:
        say(f"moved the old results aside to {aside}")
    outcome = launch_outcome(spec, out, cache_dir)
    if outcome.ok:
        console.print(f"[green]{outcome.message}[/green]")
    elif outcome.message is not None:
        err_console.print(outcome.message if outcome.code == ExitCode.INTERRUPTED else f"[red]{outcome.message}[/red]")
    raise typer.Exit(outcome.code)


train.__doc__ = train.__doc__.replace("{methods}", ", ".join(METHODS))  # the families, as declared
command("train")(train_command(train))


@command("predict")
def predict_cmd(
    checkpoint: Annotated[Path, typer.Option(help="a finished job's results folder")],
    task: Annotated[str, typer.Option(help="the task the job was trained on")],
    split: Annotated[str, typer.Option(help="dev, test, dev_matched, ..., ax")],
    data_dir: Annotated[Optional[str], typer.Option(help="glue_data folder or 'hub' (default: the job's)")] = None,
    out: Annotated[Optional[Path], typer.Option(help="output TSV (default CHECKPOINT/predict/SPLIT.tsv)")] = None,
    cache_dir: Annotated[Optional[Path], typer.Option(help="tokenisation cache")] = None,
):
    """Predict a split with a saved adapter (on a fresh base model) or a saved model.

    Example: glue-bench predict --checkpoint results/train/rte-houlsby-... --task rte --split test
    """

    from glue_bench.train.predict import predict_split

    configure_logging()
    path, rows = predict_split(checkpoint, task, split, data_dir, out, cache_dir)
    say(f"wrote {rows} predictions to {path}")


# In the order `--help` lists them: one job, then a sweep, then its results.
for body in (cli_sweep.plan, cli_sweep.run, cli_sweep.cancel, cli_sweep.status, cli_sweep.sweep, cli_results.report,
             cli_results.references, cli_results.submit, cli_results.validate, cli_sweep.calibrate):
    command()(body)


def main() -> None:
    import sys

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if len(sys.argv) > 1 and sys.argv[1] == "train":
        from glue_bench.cli.train_options import translate_original_flags

        args, notes = translate_original_flags(sys.argv[2:])
        if notes:
            err_console.print("original flags: " + "; ".join(notes), highlight=False, markup=False)
        sys.argv[2:] = args
    app()
