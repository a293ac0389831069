"""`glue-bench`'s sweep commands: plan (and price), run, cancel, status, sweep, and calibrate for the prices.

Plain functions; glue_bench.cli registers them on the app, through its one `GlueBenchError` handler. Nothing here
imports torch at module level.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from glue_bench import choices
from glue_bench.choices import Device
from glue_bench.cli.output import (
    configure_logging,
    console,
    print_report,
    print_submission,
    run_sweep,
    say,
)
from glue_bench.errors import GlueBenchError
from glue_bench.run.options import RunOptions, SlurmOptions, parse_gpus, parse_list
from glue_bench.tasks import TASKS


def plan(
    sweep_file: Annotated[Path, typer.Argument(help="sweep YAML")],
    jobs_dir: Annotated[Path, typer.Option(help="where jobs/<name>/ goes")] = Path("jobs"),
    results_dir: Annotated[Path, typer.Option(help="where results/<name>/ goes")] = Path("results"),
    skip_missing: Annotated[bool, typer.Option(help="leave out tasks whose data is missing (and say which)")] = False,
    dry_run: Annotated[bool, typer.Option(help="say what would be planned; write nothing")] = False,
    estimate: Annotated[bool, typer.Option(help="price the sweep: tokens and device-hours per task (docs/estimate.md)")] = False,
    device: Annotated[Optional[str], typer.Option(help="with --estimate: cpu | cuda (default: the sweep's)")] = None,
    gpu_type: Annotated[Optional[str], typer.Option(help="with --estimate: GPU to price for, e.g. h100, a100")] = None,
    slots: Annotated[int, typer.Option(help="with --estimate: jobs at once (CPU: the cores are split)")] = 1,
):
    """Expand a sweep file into one job spec per job under jobs/<name>/ plus a manifest.

    Example: glue-bench plan jobs/demo.yaml;  glue-bench plan jobs/houlsby-vs-full.yaml --dry-run --estimate --gpu-type h100
    """
    result = plan_and_say(sweep_file, jobs_dir, results_dir, skip_missing, dry_run,
                          weights_needed=not dry_run)
    if estimate:
        from glue_bench.cost.pricing import estimate_report, target_for
        from glue_bench.plan.sweep_file import expand_sweep

        swept = result.sweep
        priced = expand_sweep(swept)  # every job of the grid, those of skipped tasks too: a price needs no data
        for line in estimate_report(priced, target_for(device, swept.gpus_per_job, gpu_type, slots), slots):
            say(line)
    return result


def plan_and_say(sweep_file: Path, jobs_dir: Path, results_dir: Path, skip_missing: bool, dry_run: bool,
                 weights_needed: bool):
    """What `plan` and `sweep` share: plan the sweep file (`plan.manifest.plan_sweep`) and say what was planned."""
    from glue_bench.plan.manifest import describe, plan_sweep, read_sweep_file

    result = plan_sweep(read_sweep_file(sweep_file), jobs_dir, results_dir, skip_missing, dry_run, weights_needed)
    say(("[dry run, nothing written] " if dry_run else "") + describe(result))
    return result


def run(
    jobs_dir: Annotated[Path, typer.Argument(help="a planned sweep: jobs/<name>")],
    executor: Annotated[str, typer.Option(help="local | slurm")] = "local",
    gpus: Annotated[Optional[str], typer.Option(help="GPU indices to use, e.g. 0,1,3 (default: all visible)")] = None,
    gpus_per_job: Annotated[Optional[int], typer.Option(help="GPUs per job (overrides the sweep; 0 = CPU)")] = None,
    procs_per_job: Annotated[Optional[int], typer.Option(help="CPU processes per job")] = None,
    slots: Annotated[Optional[int], typer.Option(help="concurrent CPU jobs (cores are split between them)")] = None,
    jobs_per_gpu: Annotated[Optional[int], typer.Option(help="jobs sharing each GPU (overrides the sweep's jobs_per_gpu)")] = None,
    retries: Annotated[int, typer.Option(help="retries of a failed job")] = 0,
    only: Annotated[Optional[str], typer.Option(help="tasks (cola,rte) or job ids to run")] = None,
    force: Annotated[bool, typer.Option(help="rerun done jobs (old results are moved aside)")] = False,
    lease_seconds: Annotated[float, typer.Option(help="claim lease; a dead runner's jobs free up after it")] = 120.0,
    wandb: Annotated[Optional[str], typer.Option(help="auto | online | offline | disabled (overrides the sweep)")] = None,
    dry_run: Annotated[bool, typer.Option(help="say what would run, how many jobs, and how")] = False,
    prune: Annotated[Optional[str], typer.Option(
        help="asha: stop jobs that fall behind their group at a rung; none: run all out (overrides the sweep)")] = None,
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
    slurm = SlurmOptions(partition=partition, account=account, qos=qos, time=time_limit, nodes=nodes,
                         cpus_per_task=cpus_per_task, mem=mem, array_parallelism=array_parallelism,
                         constraint=constraint, sbatch_args=tuple(sbatch_arg or ()), signal_seconds=signal_seconds)
    options = RunOptions(executor=executor, gpus=parse_gpus(gpus), gpus_per_job=gpus_per_job,
                         procs_per_job=procs_per_job, slots=slots, jobs_per_gpu=jobs_per_gpu, retries=retries,
                         only=parse_list(only), force=force, lease_s=lease_seconds, wandb=wandb, dry_run=dry_run,
                         slurm=slurm, wait=wait, prune=prune)
    code = run_sweep(jobs_dir, options)
    if code:
        raise typer.Exit(code)


def cancel(jobs_dir: Annotated[Path, typer.Argument(help="a planned sweep: jobs/<name>")]):
    """Cancel what this sweep submitted to Slurm (jobs resume from their checkpoints when run again).

    Example: glue-bench cancel jobs/houlsby-vs-full
    """
    from glue_bench.run import slurm

    ids = slurm.cancel(jobs_dir)
    say(f"cancelled Slurm arrays {', '.join(ids)}" if ids else "nothing of this sweep is queued in Slurm")


def status(
    jobs_dir: Annotated[Path, typer.Argument(help="a planned sweep: jobs/<name>")],
    verify: Annotated[bool, typer.Option(help="re-read every prediction file of done jobs (rows, sha256)")] = False,
):
    """Counts of a sweep's jobs, failed jobs with their error, running jobs and where.

    Example: glue-bench status jobs/demo
    """
    from glue_bench.plan.manifest import load_manifest
    from glue_bench.run import slurm
    from glue_bench.run.status import sweep_status

    st = sweep_status(jobs_dir, verify=verify)
    say(", ".join(f"{k} {len(v)}" for k, v in st.items()))
    from glue_bench.run.status import eta_line

    if eta := eta_line(jobs_dir, st):
        say(eta)
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
    for job in st["pending"]:
        if job.get("problem"):
            console.print(f"[yellow]not done[/yellow] {job['id']}: {job['problem']} (run reruns it)", highlight=False,
                          markup=True)
    resumable = [j["id"] for j in st["pending"] if j.get("resumable")]
    if resumable:
        say(f"{len(resumable)} pending job(s) resume from a checkpoint: " + ", ".join(resumable[:5])
            + (" ..." if len(resumable) > 5 else ""))


def sweep(
    sweep_file: Annotated[Path, typer.Argument(help="sweep YAML")],
    jobs_dir: Annotated[Path, typer.Option(help="where jobs/<name>/ goes")] = Path("jobs"),
    results_dir: Annotated[Path, typer.Option(help="where results/<name>/ goes")] = Path("results"),
    skip_missing: Annotated[bool, typer.Option(help="leave out tasks whose data is missing")] = False,
    gpus: Annotated[Optional[str], typer.Option(help="GPU indices to use, e.g. 0,1,3")] = None,
    gpus_per_job: Annotated[Optional[int], typer.Option(help="GPUs per job (overrides the sweep; 0 = CPU)")] = None,
    slots: Annotated[Optional[int], typer.Option(help="concurrent CPU jobs")] = None,
    jobs_per_gpu: Annotated[Optional[int], typer.Option(help="jobs sharing each GPU (overrides the sweep's jobs_per_gpu)")] = None,
    retries: Annotated[int, typer.Option(help="retries of a failed job")] = 0,
    wandb: Annotated[Optional[str], typer.Option(help="auto | online | offline | disabled (overrides the sweep)")] = None,
    dry_run: Annotated[bool, typer.Option(help="plan, price and say what would run; run nothing")] = False,
    gpu_type: Annotated[Optional[str], typer.Option(help="with --dry-run: GPU to price for, e.g. h100, a100")] = None,
):
    """Plan and run a sweep, then report it (and write the submission zip when every task has test predictions).

    Example: GLUE_DATA_DIR=../shared/glue_data glue-bench sweep jobs/demo.yaml --slots 2
    """
    configure_logging()
    options = RunOptions(gpus=parse_gpus(gpus), gpus_per_job=gpus_per_job, slots=slots, jobs_per_gpu=jobs_per_gpu,
                         retries=retries, wandb=wandb)
    planned = plan_and_say(sweep_file, jobs_dir, results_dir, skip_missing, dry_run, weights_needed=not dry_run)
    if dry_run:
        from glue_bench.run.slots import resolve_gpus_per_job

        gpus_list = list(options.gpus) if options.gpus is not None else None
        per_job, note = resolve_gpus_per_job(planned.sweep.gpus_per_job if gpus_per_job is None else gpus_per_job,
                                             gpus_list)
        say((note + "; " if note else "") + f"would run {len(planned.jobs)} jobs "
            + (f"on {slots or 1} CPU slot(s)" if per_job == 0 else f"with {per_job} GPU(s) each"))
        from glue_bench.cost.pricing import estimate_report, target_for

        for line in estimate_report(planned.jobs, target_for(None, per_job, gpu_type, slots or 1), slots or 1):
            say(line)
        return
    code = run_sweep(planned.jobs_dir, options)
    from glue_bench.report.publish import finish_sweep

    finished = finish_sweep(planned.results_dir, wandb)
    print_report(finished.report, show_selection=False)
    if finished.submission is not None:
        print_submission(finished.submission)
    else:
        say("no submission zip: no test predictions for " + ", ".join(TASKS[t].display for t in finished.lacking)
            + f" (glue-bench submit {planned.results_dir} --allow-partial writes the rest)")
    if code:
        raise typer.Exit(code)

def calibrate(
    model: Annotated[str, typer.Option(help="hub id or model folder (a hub id not here: random weights from its config)")],
    method: Annotated[Optional[list[str]], typer.Option(help="method family, optionally with fields: houlsby:bottleneck=64 (repeatable; default full and houlsby)")] = None,
    device: Annotated[str, typer.Option(help="cpu | cuda")] = "cpu",
    precision: Annotated[str, typer.Option(help="auto (bf16 on a GPU that has it, fp32 on the CPU) | fp32 | bf16 | fp16")] = "auto",
    task: Annotated[str, typer.Option(help="task whose real training and dev batches are timed")] = "rte",
    data_dir: Annotated[str, typer.Option(help="glue_data folder, hub or auto (GLUE_DATA_DIR)")] = "auto",
    steps: Annotated[int, typer.Option(help="timed optimizer steps per method (after the warm-up)")] = 8,
    warmup: Annotated[int, typer.Option(help="untimed steps first")] = 2,
    threads: Annotated[Optional[int], typer.Option(help="cpu: threads per job (default all cores; one of N slots gets cores / N)")] = None,
    startup: Annotated[bool, typer.Option("--startup/--no-startup", help="measure a job's fixed cost with a real two-step job")] = True,
    cache_dir: Annotated[Optional[Path], typer.Option(help="cache folder holding calibration.json (default: the token cache's)")] = None,
):
    """Time a few optimizer steps, evaluation batches and a job's start-up per method; store them for --estimate.

    Example: glue-bench calibrate --model sentence-transformers/all-MiniLM-L6-v2 --device cpu --threads 1
    """
    from glue_bench.cost.calibration import calibration_path
    from glue_bench.cost.measure import CalibrationRequest
    from glue_bench.cost.measure import calibrate as measure

    configure_logging()
    choices.check(Device, device, "--device")
    if threads is not None and threads < 1:
        raise GlueBenchError(f"--threads {threads}: must be at least 1")
    request = CalibrationRequest(model=model, methods=tuple(method or ("full", "houlsby")), device=device,
                                 precision=precision, task=task, data=data_dir, steps=steps, warmup=warmup,
                                 threads=threads, measure_startup=startup)
    for entry in measure(request, cache_dir):
        say(f"{entry.describe()}; start-up {entry.speed.startup_s:.1f} s per job")
    say(f"stored in {calibration_path(cache_dir)}")
