"""Equal budgets, published tables and the terminal layout: pure tests on hand-made records."""

import io

import pytest
from test_report import rec, write_job
from typer.testing import CliRunner

from glue_bench.cli import app
from glue_bench.errors import GlueBenchError
from glue_bench.method_config import MethodConfig
from glue_bench.plan.sweep_file import expand_sweep, parse_sweep
from glue_bench.report import render
from glue_bench.report.aggregate import build_rows, select
from glue_bench.report.budgets import budget_table, pareto_front, parse_budgets
from glue_bench.report.references import compare, get_reference, references

LORA = MethodConfig("lora", (("rank", 8), ("alpha", 8.0)))
HOULSBY = MethodConfig("houlsby", (("bottleneck", 8),))
# (configuration, trainable with the 10-parameter head, rte score, mrpc score); base model 1000 parameters
CONFIGS = [
    (MethodConfig("full"), 1010, 0.70, 0.85),  # 1000 budget parameters: 100%
    (HOULSBY, 40, 0.68, 0.86),                 # 30: 3%
    (LORA, 15, 0.66, 0.80),                    # 5: 0.5%
    (MethodConfig("bitfit"), 11, 0.60, 0.78),  # 1: 0.1%
    (MethodConfig("ia3"), 11, 0.62, 0.70),     # 1: 0.1%
]


def budget_records():
    out = []
    for config, trainable, rte, mrpc in CONFIGS:
        m = config.size if config.family == "houlsby" else None
        for task, score in (("rte", rte), ("mrpc", mrpc)):
            dev = {"dev": {"accuracy": score}} if task == "rte" else {"dev": {"f1": score, "accuracy": score}}
            out.append(rec(task, config.family, m=m, score=score, dev=dev, trainable=trainable, base=1000, head=10,
                           method_config=config))
    return out


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


def test_best_size_rows_for_every_sized_family():
    records = budget_records() + [
        rec("rte", "lora", score=0.69, trainable=30, base=1000, head=10,
            method_config=MethodConfig("lora", (("rank", 16), ("alpha", 16.0)))),
        rec("rte", "houlsby", m=64, score=0.65, trainable=300, base=1000, head=10,
            method_config=MethodConfig("houlsby", (("bottleneck", 64),))),
    ]
    labels = [r.label for r in build_rows(records)]
    assert labels == ["full", "houlsby m=8", "houlsby m=64", "houlsby (best m per task)", "lora r=8 a=8",
                      "lora r=16 a=16", "lora (best r per task)", "bitfit", "ia3", "majority class"][:len(labels)]
    best = {r.label: r for r in build_rows(records)}["lora (best r per task)"]
    assert best.selections["rte"].config == "lora r=16 a=16" and best.selections["mrpc"].config == "lora r=8 a=8"


def test_reference_tables_load_with_citation_split_and_metric_columns():
    tables = references()
    assert set(tables) >= {"houlsby-2019", "adapterhub-2020", "lora-2021-roberta-base", "lora-2021-roberta-large",
                           "transformers-bert-base-cased"}
    for ref in tables.values():
        assert ref.citation and ref.model and ref.split in ("dev", "test") and ref.protocol and ref.rows
    hub = tables["adapterhub-2020"]
    assert {r.label: r.scores.get("MRPC F1") for r in hub.rows} == {"Full": 90.5, "Pfeiffer-48": 89.7,
                                                                    "Houlsby-48": 91.5}
    assert "STS-B S" in hub.rows[0].scores and "STS-B P" not in hub.rows[0].scores  # Spearman, as printed
    assert "MRPC acc" in tables["lora-2021-roberta-base"].rows[0].scores  # the LoRA paper's MRPC is accuracy
    with pytest.raises(GlueBenchError, match="no reference table 'nope'"):
        get_reference("nope")


def test_comparison_shows_the_published_row_and_the_difference_where_split_and_metric_match():
    records = [rec("mrpc", "houlsby", m=64, dev={"dev": {"f1": 0.90, "accuracy": 0.85}}, score=0.875,
                   method_config=MethodConfig("houlsby", (("bottleneck", 64),))),
               rec("mrpc", "pfeiffer", m=48, dev={"dev": {"f1": 0.88, "accuracy": 0.84}}, score=0.86,
                   method_config=MethodConfig("pfeiffer", (("bottleneck", 48),)))]
    rows = build_rows(records)
    hub = {c.row.label: c for c in compare(get_reference("adapterhub-2020"), rows)}
    assert hub["houlsby m=64"].published.label == "Houlsby-48"  # the same family, nearest size
    assert hub["houlsby m=64"].differences == {"MRPC F1": pytest.approx(90.0 - 91.5)}  # F1 against F1 only
    assert hub["pfeiffer m=48"].differences == {"MRPC F1": pytest.approx(88.0 - 89.7)}
    houlsby = {c.row.label: c for c in compare(get_reference("houlsby-2019"), rows)}
    assert houlsby["houlsby m=64"].published.label == "Adapters (64)"
    assert houlsby["houlsby m=64"].differences == {}  # published on test: no difference to a dev score
    names, columns = render.comparison_columns(get_reference("houlsby-2019"), list(houlsby.values()))
    assert ("Adapters (64) (test)", [f"{v:g}" for v in [56.9, 94.2, 89.6, 87.3, 71.8, 85.3, 84.6, 91.4, 68.8]]) \
        in columns


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


