"""Published tables (glue_bench/report/references.py and reference_tables/): their loading, and the comparison
of a report's rows with them."""

import pytest
from report_records import rec

from glue_bench.errors import GlueBenchError
from glue_bench.method_config import MethodConfig
from glue_bench.report import render
from glue_bench.report.aggregate import build_rows
from glue_bench.report.references import compare, get_reference, references


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
