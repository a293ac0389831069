"""The control plane at sweep size: settings never merged, "done" by stat, fields declared once."""

import json
import time
from pathlib import Path

import pytest

from glue_bench.plan.sweep_file import GRID_KEYS, parse_sweep
from glue_bench.report.aggregate import select
from glue_bench.report.collect import collect
from glue_bench.results.job_folder import JobDir, atomic_write_json, is_done, write_prediction_file
from glue_bench.spec import FIELDS, GRID_FIELDS, JobSpec


def write_done_job(root: Path, spec: JobSpec, score: float, rows: int = 3, fingerprints: bool = True) -> Path:
    """A finished job's folder as train writes it (dev predictions only)."""
    job = JobDir(root / spec.job_id)
    job.write_spec(spec)
    lines = [f"{i}\t1\t1" for i in range(rows)]
    files = {"dev": write_prediction_file(job.prediction_path("dev"), "idx\tprediction\tlabel", lines)}
    metrics = {"schema_version": 1, "job_id": spec.job_id, "task": spec.task, "method": spec.method,
               "dev": {"dev": {"accuracy": score}}, "task_score": score, "predictions": {"dev": rows},
               "parameters": {"trainable": 10, "base_model": 10}, "spec": spec.to_dict()}
    if fingerprints:
        metrics["prediction_files"] = files
    atomic_write_json(job.metrics_path, metrics)
    return job.path


def rte(**kw) -> JobSpec:
    return JobSpec(task="rte", model="m", predict_test=False, **kw)


@pytest.mark.parametrize("change", [{"max_grad_norm": 0.5}, {"data_seed": 3}, {"group_by_length": False},
                                    {"zero_stage": 2}, {"max_eval_samples": 100}])
def test_report_never_merges_two_settings_that_differ_in_an_id_field(tmp_path, change):
    a, b = rte(), rte(**change)
    assert a.job_id != b.job_id and a.seed == b.seed
    write_done_job(tmp_path, a, 0.6)
    write_done_job(tmp_path, b, 0.7)
    selections = select(collect(tmp_path))
    assert len(selections) == 1  # one per (task, configuration): the better setting, alone
    assert [r.seed for r in selections[0].records] == [42]
    assert selections[0].mean_score == pytest.approx(0.7)


def test_seeds_of_one_setting_are_averaged(tmp_path):
    write_done_job(tmp_path, rte(seed=1), 0.6)
    write_done_job(tmp_path, rte(seed=2), 0.8)
    (selection,) = select(collect(tmp_path))
    assert [r.seed for r in selection.records] == [1, 2] and selection.mean_score == pytest.approx(0.7)


def test_setting_key_is_the_id_without_the_seed():
    assert rte(seed=1).setting_key == rte(seed=7).setting_key
    assert rte(num_gpus=4, log_every_steps=1).setting_key == rte().setting_key  # not in the id
    for name in ("max_grad_norm", "data_seed", "zero_stage", "max_eval_samples", "warmup_ratio"):
        default = FIELDS[name].default
        other = {"max_grad_norm": 0.5, "data_seed": 1, "zero_stage": 1, "max_eval_samples": 5,
                 "warmup_ratio": 0.2}[name]
        assert other != default
        assert rte(**{name: other}).setting_key != rte().setting_key, name


def test_done_is_a_stat_check_and_verify_reads_the_files(tmp_path):
    folder = write_done_job(tmp_path, rte(), 0.6, rows=1000)
    assert is_done(folder) and is_done(folder, verify=True)
    dev = folder / "predictions" / "dev.tsv"
    text = dev.read_text()
    dev.write_text(text.replace("\t1\t1\n", "\t0\t1\n", 1))  # same size, other content
    assert is_done(folder)  # the fast check sees sizes only
    assert not is_done(folder, verify=True)
    dev.write_text(text[:-10])  # a cut file
    assert not is_done(folder)


def test_done_does_not_read_prediction_files(tmp_path, monkeypatch):
    folder = write_done_job(tmp_path, rte(), 0.6)
    import glue_bench.results.job_folder as results

    def no_reading(path):
        raise AssertionError(f"read {path}")
    monkeypatch.setattr(results, "prediction_rows", no_reading)
    assert is_done(folder)


