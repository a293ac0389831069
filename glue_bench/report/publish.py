"""What a finished sweep produces: the report files (+ a wandb summary run) and the leaderboard zip.

Library functions behind `glue-bench report`, `submit` and the end of `sweep`; they return what they did,
the CLI prints it. No torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glue_bench import choices
from glue_bench.choices import Aggregate, Protocol, Selection, WandbMode, WnliPolicy
from glue_bench.errors import GlueBenchError
from glue_bench.pruning import DEFAULT_MIN_EPOCHS, DEFAULT_REDUCTION
from glue_bench.report import render
from glue_bench.report.aggregate import Row, build_rows, choose_for_submission, missing_jobs, report_data
from glue_bench.report.collect import JobRecord, collect
from glue_bench.results.job_folder import JobDir, atomic_write_json, read_json
from glue_bench.tasks import GLUE_TASKS, TASKS


@dataclass
class Report:
    """A written report: its rows, records, what is missing and the files."""

    title: str
    rows: list[Row]
    records: list[JobRecord]
    missing: list[str]
    files: list[Path]
    wandb_run: str | None = None
    wandb_dir: Path | None = None
    """Where the summary run was saved when it ran offline (None: online, or no run)."""
    budgets: list = field(default_factory=list)
    """`budgets.BudgetColumn`s of the equal-budget table."""
    reference: tuple | None = None
    """(`references.Reference`, its `Comparison`s) with `--reference`."""
    analysis: Analysis | None = None
    """Comparisons, ranking, tuning cost and the pruning replay."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportOptions:
    """How `glue-bench report` scores and analyses a sweep (each field is its flag of the same name)."""

    protocol: Protocol = "best-epoch"
    """Which evaluation of a job chooses and which is reported (`report.protocols`)."""
    aggregate: Aggregate = "mean"
    """Over seeds: `mean` or `median`."""
    replay_pruning: bool = False
    """Replay ASHA on the recorded curves and write pruning.json."""
    prune_reduction: int = DEFAULT_REDUCTION
    """The replay's reduction factor."""
    prune_min_epochs: int = DEFAULT_MIN_EPOCHS
    """The replay's first rung, in epochs."""
    resamples: int = 1000
    """Bootstrap resamples of the per-example tests."""

    def __post_init__(self) -> None:
        choices.check(Protocol, self.protocol, "--protocol")
        choices.check(Aggregate, self.aggregate, "--aggregate")
        if self.prune_reduction < 2:
            raise GlueBenchError(f"--prune-reduction {self.prune_reduction}: must be 2 or more")
        if self.prune_min_epochs < 1:
            raise GlueBenchError(f"--prune-min-epochs {self.prune_min_epochs}: must be 1 or more")
        if self.resamples < 100:
            raise GlueBenchError(f"--resamples {self.resamples}: use 100 or more")


@dataclass
class Analysis:
    """What the report says beyond the table."""

    options: ReportOptions
    left_out: list[str]
    """Done jobs the protocol could not score (they did not record what it needs)."""
    comparisons: list
    """`significance.Comparison`s."""
    ranking: object | None
    """`stats.Ranking` of the method rows over the tasks (None: too few rows or tasks)."""
    seeds_note: str
    curves: list
    """`tuning.Curve`s: expected validation performance per task and configuration."""
    device_hours: dict[str, dict[str, float]]
    pruning: list | None = None
    """`replay.GroupSaving`s with `--replay-pruning`."""


def analyse(records: list[JobRecord], rows: list[Row], options: ReportOptions, left_out: list[str]) -> Analysis:
    from glue_bench.report import significance, tuning
    from glue_bench.report.replay import replay

    pruning = replay(records, options.prune_reduction, options.prune_min_epochs, options.aggregate,
                     options.protocol) if options.replay_pruning else None
    return Analysis(options, left_out, significance.comparisons(rows, options.resamples), significance.ranking(rows),
                    significance.seeds_note(rows), tuning.curves(records, options.aggregate),
                    tuning.device_hours(records), pruning)


