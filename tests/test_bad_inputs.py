"""Generated bad inputs (hypothesis): valid sweep files, job specs and flags mutated (wrong types, out-of-range
numbers, empty and duplicated values, unknown keys, odd file kinds). For each: exit code 1 (or 2 for what the
command-line parser itself refuses), no traceback, one line that names the culprit, and nothing written or changed
on disk."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from glue_bench.cli import app

ROOT = Path(__file__).resolve().parents[1]
DEMO = yaml.safe_load((ROOT / "jobs" / "demo.yaml").read_text())
REAL_GLUE = Path(os.environ.get("GLUE_BENCH_REAL_DATA", ROOT.parent / "shared" / "glue_data"))
runner = CliRunner()

BAD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-10**12, max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12), st.just(""), st.just([]),
    st.lists(st.integers(min_value=-3, max_value=3), min_size=2, max_size=3),  # duplicated values too
    st.dictionaries(st.text(min_size=1, max_size=5), st.integers(), max_size=2), st.just([[1]]),
)
SWEEP_KEYS = [*DEMO, "learning_rate", "seeds", "bottleneck", "rank", "zero_stage", "precision", "eval_every_steps",
              "max_eval_samples", "micro_batch_size", "weight_decay", "warmup_ratio", "data_seed", "gpus_per_job",
              "procs_per_job", "jobs_per_gpu", "tags", "wandb", "not_a_key"]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


def check_refused(result, culprits: list[str]) -> None:
    """Exit 1 with one line naming a culprit, or the parser's exit 2; never a traceback."""
    output = result.output
    assert result.exit_code in (0, 1, 2), (result.exit_code, output)
    assert "Traceback" not in output and not isinstance(result.exception, AssertionError), output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{type(result.exception).__name__}: {result.exception}\n{output}")
    if result.exit_code == 1:
        lines = [line for line in output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), output
        assert any(c in lines[0] for c in culprits), (culprits, lines[0])


@SETTINGS
@given(key=st.sampled_from(SWEEP_KEYS), value=BAD_VALUES, where=st.sampled_from(["top", "method", "override"]))
def test_a_mutated_sweep_file_is_refused_in_one_line_and_nothing_is_written(tmp_path_factory, key, value, where):
    folder = tmp_path_factory.mktemp("sweep")
    data = json.loads(json.dumps(DEMO))
    data["model"] = "sentence-transformers/all-MiniLM-L6-v2"
    if where == "top":
        data[key] = value
    elif where == "method":
        data["methods"]["houlsby"] = {**data["methods"]["houlsby"], key: value}
    else:
        data["task_overrides"] = {"sst2": {key: value}}
    (folder / "s.yaml").write_text(yaml.safe_dump(data))
    before = snapshot(folder)
    env = {"GLUE_DATA_DIR": str(REAL_GLUE), "HF_HUB_OFFLINE": "1"}
    result = runner.invoke(app, ["plan", str(folder / "s.yaml"), "--jobs-dir", str(folder / "jobs"),
                                 "--results-dir", str(folder / "results"), "--dry-run"], env=env)
    check_refused(result, [key, str(value), "sweep"])
    assert snapshot(folder) == before


SPEC_FIELDS = ["task", "model", "method", "bottleneck", "learning_rate", "batch_size", "epochs", "max_seq_length",
               "warmup_ratio", "weight_decay", "seed", "max_train_samples", "precision", "zero_stage", "num_gpus",
               "num_procs", "micro_batch_size", "tags", "wandb", "rank", "alpha", "not_a_field"]


@SETTINGS
@given(field=st.sampled_from(SPEC_FIELDS), value=BAD_VALUES)
def test_a_mutated_spec_file_is_refused_in_one_line_and_nothing_is_written(tmp_path_factory, field, value):
    folder = tmp_path_factory.mktemp("spec")
    spec = {"task": "rte", "model": "sentence-transformers/all-MiniLM-L6-v2", "method": "houlsby", "bottleneck": 8,
            "data": str(REAL_GLUE), field: value}
    (folder / "job.json").write_text(json.dumps(spec))
    before = snapshot(folder)
    result = runner.invoke(app, ["train", "--spec", str(folder / "job.json"), "--output-dir", str(folder / "out"),
                                 "--dry-run"], env={"HF_HUB_OFFLINE": "1"})
    check_refused(result, [field, str(value), "job spec"])
    assert snapshot(folder) == before


FLAGS = {"run": ["--slots", "--retries", "--gpus", "--gpus-per-job", "--jobs-per-gpu", "--lease-seconds",
                 "--executor", "--wandb", "--procs-per-job"],
         "submit": ["--wnli", "--select", "--method", "--learning-rate"],
         "plan": ["--slots", "--device", "--gpu-type"]}


@SETTINGS
@given(command=st.sampled_from(sorted(FLAGS)), data=st.data(),
       value=st.one_of(st.text(max_size=8), st.integers(min_value=-5, max_value=5).map(str), st.just("")))
def test_a_bad_flag_value_is_refused_in_one_line_and_nothing_is_written(tmp_path_factory, command, data, value):
    folder = tmp_path_factory.mktemp("flags")
    flag = data.draw(st.sampled_from(FLAGS[command]))
    target = {"run": folder / "jobs" / "none", "submit": folder / "results", "plan": folder / "none.yaml"}[command]
    args = [command, str(target), flag, value, "--dry-run" if command != "submit" else "--allow-partial"]
    if command == "plan":
        args.append("--estimate")
    before = snapshot(folder)
    result = runner.invoke(app, args)
    assert result.exit_code in (1, 2), result.output
    check_refused(result, [flag, value, str(target)])
    assert snapshot(folder) == before
