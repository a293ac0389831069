"""Planning (glue_bench/plan/): the sweep file, its keys and their checks, its expansion into job specs, and the
jobs folder `glue-bench plan` writes (`glue-bench sweep --dry-run` included)."""

import json
import os
from pathlib import Path

import pytest
import yaml
from conftest import glue_bench, invoke
from tiny import MINILM
from typer.testing import CliRunner

from glue_bench.cli import app
from glue_bench.errors import GlueBenchError
from glue_bench.plan.manifest import plan_sweep
from glue_bench.plan.sweep_file import GRID_KEYS, expand_sweep, job_size, load_sweep, parse_sweep
from glue_bench.spec import GRID_FIELDS

ROOT = Path(__file__).resolve().parents[1]


def sweep(**kw) -> dict:
    return {"name": "s", "model": MINILM, "tasks": ["rte", "mrpc"],
            "methods": {"full": {"learning_rate": [3e-5]},
                        "houlsby": {"bottleneck": [8, 64], "learning_rate": "3e-4"}},
            "epochs": [3, 20], "seeds": [1, 2], **kw}


def test_expansion_is_the_product_of_the_grid():
    jobs = expand_sweep(parse_sweep(sweep()))
    # 2 tasks x (full 1 + houlsby 2 sizes) x 2 epochs x 2 seeds
    assert len(jobs) == 2 * 3 * 2 * 2
    assert len({j.job_id for j in jobs}) == len(jobs)
    assert {j.learning_rate for j in jobs if j.method == "houlsby"} == {3e-4}  # "3e-4" read as a number
    assert all(j.bottleneck is None for j in jobs if j.method == "full")


def test_task_overrides_win():
    jobs = expand_sweep(parse_sweep(sweep(task_overrides={"rte": {"epochs": [20]}})))
    assert {j.epochs for j in jobs if j.task == "rte"} == {20}
    assert {j.epochs for j in jobs if j.task == "mrpc"} == {3, 20}


def test_shipped_sweep_files_load_and_expand():
    paper = expand_sweep(load_sweep(ROOT / "jobs" / "houlsby-vs-full.yaml"))
    assert len(paper) == 9 * (1 + 3) * 3 * 2 * 3
    assert {j.bottleneck for j in paper} == {None, 8, 64, 256}
    assert {j.learning_rate for j in paper} == {3e-5, 3e-4, 3e-3}
    demo = expand_sweep(load_sweep(ROOT / "jobs" / "demo.yaml"))
    assert demo and all(j.model == "sentence-transformers/all-MiniLM-L6-v2" for j in demo)
    assert max(job_size(j) for j in demo) == 2000


