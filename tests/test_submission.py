"""The leaderboard submission (glue_bench/report/submission.py, `glue-bench submit` and `validate`): the format of
each file, every way a zip can be wrong, and the configuration a submission is made from."""

import io
import zipfile
from pathlib import Path

import pytest
from conftest import invoke
from job_folders import rte, write_done_job
from report_records import HOULSBY, LORA, budget_records, rec
from typer.testing import CliRunner

from glue_bench.cli import app
from glue_bench.glue_files import read_split
from glue_bench.method_config import MethodConfig
from glue_bench.report.submission import FILES, format_prediction, zip_bytes
from glue_bench.results.job_folder import atomic_write_json

runner = CliRunner()


def real_members(real_glue: Path) -> dict[str, str]:
    """Predictions for every test file in ../shared/glue_data (all but QQP), in the leaderboard format."""
    members = {}
    for name, f in FILES.items():
        if not (real_glue / f.task.layouts[f.split].path).is_file():
            continue
        idx = read_split(f.task, f.split, real_glue).columns["idx"]
        values = [(i % 11) * 0.5 - 0.2 if f.task.is_regression else i % f.task.num_labels for i in idx]
        members[name] = "index\tprediction\n" + "".join(
            f"{i}\t{format_prediction(f.task, v)}\n" for i, v in zip(idx, values, strict=True))
    return members


@pytest.fixture(scope="module")
def good(real_glue) -> dict[str, str]:
    return real_members(real_glue)


def validate(tmp_path: Path, members_or_bytes, *args: str):
    data = members_or_bytes if isinstance(members_or_bytes, bytes) else zip_bytes(members_or_bytes)
    path = tmp_path / "s.zip"
    path.write_bytes(data)
    return runner.invoke(app, ["validate", str(path), *args], env={"COLUMNS": "250"})


def test_formatting_rules():
    from glue_bench.tasks import TASKS

    assert format_prediction(TASKS["cola"], 1) == "1"  # not "acceptable"
    assert format_prediction(TASKS["mrpc"], 0) == "0"
    assert format_prediction(TASKS["mnli"], 2) == "contradiction"
    assert format_prediction(TASKS["rte"], 1) == "not_entailment"
    assert format_prediction(TASKS["stsb"], 5.4321) == "5.000"
    assert format_prediction(TASKS["stsb"], -0.2) == "0.000"
    assert format_prediction(TASKS["stsb"], 2.71828) == "2.718"


def test_zip_from_real_test_files_passes_validate_allow_partial(tmp_path, good, real_glue):
    assert len(good) == 10 and "QQP.tsv" not in good
    result = validate(tmp_path, good, "--allow-partial", "--data-dir", str(real_glue))
    assert result.exit_code == 0, result.output
    assert "valid: 10 files" in result.output and "AX.tsv: ok" in result.output
    strict = validate(tmp_path, good, "--data-dir", str(real_glue))
    assert strict.exit_code == 1 and "missing QQP.tsv" in strict.output


def replace_line(text: str, lineno: int, new: str) -> str:
    lines = text.split("\n")
    lines[lineno - 1] = new
    return "\n".join(lines)