def analysis_data(analysis: Analysis) -> dict:
    """The analysis as report.json's sections (docs/report.md)."""
    from glue_bench.report.protocols import DESCRIPTIONS

    ranking = analysis.ranking
    o = analysis.options
    return {
        "protocol": {"name": o.protocol, "aggregate": o.aggregate, "description": DESCRIPTIONS[o.protocol],
                     "left_out": analysis.left_out},
        "comparisons": [c.to_dict() for c in analysis.comparisons],
        "seeds_note": analysis.seeds_note,
        "ranking": None if ranking is None else {
            "tasks": list(ranking.tasks), "average_ranks": {k: round(v, 4) for k, v in ranking.average_ranks.items()},
            "statistic": round(ranking.statistic, 6), "p": round(ranking.p, 6),
            "critical_difference": round(ranking.critical_difference, 6),
            "different": [list(pair) for pair in ranking.different], "alpha": ranking.alpha},
        "expected_validation": [{"task": c.task, "config": c.config, "settings": c.settings,
                                 "expected_best": [round(v, 4) for v in c.expected]} for c in analysis.curves],
        "device_hours": {config: {k: round(v, 6) for k, v in per.items()}
                         for config, per in analysis.device_hours.items()},
        "pruning": None if analysis.pruning is None else {
            "rule": "asha", "reduction": o.prune_reduction, "min_epochs": o.prune_min_epochs,
            "groups": [g.to_dict() for g in analysis.pruning]},
    }


def write_report(results_dir: Path, out_dir: Path | None = None, wandb: str | None = None,
                 budgets: tuple[float, ...] | None = None, reference: str | None = None,
                 options: ReportOptions | None = None) -> Report:
    """Collect `results_dir`, write report.{md,csv,tex,json} (and pruning.json) and plots, and log a wandb summary
    run. `budgets`: percentages for the equal-budget table (default `budgets.DEFAULT_BUDGETS`); `reference`: the
    name of a published table to put beside the rows, which your rows meet under its own protocol; `options`:
    the protocol, the aggregate over seeds and the pruning replay."""
    from glue_bench.report import protocols
    from glue_bench.report.aggregate import select
    from glue_bench.report.budgets import DEFAULT_BUDGETS, budget_data, budget_table
    from glue_bench.report.references import compare, get_reference

    options = options or ReportOptions()

    published = get_reference(reference) if reference is not None else None
    results_dir = Path(results_dir)
    if wandb is not None:
        choices.check(WandbMode, wandb, "--wandb")
    if not results_dir.is_dir():
        raise GlueBenchError(f"no results folder {results_dir}")
    unreadable: dict[str, str] = {}
    collected = collect(results_dir, unreadable)
    if not collected:
        raise GlueBenchError(f"{results_dir} holds no job results yet")
    records, left_out = protocols.apply(collected, options.protocol)
    rows = build_rows(records, options.aggregate)
    columns = budget_table(select(records, options.aggregate), budgets or DEFAULT_BUDGETS)
    data = report_data(results_dir.name, rows, records)
    data["budgets"] = budget_data(columns)
    analysis = analyse(records, rows, options, left_out)
    data.update(analysis_data(analysis))
    compared = None
    if published is not None:  # your rows under the reference's own protocol
        theirs, unscored = protocols.apply(collected, published.rule.protocol)
        if unscored:  # the jobs did not record what its protocol needs: the report's own rows, said so
            published = dataclasses.replace(published, rule=dataclasses.replace(
                published.rule, protocol=options.protocol, aggregate=options.aggregate,
                note=f"{len(unscored)} jobs did not record what {published.rule.protocol} needs"))
            theirs = records
        compared = (published, compare(published, build_rows(theirs, published.rule.aggregate)))
        data["reference"] = {"name": published.name, "citation": published.citation, "split": published.split,
                             "protocol": published.rule.to_dict(),
                             "rows": [{"row": c.row.label, "published": c.published.label if c.published else None,
                                       "published_scores": c.published.scores if c.published else {},
                                       "differences": {k: round(v, 4) for k, v in c.differences.items()}}
                                      for c in compared[1]]}
    gaps = missing_jobs(records)
    gaps["unreadable"] = [f"{name}: {why}" for name, why in unreadable.items()]
    missing = [f"{len(v)} {k}" + (f" ({'; '.join(v[:3])})" if k in ("failed", "unreadable") else "")
               for k, v in gaps.items() if v]
    out = Path(out_dir) if out_dir is not None else results_dir / "report"
    if left_out:
        missing.append(f"{len(left_out)} left out by the {options.protocol} protocol (they did not record what it "
                       f"needs: {', '.join(left_out[:3])})")
    pruned = sum(1 for r in records if r.done and r.pruned)
    if pruned:
        missing.append(f"{pruned} pruned by ASHA (kept out of selection)")
    try:
        files = render.write_all(data, rows, out, missing, columns, compared, analysis)
        if analysis.pruning is not None:
            atomic_write_json(out / "pruning.json", {"schema_version": data["schema_version"], "sweep": data["sweep"],
                                                     **data["pruning"]})
            files.append(out / "pruning.json")
    except OSError as e:
        raise GlueBenchError(f"cannot write the report to {out}: {e.strerror or e}") from None
    report = Report(f"{results_dir.name}: {data['jobs']['done']} of {len(records)} jobs done", rows, records,
                    missing, files, budgets=columns, reference=compared, analysis=analysis)
    if wandb is not None:
        from glue_bench.results import tracking

        report.wandb_run = log_report_run(results_dir, report, out / "report.json", wandb)
        if report.wandb_run and tracking.resolve_mode(wandb) == "offline":
            report.wandb_dir = tracking.wandb_directory(results_dir)
    return report


