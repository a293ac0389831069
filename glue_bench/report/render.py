"""Rendering of the report: terminal (rich), Markdown, CSV, LaTeX, JSON and PNG plots. No maths here."""

from __future__ import annotations

import json
from pathlib import Path

from glue_bench.report.aggregate import COLUMNS, Row
from glue_bench.report.budgets import BudgetColumn, shared_tasks
from glue_bench.report.references import PROVENANCE, Comparison, Reference
from glue_bench.results.job_folder import atomic_write_text
from glue_bench.tasks import GLUE_TASKS, TASKS

# Display columns: (header, [underlying columns]); pairs are shown as a/b.
DISPLAY = (
    ("CoLA (MCC)", ["CoLA"]), ("SST-2 (acc)", ["SST-2"]), ("MRPC (F1/acc)", ["MRPC F1", "MRPC acc"]),
    ("STS-B (P/S)", ["STS-B P", "STS-B S"]), ("QQP (F1/acc)", ["QQP F1", "QQP acc"]),
    ("MNLI (m/mm)", ["MNLI-m", "MNLI-mm"]), ("QNLI (acc)", ["QNLI"]), ("RTE (acc)", ["RTE"]),
    ("WNLI (acc)", ["WNLI"]),
)
SUMMARY_HEADERS = ("GLUE score", "Total (Houlsby et al.)", "trainable params", "% of base", "Δ vs full")


def _cell(row: Row, columns: list[str]) -> str:
    cells = [row.cells.get(c) for c in columns]
    if all(c is None for c in cells):
        return "-"
    values = "/".join("-" if c is None else (f"{c.shown:.1f}±{c.std:.1f}" if c.n > 1 else f"{c.shown:.1f}")
                      for c in cells)
    n = max(c.n for c in cells if c is not None)
    return values + (f" (n={n})" if n > 1 else "")


def _params(row: Row) -> tuple[str, str]:
    if not row.trainable:
        return "-", "-"
    counts = sorted(set(row.trainable.values()))
    count = f"{counts[0]:,}" if len(counts) == 1 else f"{counts[0]:,}-{counts[-1]:,}"
    pct = sum(row.trainable_percent.values()) / len(row.trainable_percent)
    return count, f"{pct:.2f}%"


def _fmt(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "-"
    return f"{x:+.1f}" if signed else f"{x:.1f}"


def table_rows(rows: list[Row]) -> tuple[list[str], list[list[str]]]:
    headers = ["method", *(h for h, _ in DISPLAY), *SUMMARY_HEADERS]
    body = []
    for row in rows:
        count, pct = _params(row)
        body.append([row.label, *(_cell(row, cols) for _, cols in DISPLAY), _fmt(row.glue_score),
                     _fmt(row.paper_total), count, pct, _fmt(row.delta_vs_full, signed=True)])
    return headers, body


NOTES = ("Dev-set scores in percent, mean (or median) ±std over the seeds of the setting selected per task on "
         "dev (learning rate, epochs) under the protocol named above the table; n = seeds. GLUE score: mean of the "
         "nine task scores (MRPC, QQP: mean of "
         "F1 and accuracy; STS-B: of Pearson and Spearman; MNLI: of m and mm). Total (Houlsby et al.): mean of "
         "CoLA, SST-2, MRPC F1, STS-B Spearman, QQP F1, MNLI-m, MNLI-mm, QNLI and RTE. Both need all tasks. "
         "% of base: trainable parameters / base-model parameters. Δ vs full: mean task-score difference to "
         "full fine-tuning over the tasks both have.")


def markdown(rows: list[Row], missing: list[str], budgets: list[BudgetColumn] | None = None,
             reference: tuple[Reference, list[Comparison]] | None = None, analysis=None) -> str:
    text = (protocol_line(analysis) + "\n\n" if analysis is not None else "") + markdown_table(*table_rows(rows)) \
        + "\n" + NOTES + "\n"
    if budgets:
        text += "\n## Equal budgets\n\n" + budget_markdown(budgets)
    if reference:
        text += "\n## Published numbers\n\n" + reference_markdown(*reference)
    if analysis is not None:
        for title, (headers, body), note in analysis_sections(rows, analysis):
            text += f"\n## {title}\n\n" + (markdown_table(headers, body) if body else "") + \
                (("\n" if body else "") + note + "\n" if note else "")
    if missing:
        text += "\nMissing: " + "; ".join(missing) + "\n"
    return text


def latex(rows: list[Row]) -> str:
    import pandas as pd

    headers, body = table_rows(rows)
    frame = pd.DataFrame(body, columns=headers)
    return frame.to_latex(index=False, escape=True, column_format="l" + "r" * (len(headers) - 1))


def csv_text(rows: list[Row]) -> str:
    """One line per row with every metric column's mean, std and n (machine-readable)."""
    import pandas as pd

    records = []
    for row in rows:
        rec = {"method": row.label, "kind": row.kind}
        for column, *_ in COLUMNS:
            cell = row.cells.get(column)
            rec[f"{column} mean"] = None if cell is None else round(cell.mean, 4)
            rec[f"{column} median"] = None if cell is None or cell.median is None else round(cell.median, 4)
            rec[f"{column} std"] = None if cell is None else round(cell.std, 4)
            rec[f"{column} n"] = None if cell is None else cell.n
        rec["glue_score"], rec["paper_total"] = row.glue_score, row.paper_total
        rec["delta_vs_full"] = row.delta_vs_full
        count, pct = _params(row)
        rec["trainable"], rec["percent_of_base"] = count, pct
        records.append(rec)
    return pd.DataFrame(records).to_csv(index=False)


def markdown_table(headers: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(r).replace("\n", " ") + " |" for r in body]) + "\n"