def test_results_written_before_the_fingerprints_stay_done_by_the_slow_check(tmp_path):
    folder = write_done_job(tmp_path, rte(), 0.6, fingerprints=False)
    assert is_done(folder)
    (folder / "predictions" / "dev.tsv").write_text("idx\tprediction\tlabel\n0\t1\t1\n")
    assert not is_done(folder)


def test_grid_keys_come_from_the_spec_fields():
    assert GRID_KEYS is GRID_FIELDS
    assert GRID_KEYS["seeds"] == "seed"
    for name in ("max_grad_norm", "data_seed", "group_by_length", "zero_stage", "max_eval_samples"):
        assert GRID_KEYS[name] == name
    for name in ("task", "model", "data", "num_gpus", "tags", "wandb"):
        assert name not in GRID_KEYS


def test_booleans_are_type_checked():
    with pytest.raises(Exception, match="predict_test='maybe'.*true or false"):
        JobSpec(task="rte", model="m", predict_test="maybe")
    with pytest.raises(Exception, match="keep_checkpoints"):
        JobSpec.from_dict({"task": "rte", "model": "m", "keep_checkpoints": "no"})
    sweep = parse_sweep({"name": "s", "model": "m", "tasks": ["rte"], "methods": ["full"], "group_by_length": "off"})
    from glue_bench.errors import GlueBenchError
    from glue_bench.plan.sweep_file import expand_sweep

    with pytest.raises(GlueBenchError, match="sweep key group_by_length"):
        expand_sweep(sweep)


def test_a_sweep_without_gpus_per_job_is_auto():
    sweep = parse_sweep({"name": "s", "model": "m", "tasks": ["rte"], "methods": ["full"]})
    assert sweep.gpus_per_job == "auto"


def test_error_json_has_one_writer_that_counts_attempts(tmp_path):
    job = JobDir(tmp_path / "j")
    job.log_path.parent.mkdir()
    job.log_path.write_text("line\n" * 100)
    assert job.write_exception(ValueError("bad\nsecond line")) == "ValueError: bad"
    assert job.record_exit(3, since=time.time() + 10) == "ExitCode: job process exited with 3"
    error = json.loads(job.error_path.read_text())
    assert error["attempt"] == 2 and len(error["log_tail"]) == 40
    # the job's own, newer error.json wins over the exit code an executor saw
    assert job.record_exit(1, since=0) == "ExitCode: job process exited with 3"