def log_report_run(results_dir: Path, report: Report, report_json: Path, mode: str) -> str | None:
    """One wandb run in the sweep's group with the table, the plots and report.json; its id."""
    from glue_bench.results import tracking

    spec = read_json(JobDir(report.records[0].path).spec_path) or {}
    names, columns = render.budget_columns(report.budgets)
    budget_table = (["task", *(c[0] for c in columns)],
                    [[name, *(c[1][i].replace("\n", " ") for c in columns)] for i, name in enumerate(names)])
    tables = {"glue_table": render.table_rows(report.rows), "budget_table": budget_table}
    if report.analysis is not None:  # the tested differences and the tuning cost, as tables to sort and filter
        tables["differences"] = render.comparison_table(report.analysis)
        tables["tuning_cost"] = render.tuning_table(report.analysis, report.rows)
        if report.analysis.pruning is not None:
            tables["pruning_replay"] = render.pruning_table(report.analysis)
    return tracking.log_report(
        mode, project=spec.get("wandb_project", "glue-bench"), entity=spec.get("wandb_entity"),
        sweep=results_dir.name, tables=tables, images=[f for f in report.files if f.suffix == ".png"],
        report_json=report_json, directory=results_dir)


@dataclass
class Submission:
    """A written leaderboard zip and what went into it."""

    zip: Path
    files: list[str]
    chosen: dict[str, dict]
    missing: list[str] = field(default_factory=list)


class SubmissionRefused(GlueBenchError):
    """The zip would be incomplete or invalid: nothing was written; `problems` says why, one per line."""

    def __init__(self, problems: list[str], hint: str | None = None):
        message = problems[0] if len(problems) == 1 else f"{len(problems)} problems: " + "; ".join(problems)
        super().__init__(message + (f" ({hint})" if hint else ""))
        self.problems = problems


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitOptions:
    """What `glue-bench submit` was asked for (each field is its flag of the same name), checked when made."""

    select: Selection = "best-dev"
    """`best-dev`: per task the configuration with the best mean dev score, its best seed."""
    method: str | None = None
    """Submit this method family's configuration instead of the best on dev."""
    params: dict[str, Any] = field(default_factory=dict)
    """With `method`: its structural parameters (bottleneck, rank, alpha, target_modules, train_pooler)."""
    learning_rate: float | None = None
    """Only jobs with this learning rate."""
    wnli: WnliPolicy = "model"
    """`model`: the WNLI job's predictions; `majority`: all 0."""
    allow_partial: bool = False
    """Write the tasks that have test predictions and name the missing ones."""
    data_dir: Path | None = None
    """A glue_data folder to check the row indices against."""

    def __post_init__(self) -> None:
        from glue_bench.method_config import FAMILIES

        if self.method is None and self.select not in choices.values(Selection):
            raise GlueBenchError(f"--select {self.select!r}: use {choices.one_of(Selection)}, or --method (and its "
                                 "parameters) for one configuration")
        if self.method is not None and self.method not in FAMILIES:
            raise GlueBenchError(f"--method {self.method!r}: choose one of {', '.join(FAMILIES)}")
        choices.check(WnliPolicy, self.wnli, "--wnli")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise GlueBenchError(f"--learning-rate {self.learning_rate}: must be more than 0")


def chosen_config(records: list, results_dir: Path, options: SubmitOptions):
    """The one configuration `--method` (and its parameters) names among the done jobs; None for best-dev."""
    from glue_bench.method_config import FAMILIES, STRUCTURAL, MethodConfig
    from glue_bench.report.aggregate import matching_configs

    method = options.method
    if method is None:
        return None
    configs = matching_configs(records, method, options.params)
    if not configs:
        have = sorted({r.config for r in records if r.done})
        asked = options.params
        wanted = MethodConfig(method, tuple((k, asked[k]) for k in STRUCTURAL if asked.get(k) not in (None, False)))
        raise GlueBenchError(f"no done job of {wanted.label} in {results_dir}; "
                             f"it has {', '.join(have) or 'no done jobs'}")
    if len(configs) > 1:
        size = FAMILIES[method].size
        raise GlueBenchError(f"--method {method} matches {len(configs)} configurations "
                             f"({', '.join(c.label for c in configs)}): say which"
                             + (f" with --{size}" if size else ""))
    return configs[0]


