"""Every method on every encoder family: tiny random BERT, DeBERTa-v3-style and ModernBERT configs (no download),
each method trained for a few steps under real DeepSpeed on real SST-2 rows, one job per method and family (run
in one process to pay torch's and DeepSpeed's start-up once). Then: the frozen weights keep their hashes (PiSSA's
the rewritten base's), the trainable counts equal peft's own, peft's folder loads onto the original base with
`PeftModel.from_pretrained` and gives the same logits, AdaLoRA resumes exactly, and what cannot work is refused in
one line at plan time."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import glue_bench
from tiny import classifier, make_tiny_model, spec, tiny_config

from glue_bench.errors import GlueBenchError
from glue_bench.method_config import FAMILIES, METHODS
from glue_bench.spec import JobSpec

FAMILY_KINDS = ("bert", "deberta-v2", "modernbert")
ARGS = {
    "full": {}, "houlsby": {"bottleneck": 4}, "pfeiffer": {"bottleneck": 4},
    "lora": {"rank": 2, "loraplus_ratio": 4.0}, "bitfit": {}, "ia3": {}, "layernorm_head": {},
    "dora": {"rank": 2}, "pissa": {"rank": 2},
    "adalora": {"rank": 2, "init_rank": 4, "adalora_tinit": 1, "adalora_tfinal": 1},
    "vera": {"rank": 8, "head_learning_rate": 1e-2}, "fourierft": {"n_frequency": 16, "head_learning_rate": 1e-2},
    "boft": {"block_size": 4}, "oft": {"block_size": 4}, "hra": {"rank": 2}, "lntuning": {},
    "peft": {"peft_type": "LOKR", "peft_options": (("r", 2),)},
}
REFUSED = {("modernbert", "bitfit"): "has no bias in its encoder"}
PEFT_METHODS = [m for m in METHODS if FAMILIES[m].uses_peft]


def test_every_family_is_exercised():
    assert set(ARGS) == set(METHODS)


def job_spec(model: Path, method: str, data: Path, **extra) -> JobSpec:
    fields = {"task": "sst2", "model": str(model), "method": method, "data": str(data), "max_train_samples": 64,
              "max_eval_samples": 32, "batch_size": 16, "epochs": 1, "max_seq_length": 64, "predict_test": False,
              "learning_rate": 1e-3, "wandb": "disabled"}
    return JobSpec(**{**fields, **ARGS[method], **extra})


def run_jobs(jobs: list[tuple[JobSpec, Path]], folder: Path, env: dict | None = None) -> dict[str, int]:
    listing = folder / f"jobs-{len(list(folder.glob('jobs-*.json')))}.json"
    listing.write_text(json.dumps([[s.to_dict(), str(out)] for s, out in jobs]))
    proc = subprocess.run([sys.executable, str(Path(__file__).parent / "job_runner.py"), str(listing)],
                          capture_output=True, text=True, timeout=1200, env={**os.environ, **(env or {})})
    codes = dict(reversed(line.split(" ", 1)) for line in proc.stdout.splitlines() if line[:1].isdigit())
    return {out: int(code) for out, code in codes.items()} | {"returncode": proc.returncode,
                                                              "stderr": proc.stderr[-3000:]}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    return {kind: make_tiny_model(root / kind, kind) for kind in FAMILY_KINDS}


@pytest.fixture(scope="module")
def runs(models, real_glue, tmp_path_factory) -> dict[tuple[str, str], Path]:
    root = tmp_path_factory.mktemp("family-runs")
    jobs = {(kind, m): (job_spec(models[kind], m, real_glue), root / kind / m)
            for kind in FAMILY_KINDS for m in METHODS}
    codes = run_jobs(list(jobs.values()), root)
    assert codes["returncode"] == 0, codes["stderr"]
    for key, (_, out) in jobs.items():
        assert codes.get(str(out)) == (1 if key in REFUSED else 0), (key, codes["stderr"])
    return {key: out for key, (_, out) in jobs.items()}


def fresh(model_dir: Path, job: Path):
    """The job's model as it starts: the base with the method applied (peft's PiSSA rewrites the base here too)."""
    from glue_bench.tasks import get_task
    from glue_bench.train.methods import apply_method
    from glue_bench.train.models import load_model
    from glue_bench.train.runtime import seed_everything

    s = JobSpec.load(job / "spec.json")
    seed_everything(s.seed)
    model = load_model(str(model_dir), get_task("sst2"))
    apply_method(model, s)
    return model


@pytest.mark.parametrize("kind", FAMILY_KINDS)
@pytest.mark.parametrize("method", list(METHODS))
def test_each_method_trains_on_each_family_and_leaves_the_frozen_weights(runs, models, kind, method):
    from safetensors.torch import load_file

    from glue_bench.train.provenance import frozen_digest

    out = runs[kind, method]
    if (kind, method) in REFUSED:
        error = json.loads((out / "error.json").read_text())
        assert REFUSED[kind, method] in error["message"] and not (out / "metrics.json").exists()
        return
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["global_steps"] == 4 and metrics["predictions"] == {"dev": 32}
    start = fresh(models[kind], out)
    assert metrics["frozen_parameters_sha256"] == frozen_digest(start)
    trainable = {n: p.detach() for n, p in start.named_parameters() if p.requires_grad}
    assert metrics["parameters"]["trainable"] == sum(p.numel() for p in trainable.values())
    if method != "full":
        saved = load_file(str(out / "adapter.safetensors"))
        assert set(saved) == set(trainable)
        assert any(not torch.equal(saved[n], p) for n, p in trainable.items())


@pytest.mark.parametrize("kind", FAMILY_KINDS)
@pytest.mark.parametrize("method", PEFT_METHODS)
def test_peft_folder_loads_onto_the_original_base_with_the_same_logits(runs, models, kind, method):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    from glue_bench.results.job_folder import JobDir
    from glue_bench.tasks import get_task
    from glue_bench.train.weights import load_weights

    out = runs[kind, method]
    torch.manual_seed(123)  # a fresh random head: peft must restore the trained one
    base = AutoModelForSequenceClassification.from_pretrained(str(models[kind]), num_labels=2)
    loaded = PeftModel.from_pretrained(base, str(out / "peft")).eval()
    ours, _ = load_weights(JobDir(out), JobSpec.load(out / "spec.json"), get_task("sst2"))
    ids = torch.tensor([[101, 2023, 2003, 1037, 2204, 3185, 102], [101, 6659, 102, 0, 0, 0, 0]])
    mask = (ids != 0).long()
    torch.testing.assert_close(loaded(input_ids=ids, attention_mask=mask).logits,
                               ours.eval()(input_ids=ids, attention_mask=mask).logits, atol=1e-5, rtol=1e-5)
    config = json.loads((out / "peft" / "adapter_config.json").read_text())
    if method == "pissa":  # converted to a LoRA update of the original weights: rank 2r, as peft documents
        assert config["r"] == 4 and config["init_lora_weights"] is True
    if method == "adalora":
        assert config["rank_pattern"]  # the ranks the budget ended with


@pytest.mark.parametrize("kind", FAMILY_KINDS)
@pytest.mark.parametrize("method", PEFT_METHODS)
def test_trainable_counts_equal_peft_own_and_the_meta_device_count(kind, method):
    from peft import get_peft_model
    from transformers import AutoModelForSequenceClassification

    from glue_bench.train.methods import apply_method

    if (kind, method) in REFUSED:
        return
    args = {k: v for k, v in ARGS[method].items() if k not in ("head_learning_rate", "loraplus_ratio")}
    live = classifier(kind)
    ours = apply_method(live, spec(method, **args))
    peft_model = get_peft_model(classifier(kind), live.peft_folder_config)
    assert ours.trainable == peft_model.get_nb_trainable_parameters()[0]
    config = tiny_config(kind)
    config.num_labels = 2
    with torch.device("meta"):
        counted = apply_method(AutoModelForSequenceClassification.from_config(config), spec(method, **args))
    assert counted.trainable == ours.trainable


def test_adapters_sit_where_each_family_declares_them():
    """Hand-counted: Houlsby m=4 on hidden 32 is 2 x (32*4 + 4 + 4*32 + 32) = 584 per layer; ModernBERT's go after
    the attention's output dropout and the feed-forward's `Wo`; DeBERTa's after its output blocks' dropout."""
    from glue_bench.train.methods import apply_method
    from glue_bench.train.methods.houlsby import Adapter

    for kind, layers, places in (("deberta-v2", 2, ("attention.output.dropout", "output.dropout")),
                                 ("modernbert", 3, ("attn.out_drop", "mlp.Wo"))):
        model = classifier(kind)
        apply_method(model, spec("houlsby", bottleneck=4))
        found = sorted(n for n, m in model.named_modules() if isinstance(m, Adapter))
        layer_path = "deberta.encoder.layer" if kind == "deberta-v2" else "model.layers"
        assert found == sorted(f"{layer_path}.{i}.{p}.adapter" for i in range(layers) for p in places)
        adapter_params = sum(p.numel() for n, p in model.named_parameters() if ".adapter." in n)
        assert adapter_params == layers * 2 * (32 * 4 + 4 + 4 * 32 + 32)


def test_lora_plus_and_the_head_learn_at_their_own_rates():
    from glue_bench.train.engine import optimizer_groups
    from glue_bench.train.methods import apply_method

    model = classifier("deberta-v2")
    job = spec("lora", rank=2, loraplus_ratio=16.0, learning_rate=1e-4, head_learning_rate=3e-3)
    apply_method(model, job)
    names = {id(p): n for n, p in model.named_parameters()}
    rate = {names[id(p)]: g["lr"] for g in optimizer_groups(model, job) for p in g["params"]}
    assert {n for n, p in model.named_parameters() if p.requires_grad} == set(rate)
    for name, lr in rate.items():
        expected = 3e-3 if name.startswith(("classifier.", "pooler.")) else 1.6e-3 if ".lora_B." in name else 1e-4
        assert lr == pytest.approx(expected), name


def test_adalora_resumes_exactly_with_its_allocator(models, real_glue, tmp_path):
    """A crash after the first epoch's `last` checkpoint, then a rerun: the same dev predictions and rank pattern as
    an uninterrupted job (the allocator's importance averages travel in the checkpoint)."""
    straight, crashed = tmp_path / "straight", tmp_path / "crashed"
    job = job_spec(models["deberta-v2"], "adalora", real_glue, epochs=2, keep_checkpoints=True)
    assert run_jobs([(job, straight)], tmp_path)[str(straight)] == 0
    codes = run_jobs([(job, crashed)], tmp_path, env={"GLUE_BENCH_CRASH_AT": "after-last"})
    assert codes["returncode"] != 0 and not (crashed / "metrics.json").exists()
    state = torch.load(next((crashed / "checkpoints").glob("last-*")) / "state.pt", weights_only=False)
    assert state["method"]["exp_avg_ipt"] and state["method"]["total_step"] == 8
    assert run_jobs([(job, crashed)], tmp_path)[str(crashed)] == 0
    history = [json.loads(line) for line in (crashed / "history.jsonl").read_text().splitlines()]
    assert any(r.get("event") == "resume" for r in history)
    assert (crashed / "predictions" / "dev.tsv").read_text() == (straight / "predictions" / "dev.tsv").read_text()
    patterns = [json.loads((d / "peft" / "adapter_config.json").read_text())["rank_pattern"]
                for d in (straight, crashed)]
    assert patterns[0] == patterns[1]


def write_sweep(path: Path, model: Path, data: Path, methods: str) -> Path:
    path.write_text(f"name: fits\nmodel: {model}\ndata: {data}\ntasks: [rte]\nmethods: {methods}\n")
    return path


@pytest.mark.parametrize("methods,message", [
    ("{lora: {rank: 8, target_modules: qv}}",
     r"ModernBERT computes query, key, value with one projection \(attn.Wqkv\)"),
    ("[bitfit]", r"bitfit: this ModernBERT has no bias in its encoder"),
])
def test_what_cannot_work_on_modernbert_is_refused_at_plan_time(models, real_glue, tmp_path, methods, message):
    sweep = write_sweep(tmp_path / "s.yaml", models["modernbert"], real_glue, methods)
    proc = glue_bench("plan", str(sweep), "--jobs-dir", str(tmp_path / "jobs"), "--dry-run", check=False)
    assert proc.returncode != 0 and len(proc.stderr.strip().splitlines()) == 1
    assert re.search(message, proc.stderr), proc.stderr
    assert not (tmp_path / "jobs").exists()


def test_boft_refuses_butterflies_without_its_kernel():
    from glue_bench.train.methods import apply_method
    from glue_bench.train.methods.boft import butterfly_kernel_available

    if butterfly_kernel_available():
        pytest.skip("peft's CUDA butterfly kernel is available here")
    with pytest.raises(GlueBenchError, match="butterfly_factor 2 needs peft's CUDA butterfly kernel"):
        apply_method(classifier("bert"), spec("boft", block_size=4, butterfly_factor=2))