@pytest.mark.parametrize(("change", "message"), [
    ({"epochs": "many"}, "sweep key epochs: bad value 'many'"),
    ({"tasks": ["rte", "squad"]}, "sweep key tasks: bad value"),
    ({"methods": {"prefix": {}}}, "sweep key methods: bad value 'prefix'"),
    ({"methods": {"houlsby": {"bottlenek": 8}}}, "sweep key methods.houlsby.bottlenek: unknown key"),
    ({"learning_rate": "fast"}, "sweep key learning_rate: bad value 'fast'"),
    ({"colour": "red"}, "sweep key colour: unknown key"),
    ({"gpus_per_job": -1}, "sweep key gpus_per_job: bad value -1"),
    ({"name": "a/b"}, "sweep key name: bad value 'a/b'"),
    ({"seeds": []}, "sweep key seeds: bad value []"),
    ({"methods": {"houlsby": {"bottleneck": 0}}}, "sweep key methods.houlsby.bottleneck: bad value 0"),
])
def test_sweep_errors_name_the_key_and_value(change, message):
    with pytest.raises(GlueBenchError) as e:
        expand_sweep(parse_sweep(sweep(**change)))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_sweep_file_errors_are_one_line_in_the_cli(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmodel: m\nmethods: {full: {}}\nepochs: [3, oops]\n")
    result = CliRunner().invoke(app, ["plan", str(bad), "--jobs-dir", str(tmp_path / "jobs")])
    assert result.exit_code == 1
    expected = "error: sweep key epochs: bad value 'oops' (must be an integer)"
    assert result.output.strip().splitlines() == [expected]
    bad.write_text("name: x\n  model: [\n")
    result = CliRunner().invoke(app, ["plan", str(bad)])
    assert result.exit_code == 1 and "not valid YAML" in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.fixture
def data_env(real_glue, monkeypatch):
    monkeypatch.setenv("GLUE_DATA_DIR", str(real_glue))


def test_replanning_is_a_no_op_and_a_new_seed_adds_jobs(tmp_path, data_env):
    s = parse_sweep(sweep())
    first = plan_sweep(s, tmp_path / "jobs", tmp_path / "results")
    assert len(first.written) == 24 and first.manifest_changed
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "jobs" / "s").iterdir()}
    again = plan_sweep(s, tmp_path / "jobs", tmp_path / "results")
    assert again.written == [] and len(again.unchanged) == 24 and not again.manifest_changed
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "jobs" / "s").iterdir()} == stamps
    more = plan_sweep(parse_sweep(sweep(seeds=[1, 2, 3])), tmp_path / "jobs", tmp_path / "results")
    assert len(more.written) == 12 and len(more.unchanged) == 24
    fewer = plan_sweep(parse_sweep(sweep(seeds=[1])), tmp_path / "jobs", tmp_path / "results")
    assert len(fewer.retired) == 24 and len(fewer.jobs) == 12
    manifest = json.loads((tmp_path / "jobs" / "s" / "manifest.json").read_text())
    assert len(manifest["jobs"]) == 12
    assert manifest["results_dir"] == str((tmp_path / "results" / "s").resolve())
    assert len(list((tmp_path / "jobs" / "s" / "retired").glob("*.json"))) == 24


def test_plan_refuses_missing_data_or_skips_it(tmp_path, data_env):
    s = parse_sweep(sweep(tasks=["rte", "qnli", "qqp"]))
    with pytest.raises(GlueBenchError, match=r"QNLI: missing QNLI/train.tsv in .*--skip-missing"):
        plan_sweep(s, tmp_path / "jobs", tmp_path / "results")
    assert not (tmp_path / "jobs").exists()
    result = plan_sweep(s, tmp_path / "jobs", tmp_path / "results", skip_missing=True)
    assert set(result.skipped) == {"qnli", "qqp"} and {j.task for j in result.jobs} == {"rte"}


def test_plan_checks_the_hub_when_no_folder_is_given(tmp_path, monkeypatch):
    monkeypatch.delenv("GLUE_DATA_DIR", raising=False)
    with pytest.raises(GlueBenchError, match="cannot reach nyu-mll/glue/rte on the Hugging Face hub"):
        plan_sweep(parse_sweep(sweep(tasks=["rte"])), tmp_path / "jobs", tmp_path / "results")


def test_dry_run_writes_nothing(tmp_path, data_env):
    result = plan_sweep(parse_sweep(sweep()), tmp_path / "jobs", tmp_path / "results", dry_run=True)
    assert len(result.written) == 24 and not (tmp_path / "jobs").exists()


def test_relative_paths_in_a_sweep_file_are_made_absolute(tmp_path, real_glue):
    os.symlink(real_glue, tmp_path / "glue")
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(sweep(data="./glue")))
    assert load_sweep(tmp_path / "s.yaml").data == str((tmp_path / "glue").resolve())


def test_grid_keys_come_from_the_spec_fields():
    assert GRID_KEYS is GRID_FIELDS
    assert GRID_KEYS["seeds"] == "seed"
    for name in ("max_grad_norm", "data_seed", "group_by_length", "zero_stage", "max_eval_samples"):
        assert GRID_KEYS[name] == name
    for name in ("task", "model", "data", "num_gpus", "tags", "wandb"):
        assert name not in GRID_KEYS


def test_a_sweep_without_gpus_per_job_is_auto():
    sweep = parse_sweep({"name": "s", "model": "m", "tasks": ["rte"], "methods": ["full"]})
    assert sweep.gpus_per_job == "auto"


