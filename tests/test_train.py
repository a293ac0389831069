"""Training for real (glue_bench/train/recipe.py through `glue-bench train` and `predict`): tiny random BERT, real
DeepSpeed, real GLUE files, the real CLI in subprocesses. Houlsby on one and two processes, ZeRO 0 and 2, crashes
and signals resumed; then every other method trained, process count x ZeRO stage pairwise over them: lora 1 x 0,
pfeiffer 1 x 2, bitfit 2 x 0, ia3 2 x 2."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import glue_bench
from safetensors.torch import load_file
from train_runs import SST2, start_job, train_args, wait_for

from glue_bench.results.job_folder import is_done, prediction_rows, umask


def read_metrics(out: Path) -> dict:
    return json.loads((out / "metrics.json").read_text())


def history(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def sst2_run(tmp_path_factory, tiny_bert, real_glue) -> Path:
    out = tmp_path_factory.mktemp("sst2") / "job"
    glue_bench(*train_args(tiny_bert, real_glue, out, *SST2))
    return out


def fresh_model(model_dir: Path, spec_path: Path):
    from glue_bench.spec import JobSpec
    from glue_bench.tasks import get_task
    from glue_bench.train.methods import apply_method
    from glue_bench.train.models import load_model
    from glue_bench.train.runtime import seed_everything

    spec = JobSpec.load(spec_path)
    seed_everything(spec.seed)
    model = load_model(str(model_dir), get_task(spec.task))
    apply_method(model, spec)
    return model


def test_single_process_houlsby_job(sst2_run, tiny_bert):
    from glue_bench.train.provenance import frozen_digest

    m = read_metrics(sst2_run)
    assert is_done(sst2_run)
    assert m["predictions"] == {"dev": 96, "test": 1821}
    assert prediction_rows(sst2_run / "predictions" / "test.tsv") == 1821
    assert m["eval_examples"] == {"dev": 96} and m["train_examples"] == 512
    assert m["parameters"]["trainable"] == 2594
    assert sum(m["train_label_distribution"]["counts"]) == 512
    assert m["provenance"]["data"]["train"]["sha256"].startswith("48eac26399f84569")
    assert m["distributed"]["eval_rows_per_rank"] == {"dev": [96]}
    assert not (sst2_run / "checkpoints").exists()  # removed when done
    # frozen weights bit-identical; every trainable tensor changed; the adapter holds only trainable tensors
    fresh = fresh_model(tiny_bert, sst2_run / "spec.json")
    assert m["frozen_parameters_sha256"] == frozen_digest(fresh)
    adapter = load_file(str(sst2_run / "adapter.safetensors"))
    trainable = {n: p for n, p in fresh.named_parameters() if p.requires_grad}
    assert set(adapter) == set(trainable)
    assert all(not torch.equal(adapter[n], p.detach()) for n, p in trainable.items())
    steps = [r for r in history(sst2_run) if "train/loss" in r]
    # every 10 steps, and at each epoch's end (steps 32 and 64)
    assert [r["step"] for r in steps] == [10, 20, 30, 32, 40, 50, 60, 64]
    assert all(r["train/grad_norm"] > 0 for r in steps)
    assert len([r for r in history(sst2_run) if "eval/task_score" in r]) == 2
    start = next(r for r in history(sst2_run) if r.get("event") == "start")
    assert start["fast_dropout"] is True  # CPU job: dropout.use_fast_dropout


def test_predict_from_saved_adapter_reproduces_dev_predictions(sst2_run, tmp_path):
    out = tmp_path / "dev.tsv"
    glue_bench("predict", "--checkpoint", str(sst2_run), "--task", "sst2", "--split", "dev", "--out", str(out))
    full = dict(line.split("\t")[:2] for line in out.read_text().splitlines()[1:])
    assert len(full) == 872
    saved = [line.split("\t")[:2] for line in (sst2_run / "predictions" / "dev.tsv").read_text().splitlines()[1:]]
    assert all(full[i] == p for i, p in saved)


def test_crash_after_epoch_one_resumes_to_identical_predictions(sst2_run, tiny_bert, real_glue, tmp_path):
    out = tmp_path / "job"
    proc = start_job(train_args(tiny_bert, real_glue, out, *SST2))
    wait_for(lambda: (out / "checkpoints" / "last-00000032").is_dir() or proc.poll() is not None)
    proc.send_signal(signal.SIGSTOP)  # freeze, then die like a crashed machine
    proc.kill()
    proc.wait()
    assert not is_done(out)
    glue_bench(*train_args(tiny_bert, real_glue, out, *SST2))
    resumes = [r for r in history(out) if r.get("event") == "resume"]
    assert resumes and resumes[0]["step"] == 32
    for split in ("dev", "test"):
        assert (out / "predictions" / f"{split}.tsv").read_text() == \
            (sst2_run / "predictions" / f"{split}.tsv").read_text()


def test_sigterm_mid_epoch_checkpoints_exits_75_and_resumes(sst2_run, tiny_bert, real_glue, tmp_path):
    out = tmp_path / "job"
    proc = start_job(train_args(tiny_bert, real_glue, out, *SST2))
    wait_for(lambda: any(r.get("step", 0) >= 40 for r in history(out)) if (out / "history.jsonl").exists()
             else proc.poll() is not None)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 75, proc.stderr.read()[-2000:]
    last = next((out / "checkpoints").glob("last-*"))
    assert int(last.name.split("-")[1]) % 32 != 0  # mid-epoch
    glue_bench(*train_args(tiny_bert, real_glue, out, *SST2))
    resumed, reference = read_metrics(out), read_metrics(sst2_run)
    assert resumed["dev"]["dev"]["accuracy"] == pytest.approx(reference["dev"]["dev"]["accuracy"], abs=1e-4)
    assert resumed["global_steps"] == reference["global_steps"] == 64


def test_two_processes_zero2_full_regression(tiny_bert, real_glue, tmp_path):
    out = tmp_path / "job"
    glue_bench(*train_args(tiny_bert, real_glue, out, "--task", "stsb", "--method", "full", "--learning-rate",
                           "1e-4", "--batch-size", "16", "--epochs", "1", "--max-train-samples", "128",
                           "--max-eval-samples", "64", "--num-procs", "2", "--zero-stage", "2"))
    m = read_metrics(out)
    assert is_done(out)
    assert m["distributed"]["world_size"] == 2 and m["distributed"]["zero_stage"] == 2
    assert m["distributed"]["eval_rows_per_rank"] == {"dev": [32, 32]}  # each rank its own shard
    sums = m["distributed"]["param_sums_per_rank"]
    assert len(sums) == 2 and sums[0] == sums[1]
    assert m["predictions"] == {"dev": 64, "test": 1379}
    assert (out / "model" / "model.safetensors").is_file()
    shared = 0o666 & ~umask()  # the weights follow the umask like every other result file (safetensors: 0600)
    assert {p.name: p.stat().st_mode & 0o777 for p in (out / "model").iterdir()} == \
        {p.name: shared for p in (out / "model").iterdir()}
    lines = (out / "predictions" / "test.tsv").read_text().splitlines()
    assert [int(x.split("\t")[0]) for x in lines[1:]] == list(range(1379))  # sorted, no duplicates
    pred = tmp_path / "dev.tsv"
    glue_bench("predict", "--checkpoint", str(out), "--task", "stsb", "--split", "dev", "--out", str(pred))
    again = dict(line.split("\t")[:2] for line in pred.read_text().splitlines()[1:])
    for line in (out / "predictions" / "dev.tsv").read_text().splitlines()[1:]:
        idx, value = line.split("\t")[:2]
        assert float(again[idx]) == pytest.approx(float(value), abs=1e-4)


def test_two_processes_zero0_mnli_with_ax(tiny_bert, fixture_glue, tmp_path):
    out = tmp_path / "job"
    glue_bench(*train_args(tiny_bert, fixture_glue, out, "--task", "mnli", "--method", "houlsby", "--bottleneck",
                           "4", "--learning-rate", "1e-3", "--batch-size", "8", "--epochs", "1", "--num-procs", "2",
                           "--log-every-steps", "50"))
    m = read_metrics(out)
    assert m["predictions"] == {"dev_matched": 24, "dev_mismatched": 24, "test_matched": 20,
                                "test_mismatched": 20, "ax": 12}
    assert set(m["dev"]) == {"dev_matched", "dev_mismatched"}
    assert m["task_score"] == pytest.approx((m["dev"]["dev_matched"]["accuracy"] +
                                             m["dev"]["dev_mismatched"]["accuracy"]) / 2)
    assert m["distributed"]["eval_rows_per_rank"] == {"dev_matched": [12, 12], "dev_mismatched": [12, 12]}
    assert len(set(m["distributed"]["param_sums_per_rank"])) == 1
    # the fixture's 96 MNLI rows, unasked: a warning; and a run shorter than log_every_steps still logs its loss
    assert "MNLI train has 96 rows, 0.0% of its official 392702" in (out / "train.log").read_text()
    assert m["global_steps"] == 12 and [r["step"] for r in history(out) if "train/loss" in r] == [12]


def test_zero2_crash_resume_is_exact(tiny_bert, real_glue, tmp_path):
    args = ("--task", "cola", "--method", "houlsby", "--bottleneck", "8", "--learning-rate", "1e-3",
            "--batch-size", "16", "--epochs", "2", "--max-train-samples", "512", "--max-eval-samples", "64",
            "--zero-stage", "2", "--no-predict-test")
    ref = tmp_path / "ref"
    glue_bench(*train_args(tiny_bert, real_glue, ref, *args))
    out = tmp_path / "job"
    proc = start_job(train_args(tiny_bert, real_glue, out, *args))
    wait_for(lambda: (out / "checkpoints" / "last-00000032").is_dir() or proc.poll() is not None)
    proc.send_signal(signal.SIGSTOP)
    proc.kill()
    proc.wait()
    glue_bench(*train_args(tiny_bert, real_glue, out, *args))
    assert [r for r in history(out) if r.get("event") == "resume"][0]["step"] == 32
    assert (out / "predictions" / "dev.tsv").read_text() == (ref / "predictions" / "dev.tsv").read_text()
    assert read_metrics(out)["predictions"] == {"dev": 64}


def test_missing_training_data_fails_with_one_line_and_error_json(tiny_bert, real_glue, tmp_path):
    # `glue-bench train` checks the data files before anything starts and writes nothing
    out = tmp_path / "job"
    proc = glue_bench(*train_args(tiny_bert, real_glue, out, "--task", "qnli", "--method", "full"), check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [f"error: QNLI: missing QNLI/train.tsv in {real_glue}"]
    assert not out.exists()
    # a job an executor starts (the per-rank entry point) records the failure for status and retries
    spec = {"task": "qnli", "model": str(tiny_bert), "data": str(real_glue), "method": "full", "max_seq_length": 64}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    proc = subprocess.run([sys.executable, "-m", "glue_bench.train", "--spec", str(tmp_path / "spec.json"),
                           "--output-dir", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "QNLI: missing QNLI/train.tsv" in proc.stderr
    error = json.loads((out / "error.json").read_text())
    assert error["type"] == "GlueBenchError" and error["attempt"] == 1
    assert not (out / "metrics.json").exists()


# -- every other method ------------------------------------------------------------------------------------

COMMON = ("--task", "sst2", "--batch-size", "16", "--epochs", "2", "--max-train-samples", "256",
          "--max-eval-samples", "96")
METHODS = {
    "lora": ("--method", "lora", "--rank", "4", "--alpha", "8", "--learning-rate", "3e-3"),
    "pfeiffer": ("--method", "pfeiffer", "--bottleneck", "8", "--non-linearity", "relu", "--learning-rate", "1e-3",
                 "--zero-stage", "2"),
    "bitfit": ("--method", "bitfit", "--learning-rate", "3e-3", "--num-procs", "2"),
    "ia3": ("--method", "ia3", "--learning-rate", "3e-3", "--num-procs", "2", "--zero-stage", "2"),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_bert, real_glue) -> dict[str, Path]:
    out = {}
    for method, args in METHODS.items():
        out[method] = tmp_path_factory.mktemp(method) / "job"
        glue_bench(*train_args(tiny_bert, real_glue, out[method], *COMMON, *args))
    return out


@pytest.mark.parametrize("method", list(METHODS))
def test_job_done_frozen_unchanged_and_only_trainable_saved(runs, tiny_bert, method):
    from glue_bench.train.provenance import frozen_digest

    out = runs[method]
    m = read_metrics(out)
    assert is_done(out) and m["predictions"] == {"dev": 96, "test": 1821}
    fresh = fresh_model(tiny_bert, out / "spec.json")
    assert m["frozen_parameters_sha256"] == frozen_digest(fresh)
    trainable = {n: p for n, p in fresh.named_parameters() if p.requires_grad}
    assert m["parameters"]["trainable"] == sum(p.numel() for p in trainable.values())
    adapter = load_file(str(out / "adapter.safetensors"))
    assert set(adapter) == set(trainable)
    assert all(not torch.equal(adapter[n], p.detach()) for n, p in trainable.items())
    assert not (out / "model").exists()
    if "--num-procs" in METHODS[method]:
        sums = m["distributed"]["param_sums_per_rank"]
        assert m["distributed"]["world_size"] == 2 and len(sums) == 2 and sums[0] == sums[1]


@pytest.mark.parametrize("method", list(METHODS))
def test_predict_from_the_checkpoint_reproduces_dev_predictions(runs, method, tmp_path):
    out = tmp_path / "dev.tsv"
    glue_bench("predict", "--checkpoint", str(runs[method]), "--task", "sst2", "--split", "dev", "--out", str(out))
    again = dict(line.split("\t")[:2] for line in out.read_text().splitlines()[1:])
    saved = [line.split("\t")[:2] for line in (runs[method] / "predictions" / "dev.tsv").read_text().splitlines()[1:]]
    assert len(saved) == 96 and all(again[i] == p for i, p in saved)


@pytest.mark.parametrize("method", ["lora", "ia3"])
def test_peft_folder_loads_with_peft_and_gives_the_same_logits(runs, tiny_bert, method):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    from glue_bench.results.job_folder import JobDir
    from glue_bench.spec import JobSpec
    from glue_bench.tasks import get_task
    from glue_bench.train.weights import load_weights

    folder = runs[method] / "peft"
    # peft's own save_pretrained writes the folder, its model card included
    assert {p.name for p in folder.iterdir()} == {"adapter_config.json", "adapter_model.safetensors", "README.md"}
    shared = 0o666 & ~umask()  # readable by colleagues sharing the results folder, as every result file
    assert all(p.stat().st_mode & 0o777 == shared for p in (*folder.iterdir(), runs[method] / "adapter.safetensors"))
    torch.manual_seed(123)  # a fresh random head: peft must restore the trained one
    base = AutoModelForSequenceClassification.from_pretrained(str(tiny_bert), num_labels=2)
    loaded = PeftModel.from_pretrained(base, str(folder)).eval()
    spec = JobSpec.load(runs[method] / "spec.json")
    ours, _ = load_weights(JobDir(runs[method]), spec, get_task("sst2"))
    ids = torch.tensor([[101, 2023, 2003, 1037, 2204, 3185, 102], [101, 6659, 102, 0, 0, 0, 0]])
    mask = (ids != 0).long()
    torch.testing.assert_close(loaded(input_ids=ids, attention_mask=mask).logits,
                               ours.eval()(input_ids=ids, attention_mask=mask).logits, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("method", ["lora", "pfeiffer"])
def test_sigterm_mid_epoch_then_rerun_matches_an_uninterrupted_run(runs, tiny_bert, real_glue, tmp_path, method):
    out = tmp_path / "job"
    args = train_args(tiny_bert, real_glue, out, *COMMON, *METHODS[method])
    proc = start_job(args)
    wait_for(lambda: any(r.get("step", 0) >= 20 for r in history(out)) if (out / "history.jsonl").exists()
             else proc.poll() is not None)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 75, proc.stderr.read()[-2000:]
    last = next((out / "checkpoints").glob("last-*"))
    assert int(last.name.split("-")[1]) % 16 != 0  # mid-epoch
    glue_bench(*args)
    resumed, reference = read_metrics(out), read_metrics(runs[method])
    assert [r for r in history(out) if r.get("event") == "resume"]
    for metric, value in reference["dev"]["dev"].items():
        assert resumed["dev"]["dev"][metric] == pytest.approx(value, abs=1e-4), metric
    assert resumed["global_steps"] == reference["global_steps"] == 32