def test_a_sweep_without_gpus_per_job_runs_on_cpu_slots_when_no_gpu_is_visible(tiny_bert, real_glue, tmp_path):
    import yaml
    from conftest import glue_bench

    sweep = {"name": "auto", "model": str(tiny_bert), "data": str(real_glue), "tasks": ["rte"],
             "methods": ["full"], "max_train_samples": 16, "predict_test": False}
    (tmp_path / "auto.yaml").write_text(yaml.safe_dump(sweep))
    glue_bench("plan", "auto.yaml", cwd=tmp_path)
    proc = glue_bench("run", "jobs/auto", "--slots", "2", "--dry-run", cwd=tmp_path, env={"CUDA_VISIBLE_DEVICES": ""})
    assert "gpus_per_job auto: no GPU visible, jobs run on CPU slots" in proc.stdout
    assert "on 2 slot(s) (cpu0, cpu1)" in proc.stdout
    # an explicit value stays binding
    proc = glue_bench("run", "jobs/auto", "--gpus-per-job", "1", "--dry-run", cwd=tmp_path, check=False,
                      env={"CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 1 and "need 1 GPU(s) but 0 are visible" in proc.stderr


def test_slurm_reads_auto_as_one_gpu_per_job(tmp_path):
    from glue_bench.run.options import RunOptions
    from glue_bench.run.slurm import options_for

    atomic_write_json(tmp_path / "manifest.json", {"name": "s", "results_dir": str(tmp_path), "jobs": [],
                                                   "gpus_per_job": "auto"})
    assert options_for(tmp_path).gpus_per_job == 1
    assert options_for(tmp_path, RunOptions(executor="slurm", gpus_per_job=0)).gpus_per_job == 0


LIGHT = ("import sys; from glue_bench.cli import main; sys.argv = ['glue-bench', *sys.argv[1:]]\n"
         "try:\n    main()\nexcept SystemExit as e:\n"
         "    heavy = [m for m in ('torch', 'deepspeed', 'wandb', 'transformers') if m in sys.modules]\n"
         "    print('HEAVY', heavy); raise\n")


@pytest.mark.parametrize(("model", "why"), [
    ("/no/such/folder", "no such folder"), ("text", "no config.json"), ("gpt2", "model_type 'gpt2'"),
    ("bad//id", "neither a model folder nor a hub id")])
def test_a_bad_model_is_one_line_before_anything_heavy_and_writes_nothing(tmp_path, model, why):
    import subprocess
    import sys

    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "README.txt").write_text("not a model")
    (tmp_path / "gpt2").mkdir()
    (tmp_path / "gpt2" / "config.json").write_text('{"model_type": "gpt2"}')
    work = tmp_path / "work"
    work.mkdir()
    model = str(tmp_path / model) if model in ("text", "gpt2") else model
    proc = subprocess.run([sys.executable, "-c", LIGHT, "train", "--model", model, "--task", "rte"], cwd=work,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: model") and why in lines[0], proc.stderr
    assert "HEAVY []" in proc.stdout
    assert list(work.iterdir()) == []  # no results folder, no wandb run


def test_plan_checks_the_model(tmp_path, real_glue):
    from glue_bench.errors import GlueBenchError
    from glue_bench.plan.manifest import plan_sweep

    sweep = parse_sweep({"name": "s", "model": str(tmp_path / "missing"), "data": str(real_glue), "tasks": ["rte"],
                         "methods": ["full"]})
    with pytest.raises(GlueBenchError, match="no such folder"):
        plan_sweep(sweep, tmp_path / "jobs", tmp_path / "results")
    assert not (tmp_path / "jobs").exists()


def test_atomic_writes_honour_the_umask(tmp_path):
    import os

    from glue_bench.report.submission import write_zip

    old = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "metrics.json", {"a": 1})
        write_zip({"CoLA.tsv": "index\tprediction\n"}, tmp_path / "s.zip")
        assert (tmp_path / "metrics.json").stat().st_mode & 0o777 == 0o644
        assert (tmp_path / "s.zip").stat().st_mode & 0o777 == 0o644
        os.umask(0o077)
        atomic_write_json(tmp_path / "private.json", {"a": 1})
        assert (tmp_path / "private.json").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)


def test_a_copy_of_a_job_folder_is_not_a_second_seed(tmp_path):
    import shutil

    folder = write_done_job(tmp_path, rte(), 0.6)
    shutil.copytree(folder, tmp_path / "copy-of-the-job")
    (selection,) = select(collect(tmp_path))
    assert [r.seed for r in selection.records] == [42]


def test_sweep_keys_that_would_be_dropped_are_refused():
    from glue_bench.errors import GlueBenchError

    with pytest.raises(GlueBenchError, match="methods.full.bottleneck.*it applies to houlsby, pfeiffer"):
        parse_sweep({"name": "s", "model": "m", "tasks": ["rte"], "methods": {"full": {"bottleneck": 8}}})
    with pytest.raises(GlueBenchError, match="task_overrides.*not a task of this sweep"):
        parse_sweep({"name": "s", "model": "m", "tasks": ["rte"], "methods": ["full"],
                     "task_overrides": {"cola": {"epochs": 2}}})


@pytest.mark.parametrize(("args", "message"), [
    (["--slots", "-1"], "--slots -1: must be at least 1"), (["--slots", "0"], "--slots 0: must be at least 1"),
    (["--retries", "-2"], "--retries -2: must be 0 or more"), (["--executor", "nope"], "--executor 'nope'")])
def test_bad_run_options_are_one_line(tmp_path, args, message):
    from typer.testing import CliRunner

    from glue_bench.cli import app

    atomic_write_json(tmp_path / "manifest.json", {"name": "s", "results_dir": str(tmp_path / "r"), "jobs": []})
    result = CliRunner().invoke(app, ["run", str(tmp_path), "--dry-run", *args])
    assert result.exit_code == 1 and message in result.output, result.output


def test_sweep_dry_run_needs_no_earlier_plan_and_writes_nothing(tiny_bert, real_glue, tmp_path):
    import yaml
    from conftest import glue_bench

    sweep = {"name": "x", "model": str(tiny_bert), "data": str(real_glue), "tasks": ["rte"], "methods": ["full"],
             "predict_test": False, "gpus_per_job": 0}
    (tmp_path / "x.yaml").write_text(yaml.safe_dump(sweep))
    proc = glue_bench("sweep", "x.yaml", "--dry-run", cwd=tmp_path)
    assert "nothing written" in proc.stdout and "would run 1 jobs on 1 CPU slot(s)" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.yaml"]


