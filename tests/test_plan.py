import json
import os
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from glue_bench.cli import app
from glue_bench.errors import GlueBenchError
from glue_bench.plan.manifest import plan_sweep
from glue_bench.plan.sweep_file import expand_sweep, job_size, load_sweep, parse_sweep

ROOT = Path(__file__).resolve().parents[1]


def sweep(**kw) -> dict:
    return {"name": "s", "model": "bert-base-uncased", "tasks": ["rte", "mrpc"],
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
    expected = "error: sweep key epochs: bad value 'oops' (must be a positive integer)"
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


def test_gpu_slots_pack_jobs_and_pin_them():
    from glue_bench.run.local import Slot, job_command, job_environment, make_slots

    slots = make_slots([0, 1, 3], gpus_per_job=1, cpu_slots=None, procs_per_job=1)
    assert [(s.name, s.gpus) for s in slots] == [("gpu0", (0,)), ("gpu1", (1,)), ("gpu3", (3,))]
    pairs = make_slots([0, 1, 2, 3, 4], gpus_per_job=2, cpu_slots=None, procs_per_job=1)
    assert [s.gpus for s in pairs] == [(0, 1), (2, 3)]  # GPU 4 alone cannot hold a 2-GPU job
    with pytest.raises(GlueBenchError, match="jobs need 2 GPU"):
        make_slots([0], gpus_per_job=2, cpu_slots=None, procs_per_job=1)
    env = job_environment(Slot("gpu2,3", gpus=(2, 3)), {"token": "t"}, 30)
    assert env["CUDA_VISIBLE_DEVICES"] == "2,3" and env["GLUE_BENCH_CLAIM_TOKEN"] == "t"
    first, second = job_command(Path("s.json"), Path("out"), 2), job_command(Path("s.json"), Path("out"), 2)
    assert first[1:3] == ["-m", "torch.distributed.run"] and "--nproc-per-node" in first
    port = first.index("--master-port") + 1
    assert first[port] != second[port]  # distinct master ports for concurrent jobs
    cpu = make_slots(None, gpus_per_job=0, cpu_slots=2, procs_per_job=1)
    assert [s.threads for s in cpu] == [max(1, (os.cpu_count() or 1) // 2)] * 2