def write_submission(results_dir: Path, out: Path, options: SubmitOptions | None = None) -> Submission:
    """Write the leaderboard zip from the chosen jobs' test predictions, validated before it is written."""
    from glue_bench.report.submission import build_members, validate_members, write_zip

    options = options or SubmitOptions()
    if not Path(results_dir).is_dir():
        raise GlueBenchError(f"no results folder {results_dir}")
    records = collect(results_dir)
    config = chosen_config(records, results_dir, options)
    chosen = choose_for_submission(records, config, options.learning_rate)
    majority_wnli = options.wnli == "majority"
    jobs, problems = {}, []
    for task in GLUE_TASKS:
        if task == "wnli" and majority_wnli:
            continue
        sel = chosen.get(task)
        if sel is None:
            problems.append(f"{TASKS[task].display}: no done job" + (f" for {config.label}" if config else ""))
            continue
        best = sel.best_seed
        lacking = [s for s in TASKS[task].test_splits if s not in best.predictions]
        if lacking:
            problems.append(f"{TASKS[task].display}: {best.job_id} has no test predictions ({', '.join(lacking)})")
            continue
        jobs[task] = best
    if problems and not options.allow_partial:
        raise SubmissionRefused(problems, hint="--allow-partial writes the tasks that have them")
    if not jobs and not majority_wnli:
        raise SubmissionRefused(problems or ["no task has test predictions"])
    members = build_members({t: r.path for t, r in jobs.items()}, majority_wnli, options.data_dir)
    per_file, overall = validate_members(members, options.data_dir, allow_partial=True)
    bad = [f"{name}: {'; '.join(p)}" for name, p in per_file.items() if p] + overall
    if bad:
        raise SubmissionRefused(bad)
    write_zip(members, out)
    choice = {TASKS[t].display: {"job": r.job_id, "config": chosen[t].config, "learning_rate": r.learning_rate,
                                 "epochs": r.epochs, "seed": r.seed, "dev_task_score": r.task_score}
              for t, r in jobs.items()}
    if majority_wnli:
        choice["WNLI"] = {"job": None, "config": "majority class (all 0)"}
    atomic_write_json(Path(out).with_suffix(".json"), {"zip": str(out), "files": sorted(members), "chosen": choice,
                                                       "missing": problems})
    return Submission(Path(out), sorted(members), choice, problems)


def submission_gaps(results_dir: Path) -> list[str]:
    """The tasks a best-dev submission would lack test predictions for (empty: a full zip can be written)."""
    chosen = choose_for_submission(collect(results_dir))
    return [t for t in GLUE_TASKS if t not in chosen
            or not all(s in chosen[t].best_seed.predictions for s in TASKS[t].test_splits)]


@dataclass
class Finished:
    report: Report
    submission: Submission | None
    lacking: list[str]


def finish_sweep(results_dir: Path, wandb: str | None = None) -> Finished:
    """After a sweep: the report, and the submission zip when every task has test predictions."""
    report = write_report(results_dir, wandb=wandb)
    lacking = submission_gaps(results_dir)
    if lacking:
        return Finished(report, None, lacking)
    return Finished(report, write_submission(results_dir, Path(results_dir) / "submission.zip"), [])


def read_report(path: Path) -> dict:
    """A report.json of this schema, or of the one before (2, read as 3: best-epoch, mean over seeds, and the
    sections 3 added left empty); another version is refused in one line."""
    from glue_bench.report.protocols import DESCRIPTIONS
    from glue_bench.results import schemas

    data = read_json(Path(path))
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version == schemas.REPORT:
        return data
    if version != 2:
        raise GlueBenchError(f"{path}: report.json schema {version} cannot be read (this glue-bench reads 2 and "
                             f"{schemas.REPORT}); run glue-bench report again")
    for row in data.get("rows", []):
        for cell in row.get("cells", {}).values():
            cell.setdefault("value", cell.get("mean"))
            cell.setdefault("median", None)
        row.setdefault("intervals", {})
        row.setdefault("seed_scores", {})
    for column in data.get("budgets", []):  # version 2's mean was over the column's own tasks
        column.setdefault("mean_tasks", sorted(column.get("tasks", {})))
    if isinstance(data.get("reference"), dict):
        data["reference"].setdefault("protocol", {"protocol": "best-epoch", "aggregate": "mean", "seeds": None,
                                                  "note": "read from a version-2 report"})
    return {**data, "schema_version": schemas.REPORT,
            "protocol": {"name": "best-epoch", "aggregate": "mean", "description": DESCRIPTIONS["best-epoch"],
                         "left_out": []},
            "comparisons": [], "seeds_note": "", "ranking": None, "expected_validation": [], "device_hours": {},
            "pruning": None}
