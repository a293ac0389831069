"""The `glue-bench` command line: thin Typer commands over library functions.

Each command parses, calls one library function and prints. The library raises `GlueBenchError` for what a
user can fix; `command` turns it into one red line and exit 1. Nothing here imports torch at module level:
`--help` and the table commands start fast.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.logging import RichHandler
from rich.table import Table

from glue_bench.cli_output import (
    console,
    err_console,
    parse_gpus,
    print_report,
    print_submission,
    run_local,
    run_slurm,
    say,
    split_list,
)
from glue_bench.cli_train import train_command
from glue_bench.errors import GlueBenchError
from glue_bench.tasks import GLUE_TASKS, TASKS, splits_present

app = typer.Typer(no_args_is_help=True, add_completion=False, context_settings={"help_option_names": ["-h", "--help"]},
                  help="Parameter-efficient methods vs full fine-tuning on GLUE, under DeepSpeed.")


def configure_logging(verbose: bool = False) -> None:
    # rich's handler on a terminal; plain lines otherwise (rich wraps at 80 columns and colours a log file)
    handler = RichHandler(console=err_console, show_path=False) if err_console.is_terminal \
        else logging.StreamHandler()
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s", handlers=[handler],
                        force=True)
    for noisy in ("httpx", "urllib3", "filelock", "DeepSpeed", "torch.distributed"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def fail(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True, markup=True)
    return typer.Exit(1)


def command(name: str | None = None):
    """Register a command; a `GlueBenchError` it raises becomes red error lines and exit 1 (the one handler)."""
    def register(fn):
        @functools.wraps(fn)
        def run(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except GlueBenchError as e:
                for problem in getattr(e, "problems", None) or [str(e)]:
                    err_console.print(f"[red]error:[/red] {problem}", highlight=False, soft_wrap=True)
                raise typer.Exit(1) from None
        app.command(name)(run)
        return fn
    return register


@command()
def tasks(data_dir: Annotated[Optional[Path], typer.Option(help="glue_data folder to check for splits")] = None):
    """Print the GLUE tasks (fields, labels, metrics, sizes) and which splits DATA_DIR holds.

    Example: glue-bench tasks --data-dir ../shared/glue_data
    """
    table = Table(title="GLUE tasks")
    for col in ("task", "text fields", "labels", "metrics", "splits (official size)", "submission"):
        table.add_column(col)
    if data_dir is not None:
        table.add_column(f"in {data_dir}")
    for name in (*GLUE_TASKS, "ax"):
        t = TASKS[name]
        labels = "regression 0..5" if t.is_regression else ", ".join(f"{i} {n}" for i, n in enumerate(t.label_names))
        metrics = ", ".join(f"{m}" + (f" ({s})" if s != "dev" else "") for s, m in t.metrics) or "-"
        sizes = ", ".join(f"{s} {n:,}" for s, n in t.sizes.items())
        row = [t.display, ", ".join(t.text_fields), labels, metrics, sizes, ", ".join(t.submission_files.values())]
        if data_dir is not None:
            present = splits_present(t, data_dir)
            row.append(", ".join(f"{s} {'yes' if ok else '[red]missing[/red]'}" for s, ok in present.items()))
        table.add_row(*row)
    console.print(table)


def train(spec_file: Optional[Path], output_dir: Optional[Path], cache_dir: Optional[Path], force: bool,
          dry_run: bool, **fields):
    """Fine-tune one GLUE job (full, Houlsby adapters, ...) under DeepSpeed.

    Example: glue-bench train --model sentence-transformers/all-MiniLM-L6-v2 --task rte --method houlsby --bottleneck 64 --learning-rate 1e-3
    """
    from glue_bench.launch import launch, torchrun_command
    from glue_bench.preflight import check_job
    from glue_bench.results import JobDir
    from glue_bench.spec import spec_from_flags

    configure_logging()
    spec = spec_from_flags(spec_file, fields)
    out = output_dir or Path("results") / "train" / spec.job_id
    check_job(spec, out)  # within a second, before torch, DeepSpeed or wandb start and before any write
    if dry_run:
        console.print_json(spec.to_json())
        how = "in this process" if spec.world_size == 1 else " ".join(
            torchrun_command(out / "spec.json", out, spec.world_size, 0, cache_dir))
        say(f"would run {spec.job_id} into {out} ({spec.world_size} rank(s)) {how}; nothing was written")
        return
    done, aside = JobDir(out).prepare_run(spec, force)
    if done:
        say(f"{spec.job_id} is already done in {out} (use --force to rerun)")
        return
    if aside is not None:
        say(f"moved the old results aside to {aside}")
    code = launch(spec, out, cache_dir)
    if code == 0:
        console.print(f"[green]done[/green] {spec.job_id} -> {out}/metrics.json")
    elif code == 75:
        err_console.print(f"stopped; a checkpoint is saved: rerun the same command to resume {spec.job_id}")
    elif not (out / "error.json").is_file() or code != 1:
        err_console.print(f"[red]job {spec.job_id} failed (exit {code}); see {out}/train.log[/red]")
    raise typer.Exit(code)


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

    from glue_bench.predict import predict_split

    configure_logging()
    path, rows = predict_split(checkpoint, task, split, data_dir, out, cache_dir)
    say(f"wrote {rows} predictions to {path}")


@command()
def plan(
    sweep_file: Annotated[Path, typer.Argument(help="sweep YAML")],
    jobs_dir: Annotated[Path, typer.Option(help="where jobs/<name>/ goes")] = Path("jobs"),
    results_dir: Annotated[Path, typer.Option(help="where results/<name>/ goes")] = Path("results"),
    skip_missing: Annotated[bool, typer.Option(help="leave out tasks whose data is missing (and say which)")] = False,
    dry_run: Annotated[bool, typer.Option(help="say what would be planned; write nothing")] = False,
):
    """Expand a sweep file into one job spec per job under jobs/<name>/ plus a manifest.

    Example: glue-bench plan jobs/demo.yaml
    """
    from glue_bench.plan import describe, plan_sweep
    from glue_bench.sweep import load_sweep

    result = plan_sweep(load_sweep(sweep_file), jobs_dir, results_dir, skip_missing, dry_run)
    say(("[dry run, nothing written] " if dry_run else "") + describe(result))
    return result


@command()
def run(
    jobs_dir: Annotated[Path, typer.Argument(help="a planned sweep: jobs/<name>")],
    executor: Annotated[str, typer.Option(help="local | slurm")] = "local",
    gpus: Annotated[Optional[str], typer.Option(help="GPU indices to use, e.g. 0,1,3 (default: all visible)")] = None,
    gpus_per_job: Annotated[Optional[int], typer.Option(help="GPUs per job (overrides the sweep; 0 = CPU)")] = None,
    procs_per_job: Annotated[Optional[int], typer.Option(help="CPU processes per job")] = None,
    slots: Annotated[Optional[int], typer.Option(help="concurrent CPU jobs (cores are split between them)")] = None,
    retries: Annotated[int, typer.Option(help="retries of a failed job")] = 0,
    only: Annotated[Optional[str], typer.Option(help="tasks (cola,rte) or job ids to run")] = None,
    force: Annotated[bool, typer.Option(help="rerun done jobs (old results are moved aside)")] = False,
    lease_seconds: Annotated[float, typer.Option(help="claim lease; a dead runner's jobs free up after it")] = 120.0,
    wandb: Annotated[Optional[str], typer.Option(help="auto | online | offline | disabled (overrides the sweep)")] = None,
    dry_run: Annotated[bool, typer.Option(help="say what would run, how many jobs, and how")] = False,
    partition: Annotated[Optional[str], typer.Option(help="slurm: partition")] = None,
    account: Annotated[Optional[str], typer.Option(help="slurm: account")] = None,
    qos: Annotated[Optional[str], typer.Option(help="slurm: quality of service")] = None,
    time_limit: Annotated[Optional[str], typer.Option("--time", help="slurm: time limit per job, e.g. 04:00:00")] = None,
    nodes: Annotated[int, typer.Option(help="slurm: nodes per job (multi-node data parallel)")] = 1,
    cpus_per_task: Annotated[Optional[int], typer.Option(help="slurm: CPUs per task")] = None,
    mem: Annotated[Optional[str], typer.Option(help="slurm: memory per node, e.g. 32G")] = None,
    array_parallelism: Annotated[Optional[int], typer.Option(help="slurm: at most N array tasks at once (%N)")] = None,
    constraint: Annotated[Optional[str], typer.Option(help="slurm: node features")] = None,
    sbatch_arg: Annotated[Optional[list[str]], typer.Option(help="slurm: extra sbatch option (repeatable)")] = None,
    signal_seconds: Annotated[int, typer.Option(help="slurm: checkpoint and requeue this long before the time limit")] = 120,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="slurm: wait for the jobs and show progress")] = True,
):
    """Run a planned sweep's pending jobs on this machine's GPUs or CPU slots, or on Slurm.

    Example: glue-bench run jobs/demo --slots 2;  glue-bench run jobs/houlsby-vs-full --executor slurm --partition gpu --time 08:00:00
    """
    configure_logging()
    if executor == "slurm":
        from glue_bench.executors.slurm import options_for

        opts = options_for(jobs_dir, gpus_per_job, procs_per_job, partition=partition, account=account, qos=qos,
                           time=time_limit, nodes=nodes, cpus_per_task=cpus_per_task, mem=mem,
                           array_parallelism=array_parallelism, constraint=constraint,
                           sbatch_args=tuple(sbatch_arg or ()), signal_seconds=signal_seconds)
        code = run_slurm(jobs_dir, opts, split_list(only), retries, wait, dry_run)
    elif executor == "local":
        code = run_local(jobs_dir, gpus=gpus, dry_run=dry_run, gpus_per_job=gpus_per_job,
                         procs_per_job=procs_per_job, slots=slots, retries=retries, only=split_list(only), force=force,
                         lease_s=lease_seconds, wandb=wandb)
    else:
        raise GlueBenchError(f"--executor {executor!r}: choose local or slurm")
    if code:
        raise typer.Exit(code)


@command()
def cancel(jobs_dir: Annotated[Path, typer.Argument(help="a planned sweep: jobs/<name>")]):
    """Cancel what this sweep submitted to Slurm (jobs resume from their checkpoints when run again).

    Example: glue-bench cancel jobs/houlsby-vs-full
    """
    from glue_bench.executors import slurm

    ids = slurm.cancel(jobs_dir)
    say(f"cancelled Slurm arrays {', '.join(ids)}" if ids else "nothing of this sweep is queued in Slurm")


@command()
def status(
    jobs_dir: Annotated[Path, typer.Argument(help="a planned sweep: jobs/<name>")],
    verify: Annotated[bool, typer.Option(help="re-read every prediction file of done jobs (rows, sha256)")] = False,
):
    """Counts of a sweep's jobs, failed jobs with their error, running jobs and where.

    Example: glue-bench status jobs/demo
    """
    from glue_bench.executors import slurm
    from glue_bench.plan import load_manifest
    from glue_bench.status import sweep_status

    st = sweep_status(jobs_dir, verify=verify)
    say(", ".join(f"{k} {len(v)}" for k, v in st.items()))
    if slurm.submissions(jobs_dir):
        try:
            in_slurm = slurm.queued_jobs(jobs_dir, load_manifest(jobs_dir).name)
        except GlueBenchError as e:
            in_slurm = {}
            say(f"slurm: {e}")
        for job_id, state in sorted(in_slurm.items()):
            say(f"slurm {state['slurm_id']} {state['state'].lower()} ({state['reason']}): {job_id}")
    for job in st["running"]:
        epoch = f"epoch {job['epoch']:.2f}, " if isinstance(job.get("epoch"), float | int) else ""
        say(f"running {job['id']} on {job['where']} ({epoch}step {job.get('step') or 0})")
    for job in st["failed"]:
        console.print(f"[red]failed[/red] {job['id']} (attempt {job['attempt']}): {job['error']}", highlight=False)
    resumable = [j["id"] for j in st["pending"] if j.get("resumable")]
    if resumable:
        say(f"{len(resumable)} pending job(s) resume from a checkpoint: " + ", ".join(resumable[:5])
            + (" ..." if len(resumable) > 5 else ""))


@command()
def sweep(
    sweep_file: Annotated[Path, typer.Argument(help="sweep YAML")],
    jobs_dir: Annotated[Path, typer.Option(help="where jobs/<name>/ goes")] = Path("jobs"),
    results_dir: Annotated[Path, typer.Option(help="where results/<name>/ goes")] = Path("results"),
    skip_missing: Annotated[bool, typer.Option(help="leave out tasks whose data is missing")] = False,
    gpus: Annotated[Optional[str], typer.Option(help="GPU indices to use, e.g. 0,1,3")] = None,
    gpus_per_job: Annotated[Optional[int], typer.Option(help="GPUs per job (overrides the sweep; 0 = CPU)")] = None,
    slots: Annotated[Optional[int], typer.Option(help="concurrent CPU jobs")] = None,
    retries: Annotated[int, typer.Option(help="retries of a failed job")] = 0,
    wandb: Annotated[Optional[str], typer.Option(help="auto | online | offline | disabled (overrides the sweep)")] = None,
    dry_run: Annotated[bool, typer.Option(help="plan and say what would run; run nothing")] = False,
):
    """Plan and run a sweep, then report it (and write the submission zip when every task has test predictions).

    Example: GLUE_DATA_DIR=../shared/glue_data glue-bench sweep jobs/demo.yaml --slots 2
    """
    from glue_bench.plan import describe, plan_sweep
    from glue_bench.sweep import load_sweep

    configure_logging()
    swept = load_sweep(sweep_file)
    planned = plan_sweep(swept, jobs_dir, results_dir, skip_missing, dry_run)
    say(("[dry run, nothing written] " if dry_run else "") + describe(planned))
    if dry_run:
        from glue_bench.executors.local import resolve_gpus_per_job

        per_job, note = resolve_gpus_per_job(swept.gpus_per_job if gpus_per_job is None else gpus_per_job,
                                             parse_gpus(gpus))
        say((note + "; " if note else "") + f"would run {len(planned.jobs)} jobs "
            + (f"on {slots or 1} CPU slot(s)" if per_job == 0 else f"with {per_job} GPU(s) each"))
        return
    code = run_local(planned.jobs_dir, gpus=gpus, dry_run=False, gpus_per_job=gpus_per_job, slots=slots,
                     retries=retries, wandb=wandb)
    from glue_bench.publish import finish_sweep

    finished = finish_sweep(planned.results_dir, wandb)
    print_report(finished.report, show_selection=False)
    if finished.submission is not None:
        print_submission(finished.submission)
    else:
        say("no submission zip: no test predictions for " + ", ".join(TASKS[t].display for t in finished.lacking)
            + f" (glue-bench submit {planned.results_dir} --allow-partial writes the rest)")
    if code:
        raise typer.Exit(code)


@command()
def report(
    results_dir: Annotated[Path, typer.Argument(help="results/<sweep>")],
    out_dir: Annotated[Optional[Path], typer.Option(help="where the files go (default: RESULTS_DIR/report)")] = None,
    show_selection: Annotated[bool, typer.Option(help="print the setting chosen per task and configuration")] = False,
    wandb: Annotated[Optional[str], typer.Option(help="log a summary run: auto | online | offline | disabled")] = None,
):
    """The GLUE table of a sweep: terminal, Markdown, CSV, LaTeX, JSON and plots.

    Example: glue-bench report results/demo
    """
    from glue_bench.publish import write_report

    print_report(write_report(results_dir, out_dir, wandb), show_selection)


@command()
def submit(
    results_dir: Annotated[Path, typer.Argument(help="results/<sweep>")],
    out: Annotated[Path, typer.Option(help="the zip to write")] = Path("submission.zip"),
    select: Annotated[str, typer.Option(help="best-dev: per task the best configuration on dev, its best seed")] = "best-dev",
    method: Annotated[Optional[str], typer.Option(help="submit this method instead of best-dev")] = None,
    bottleneck: Annotated[Optional[int], typer.Option(help="with --method houlsby: the adapter size")] = None,
    learning_rate: Annotated[Optional[float], typer.Option(help="only this learning rate")] = None,
    wnli: Annotated[str, typer.Option(help="model: the WNLI job's predictions; majority: all 0 (65.1%)")] = "model",
    allow_partial: Annotated[bool, typer.Option(help="write the tasks that exist and name the missing ones")] = False,
    data_dir: Annotated[Optional[Path], typer.Option(help="glue_data folder to check row indices against")] = None,
):
    """Write the leaderboard zip (11 files) from test predictions; validated first, nothing written if wrong.

    Example: glue-bench submit results/houlsby-vs-full --out submission.zip --wnli majority
    """
    from glue_bench.publish import write_submission

    print_submission(write_submission(results_dir, out, select, method, bottleneck, learning_rate, wnli,
                                      allow_partial, data_dir))


@command()
def validate(
    zip_file: Annotated[Path, typer.Argument(help="a submission zip, ours or not")],
    data_dir: Annotated[Optional[Path], typer.Option(help="glue_data folder: check rows against its test files")] = None,
    allow_partial: Annotated[bool, typer.Option(help="accept a subset of the 11 files")] = False,
):
    """Check a leaderboard zip: names, headers, rows, indices, labels, STS-B range; a verdict per file.

    Example: glue-bench validate submission.zip --data-dir ../shared/glue_data
    """
    from glue_bench.submission import FILES, validate_zip

    if not zip_file.is_file():
        raise GlueBenchError(f"no file {zip_file}")
    per_file, overall = validate_zip(zip_file, data_dir, allow_partial)
    for name in FILES:
        if name in per_file:
            problems = per_file[name]
            verdict = "[green]ok[/green]" if not problems else "[red]" + "; ".join(problems) + "[/red]"
            console.print(f"{name}: {verdict}", highlight=False)
    for problem in overall:
        console.print(f"[red]zip: {problem}[/red]", highlight=False)
    if overall or any(per_file.values()):
        raise typer.Exit(1)
    console.print(f"[green]valid[/green]: {len(per_file)} files")


def main() -> None:
    import sys

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if len(sys.argv) > 1 and sys.argv[1] == "train":
        from glue_bench.cli_train import translate_original_flags

        args, notes = translate_original_flags(sys.argv[2:])
        if notes:
            err_console.print("original flags: " + "; ".join(notes), highlight=False, markup=False)
        sys.argv[2:] = args
    app()
