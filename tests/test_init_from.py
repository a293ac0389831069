"""`init_from: mnli`: a job starts from the trained method weights of the MNLI job with the same configuration and
seed (LoRA's recipe for RoBERTa-base MRPC, RTE and STS-B). Planned as a dependency: the source's id is in the
dependent's id, the MNLI job runs first and the dependent waits for it, on the local executor and on real Slurm."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import glue_bench
from slurm_sweeps import results

from glue_bench.errors import GlueBenchError
from glue_bench.method_config import MethodConfig
from glue_bench.plan.sweep_file import expand_sweep, parse_sweep


def sweep(**changes) -> dict:
    return {"name": "start", "model": "roberta-base", "tasks": ["mnli", "rte"], "seeds": [1, 2],
            "methods": {"lora": {"rank": 8, "init_from": "mnli"}, "full": {}},
            "task_overrides": {"mnli": {"learning_rate": 5e-4}}, **changes}


def test_each_dependent_names_its_own_seed_source_in_its_id():
    specs = {s.job_id: s for s in expand_sweep(parse_sweep(sweep()))}
    sources = {s.seed: s for s in specs.values() if s.task == "mnli" and s.method == "lora"}
    dependents = [s for s in specs.values() if s.task == "rte" and s.method == "lora"]
    assert len(dependents) == 2 and all(s.init_from is None for s in sources.values())
    for s in dependents:
        assert s.init_from == sources[s.seed].job_id and "-frommnli-" in s.job_id
        assert s.job_id != s.replace(init_from=None).job_id  # the source's id enters the hash
    assert dependents[0].setting_key == dependents[1].setting_key  # the seeds of one row average together
    assert MethodConfig.of(dependents[0]).label == "lora r=8 a=8 from=mnli"
    assert all(s.init_from is None for s in specs.values() if s.method == "full")
    other = {s.job_id for s in expand_sweep(parse_sweep(sweep(task_overrides={"mnli": {"learning_rate": 4e-4}})))}
    assert {s.job_id for s in dependents}.isdisjoint(other)  # another source, another dependent


@pytest.mark.parametrize("changes,message", [
    ({"tasks": ["rte"], "task_overrides": {}}, r"the sweep has no MNLI jobs to start from: add mnli"),
    ({"task_overrides": {}, "learning_rate": [1e-4, 5e-4]},
     r"needs one MNLI job of the same configuration and seed to start from, and the sweep has 2"),
])
def test_a_source_that_is_missing_or_ambiguous_is_one_line(changes, message):
    with pytest.raises(GlueBenchError, match=message):
        expand_sweep(parse_sweep(sweep(**changes)))


def test_planning_without_mnli_data_leaves_the_dependents_out(tmp_path, real_glue):
    path = tmp_path / "s.yaml"  # ../shared/glue_data has no MNLI training file
    path.write_text(yaml.safe_dump(sweep(model="roberta-base", data=str(real_glue))))
    proc = glue_bench("plan", str(path), "--jobs-dir", str(tmp_path / "jobs"), "--dry-run", "--skip-missing")
    assert "skipped MNLI" in proc.stdout + proc.stderr
    assert "left out 2 job(s) of planned tasks: it starts from mnli-lora-r8-a8" in proc.stdout + proc.stderr
    assert "2 jobs in" in proc.stdout + proc.stderr  # RTE full x 2 seeds


@pytest.fixture(scope="module")
def glue_with_mnli(tmp_path_factory, real_glue, fixture_glue) -> Path:
    """RTE from the real files, MNLI from the fixture (the real folder has no MNLI training file)."""
    folder = tmp_path_factory.mktemp("glue")
    (folder / "RTE").symlink_to(real_glue / "RTE")
    (folder / "MNLI").symlink_to(fixture_glue / "MNLI")
    return folder


def tiny_sweep(root: Path, model: Path, data: Path, **methods) -> Path:
    spec = {"name": "tiny", "model": str(model), "data": str(data), "tasks": ["rte", "mnli"],
            "methods": {"lora": {"rank": 4, "learning_rate": 3e-3, "init_from": "mnli"},
                        "houlsby": {"bottleneck": 4, "learning_rate": 1e-3}, **methods},
            "epochs": 1, "seeds": 1, "batch_size": 16, "max_seq_length": 64, "max_train_samples": 64,
            "max_eval_samples": 32, "predict_test": False, "gpus_per_job": 0, "wandb": {"mode": "disabled"}}
    root.mkdir(parents=True, exist_ok=True)
    (root / "tiny.yaml").write_text(yaml.safe_dump(spec))
    return root


def check_started_from_source(root: Path) -> tuple[str, str]:
    """The RTE LoRA job recorded its MNLI source, and the weights it started from are the source's (the head
    excepted): loading them onto a fresh model gives the source's adapter tensors exactly."""
    import torch
    from safetensors.torch import load_file

    from glue_bench.results.job_folder import JobDir
    from glue_bench.spec import JobSpec
    from glue_bench.tasks import get_task
    from glue_bench.train.methods import apply_method
    from glue_bench.train.models import load_model
    from glue_bench.train.weights import load_start

    done = results(root)
    (rte,) = [j for j, m in done.items() if m["task"] == "rte" and m["method"] == "lora"]
    (mnli,) = [j for j, m in done.items() if m["task"] == "mnli" and m["method"] == "lora"]
    assert done[rte]["provenance"]["init_from"]["job"] == mnli
    assert done[rte]["provenance"]["init_from"]["task_score"] == done[mnli]["task_score"]
    spec = JobSpec.load(root / "results" / "tiny" / rte / "spec.json")
    model = load_model(spec.model, get_task("rte"))
    apply_method(model, spec)
    load_start(model, spec, JobDir(root / "results" / "tiny" / rte))
    source = load_file(str(root / "results" / "tiny" / mnli / "adapter.safetensors"))
    state = dict(model.named_parameters())
    lora = [n for n in source if ".lora_" in n]
    assert lora and all(torch.equal(state[n], source[n]) for n in lora)
    assert not torch.equal(state["classifier.weight"], source["classifier.weight"])  # the head starts fresh
    return rte, mnli