def test_jobs_per_gpu_key_is_validated(tmp_path):
    base = {"name": "s", "model": "bert-base-uncased", "methods": ["full"]}
    assert parse_sweep({**base, "jobs_per_gpu": 4}).jobs_per_gpu == 4
    assert parse_sweep(base).jobs_per_gpu == 1
    with pytest.raises(GlueBenchError, match="sweep key jobs_per_gpu: bad value 0"):
        parse_sweep({**base, "jobs_per_gpu": 0})


def test_sweep_keys_that_would_be_dropped_are_refused():
    with pytest.raises(GlueBenchError, match="methods.full.bottleneck.*it applies to houlsby, pfeiffer"):
        parse_sweep({"name": "s", "model": "m", "tasks": ["rte"], "methods": {"full": {"bottleneck": 8}}})
    with pytest.raises(GlueBenchError, match="task_overrides.*not a task of this sweep"):
        parse_sweep({"name": "s", "model": "m", "tasks": ["rte"], "methods": ["full"],
                     "task_overrides": {"cola": {"epochs": 2}}})


def methods_sweep(**methods) -> dict:
    return {"name": "s", "model": "bert-base-uncased", "tasks": ["rte"], "methods": methods}


@pytest.mark.parametrize(("data", "message"), [
    (methods_sweep(lora={"rank": 8, "bottleneck": 64}),
     "sweep key methods.lora.bottleneck: bad value 64 (bottleneck is not a parameter of lora; it applies to "
     "houlsby, pfeiffer)"),
    (methods_sweep(houlsby={"bottleneck": 8, "rank": [4, 8]}), "sweep key methods.houlsby.rank"),
    ({**methods_sweep(full={}, houlsby={"bottleneck": 8}), "rank": 8}, "sweep key rank: bad value 8 (rank is not a "
                                                                       "parameter of full, houlsby"),
    (methods_sweep(lora={}), "lora needs rank"),
])
def test_sweep_refuses_method_parameters_that_do_not_apply(data, message):
    with pytest.raises(GlueBenchError) as e:
        expand_sweep(parse_sweep(data))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_top_level_method_parameters_go_to_the_methods_that_have_them():
    jobs = expand_sweep(parse_sweep({**methods_sweep(full={}, houlsby={"bottleneck": 8}, lora={"rank": 8},
                                                     pfeiffer={"bottleneck": 48}),
                                     "non_linearity": "relu", "train_pooler": True}))
    by = {j.method: j for j in jobs}
    assert by["houlsby"].non_linearity == by["pfeiffer"].non_linearity == "relu"
    assert by["full"].non_linearity == "gelu" and not by["full"].train_pooler
    assert by["lora"].train_pooler and by["houlsby"].train_pooler
    assert by["pfeiffer"].job_id.startswith("rte-pfeiffer-m48-pooler-")


def test_plan_checks_the_model(tmp_path, real_glue):
    sweep = parse_sweep({"name": "s", "model": str(tmp_path / "missing"), "data": str(real_glue), "tasks": ["rte"],
                         "methods": ["full"]})
    with pytest.raises(GlueBenchError, match="no such folder"):
        plan_sweep(sweep, tmp_path / "jobs", tmp_path / "results")
    assert not (tmp_path / "jobs").exists()


def test_plan_dry_run_says_nothing_was_written(tiny_bert, real_glue, tmp_path):
    sweep = {"name": "x", "model": str(tiny_bert), "data": str(real_glue), "tasks": ["rte"], "methods": ["full"]}
    (tmp_path / "x.yaml").write_text(yaml.safe_dump(sweep))
    result = invoke("plan", str(tmp_path / "x.yaml"), "--jobs-dir", str(tmp_path / "jobs"), "--dry-run")
    assert result.exit_code == 0 and "nothing written" in result.output
    assert not (tmp_path / "jobs").exists()


def test_sweep_dry_run_needs_no_earlier_plan_and_writes_nothing(tiny_bert, real_glue, tmp_path):
    sweep = {"name": "x", "model": str(tiny_bert), "data": str(real_glue), "tasks": ["rte"], "methods": ["full"],
             "predict_test": False, "gpus_per_job": 0}
    (tmp_path / "x.yaml").write_text(yaml.safe_dump(sweep))
    proc = glue_bench("sweep", "x.yaml", "--dry-run", cwd=tmp_path)
    assert "nothing written" in proc.stdout and "would run 1 jobs on 1 CPU slot(s)" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.yaml"]