def test_the_original_scripts_flags_are_accepted(tmp_path):
    from conftest import glue_bench

    proc = glue_bench("train", "--casing", "bert-base-uncased", "--bottleneck_size", "32", "--non_linearity", "gelu",
                      "--task", "mrpc", "--batch_size", "32", "--epochs", "10", "--max_seq_length", "128",
                      "--learning_rate", "3e-4", "--warmup_ratio", "0.1", "--saved_models_dir", "saved_models",
                      "--dry-run", cwd=tmp_path)
    assert '"method": "houlsby"' in proc.stdout and '"bottleneck": 32' in proc.stdout
    assert '"learning_rate": 0.0003' in proc.stdout and "into saved_models" in proc.stdout
    assert "--casing -> --model" in proc.stderr and "--method houlsby" in proc.stderr


def test_predict_reuses_the_glue_data_folder_the_job_was_trained_on(tmp_path, monkeypatch):
    from glue_bench.train.predict import trained_on

    spec = rte()  # data: auto
    folder = write_done_job(tmp_path, spec, 0.6)
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics["provenance"] = {"data": {"source": "glue_data", "folder": "/data/glue_data"}}
    atomic_write_json(folder / "metrics.json", metrics)
    monkeypatch.delenv("GLUE_DATA_DIR", raising=False)
    assert trained_on(folder, spec) == "/data/glue_data"
    assert trained_on(folder, spec.replace(data="/elsewhere")) == "/elsewhere"
    monkeypatch.setenv("GLUE_DATA_DIR", "/set/now")
    assert trained_on(folder, spec) == "auto"


def test_a_corrupt_metrics_json_is_reported_as_corrupt_not_unfinished(tmp_path):
    from glue_bench.report.aggregate import missing_jobs

    folder = write_done_job(tmp_path, rte(), 0.6)
    (folder / "metrics.json").write_text("{ not json")
    (record,) = collect(tmp_path)
    assert not record.done and "metrics.json is corrupt" in record.error
    assert missing_jobs([record])["unfinished"] == []


def test_an_unreachable_hub_fails_at_once_instead_of_retrying(tmp_path):
    import os
    import subprocess
    import sys

    code = ("from glue_bench.train.models import load_tokenizer\n"
            "try:\n    load_tokenizer('bert-base-uncased')\nexcept Exception as e:\n    print('ERR', e)\n")
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    env.update(HF_ENDPOINT="http://127.0.0.1:9", HF_HOME=str(tmp_path / "hf"))  # nothing listens on port 9
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert "ERR cannot load the tokenizer of 'bert-base-uncased'" in proc.stdout, proc.stdout + proc.stderr
    assert "Retry" not in proc.stderr, proc.stderr  # the hub client's five retries (about 45 s) are skipped
    assert "hub is unreachable" in proc.stderr


def test_a_runner_waiting_on_jobs_another_runner_holds_says_so(tmp_path):
    import os

    from glue_bench.results import claims
    from glue_bench.run.local import LocalExecutor, Slot

    spec = rte()
    atomic_write_json(tmp_path / "jobs" / "manifest.json", {
        "name": "s", "results_dir": str(tmp_path / "results"),
        "jobs": [{"id": spec.job_id, "task": "rte", "method": "full", "size": 1}]})
    claim = claims.try_claim(tmp_path / "results" / spec.job_id, runner_pid=os.getpid())  # "another runner"
    assert claim is not None
    said = []
    executor = LocalExecutor(tmp_path / "jobs", [Slot(name="cpu0")], on_event=lambda kind, msg: said.append(msg))
    assert executor.step() is True  # nothing to start here, but the job is not done: wait
    holder = claims.claim_summary(claim_dir(tmp_path, spec))
    assert said == [f"waiting for 1 job(s) that another runner holds ({holder})"]
    executor.step()
    assert len(said) == 1  # said once, not every poll


def claim_dir(root: Path, spec: JobSpec) -> Path:
    return root / "results" / spec.job_id