def test_report_cli_with_reference_budgets_and_errors(tmp_path):
    results = tmp_path / "results" / "s"
    write_job(results / "rte-a", "rte", 0.6)
    runner = CliRunner()
    out = runner.invoke(app, ["report", str(results), "--reference", "transformers-bert-base-cased",
                              "--budgets", "1,100"], env={"COLUMNS": "80"})
    assert out.exit_code == 0, out.output
    assert "bert-base-cased fine-tuning" in out.output and "65.7" in out.output
    tables = [line for line in out.output.splitlines() if line[:1] in "┏┃┡│└"]
    assert len(tables) > 20 and max(len(line) for line in tables) <= 80 and "…" not in out.output
    md = (results / "report" / "report.md").read_text()
    assert "## Equal budgets" in md and "## Published numbers" in md and "| Δ |" in md
    bad = runner.invoke(app, ["report", str(results), "--reference", "nope"])
    assert bad.exit_code == 1 and bad.output.count("\n") == 1 and "no reference table 'nope'" in bad.output
    bad = runner.invoke(app, ["report", str(results), "--budgets", "1,x"])
    assert bad.exit_code == 1 and "--budgets" in bad.output
    listed = runner.invoke(app, ["references"])
    assert listed.exit_code == 0 and "houlsby-2019" in listed.output and "Hu et al. 2021" in listed.output


def sweep(**methods) -> dict:
    return {"name": "s", "model": "bert-base-uncased", "tasks": ["rte"], "methods": methods}


@pytest.mark.parametrize(("data", "message"), [
    (sweep(lora={"rank": 8, "bottleneck": 64}),
     "sweep key methods.lora.bottleneck: bad value 64 (bottleneck is not a parameter of lora; it applies to "
     "houlsby, pfeiffer)"),
    (sweep(houlsby={"bottleneck": 8, "rank": [4, 8]}), "sweep key methods.houlsby.rank"),
    ({**sweep(full={}, houlsby={"bottleneck": 8}), "rank": 8}, "sweep key rank: bad value 8 (rank is not a "
                                                               "parameter of full, houlsby"),
    (sweep(lora={}), "lora needs rank"),
])
def test_sweep_refuses_method_parameters_that_do_not_apply(data, message):
    with pytest.raises(GlueBenchError) as e:
        expand_sweep(parse_sweep(data))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_top_level_method_parameters_go_to_the_methods_that_have_them():
    jobs = expand_sweep(parse_sweep({**sweep(full={}, houlsby={"bottleneck": 8}, lora={"rank": 8},
                                             pfeiffer={"bottleneck": 48}),
                                     "non_linearity": "relu", "train_pooler": True}))
    by = {j.method: j for j in jobs}
    assert by["houlsby"].non_linearity == by["pfeiffer"].non_linearity == "relu"
    assert by["full"].non_linearity == "gelu" and not by["full"].train_pooler
    assert by["lora"].train_pooler and by["houlsby"].train_pooler
    assert by["pfeiffer"].job_id.startswith("rte-pfeiffer-m48-pooler-")


def test_submit_names_one_configuration_of_any_family():
    from glue_bench.report.aggregate import choose_for_submission, matching_configs

    records = budget_records() + [rec("rte", "lora", score=0.69, trainable=30, base=1000, head=10,
                                      method_config=MethodConfig("lora", (("rank", 16), ("alpha", 16.0))))]
    assert [c.label for c in matching_configs(records, "lora")] == ["lora r=8 a=8", "lora r=16 a=16"]
    assert [c.label for c in matching_configs(records, "lora", {"rank": 16})] == ["lora r=16 a=16"]
    assert [c.label for c in matching_configs(records, "lora", {"rank": 8, "alpha": 8})] == ["lora r=8 a=8"]
    assert matching_configs(records, "lora", {"rank": 8, "train_pooler": True}) == []
    assert matching_configs(records, "houlsby", {"bottleneck": 8}) == [HOULSBY]
    chosen = choose_for_submission(records, LORA)
    assert {t: s.config for t, s in chosen.items()} == {"rte": "lora r=8 a=8", "mrpc": "lora r=8 a=8"}
