"""The `glue-bench` command line: thin Typer commands over library functions.

Nothing here imports torch at module level: `--help` and the table commands start fast.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from glue_bench.errors import GlueBenchError
from glue_bench.spec import JobSpec
from glue_bench.tasks import GLUE_TASKS, TASKS, splits_present

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Houlsby adapters vs full fine-tuning on GLUE, under DeepSpeed.")
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def configure_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s",
                        handlers=[RichHandler(console=err_console, show_path=False)], force=True)
    for noisy in ("httpx", "urllib3", "filelock", "DeepSpeed", "torch.distributed"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def fail(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(1)


@app.command()
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


@app.command()
def train(
    spec_file: Annotated[Optional[Path], typer.Option("--spec", help="job spec JSON (flags below override it)")] = None,
    model: Annotated[Optional[str], typer.Option(help="hub id or model folder")] = None,
    task: Annotated[Optional[str], typer.Option(help="GLUE task, e.g. rte")] = None,
    method: Annotated[Optional[str], typer.Option(help="full | houlsby | layernorm_head")] = None,
    bottleneck: Annotated[Optional[int], typer.Option(help="Houlsby adapter size m")] = None,
    non_linearity: Annotated[Optional[str], typer.Option(help="gelu | relu | swish | tanh")] = None,
    adapter_init_std: Annotated[Optional[float], typer.Option(help="adapter init std (default 1e-3)")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="global batch size")] = None,
    epochs: Annotated[Optional[int], typer.Option()] = None,
    max_seq_length: Annotated[Optional[int], typer.Option()] = None,
    learning_rate: Annotated[Optional[float], typer.Option()] = None,
    warmup_ratio: Annotated[Optional[float], typer.Option()] = None,
    weight_decay: Annotated[Optional[float], typer.Option()] = None,
    seed: Annotated[Optional[int], typer.Option()] = None,
    data_dir: Annotated[Optional[str], typer.Option(help="glue_data folder, or 'hub' (default: GLUE_DATA_DIR, else hub)")] = None,
    output_dir: Annotated[Optional[Path], typer.Option(help="results folder (default results/train/<job-id>)")] = None,
    max_train_samples: Annotated[Optional[int], typer.Option(help="random training subset")] = None,
    max_eval_samples: Annotated[Optional[int], typer.Option(help="random dev subset")] = None,
    predict_test: Annotated[Optional[bool], typer.Option("--predict-test/--no-predict-test")] = None,
    group_by_length: Annotated[Optional[bool], typer.Option("--group-by-length/--no-group-by-length")] = None,
    eval_every_steps: Annotated[Optional[int], typer.Option(help="also evaluate every N steps")] = None,
    zero_stage: Annotated[Optional[int], typer.Option(help="DeepSpeed ZeRO stage 0, 1 or 2")] = None,
    precision: Annotated[Optional[str], typer.Option(help="auto | fp32 | bf16 | fp16")] = None,
    num_gpus: Annotated[Optional[int], typer.Option(help="GPUs (data-parallel ranks); 0 = CPU")] = None,
    num_procs: Annotated[Optional[int], typer.Option(help="CPU data-parallel processes")] = None,
    keep_checkpoints: Annotated[Optional[bool], typer.Option("--keep-checkpoints/--no-keep-checkpoints")] = None,
    cache_dir: Annotated[Optional[Path], typer.Option(help="tokenisation cache (default GLUE_BENCH_CACHE or ~/.cache/glue-bench)")] = None,
    wandb: Annotated[Optional[str], typer.Option(help="auto | online | offline | disabled")] = None,
    wandb_project: Annotated[Optional[str], typer.Option(help="wandb project (default glue-bench)")] = None,
    force: Annotated[bool, typer.Option(help="rerun a done job (its old results are moved aside)")] = False,
    dry_run: Annotated[bool, typer.Option(help="print the job spec and how it would run")] = False,
):
    """Fine-tune one GLUE job (full or Houlsby adapters) under DeepSpeed.

    Example: glue-bench train --model sentence-transformers/all-MiniLM-L6-v2 --task rte --method houlsby --bottleneck 64 --learning-rate 1e-3
    """
    from glue_bench.launch import launch, torchrun_command
    from glue_bench.results import is_done

    configure_logging()
    flags = {k: v for k, v in {
        "model": model, "task": task, "method": method, "bottleneck": bottleneck, "non_linearity": non_linearity,
        "adapter_init_std": adapter_init_std, "batch_size": batch_size, "epochs": epochs, "max_seq_length": max_seq_length,
        "learning_rate": learning_rate, "warmup_ratio": warmup_ratio, "weight_decay": weight_decay, "seed": seed,
        "data": data_dir, "max_train_samples": max_train_samples, "max_eval_samples": max_eval_samples,
        "predict_test": predict_test, "group_by_length": group_by_length, "eval_every_steps": eval_every_steps,
        "zero_stage": zero_stage, "precision": precision, "num_gpus": num_gpus, "num_procs": num_procs,
        "keep_checkpoints": keep_checkpoints, "wandb": wandb, "wandb_project": wandb_project}.items() if v is not None}
    try:
        base = JobSpec.load(spec_file).to_dict() if spec_file else {}
        if task is not None:
            from glue_bench.tasks import get_task
            flags["task"] = get_task(task).name
        spec = JobSpec.from_dict({**base, **flags})
        out = output_dir or Path("results") / "train" / spec.job_id
        old = JobSpec.load(out / "spec.json") if (out / "spec.json").is_file() else None
        if old is not None and old.job_id != spec.job_id:
            raise GlueBenchError(f"{out} holds another job ({old.job_id}); choose another --output-dir")
        if is_done(out):
            if not force:
                console.print(f"{spec.job_id} is already done in {out} (use --force to rerun)")
                return
            aside = out.with_name(f"{out.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
            shutil.move(out, aside)
            console.print(f"moved the old results aside to {aside}")
    except GlueBenchError as e:
        raise fail(str(e)) from None
    if dry_run:
        console.print_json(spec.to_json())
        how = "in this process" if spec.world_size == 1 else " ".join(
            torchrun_command(out / "spec.json", out, spec.world_size, 0, cache_dir))
        console.print(f"would run {spec.job_id} into {out} ({spec.world_size} rank(s)) {how}")
        return
    code = launch(spec, out, cache_dir)
    if code == 0:
        console.print(f"[green]done[/green] {spec.job_id} -> {out}/metrics.json")
    elif code == 75:
        err_console.print(f"stopped; a checkpoint is saved: rerun the same command to resume {spec.job_id}")
    elif not (out / "error.json").is_file() or code != 1:
        err_console.print(f"[red]job {spec.job_id} failed (exit {code}); see {out}/train.log[/red]")
    raise typer.Exit(code)


@app.command("predict")
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
    configure_logging()
    try:
        from glue_bench.predict import predict_split

        path, rows = predict_split(checkpoint, task, split, data_dir, out, cache_dir)
    except GlueBenchError as e:
        raise fail(str(e)) from None
    console.print(f"wrote {rows} predictions to {path}")


def _split(values: Optional[str]) -> Optional[list[str]]:
    return [v.strip() for v in values.split(",") if v.strip()] if values else None


@app.command()
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

    try:
        result = plan_sweep(load_sweep(sweep_file), jobs_dir, results_dir, skip_missing, dry_run)
    except GlueBenchError as e:
        raise fail(str(e)) from None
    console.print(("[dry run] " if dry_run else "") + describe(result), highlight=False)
    return result


def _render_factory():
    from rich.live import Live

    live = Live(console=console, refresh_per_second=2, transient=False) if console.is_terminal else None

    def render(executor) -> None:
        if live is None:
            return
        counts = executor.counts()
        eta = executor.eta_seconds()
        table = Table(title=f"{executor.manifest['name']}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
                      + (f", ETA {eta / 60:.0f} min" if eta else ""))
        for col in ("job", "slot", "epoch", "step", "running for"):
            table.add_column(col)
        from glue_bench.executors.local import job_progress

        for run in executor.running.values():
            p = job_progress(executor.job_dir(run.job_id))
            epoch = f"{p['epoch']:.2f}" if isinstance(p.get("epoch"), float | int) else "-"
            table.add_row(run.job_id, run.slot.name, epoch, str(p.get("step", "-")),
                          f"{time.time() - run.started:.0f} s")
        if not live.is_started:
            live.start()
        live.update(table)

    def close() -> None:
        if live is not None and live.is_started:
            live.stop()
    return render, close


@app.command()
def run(
    jobs_dir: Annotated[Path, typer.Argument(help="a planned sweep: jobs/<name>")],
    executor: Annotated[str, typer.Option(help="local")] = "local",
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
    from glue_bench.executors.local import LocalExecutor, make_slots

    configure_logging()
    if executor == "slurm":
        from glue_bench.executors.slurm import SlurmOptions

        try:
            from glue_bench.plan import load_manifest

            manifest = load_manifest(jobs_dir)
            opts = SlurmOptions(
                partition=partition, account=account, qos=qos, time=time_limit,
                gpus_per_job=manifest.get("gpus_per_job", 1) if gpus_per_job is None else gpus_per_job,
                nodes=nodes, cpus_per_task=cpus_per_task, mem=mem, array_parallelism=array_parallelism,
                constraint=constraint, sbatch_args=tuple(sbatch_arg or ()),
                procs_per_job=procs_per_job or manifest.get("procs_per_job", 1), signal_seconds=signal_seconds)
        except GlueBenchError as e:
            raise fail(str(e)) from None
        return run_slurm(jobs_dir, opts, _split(only), retries, wait, dry_run)
    if executor != "local":
        raise fail(f"unknown executor {executor!r}; choose local or slurm")
    try:
        from glue_bench.plan import load_manifest

        manifest = load_manifest(jobs_dir)
        per_job = manifest.get("gpus_per_job", 1) if gpus_per_job is None else gpus_per_job
        procs = procs_per_job or manifest.get("procs_per_job", 1)
        gpu_list = [int(g) for g in _split(gpus)] if gpus else None
        slot_list = make_slots(gpu_list, per_job, slots, procs)
        if wandb is not None and wandb not in ("auto", "online", "offline", "disabled"):
            raise GlueBenchError(f"--wandb {wandb!r}: choose auto, online, offline or disabled")
        ex = LocalExecutor(jobs_dir, slot_list, retries=retries, only=_split(only), force=force,
                           lease_s=lease_seconds, gpus_per_job=gpus_per_job, procs_per_job=procs_per_job,
                           wandb=wandb,
                           on_event=lambda kind, msg: console.print(msg, highlight=False))
    except (GlueBenchError, ValueError) as e:
        raise fail(str(e)) from None
    if dry_run:
        pending = ex.pending() if not force else ex.order
        where = ", ".join(s.name for s in slot_list)
        console.print(f"[dry run] would run {len(pending)} of {len(ex.order)} jobs on {len(slot_list)} slot(s) "
                      f"({where}), largest first; results in {ex.results_dir}", highlight=False)
        for job_id in pending:
            console.print(f"  {job_id}", highlight=False)
        return
    render, close = _render_factory()
    try:
        outcome = ex.run(render=render)
    finally:
        close()
    counts = ex.counts()
    console.print(", ".join(f"{k} {v}" for k, v in counts.items()) + f" ({len(outcome.done)} finished now)")
    for job_id, error in outcome.failed.items():
        err_console.print(f"[red]failed[/red] {job_id}: {error}", highlight=False)
    if outcome.exit_code:
        raise typer.Exit(outcome.exit_code)


def run_slurm(jobs_dir: Path, opts, only: Optional[list[str]], retries: int, wait: bool, dry_run: bool) -> None:
    from glue_bench.executors import slurm

    try:
        sub = slurm.submit(jobs_dir, opts, only=only, dry_run=dry_run)
    except GlueBenchError as e:
        raise fail(str(e)) from None
    if sub.skipped_done or sub.skipped_queued:
        console.print(f"{len(sub.skipped_done)} done and {len(sub.skipped_queued)} already queued in Slurm: "
                      "not submitted", highlight=False)
    if dry_run:
        console.print(f"[dry run] would submit {len(sub.jobs)} jobs as one array with {sub.script}:", highlight=False)
        if sub.jobs:
            from glue_bench.plan import load_manifest

            console.print(slurm.sbatch_script(jobs_dir, sub.script.with_suffix(".json"), len(sub.jobs),
                                              load_manifest(jobs_dir)["name"], opts), highlight=False, markup=False)
        return
    if sub.array_job_id:
        console.print(f"submitted {len(sub.jobs)} jobs as Slurm array {sub.array_job_id} ({sub.script})",
                      highlight=False)
    if not wait:
        return
    try:
        failed = slurm.wait(jobs_dir, sub, opts, retries=retries,
                            on_event=lambda msg: console.print(msg, highlight=False))
    except GlueBenchError as e:
        raise fail(str(e)) from None
    for job_id, reason in failed.items():
        err_console.print(f"[red]failed[/red] {job_id}: {reason}", highlight=False)
    console.print(f"{len(sub.jobs) + len(sub.skipped_queued) - len(failed)} finished, {len(failed)} failed",
                  highlight=False)
    if failed:
        raise typer.Exit(1)


@app.command()
def cancel(jobs_dir: Annotated[Path, typer.Argument(help="a planned sweep: jobs/<name>")]):
    """Cancel what this sweep submitted to Slurm (jobs resume from their checkpoints when run again).

    Example: glue-bench cancel jobs/houlsby-vs-full
    """
    from glue_bench.executors import slurm

    try:
        ids = slurm.cancel(jobs_dir)
    except GlueBenchError as e:
        raise fail(str(e)) from None
    console.print(f"cancelled Slurm arrays {', '.join(ids)}" if ids else "nothing of this sweep is queued in Slurm",
                  highlight=False)


@app.command()
def status(jobs_dir: Annotated[Path, typer.Argument(help="a planned sweep: jobs/<name>")]):
    """Counts of a sweep's jobs, failed jobs with their error, running jobs and where.

    Example: glue-bench status jobs/demo
    """
    from glue_bench.executors.local import sweep_status

    try:
        st = sweep_status(jobs_dir)
    except GlueBenchError as e:
        raise fail(str(e)) from None
    console.print(", ".join(f"{k} {len(v)}" for k, v in st.items()), highlight=False)
    from glue_bench.executors import slurm

    if slurm.submissions(jobs_dir):
        try:
            from glue_bench.plan import load_manifest

            in_slurm = slurm.queued_jobs(jobs_dir, load_manifest(jobs_dir)["name"])
        except GlueBenchError as e:
            in_slurm = {}
            console.print(f"slurm: {e}", highlight=False)
        for job_id, state in sorted(in_slurm.items()):
            console.print(f"slurm {state['slurm_id']} {state['state'].lower()} ({state['reason']}): {job_id}",
                          highlight=False)
    for job in st["running"]:
        console.print(f"running {job['id']} on {job['where']} (epoch {job.get('epoch')}, step {job.get('step')})",
                      highlight=False)
    for job in st["failed"]:
        console.print(f"[red]failed[/red] {job['id']} (attempt {job['attempt']}): {job['error']}", highlight=False)


@app.command()
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
    result = plan(sweep_file, jobs_dir, results_dir, skip_missing, dry_run)
    jobs = result.jobs_dir
    code = 0
    try:
        run(jobs, executor="local", gpus=gpus, gpus_per_job=gpus_per_job, procs_per_job=None, slots=slots,
            retries=retries, only=None, force=False, lease_seconds=120.0, wandb=wandb, dry_run=dry_run)
    except typer.Exit as e:
        code = e.exit_code
    if dry_run:
        return
    finish_sweep(result.results_dir, wandb)
    if code:
        raise typer.Exit(code)


def finish_sweep(results: Path, wandb: str | None) -> None:
    """After a sweep: the report, and the submission zip when every task has test predictions."""
    report(results, out_dir=None, show_selection=False, wandb=wandb)
    from glue_bench.collect import collect
    from glue_bench.report import choose_for_submission
    from glue_bench.tasks import GLUE_TASKS

    chosen = choose_for_submission(collect(results))
    lacking = [t for t in GLUE_TASKS if t not in chosen or not all(
        s in chosen[t].best_seed.predictions for s in TASKS[t].test_splits)]
    if lacking:
        console.print("no submission zip: no test predictions for " + ", ".join(TASKS[t].display for t in lacking)
                      + f" (glue-bench submit {results} --allow-partial writes the rest)", highlight=False)
        return
    submit(results, out=results / "submission.zip", select="best-dev", method=None, bottleneck=None,
           learning_rate=None, wnli="model", allow_partial=False, data_dir=None)


@app.command()
def report(
    results_dir: Annotated[Path, typer.Argument(help="results/<sweep>")],
    out_dir: Annotated[Optional[Path], typer.Option(help="where the files go (default: RESULTS_DIR/report)")] = None,
    show_selection: Annotated[bool, typer.Option(help="print the setting chosen per task and configuration")] = False,
    wandb: Annotated[Optional[str], typer.Option(help="log a summary run: auto | online | offline | disabled")] = None,
):
    """The GLUE table of a sweep: terminal, Markdown, CSV, LaTeX, JSON and plots.

    Example: glue-bench report results/demo
    """
    from glue_bench import render
    from glue_bench.collect import collect
    from glue_bench.report import build_rows, missing_jobs, report_data

    if not results_dir.is_dir():
        raise fail(f"no results folder {results_dir}")
    records = collect(results_dir)
    if not records:
        raise fail(f"{results_dir} holds no job results yet")
    rows = build_rows(records)
    data = report_data(results_dir.name, rows, records)
    gaps = missing_jobs(records)
    missing = [f"{len(v)} {k}" + (f" ({'; '.join(v[:3])})" if k == "failed" else "") for k, v in gaps.items() if v]
    title = f"{results_dir.name}: {data['jobs']['done']} of {len(records)} jobs done"
    console.print(render.rich_table(rows, title), width=max(console.width, 220))
    for row in rows:
        if row.kind == "method" and row.missing_tasks:
            console.print(f"{row.label}: no results for {', '.join(TASKS[t].display for t in row.missing_tasks)}",
                          highlight=False)
    if missing:
        console.print("not done: " + ", ".join(missing), highlight=False)
    if show_selection:
        for row in rows:
            for task, s in row.selections.items():
                console.print(f"{row.label} {TASKS[task].display}: lr {s.learning_rate:g}, {s.epochs} epochs, "
                              f"seeds {[r.seed for r in s.records]}, mean dev score {100 * s.mean_score:.2f}",
                              highlight=False)
    out = out_dir or results_dir / "report"
    files = render.write_all(data, rows, out, missing)
    console.print("wrote " + ", ".join(str(f) for f in files), highlight=False)
    if wandb is not None:
        from glue_bench import tracking
        from glue_bench.results import read_json

        if wandb not in tracking.MODES:
            raise fail(f"--wandb {wandb!r}: choose auto, online, offline or disabled")
        spec = read_json(records[0].path / "spec.json") or {}
        headers, body = render.table_rows(rows)
        run_id = tracking.log_report(
            wandb, project=spec.get("wandb_project", "glue-bench"), entity=spec.get("wandb_entity"),
            sweep=results_dir.name, headers=headers, body=body, images=[f for f in files if f.suffix == ".png"],
            report_json=out / "report.json", directory=results_dir)
        if run_id:
            console.print(f"wandb summary run {run_id} in group {results_dir.name}", highlight=False)


@app.command()
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
    from glue_bench.collect import collect
    from glue_bench.report import choose_for_submission
    from glue_bench.results import atomic_write_json
    from glue_bench.submission import build_members, validate_members, write_zip
    from glue_bench.tasks import GLUE_TASKS

    if select != "best-dev" and method is None:
        raise fail(f"--select {select!r}: use best-dev, or --method (and --bottleneck) for one configuration")
    if method == "houlsby" and bottleneck is None:
        raise fail("--method houlsby needs --bottleneck")
    if wnli not in ("model", "majority"):
        raise fail(f"--wnli {wnli!r}: use model or majority")
    if not results_dir.is_dir():
        raise fail(f"no results folder {results_dir}")
    chosen = choose_for_submission(collect(results_dir), method, bottleneck, learning_rate)
    jobs, problems = {}, []
    for task in GLUE_TASKS:
        if task == "wnli" and wnli == "majority":
            continue
        sel = chosen.get(task)
        if sel is None:
            problems.append(f"{TASKS[task].display}: no done job" + (f" for {method}" if method else ""))
            continue
        best = sel.best_seed
        lacking = [s for s in TASKS[task].test_splits if s not in best.predictions]
        if lacking:
            problems.append(f"{TASKS[task].display}: {best.job_id} has no test predictions ({', '.join(lacking)})")
            continue
        jobs[task] = best
    if problems and not allow_partial:
        for p in problems:
            err_console.print(f"[red]error:[/red] {p}", highlight=False)
        raise typer.Exit(1)
    members = build_members({t: r.path for t, r in jobs.items()}, wnli == "majority", data_dir)
    per_file, overall = validate_members(members, data_dir, allow_partial=True)
    bad = [f"{name}: {'; '.join(p)}" for name, p in per_file.items() if p] + overall
    if bad:
        for line in bad:
            err_console.print(f"[red]error:[/red] {line}", highlight=False)
        raise typer.Exit(1)
    write_zip(members, out)
    choice = {TASKS[t].display: {"job": r.job_id, "config": chosen[t].config, "learning_rate": r.learning_rate,
                                 "epochs": r.epochs, "seed": r.seed, "dev_task_score": r.task_score}
              for t, r in jobs.items()}
    if wnli == "majority":
        choice["WNLI"] = {"job": None, "config": "majority class (all 0)"}
    atomic_write_json(out.with_suffix(".json"), {"zip": str(out), "files": sorted(members), "chosen": choice,
                                                 "missing": problems})
    for name, c in choice.items():
        console.print(f"{name}: {c['config']}" + (f" {c['job']}" if c.get("job") else ""), highlight=False)
    if problems:
        console.print("left out: " + "; ".join(problems), highlight=False)
    console.print(f"wrote {out} ({len(members)} files) and {out.with_suffix('.json')}", highlight=False)


@app.command()
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
        raise fail(f"no file {zip_file}")
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
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    app()
