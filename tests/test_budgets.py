"""Equal budgets (glue_bench/report/budgets.py): the best configuration within each share of the base model's
parameters, on hand-made records."""

import pytest
from report_records import budget_records

from glue_bench.errors import GlueBenchError
from glue_bench.report.aggregate import select
from glue_bench.report.budgets import budget_table, pareto_front, parse_budgets


def test_budget_table_by_hand():
    columns = budget_table(select(budget_records()), (0.1, 1.0, 100.0))
    picked = {c.budget: {t: (ch.config, round(ch.score, 6)) for t, ch in c.choices.items()} for c in columns}
    assert picked == {
        0.1: {"rte": ("ia3", 62.0), "mrpc": ("bitfit", 78.0)},
        1.0: {"rte": ("lora r=8 a=8", 66.0), "mrpc": ("lora r=8 a=8", 80.0)},
        100.0: {"rte": ("full", 70.0), "mrpc": ("houlsby m=8", 86.0)},
    }
    assert [c.mean for c in columns] == pytest.approx([70.0, 73.0, 78.0])
    assert all(c.glue_score is None for c in columns)  # two tasks of nine
    assert columns[0].choices["rte"].percent == pytest.approx(0.1)


def test_parse_budgets_and_pareto_front():
    assert parse_budgets("3, 0.1%,100,1") == (0.1, 1.0, 3.0, 100.0)
    with pytest.raises(GlueBenchError, match="--budgets 'x'"):
        parse_budgets("x")
    with pytest.raises(GlueBenchError, match="positive"):
        parse_budgets("0")
    assert pareto_front([(10, 60), (5, 50), (20, 55), (40, 70), (5, 52)]) == [(5, 52), (10, 60), (40, 70)]