# The terminal: one column per configuration (tasks and summaries as rows), split into several tables where
# the columns do not fit the width, so nothing is cut to a letter in an 80-column terminal or a CI log.
def transposed(rows: list[Row]) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """(row names, [(configuration, its values)]): the report with configurations as columns."""
    names, getters = [], []
    for column, *_ in COLUMNS:
        if any(column in r.cells for r in rows):
            names.append(column)
            getters.append(lambda r, c=column: _cell_value(r.cells.get(c)))
    summary = (("GLUE score", lambda r: _fmt(r.glue_score)), ("Total (Houlsby)", lambda r: _fmt(r.paper_total)),
               ("trainable", lambda r: _params(r)[0]), ("% of base", lambda r: _params(r)[1]),
               ("Δ vs full", lambda r: _fmt(r.delta_vs_full, signed=True)),
               ("seeds", lambda r: str(max((c.n for c in r.cells.values()), default=0) or "-")))
    for name, get in summary:
        if any(get(r) not in ("-", "0") for r in rows):
            names.append(name)
            getters.append(get)
    return names, [(r.label, [get(r) for get in getters]) for r in rows]


def _cell_value(cell) -> str:
    if cell is None:
        return "-"
    return f"{cell.shown:.1f}±{cell.std:.1f}" if cell.n > 1 else f"{cell.shown:.1f}"


def _width(header: str, values: list[str]) -> int:
    longest_word = max((len(w) for w in header.split()), default=0)
    longest_value = max((len(line) for v in values for line in v.split("\n")), default=0)
    return max(longest_word, longest_value, 1) + 3  # padding either side and a rule


def fit(first: tuple[str, list[str]], columns: list[tuple[str, list[str]]], width: int) -> list[list[int]]:
    """Chunks of column indices such that each table (first column + its chunk) fits `width`."""
    base = _width(*first) + 1
    chunks: list[list[int]] = [[]]
    used = base
    for i, (header, values) in enumerate(columns):
        w = _width(header, values)
        if chunks[-1] and used + w > width:
            chunks.append([])
            used = base
        chunks[-1].append(i)
        used += w
    return [c for c in chunks if c]


def rich_tables(title: str, first: tuple[str, list[str]], columns: list[tuple[str, list[str]]],
                width: int) -> list:
    """The columns as rich tables that fit `width` (the first column repeated in each)."""
    from rich.table import Table

    tables = []
    chunks = fit(first, columns, width)
    for n, chunk in enumerate(chunks):
        suffix = f" ({n + 1}/{len(chunks)})" if len(chunks) > 1 else ""
        table = Table(title=title + suffix if title else None, title_justify="left")
        table.add_column(first[0], justify="left", no_wrap=True)
        for i in chunk:
            table.add_column(columns[i][0], justify="right", overflow="fold")
        for r, name in enumerate(first[1]):
            table.add_row(name, *(columns[i][1][r] for i in chunk))
        tables.append(table)
    return tables


def report_tables(rows: list[Row], title: str, width: int) -> list:
    names, columns = transposed(rows)
    return rich_tables(title, ("", names), columns, width)


# Equal budgets
def budget_columns(columns: list[BudgetColumn]) -> tuple[list[str], list[tuple[str, list[str]]]]:
    tasks = [t for t in GLUE_TASKS if any(t in c.choices for c in columns)]
    shared = shared_tasks(columns)  # a mean over tasks some cells lack would compare unlike with unlike
    mean = f"mean of {len(shared)} task" + ("" if len(shared) == 1 else "s") + \
        (f" (in every column; of {len(tasks)})" if len(shared) < len(tasks) else "")
    names = [TASKS[t].display for t in tasks] + ["GLUE score", mean]
    out = []
    for c in columns:
        values = [f"{c.choices[t].score:.1f}\n{c.choices[t].config}" if t in c.choices else "-" for t in tasks]
        out.append((f"≤ {c.budget:g}%", [*values, _fmt(c.glue_score), _fmt(c.mean_over(shared))]))
    return names, out