def test_plan_and_sweep_given_a_planned_folder_point_to_run(tmp_path, data_env):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(sweep()))
    assert invoke("plan", str(tmp_path / "s.yaml"), "--jobs-dir", str(tmp_path / "jobs"),
                  "--results-dir", str(tmp_path / "results")).exit_code == 0
    for command in ("plan", "sweep"):
        result = invoke(command, str(tmp_path / "jobs" / "s"))
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 1 and len(lines) == 1, result.output
        assert "is a planned sweep" in lines[0] and f"glue-bench run {tmp_path / 'jobs' / 's'}" in lines[0]
    result = invoke("plan", str(tmp_path))
    assert result.exit_code == 1 and "is a folder: give a sweep YAML file" in result.output


def test_an_empty_task_list_is_one_plain_message():
    with pytest.raises(GlueBenchError) as e:
        parse_sweep(sweep(tasks=[]))
    assert str(e.value) == "sweep key tasks: bad value [] (empty list)"


def test_plan_says_which_seeds_it_planned(tmp_path, data_env):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(sweep(seeds=3)))
    result = invoke("plan", str(tmp_path / "s.yaml"), "--jobs-dir", str(tmp_path / "jobs"), "--dry-run")
    assert "seed 3)" in result.output  # `seeds: 3` is the seed 3, not three seeds
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(sweep(seeds=[1, 2])))
    result = invoke("plan", str(tmp_path / "s.yaml"), "--jobs-dir", str(tmp_path / "jobs"), "--dry-run")
    assert "seeds 1, 2)" in result.output


def test_plan_refuses_an_uncached_hub_model_offline_but_prices_a_known_one(tmp_path, data_env):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(sweep(model="bert-base-uncased")))
    args = ["plan", str(tmp_path / "s.yaml"), "--jobs-dir", str(tmp_path / "jobs")]
    result = invoke(*args)
    assert result.exit_code == 1 and "not in the local hub cache" in result.output
    assert not (tmp_path / "jobs").exists()
    priced = invoke(*args, "--dry-run", "--estimate")
    assert priced.exit_code == 0, priced.output
    assert "| total |" in priced.output


def test_a_sequence_length_beyond_the_models_positions_is_refused_by_plan_and_train(tmp_path, tiny_bert, real_glue):
    """The tiny BERT has 130 position embeddings: 256 tokens would fail inside the model, minutes later."""
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"name": "s", "model": str(tiny_bert), "data": str(real_glue),
                                                     "tasks": ["rte"], "methods": ["full"],
                                                     "max_seq_length": [128, 256]}))
    result = invoke("plan", str(tmp_path / "s.yaml"), "--jobs-dir", str(tmp_path / "jobs"))
    assert result.exit_code == 1 and "max_seq_length 256" in result.output and "at most 130" in result.output
    assert not (tmp_path / "jobs").exists()
    result = invoke("train", "--model", str(tiny_bert), "--task", "rte", "--data-dir", str(real_glue),
                    "--max-seq-length", "256", "--output-dir", str(tmp_path / "o"))
    assert result.exit_code == 1 and "at most 130 tokens" in result.output and not (tmp_path / "o").exists()


def test_a_second_sweep_file_with_the_same_name_does_not_retire_the_firsts_jobs(tmp_path, data_env):
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_text(yaml.safe_dump(sweep()))
    assert invoke("plan", str(tmp_path / "a.yaml"), "--jobs-dir", str(tmp_path / "jobs")).exit_code == 0
    before = sorted(p.name for p in (tmp_path / "jobs" / "s").iterdir())
    result = invoke("plan", str(tmp_path / "b.yaml"), "--jobs-dir", str(tmp_path / "jobs"))
    assert result.exit_code == 1 and f"was planned from {tmp_path / 'a.yaml'}" in result.output
    assert sorted(p.name for p in (tmp_path / "jobs" / "s").iterdir()) == before
    assert invoke("plan", str(tmp_path / "a.yaml"), "--jobs-dir", str(tmp_path / "jobs")).exit_code == 0
