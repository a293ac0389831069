"""The report's terminal tables (glue_bench/report/render.py): they fit 80 columns and cut nothing."""

import io

from report_records import budget_records, rec

from glue_bench.method_config import MethodConfig
from glue_bench.report import render
from glue_bench.report.aggregate import build_rows, select
from glue_bench.report.budgets import budget_table


def print_at(width: int, tables) -> str:
    from rich.console import Console

    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=False, color_system=None)
    for t in tables:
        console.print(t)
    return out.getvalue()


def test_terminal_tables_fit_80_columns_and_cut_nothing():
    records = budget_records() + [
        rec("mrpc", "houlsby", m=64, dev={"dev": {"f1": 0.90, "accuracy": 0.85}}, score=0.875, seed=s,
            method_config=MethodConfig("houlsby", (("bottleneck", 64), ("train_pooler", True))))
        for s in (1, 2, 3)]
    rows = build_rows(records)
    text = print_at(80, render.report_tables(rows, "s: 13 of 13 jobs done", 80))
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    for row in rows:
        for word in row.label.split():
            assert word in text
    assert "68.0" in text and "90.0±0.0" in text  # a value of each kind, whole
    names, columns = render.budget_columns(budget_table(select(records)))
    text = print_at(80, render.rich_tables("budgets", ("task", names), columns, 80))
    assert max(len(line) for line in text.splitlines()) <= 80 and "…" not in text
    assert "lora r=8 a=8" in text and "≤ 100%" in text