BUDGET_NOTE = ("Per budget of trainable parameters (the task head not counted, % of the base model), per task the "
               "configuration with the best selected dev score within it, and that score.")


def budget_markdown(columns: list[BudgetColumn]) -> str:
    names, cols = budget_columns(columns)
    body = [[name, *(c[1][i] for c in cols)] for i, name in enumerate(names)]
    return markdown_table(["task", *(c[0] for c in cols)], body) + "\n" + BUDGET_NOTE + "\n"


# Published numbers
def comparison_columns(reference: Reference, comparisons: list[Comparison]):
    """(metric rows, columns): for each of your rows, yours, the published row and (dev only) the difference."""
    names = [c for c, *_ in COLUMNS if any(c in comp.columns for comp in comparisons)]
    out = []
    for comp in comparisons:
        out.append((comp.row.label, [_cell_value(comp.row.cells.get(c)) for c in names]))
        if comp.published is None:
            out.append(("(no published row)", ["-"] * len(names)))
            continue
        split = "" if reference.split == "dev" else f" ({reference.split})"
        published = comp.published
        marks = {c: published.cell_provenance.get(c) or published.provenance for c in names}
        out.append((f"{published.label}{split}",
                    [f"{published.scores[c]:g}" + (f" [{marks[c]}]" if marks[c] else "")
                     if c in published.scores else "-" for c in names]))
        if reference.split == "dev":
            out.append(("Δ", [_fmt(comp.differences.get(c), signed=True) for c in names]))
    return names, out


def reference_heading(reference: Reference) -> str:
    marks = sorted({p for row in reference.rows for p in [row.provenance, *row.cell_provenance.values()] if p})
    provenance = "" if not marks else \
        " Marked in the table: " + "; ".join(f"[{m}] {PROVENANCE[m]}" for m in marks) + "."
    return (f"{reference.name}: {reference.citation}; {reference.model}, {reference.split} set. {reference.protocol}"
            f" Your rows are scored by its protocol here: {reference.rule.words}.{provenance}"
            + ("" if reference.split == "dev" else " Your rows are dev scores: no difference is given."))


def reference_markdown(reference: Reference, comparisons: list[Comparison]) -> str:
    names, cols = comparison_columns(reference, comparisons)
    body = [[name, *(c[1][i] for c in cols)] for i, name in enumerate(names)]
    return reference_heading(reference) + "\n\n" + markdown_table(["metric", *(c[0] for c in cols)], body)


def write_all(data: dict, rows: list[Row], out_dir: Path, missing: list[str],
              budgets: list[BudgetColumn] | None = None,
              reference: tuple[Reference, list[Comparison]] | None = None, analysis=None) -> list[Path]:
    """report.json, report.md, report.csv, report.tex and the plots into out_dir (atomically)."""
    from glue_bench.report.plots import plots

    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"report.json": json.dumps(data, indent=2) + "\n",
             "report.md": markdown(rows, missing, budgets, reference, analysis),
             "report.csv": csv_text(rows), "report.tex": latex(rows)}
    for name, text in files.items():
        atomic_write_text(out_dir / name, text)
    return [out_dir / n for n in files] + plots(rows, out_dir, analysis)


# The analysis: protocol, intervals, tested differences, ranking, tuning cost, pruning
def protocol_line(analysis) -> str:
    from glue_bench.report.protocols import DESCRIPTIONS

    o = analysis.options
    return f"Protocol: {o.protocol} ({DESCRIPTIONS[o.protocol]}); {o.aggregate} over seeds."


def _num(x: float | None, fmt: str = ".1f") -> str:
    return "-" if x is None else format(x, fmt)


def interval_table(rows: list[Row]) -> tuple[list[str], list[list[str]]]:
    body = []
    for row in rows:
        if row.kind == "baseline":
            continue
        for task, scores in row.seed_scores.items():
            lo_hi = row.intervals.get(task)
            body.append([TASKS[task].display, row.label, _num(row.task_scores[task]),
                         f"[{lo_hi[0]:.1f}, {lo_hi[1]:.1f}]" if lo_hi else "-", str(len(scores))])
    body.sort(key=lambda b: [TASKS[t].display for t in GLUE_TASKS].index(b[0]))
    return ["task", "configuration", "score", "95% interval over seeds", "seeds"], body


def comparison_table(analysis) -> tuple[list[str], list[list[str]]]:
    body = [[TASKS[c.task].display, c.row, c.other + (" (full)" if c.against == "full" else " (best)"),
             c.metric.split("/")[-1], _num(c.delta, "+.2f"), _num(c.p_examples_holm, ".3g"), c.verdict,
             c.seeds_verdict + (f"; {c.note}" if c.note else "")] for c in analysis.comparisons]
    return ["task", "config", "vs", "metric", "Δ pts", "p Holm", "examples say", "seeds say (task score)"], body


