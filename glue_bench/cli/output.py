"""What the commands print: the live view of a running sweep, run summaries, the report and the submission.

Presentation only: each function calls one library function (or takes its result) and prints it.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from glue_bench.run.options import RunOptions
from glue_bench.tasks import TASKS

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def configure_logging(verbose: bool = False) -> None:
    # rich's handler on a terminal; plain lines otherwise (rich wraps at 80 columns and colours a log file)
    handler = RichHandler(console=err_console, show_path=False) if err_console.is_terminal \
        else logging.StreamHandler()
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s", handlers=[handler],
                        force=True)
    for noisy in ("httpx", "urllib3", "filelock", "DeepSpeed", "torch.distributed"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def say(text: str) -> None:
    console.print(text, highlight=False, markup=False)


def plural(n: int, word: str) -> str:
    """`1 epoch`, `2 epochs`."""
    return f"{n} {word}" + ("" if n == 1 else "s")


def _render_factory():
    from rich.live import Live

    # transient: the live table goes when the run ends (its last frame would be an empty table repeating the
    # counts); the summary line after it says how the run ended
    live = Live(console=console, refresh_per_second=2, transient=True) if console.is_terminal else None

    def render(executor) -> None:
        if live is None:
            return
        counts = executor.counts()
        eta = executor.eta_seconds()
        table = Table(title=f"{executor.manifest.name}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
                      + (f", ETA {eta / 60:.0f} min" if eta else ""))
        for col in ("job", "slot", "epoch", "step", "running for"):
            table.add_column(col)
        for run in executor.running.values():
            p = executor.job(run.job_id).progress()
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


def run_sweep(jobs_dir: Path, options: RunOptions) -> int:
    """Run a planned sweep as `options` say (local or Slurm), printing what happens; the exit code."""
    return run_slurm(jobs_dir, options) if options.executor == "slurm" else run_local(jobs_dir, options)


def run_local(jobs_dir: Path, options: RunOptions) -> int:
    """Run a planned sweep with the local executor, printing its events; the exit code."""
    from glue_bench.run.local import build_executor

    ex = build_executor(jobs_dir, options, on_event=lambda kind, msg: say(msg))
    if ex.note:
        say(ex.note)
    if options.dry_run:
        ex.scan_done()
        pending = ex.order if options.force else ex.pending()
        where = ", ".join(s.name for s in ex.slots)
        selected = f" (--only: {len(ex.order)} of the sweep's {len(ex.manifest.jobs)})" \
            if len(ex.order) != len(ex.manifest.jobs) else ""
        say(f"[dry run] would run {len(pending)} of {len(ex.order)} jobs on {len(ex.slots)} slot(s) ({where}), "
            f"largest first{selected}; results in {ex.results_dir}")
        for job_id in pending:
            say(f"  {job_id}")
        return 0
    render, close = _render_factory()
    try:
        outcome = ex.run(render=render)
    finally:
        close()
    counts = ex.counts()
    pruned = len(outcome.pruned)
    say(", ".join(f"{k} {v}" for k, v in counts.items()) + f" ({len(outcome.done)} finished now"
        + (f", {pruned} of them pruned by ASHA" if pruned else "") + ")")
    for job_id, error in outcome.failed.items():
        err_console.print(f"[red]failed[/red] {job_id}: {error}", highlight=False)
    from glue_bench.results.tracking import offline_sync_hint

    if hint := offline_sync_hint(ex.results_dir):
        say(hint)
    return outcome.exit_code


def run_slurm(jobs_dir: Path, options: RunOptions) -> int:
    """Submit a planned sweep to Slurm (and wait for it unless `--no-wait`), printing what happens; the exit code."""
    from glue_bench.run import slurm

    opts = slurm.options_for(jobs_dir, options)
    dry_run, wait = options.dry_run, options.wait
    sub = slurm.submit(jobs_dir, opts, only=list(options.only) if options.only else None, dry_run=dry_run)
    if sub.skipped_done or sub.skipped_queued:
        say(f"{len(sub.skipped_done)} done and {len(sub.skipped_queued)} already queued in Slurm: not submitted")
    if dry_run:
        say(f"[dry run] would submit {len(sub.jobs)} jobs as one array with {sub.script}:")
        if sub.jobs:
            from glue_bench.plan.manifest import load_manifest

            console.print(slurm.sbatch_script(jobs_dir, sub.script.with_suffix(".json"), len(sub.jobs),
                                              load_manifest(jobs_dir).name, opts), highlight=False, markup=False)
        return 0
    if sub.dependent_array_job_id and sub.dependent_array_job_id != sub.array_job_id:
        say(f"submitted {len(sub.jobs) - len(sub.dependent_jobs)} jobs as Slurm array {sub.array_job_id} "
            f"({sub.script}) and the {len(sub.dependent_jobs)} that start from them (init_from) as array "
            f"{sub.dependent_array_job_id}, held until they end")
    elif sub.array_job_id:
        say(f"submitted {len(sub.jobs)} jobs as Slurm array {sub.array_job_id} ({sub.script})")
    if not wait:
        return 0
    failed = slurm.wait(jobs_dir, sub, opts, retries=options.retries, on_event=say)
    for job_id, reason in failed.items():
        err_console.print(f"[red]failed[/red] {job_id}: {reason}", highlight=False)
    say(f"{len(sub.jobs) + len(sub.skipped_queued) - len(failed)} finished, {len(failed)} failed")
    return 1 if failed else 0


def print_report(report, show_selection: bool) -> None:
    from glue_bench.report import render

    width = console.width
    if report.analysis is not None:
        say(render.protocol_line(report.analysis))
    for table in render.report_tables(report.rows, report.title, width):
        console.print(table)
    if report.budgets and any(c.choices for c in report.budgets):
        names, columns = render.budget_columns(report.budgets)
        for table in render.rich_tables("equal budgets (dev, best configuration within each)", ("task", names),
                                        columns, width):
            console.print(table)
    if report.reference is not None:
        reference, comparisons = report.reference
        say(render.reference_heading(reference))
        names, columns = render.comparison_columns(reference, comparisons)
        for table in render.rich_tables(f"beside {reference.name}", ("metric", names), columns, width):
            console.print(table)
    if report.analysis is not None:
        from rich.table import Table

        for title, (headers, body), note in render.analysis_sections(report.rows, report.analysis):
            if body and title not in ("Intervals", "Device-hours"):  # those two are in the files
                keep = [i for i, h in enumerate(headers) if h not in render.TERMINAL_DROPS.get(title, ())]
                table = Table(title=title, title_justify="left")
                for i in keep:
                    table.add_column(headers[i], overflow="fold")
                for line in body:
                    table.add_row(*(line[i] for i in keep))
                console.print(table)
            elif not body and note:
                say(f"{title}: {note}")
    for row in report.rows:
        if row.kind == "method" and row.missing_tasks:
            say(f"{row.label}: no results for {', '.join(TASKS[t].display for t in row.missing_tasks)}")
    if report.missing:
        say("not in the table: " + ", ".join(report.missing))
    if show_selection:
        for row in report.rows:
            for task, s in row.selections.items():
                say(f"{row.label} {TASKS[task].display}: lr {s.learning_rate:g}, {plural(s.epochs, 'epoch')}, "
                    f"seeds {[r.seed for r in s.records]}, mean dev score {100 * s.mean_score:.2f}")
    say("wrote " + ", ".join(str(f) for f in report.files))
    if report.wandb_run:
        say(f"wandb summary run {report.wandb_run} in group {report.records[0].path.parent.name}"
            + (f" (offline, under {report.wandb_dir}: wandb sync {report.wandb_dir}/wandb/offline-run-*)"
               if report.wandb_dir else ""))


def print_submission(sub) -> None:
    for name, c in sub.chosen.items():
        say(f"{name}: {c['config']}" + (f" {c['job']}" if c.get("job") else ""))
    if sub.missing:
        say("left out: " + "; ".join(sub.missing))
    say(f"wrote {sub.zip} ({plural(len(sub.files), 'file')}) and {sub.zip.with_suffix('.json')}")