def check_full_started_from_source(root: Path) -> None:
    """Full fine-tuning from MNLI: the encoder (pooler included) is the MNLI job's, the classifier fresh."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from glue_bench.results.job_folder import JobDir
    from glue_bench.spec import JobSpec
    from glue_bench.tasks import get_task
    from glue_bench.train.methods import apply_method
    from glue_bench.train.models import load_model
    from glue_bench.train.weights import load_start

    done = results(root)
    (rte,) = [j for j, m in done.items() if m["task"] == "rte" and m["method"] == "full"]
    (mnli,) = [j for j, m in done.items() if m["task"] == "mnli" and m["method"] == "full"]
    spec = JobSpec.load(root / "results" / "tiny" / rte / "spec.json")
    model = load_model(spec.model, get_task("rte"))
    apply_method(model, spec)
    assert load_start(model, spec, JobDir(root / "results" / "tiny" / rte))["job"] == mnli
    source = AutoModelForSequenceClassification.from_pretrained(str(root / "results" / "tiny" / mnli / "model"))
    ours, theirs = model.state_dict(), source.state_dict()
    assert all(torch.equal(ours[n], theirs[n]) for n in ours if n.startswith("bert."))
    assert ours["classifier.weight"].shape != theirs["classifier.weight"].shape  # 2 labels, fresh; MNLI has 3


def test_the_local_executor_runs_the_source_first(tmp_path, tiny_bert, glue_with_mnli):
    root = tiny_sweep(tmp_path, tiny_bert, glue_with_mnli, full={"learning_rate": 1e-4, "init_from": "mnli"})
    glue_bench("plan", "tiny.yaml", cwd=root)
    manifest = json.loads((root / "jobs" / "tiny" / "manifest.json").read_text())
    assert [e["task"] for e in manifest["jobs"] if e.get("after")] == ["rte", "rte"]
    glue_bench("run", "jobs/tiny", "--slots", "2", cwd=root, timeout=600)
    rte, mnli = check_started_from_source(root)
    check_full_started_from_source(root)
    events = [json.loads(line) for line in (root / "jobs" / "tiny" / "events.jsonl").read_text().splitlines()]
    started = next(e["time"] for e in events if e["event"] == "start" and e["job"] == rte)
    # done (its metrics.json written) before the dependent starts; its process may still be exiting then
    assert (root / "results" / "tiny" / mnli / "metrics.json").stat().st_mtime <= started


def test_a_dependent_whose_source_is_not_in_the_run_fails_in_one_line(tmp_path, tiny_bert, glue_with_mnli):
    root = tiny_sweep(tmp_path, tiny_bert, glue_with_mnli)
    glue_bench("plan", "tiny.yaml", cwd=root)
    proc = glue_bench("run", "jobs/tiny", "--only", "rte", cwd=root, check=False, timeout=600)
    assert proc.returncode != 0
    assert "init_from: the job it starts from, mnli-lora-r4-a4" in proc.stdout + proc.stderr
    assert not (root / "results" / "tiny").exists() or not any(
        m["method"] == "lora" for m in results(root).values())


def test_slurm_holds_the_dependents_until_their_sources_end(slurm, tmp_path, tiny_bert, glue_with_mnli):
    root = tiny_sweep(tmp_path, tiny_bert, glue_with_mnli)
    glue_bench("plan", "tiny.yaml", cwd=root)
    glue_bench("run", "jobs/tiny", "--executor", "slurm", cwd=root, timeout=600)
    submitted = json.loads((root / "jobs" / "tiny" / "slurm" / "submissions.json").read_text())
    assert len(submitted) == 2 and submitted[1]["after"] == [submitted[0]["array_job_id"]]
    assert [j.split("-")[0] for j in submitted[1]["jobs"]] == ["rte"]
    script = (root / "jobs" / "tiny" / "slurm" / "submit-1.sh").read_text()
    assert f"#SBATCH --dependency=afterany:{submitted[0]['array_job_id']}" in script
    assert len(results(root)) == 4
    check_started_from_source(root)
