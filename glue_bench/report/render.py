"""Rendering of the report: terminal (rich), Markdown, CSV, LaTeX, JSON and PNG plots. No maths here."""

from __future__ import annotations

import json
from pathlib import Path

from glue_bench.report.aggregate import COLUMNS, Row
from glue_bench.report.budgets import BudgetColumn
from glue_bench.report.references import Comparison, Reference
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
    values = "/".join("-" if c is None else (f"{c.mean:.1f}±{c.std:.1f}" if c.n > 1 else f"{c.mean:.1f}")
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


NOTES = ("Dev-set scores in percent, mean±std over the seeds of the setting selected per task on dev "
         "(learning rate, epochs); n = seeds. GLUE score: mean of the nine task scores (MRPC, QQP: mean of "
         "F1 and accuracy; STS-B: of Pearson and Spearman; MNLI: of m and mm). Total (Houlsby et al.): mean of "
         "CoLA, SST-2, MRPC F1, STS-B Spearman, QQP F1, MNLI-m, MNLI-mm, QNLI and RTE. Both need all tasks. "
         "% of base: trainable parameters / base-model parameters. Δ vs full: mean task-score difference to "
         "full fine-tuning over the tasks both have.")


def markdown(rows: list[Row], missing: list[str], budgets: list[BudgetColumn] | None = None,
             reference: tuple[Reference, list[Comparison]] | None = None) -> str:
    text = markdown_table(*table_rows(rows)) + "\n" + NOTES + "\n"
    if budgets:
        text += "\n## Equal budgets\n\n" + budget_markdown(budgets)
    if reference:
        text += "\n## Published numbers\n\n" + reference_markdown(*reference)
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
    return f"{cell.mean:.1f}±{cell.std:.1f}" if cell.n > 1 else f"{cell.mean:.1f}"


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
    mean = f"mean of {len(tasks)} task" + ("" if len(tasks) == 1 else "s")
    names = [TASKS[t].display for t in tasks] + ["GLUE score", mean]
    out = []
    for c in columns:
        values = [f"{c.choices[t].score:.1f}\n{c.choices[t].config}" if t in c.choices else "-" for t in tasks]
        out.append((f"≤ {c.budget:g}%", [*values, _fmt(c.glue_score), _fmt(c.mean)]))
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
        out.append((f"{comp.published.label}{split}",
                    [f"{comp.published.scores[c]:g}" if c in comp.published.scores else "-" for c in names]))
        if reference.split == "dev":
            out.append(("Δ", [_fmt(comp.differences.get(c), signed=True) for c in names]))
    return names, out


def reference_heading(reference: Reference) -> str:
    return (f"{reference.name}: {reference.citation}; {reference.model}, {reference.split} set. {reference.protocol}"
            + ("" if reference.split == "dev" else " Your rows are dev scores: no difference is given."))


def reference_markdown(reference: Reference, comparisons: list[Comparison]) -> str:
    names, cols = comparison_columns(reference, comparisons)
    body = [[name, *(c[1][i] for c in cols)] for i, name in enumerate(names)]
    return reference_heading(reference) + "\n\n" + markdown_table(["metric", *(c[0] for c in cols)], body)


def write_all(data: dict, rows: list[Row], out_dir: Path, missing: list[str],
              budgets: list[BudgetColumn] | None = None,
              reference: tuple[Reference, list[Comparison]] | None = None) -> list[Path]:
    """report.json, report.md, report.csv, report.tex and the plots into out_dir (atomically)."""
    from glue_bench.report.plots import plots

    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"report.json": json.dumps(data, indent=2) + "\n", "report.md": markdown(rows, missing, budgets, reference),
             "report.csv": csv_text(rows), "report.tex": latex(rows)}
    for name, text in files.items():
        atomic_write_text(out_dir / name, text)
    return [out_dir / n for n in files] + plots(rows, out_dir)
