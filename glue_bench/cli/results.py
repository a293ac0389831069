"""`glue-bench`'s result commands: report, references, submit and validate.

Plain functions; glue_bench.cli registers them on the app, through its one `GlueBenchError` handler.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from glue_bench.cli.output import console, print_report, print_submission, say
from glue_bench.errors import GlueBenchError


def report(
    results_dir: Annotated[Path, typer.Argument(help="results/<sweep>")],
    out_dir: Annotated[Optional[Path], typer.Option(help="where the files go (default: RESULTS_DIR/report)")] = None,
    show_selection: Annotated[bool, typer.Option(help="print the setting chosen per task and configuration")] = False,
    wandb: Annotated[Optional[str], typer.Option(help="log a summary run: auto | online | offline | disabled")] = None,
    budgets: Annotated[Optional[str], typer.Option(
        help="budgets of trainable parameters, % of the base model (default 0.1,0.5,1,3,100)")] = None,
    reference: Annotated[Optional[str], typer.Option(
        help="a published table to show beside your rows (glue-bench references lists them)")] = None,
    protocol: Annotated[str, typer.Option(
        help="best-epoch | last-epoch | held-out: which evaluation chooses and which is reported")] = "best-epoch",
    aggregate: Annotated[str, typer.Option(help="mean | median over seeds")] = "mean",
    replay_pruning: Annotated[bool, typer.Option(
        help="replay ASHA on the recorded curves: device-hours saved, selections changed (pruning.json)")] = False,
    prune_reduction: Annotated[int, typer.Option(help="the replay's reduction factor")] = 3,
    prune_min_epochs: Annotated[int, typer.Option(help="the replay's first rung, in epochs")] = 1,
    resamples: Annotated[int, typer.Option(help="bootstrap resamples of the per-example tests")] = 1000,
):
    """The GLUE table of a sweep under a protocol, with intervals over seeds, tested differences, a ranking, tuning
    cost and device-hours: terminal, Markdown, CSV, LaTeX, JSON and plots, an equal-budget table, optionally the
    published numbers beside yours and a replay of ASHA on the sweep.

    Example: glue-bench report results/demo --protocol best-epoch --aggregate median --replay-pruning
    """
    from glue_bench.report.budgets import parse_budgets
    from glue_bench.report.publish import ReportOptions, write_report

    chosen = parse_budgets(budgets) if budgets is not None else None
    options = ReportOptions(protocol=protocol, aggregate=aggregate, replay_pruning=replay_pruning,
                            prune_reduction=prune_reduction, prune_min_epochs=prune_min_epochs, resamples=resamples)
    print_report(write_report(results_dir, out_dir, wandb, chosen, reference, options), show_selection)


def references():
    """The published GLUE tables shipped with glue-bench (for report --reference), with their protocols.

    Example: glue-bench references
    """
    from glue_bench.report.references import references as tables

    for ref in tables().values():
        say(f"{ref.name}: {ref.citation}")
        say(f"  {ref.model}, {ref.split} set; rows: {', '.join(r.label for r in ref.rows)}")
        say(f"  {ref.protocol}")


def submit(
    results_dir: Annotated[Path, typer.Argument(help="results/<sweep>")],
    out: Annotated[Path, typer.Option(help="the zip to write")] = Path("submission.zip"),
    select: Annotated[str, typer.Option(help="best-dev: per task the best configuration on dev, its best seed")] = "best-dev",
    method: Annotated[Optional[str], typer.Option(help="submit this method instead of best-dev")] = None,
    bottleneck: Annotated[Optional[int], typer.Option(help="with --method houlsby/pfeiffer: the adapter size")] = None,
    rank: Annotated[Optional[int], typer.Option(help="with --method lora: the rank")] = None,
    alpha: Annotated[Optional[float], typer.Option(help="with --method lora: alpha")] = None,
    target_modules: Annotated[Optional[str], typer.Option(help="with --method lora/ia3: the target modules")] = None,
    train_pooler: Annotated[Optional[bool], typer.Option(help="the configuration with (or without) the pooler trained")] = None,
    learning_rate: Annotated[Optional[float], typer.Option(help="only this learning rate")] = None,
    wnli: Annotated[str, typer.Option(help="model: the WNLI job's predictions; majority: all 0 (65.1%)")] = "model",
    allow_partial: Annotated[bool, typer.Option(help="write the tasks that exist and name the missing ones")] = False,
    data_dir: Annotated[Optional[Path], typer.Option(help="glue_data folder to check row indices against")] = None,
):
    """Write the leaderboard zip (11 files) from test predictions; validated first, nothing written if wrong.

    Example: glue-bench submit results/houlsby-vs-full --out submission.zip --wnli majority
    """
    from glue_bench.report.publish import SubmitOptions, write_submission

    params = {"bottleneck": bottleneck, "rank": rank, "alpha": alpha, "target_modules": target_modules,
              "train_pooler": train_pooler}
    options = SubmitOptions(select=select, method=method, params=params, learning_rate=learning_rate, wnli=wnli,
                            allow_partial=allow_partial, data_dir=data_dir)
    print_submission(write_submission(results_dir, out, options))


def validate(
    zip_file: Annotated[Path, typer.Argument(help="a submission zip, ours or not")],
    data_dir: Annotated[Optional[Path], typer.Option(help="glue_data folder: check rows against its test files")] = None,
    allow_partial: Annotated[bool, typer.Option(help="accept a subset of the 11 files")] = False,
):
    """Check a leaderboard zip: names, headers, rows, indices, labels, STS-B range; a verdict per file.

    Example: glue-bench validate submission.zip --data-dir ../shared/glue_data
    """
    from glue_bench.report.submission import FILES, validate_zip

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