CORRUPTIONS = {
    "missing file": (lambda m: {k: v for k, v in m.items() if k != "RTE.tsv"}, "zip: missing QQP.tsv, RTE.tsv"),
    "extra file": (lambda m: {**m, "notes.txt": "hi"}, "unexpected file 'notes.txt'"),
    "wrong case": (lambda m: {**{k: v for k, v in m.items() if k != "CoLA.tsv"}, "cola.tsv": m["CoLA.tsv"]},
                   "unexpected file 'cola.tsv'"),
    "folder": (lambda m: {**{k: v for k, v in m.items() if k != "RTE.tsv"}, "glue/RTE.tsv": m["RTE.tsv"]},
               "is in a folder; the zip must be flat"),
    "dot-dot": (lambda m: {**m, "../evil.tsv": "x"}, "unsafe member name '../evil.tsv'"),
    "absolute": (lambda m: {**m, "/etc/evil.tsv": "x"}, "unsafe member name '/etc/evil.tsv'"),
    "header": (lambda m: {**m, "SST-2.tsv": m["SST-2.tsv"].replace("index\tprediction", "id\tlabel", 1)},
               "SST-2.tsv: header is 'id\\tlabel'"),
    "row missing": (lambda m: {**m, "MRPC.tsv": m["MRPC.tsv"].rsplit("\n", 2)[0] + "\n"},
                    "MRPC.tsv: 1724 rows, expected 1725"),
    "duplicate index": (lambda m: {**m, "RTE.tsv": replace_line(m["RTE.tsv"], 3, "0\tentailment")},
                        "RTE.tsv: line 3: index 0 appears twice"),
    "index out of range": (lambda m: {**m, "WNLI.tsv": replace_line(m["WNLI.tsv"], 2, "999\t0")},
                           "WNLI.tsv: 1 indices missing (first 0); 1 unexpected indices (first 999)"),
    "label names for binary": (lambda m: {**m, "CoLA.tsv": m["CoLA.tsv"].replace("\t1\n", "\tacceptable\n")},
                               "CoLA.tsv: line 3: 'acceptable' not in {0, 1}"),
    "ids for MNLI": (lambda m: {**m, "MNLI-m.tsv": replace_line(m["MNLI-m.tsv"], 5, "3\t2")},
                     "MNLI-m.tsv: line 5: '2' not in {contradiction, entailment, neutral}"),
    "AX vocabulary": (lambda m: {**m, "AX.tsv": replace_line(m["AX.tsv"], 2, "0\tnot_entailment")},
                      "AX.tsv: line 2: 'not_entailment' not in"),
    "STS-B above 5": (lambda m: {**m, "STS-B.tsv": replace_line(m["STS-B.tsv"], 2, "0\t5.200")},
                      "STS-B.tsv: line 2: '5.200' is not a number in [0, 5]"),
    "STS-B negative": (lambda m: {**m, "STS-B.tsv": replace_line(m["STS-B.tsv"], 4, "2\t-0.100")},
                       "STS-B.tsv: line 4: '-0.100' is not a number"),
    "STS-B NaN": (lambda m: {**m, "STS-B.tsv": replace_line(m["STS-B.tsv"], 3, "1\tnan")},
                  "STS-B.tsv: line 3: 'nan' is not a number"),
    "STS-B text": (lambda m: {**m, "STS-B.tsv": replace_line(m["STS-B.tsv"], 3, "1\thigh")},
                   "STS-B.tsv: line 3: 'high' is not a number"),
    "empty file": (lambda m: {**m, "QNLI.tsv": ""}, "QNLI.tsv: empty file"),
    "extra column": (lambda m: {**m, "SST-2.tsv": replace_line(m["SST-2.tsv"], 2, "0\t1\t0.9")},
                     "SST-2.tsv: line 2: 3 columns, expected 2"),
    "index not a number": (lambda m: {**m, "RTE.tsv": replace_line(m["RTE.tsv"], 2, "zero\tentailment")},
                           "RTE.tsv: line 2: index 'zero' is not an integer"),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_each_corruption_is_rejected_naming_the_problem(tmp_path, good, real_glue, name):
    corrupt, message = CORRUPTIONS[name]
    complete = {**good, "QQP.tsv": "index\tprediction\n"}  # the real QQP test file is not here
    result = validate(tmp_path, corrupt(good if name == "missing file" else complete),
                      "--data-dir", str(real_glue), *(["--allow-partial"] if name != "missing file" else []))
    assert result.exit_code == 1
    assert message in result.output, result.output


def test_not_a_zip_and_oversized_members(tmp_path, good, monkeypatch):
    result = validate(tmp_path, b"this is not a zip", "--allow-partial")
    assert result.exit_code == 1 and "not a readable zip file" in result.output
    monkeypatch.setattr("glue_bench.report.submission.MAX_MEMBER_BYTES", 1000)
    result = validate(tmp_path, {"RTE.tsv": good["RTE.tsv"]}, "--allow-partial")
    assert result.exit_code == 1 and "over the 1000" in result.output
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for i in range(70):
            z.writestr(f"f{i}.tsv", "x")
    result = validate(tmp_path, buffer.getvalue(), "--allow-partial")
    assert result.exit_code == 1 and "70 members" in result.output


def fake_job(folder: Path, task: str, score: float, real_glue: Path, seed: int = 1, method: str = "full") -> None:
    """A done job folder with test predictions for every test split of `task`, read from the real files."""
    from glue_bench.tasks import TASKS

    t = TASKS[task]
    folder.mkdir(parents=True)
    atomic_write_json(folder / "spec.json", {"task": task, "model": "m", "method": method, "seed": seed,
                                             "learning_rate": 3e-5})
    (folder / "predictions").mkdir()
    rows = {}
    for split in t.dev_splits:
        (folder / "predictions" / f"{split}.tsv").write_text("idx\tprediction\tlabel\n0\t1\t1\n")
        rows[split] = 1
    for split in t.test_splits:
        idx = read_split(t, split, real_glue).columns["idx"]
        value = 7.5 if t.is_regression else 1
        (folder / "predictions" / f"{split}.tsv").write_text(
            "idx\tprediction\n" + "".join(f"{i}\t{value}\n" for i in reversed(idx)))
        rows[split] = len(idx)
    atomic_write_json(folder / "metrics.json", {
        "schema_version": 1, "job_id": folder.name, "task": task, "method": method,
        "dev": {s: {m: score} for s, m in t.score}, "task_score": score, "predictions": rows,
        "spec": {"predict_test": True}})


def test_submit_best_dev_writes_a_valid_zip_and_the_choice(tmp_path, real_glue):
    results = tmp_path / "results"
    fake_job(results / "rte-1", "rte", 0.6, real_glue, seed=1)
    fake_job(results / "rte-2", "rte", 0.7, real_glue, seed=2)
    fake_job(results / "stsb-1", "stsb", 0.8, real_glue)
    fake_job(results / "mnli-1", "mnli", 0.8, real_glue)
    out = tmp_path / "sub.zip"
    refused = runner.invoke(app, ["submit", str(results), "--out", str(out)])
    assert refused.exit_code == 1 and "CoLA: no done job" in refused.output and not out.exists()
    result = runner.invoke(app, ["submit", str(results), "--out", str(out), "--allow-partial", "--wnli",
                                 "majority", "--data-dir", str(real_glue)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(out) as z:
        names = sorted(z.namelist())
        stsb = z.read("STS-B.tsv").decode().splitlines()
        rte = z.read("RTE.tsv").decode().splitlines()
        wnli = z.read("WNLI.tsv").decode().splitlines()
    assert names == sorted(["RTE.tsv", "STS-B.tsv", "MNLI-m.tsv", "MNLI-mm.tsv", "AX.tsv", "WNLI.tsv"])
    assert stsb[:2] == ["index\tprediction", "0\t5.000"]  # sorted by index, clipped, %.3f
    assert rte[1] == "0\tnot_entailment" and len(rte) == 3001
    assert set(wnli[1:]) == {f"{i}\t0" for i in range(146)}
    choice = (tmp_path / "sub.json").read_text()
    assert '"job": "rte-2"' in choice and "left out" in result.output
    check = runner.invoke(app, ["validate", str(out), "--allow-partial", "--data-dir", str(real_glue)])
    assert check.exit_code == 0, check.output


def test_submit_of_a_method_the_sweep_never_had_names_what_it_has_and_writes_nothing(tmp_path):
    results = tmp_path / "results" / "s"
    write_done_job(results, rte(), 0.6)
    out = tmp_path / "sub.zip"
    result = invoke("submit", str(results), "--method", "nosuch", "--allow-partial", "--out", str(out))
    assert result.exit_code == 1 and "--method 'nosuch': choose one of full, houlsby" in result.output
    result = invoke("submit", str(results), "--method", "pfeiffer", "--allow-partial", "--out", str(out))
    assert result.exit_code == 1
    assert "no done job of pfeiffer" in result.output and "it has full" in result.output
    result = invoke("submit", str(results), "--method", "houlsby", "--bottleneck", "8", "--allow-partial",
                    "--out", str(out))
    assert result.exit_code == 1 and "no done job of houlsby m=8" in result.output
    assert not out.exists() and not out.with_suffix(".json").exists()


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


def test_submit_on_a_partial_sweep_is_one_line_that_names_allow_partial(tmp_path):
    results = tmp_path / "results" / "s"
    write_done_job(results, rte(), 0.6)
    result = invoke("submit", str(results), "--out", str(tmp_path / "sub.zip"))
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert "--allow-partial" in lines[0] and "CoLA: no done job" in lines[0]
    assert not (tmp_path / "sub.zip").exists()
