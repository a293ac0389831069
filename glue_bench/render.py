"""Rendering of the report: terminal (rich), Markdown, CSV, LaTeX, JSON and PNG plots. No maths here."""

from __future__ import annotations

import json
from pathlib import Path

from glue_bench.report import COLUMNS, Row
from glue_bench.results import atomic_write_text
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


def markdown(rows: list[Row], missing: list[str]) -> str:
    headers, body = table_rows(rows)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    text = "\n".join(lines) + "\n\n" + NOTES + "\n"
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


def rich_table(rows: list[Row], title: str):
    from rich.table import Table

    headers, body = table_rows(rows)
    table = Table(title=title, show_lines=False)
    for h in headers:
        table.add_column(h, justify="left" if h == "method" else "right")
    for r in body:
        table.add_row(*r)
    return table


def plots(rows: list[Row], out_dir: Path) -> list[Path]:
    """Dev score against trainable parameters (log scale) per task and on average; score against m."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = [r for r in rows if r.kind == "method" and r.trainable]
    if not methods:
        return []
    tasks = [t for t in GLUE_TASKS if any(t in r.task_scores for r in methods)]
    paths = []

    fig, axes = plt.subplots(1, len(tasks) + 1, figsize=(3.2 * (len(tasks) + 1), 3.2), squeeze=False)
    families = {"full": [], "houlsby": [], "layernorm_head": []}
    for r in methods:
        families[r.label.split(" ")[0]].append(r)
    for ax, task in zip(axes[0], [*tasks, "average"], strict=True):
        for family, members in families.items():
            points = []
            for r in members:
                keys = [t for t in tasks if t in r.task_scores] if task == "average" else [task]
                if keys and all(k in r.task_scores and k in r.trainable for k in keys):
                    x = sum(r.trainable[k] for k in keys) / len(keys)
                    y = sum(r.task_scores[k] for k in keys) / len(keys)
                    points.append((x, y, r.label))
            if points:
                points.sort()
                style = "o-" if family == "houlsby" else "s" if family == "full" else "^"
                ax.plot([p[0] for p in points], [p[1] for p in points], style, label=family)
                if family == "houlsby":
                    for x, y, label in points:
                        ax.annotate(label.split(" ")[1], (x, y), fontsize=7, textcoords="offset points",
                                    xytext=(3, 3))
        ax.set_xscale("log")
        ax.set_title(TASKS[task].display if task != "average" else f"average of {len(tasks)} tasks")
        ax.set_xlabel("trainable parameters")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("dev task score")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    paths.append(_save(fig, out_dir / "score_vs_parameters.png"))
    plt.close(fig)

    houlsby = sorted((r for r in methods if r.label.startswith("houlsby m=")), key=lambda r: int(r.label[10:]))
    if houlsby:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        full = next((r for r in methods if r.label == "full"), None)
        for task in tasks:
            points = [(int(r.label[10:]), r.task_scores[task]) for r in houlsby if task in r.task_scores]
            if points:
                line = ax.plot([p[0] for p in points], [p[1] for p in points], "o-", label=TASKS[task].display)
                if full is not None and task in full.task_scores:
                    ax.axhline(full.task_scores[task], color=line[0].get_color(), ls=":", lw=1)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("bottleneck size m")
        ax.set_ylabel("dev task score (dotted: full fine-tuning)")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        paths.append(_save(fig, out_dir / "score_vs_bottleneck.png"))
        plt.close(fig)
    return paths


def _save(fig, path: Path) -> Path:
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(path)
    return path


def write_all(data: dict, rows: list[Row], out_dir: Path, missing: list[str]) -> list[Path]:
    """report.json, report.md, report.csv, report.tex and the plots into out_dir (atomically)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"report.json": json.dumps(data, indent=2) + "\n", "report.md": markdown(rows, missing),
             "report.csv": csv_text(rows), "report.tex": latex(rows)}
    for name, text in files.items():
        atomic_write_text(out_dir / name, text)
    return [out_dir / n for n in files] + plots(rows, out_dir)
