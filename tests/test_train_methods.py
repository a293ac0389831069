"""Each new method trained for real (tiny random BERT, real DeepSpeed, real SST-2 files, the CLI in subprocesses).

Process count x ZeRO stage, pairwise over the methods: lora 1 x 0, pfeiffer 1 x 2, bitfit 2 x 0, ia3 2 x 2.
"""

import signal
from pathlib import Path

import pytest
import torch
from conftest import glue_bench
from safetensors.torch import load_file
from test_train import fresh_model, history, read_metrics, start_job, train_args, wait_for

from glue_bench.results.job_folder import is_done

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
    assert {p.name for p in folder.iterdir()} == {"adapter_config.json", "adapter_model.safetensors"}
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