def ranking_table(analysis) -> tuple[tuple[list[str], list[list[str]]], str]:
    ranking = analysis.ranking
    if ranking is None:
        return (["configuration", "average rank"], []), ("fewer than 3 configurations, or fewer than 2 tasks they "
                                                          "all have: nothing to rank across tasks.")
    body = [[label, f"{rank:.2f}"] for label, rank in ranking.average_ranks.items()]
    differ = "; ".join(f"{a} > {b}" for a, b in ranking.different) or "none"
    note = (f"Over {len(ranking.tasks)} tasks ({', '.join(TASKS[t].display for t in ranking.tasks)}): Friedman "
            f"χ² = {ranking.statistic:.2f}, p = {ranking.p:.3g}; Nemenyi critical difference "
            f"{ranking.critical_difference:.2f} "
            f"at {ranking.alpha:g}. Ranks that differ: {differ}.")
    return (["configuration", "average rank"], body), note


def tuning_table(analysis, rows: list[Row]) -> tuple[list[str], list[list[str]]]:
    curves = analysis.curves
    most = max((c.settings for c in curves), default=0)
    points = sorted({n for n in (1, 2, 3, 5, 10, most) if 1 <= n <= most})
    body = [[TASKS[c.task].display, c.config, str(c.settings),
             *(_num(c.expected[n - 1]) if n <= c.settings else "-" for n in points)] for c in curves]
    return ["task", "configuration", "settings", *(f"n={n}" for n in points)], body


def hours_table(analysis, rows: list[Row]) -> tuple[list[str], list[list[str]]]:
    scores = {r.label: r for r in rows if r.kind == "method"}
    body = []
    for config, per in analysis.device_hours.items():
        row = scores.get(config)
        mean = sum(row.task_scores.values()) / len(row.task_scores) if row and row.task_scores else None
        body.append([config, f"{per['all']:.3f}", _num(mean), str(len(row.task_scores) if row else 0)])
    return ["configuration", "device-hours", "mean task score", "tasks"], body


def pruning_table(analysis) -> tuple[list[str], list[list[str]]]:
    body = [[TASKS[g.task].display, g.config, f"{len(g.pruned)}/{g.jobs}", f"{g.device_seconds / 3600:.3f}",
             f"{g.saved_seconds / 3600:.3f}", _num(None if g.saved_share is None else 100 * g.saved_share) + "%",
             g.selected or "-", "yes" if g.changed else "no", _num(g.score), _num(g.score_pruned),
             _num(g.score_change, "+.2f")] for g in analysis.pruning]
    return ["task", "configuration", "pruned", "device-h", "saved device-h", "saved", "selected", "changed",
            "score", "score pruned", "Δ score"], body


TERMINAL_DROPS = {"Pruning replay": ("device-h", "selected")}
"""Columns the terminal leaves to report.md (so the table fits 80 columns)."""


def analysis_sections(rows: list[Row], analysis) -> list[tuple[str, tuple, str]]:
    """(title, (headers, body), note) of each analysis section, for Markdown and the terminal alike."""
    o = analysis.options
    sections = [
        ("Intervals", interval_table(rows), "Task score (percent) of each configuration's selected setting, with a "
         "95% percentile-bootstrap interval of the mean over its seeds."),
        ("Differences", comparison_table(analysis),
         "Per task, each configuration against full fine-tuning and against the best other configuration, on the "
         "task's main metric: a paired bootstrap over dev examples (" + str(o.resamples) + " resamples), seed by "
         "seed, Holm-corrected over every comparison; over seeds, an exact sign-flip test. " + analysis.seeds_note),
        ("Ranking across tasks", *ranking_table(analysis)),
        ("Tuning cost", tuning_table(analysis, rows),
         "Expected best dev task score of n settings drawn from the grid (Dodge et al. 2019), per task and "
         "configuration (n=k: the expected best of k settings tried, by the protocol's choosing score): a method "
         "that reaches its best at n=1 needs "
         "little tuning."),
        ("Device-hours", hours_table(analysis, rows),
         "Wall seconds x devices of every finished job of the configuration (the grid, pruned jobs included)."),
    ]
    if analysis.pruning is not None:
        sections.append(("Pruning replay", pruning_table(analysis),
                         f"ASHA replayed on the recorded dev curves (reduction {o.prune_reduction}, first rung after "
                         f"{o.prune_min_epochs} epoch(s)): jobs stopped, device-hours saved, and the selection "
                         "made again without them (docs/pruning.md)."))
    return sections
