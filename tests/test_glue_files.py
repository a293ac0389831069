import shutil

import pytest

from glue_bench.errors import GlueBenchError
from glue_bench.glue_files import read_split
from glue_bench.tasks import TASKS

REAL_SPLITS = [(t, s) for t in TASKS for s in TASKS[t].layouts
               if not (t == "qqp" or (s == "train" and t in ("mnli", "qnli")))]


@pytest.mark.parametrize(("task", "split"), REAL_SPLITS)
def test_every_real_file_loads_with_the_official_row_count(real_glue, task, split):
    t = TASKS[task]
    data = read_split(t, split, real_glue)
    assert len(data) == t.sizes[split]
    assert set(data.columns) == {*t.text_fields, "label", "idx"}
    if split.startswith("test") or split == "ax":
        assert set(data.columns["label"]) == {-1}
        assert data.columns["idx"] == list(range(t.sizes[split]))  # the test file's index column
    elif t.is_regression:
        assert all(0.0 <= y <= 5.0 for y in data.columns["label"])
    else:
        assert set(data.columns["label"]) == set(range(t.num_labels))
    assert len(data.source["sha256"]) == 64


def test_real_labels_and_text_are_read_from_the_documented_columns(real_glue):
    cola = read_split(TASKS["cola"], "dev", real_glue)
    assert cola.columns["sentence"][0] == "The sailors rode the breeze clear of the rocks."
    assert cola.columns["label"][0] == 1
    mrpc = read_split(TASKS["mrpc"], "train", real_glue)  # header with a byte-order mark
    assert mrpc.columns["sentence1"][0].startswith("Amrozi accused his brother")
    assert mrpc.columns["label"][:2] == [1, 0]
    mnli = read_split(TASKS["mnli"], "dev_matched", real_glue)
    assert mnli.columns["premise"][0] == "The new rights are nice enough"
    assert mnli.columns["label"][0] == 1  # neutral


def test_missing_split_names_the_file(real_glue):
    with pytest.raises(GlueBenchError, match=r"QNLI train split is missing: no file .*QNLI/train.tsv"):
        read_split(TASKS["qnli"], "train", real_glue)


def test_fixture_qqp_drops_and_counts_rows_with_an_empty_field(fixture_glue):
    train = read_split(TASKS["qqp"], "train", fixture_glue)
    assert len(train) == 40 and train.dropped == 2 and train.source["dropped_rows"] == 2
    assert train.columns["question1"][0] == "How do I learn Python quickly?"
    test = read_split(TASKS["qqp"], "test", fixture_glue)
    assert len(test) == 12 and test.columns["idx"] == list(range(12))


def test_fixture_mnli_and_ax(fixture_glue):
    mnli = TASKS["mnli"]
    assert len(read_split(mnli, "train", fixture_glue)) == 96
    assert len(read_split(mnli, "dev_mismatched", fixture_glue)) == 24
    assert len(read_split(mnli, "test_matched", fixture_glue)) == 20
    ax = read_split(mnli, "ax", fixture_glue)
    assert len(ax) == 12 and ax.columns["premise"][0] == "The cat sat on the mat."


@pytest.mark.parametrize(("line", "why"), [
    ("3\tonly two columns", "2 columns, expected 4"),
    ("x\tmaybe\t\tA sentence.", "invalid literal"),
    ("x\t7\t\tA sentence.", "label 7 out of range"),
])
def test_malformed_rows_fail_with_file_and_line(tmp_path, real_glue, line, why):
    shutil.copytree(real_glue / "CoLA", tmp_path / "CoLA")
    path = tmp_path / "CoLA" / "dev.tsv"
    lines = path.read_text().splitlines()
    lines.insert(4, line)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(GlueBenchError, match=rf"CoLA/dev.tsv:5: malformed row: .*{why}"):
        read_split(TASKS["cola"], "dev", tmp_path)


def test_unknown_string_label_fails_with_line(tmp_path, real_glue):
    (tmp_path / "RTE").mkdir()
    text = (real_glue / "RTE" / "dev.tsv").read_text().splitlines()
    text[3] = "\t".join(text[3].split("\t")[:3] + ["maybe"])
    (tmp_path / "RTE" / "dev.tsv").write_text("\n".join(text) + "\n")
    with pytest.raises(GlueBenchError, match=r"RTE/dev.tsv:4: malformed row: label 'maybe' is not one of RTE's "
                                             r"labels \(entailment, not_entailment\)"):
        read_split(TASKS["rte"], "dev", tmp_path)
