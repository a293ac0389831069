"""The command line (glue_bench/cli/): light commands stay light, help and defaults, train's flags (the original
scripts' included), bad input as one line and exit 1, what commands print."""

import json
import subprocess
import sys

import pytest
from conftest import glue_bench, invoke
from tiny import MINILM
from typer.testing import CliRunner

from glue_bench.cli import app
from glue_bench.results.job_folder import atomic_write_json

runner = CliRunner()


def test_help_and_light_commands_do_not_import_torch():
    code = ("import sys; from glue_bench.cli import app; from typer.testing import CliRunner; "
            "r = CliRunner().invoke(app, ['tasks']); assert r.exit_code == 0, r.output; "
            "heavy = [m for m in ('torch', 'transformers', 'deepspeed', 'datasets') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_tasks_lists_tasks_and_splits_present(real_glue):
    result = runner.invoke(app, ["tasks", "--data-dir", str(real_glue)], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    assert "SST-2.tsv" in result.output and "MNLI-mm.tsv" in result.output and "AX.tsv" in result.output
    lines = result.output.splitlines()  # not a terminal: one block per task, a line per column
    qnli = lines[lines.index("QNLI") + 1: lines.index("RTE")]
    present = " ".join(qnli[next(i for i, line in enumerate(qnli) if line.strip().startswith(f"in {real_glue}:")):])
    assert "train missing" in present and "dev yes" in present
    assert max(len(line) for line in lines) <= 80


def test_tasks_is_a_table_on_a_wide_terminal(real_glue, monkeypatch):
    from glue_bench.cli import output

    monkeypatch.setattr(output.console, "_force_terminal", True)
    monkeypatch.setattr(output.console, "_width", 200)
    result = runner.invoke(app, ["tasks", "--data-dir", str(real_glue)])
    qnli = next(line for line in result.output.splitlines() if "QNLI" in line)
    assert "train missing" in qnli and "dev yes" in qnli


def test_an_uncached_hub_model_is_refused_up_front_offline(tmp_path):
    result = runner.invoke(app, ["train", "--model", "bert-base-uncasd", "--task", "rte", "--output-dir",
                                 str(tmp_path / "o"), "--data-dir", str(tmp_path)], env={"HF_HUB_OFFLINE": "1"})
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert "bert-base-uncasd" in lines[0] and "not in the local hub cache" in lines[0]
    assert not (tmp_path / "o").exists()


def test_train_dry_run_prints_the_spec_and_the_launch(tmp_path, real_glue):
    result = runner.invoke(app, ["train", "--model", MINILM, "--task", "RTE", "--method", "houlsby",
                                 "--bottleneck", "64", "--learning-rate", "3e-4", "--seed", "1", "--num-procs", "2",
                                 "--output-dir", str(tmp_path / "job"), "--dry-run"],
                           env={"COLUMNS": "250", "GLUE_DATA_DIR": str(real_glue)})
    assert result.exit_code == 0, result.output
    assert '"task": "rte"' in result.output and '"bottleneck": 64' in result.output
    assert "would run rte-houlsby-m64-lr3e-4-e3-s1-" in result.output
    assert "torch.distributed.run" in result.output and "--nproc-per-node 2" in result.output
    assert not (tmp_path / "job").exists()


def test_spec_file_with_flag_overrides(tmp_path, real_glue):
    spec = tmp_path / "job.json"
    spec.write_text(json.dumps({"task": "cola", "model": MINILM, "method": "full", "seed": 3}))
    result = runner.invoke(app, ["train", "--spec", str(spec), "--seed", "4", "--dry-run"],
                           env={"COLUMNS": "250", "GLUE_DATA_DIR": str(real_glue)})
    assert result.exit_code == 0, result.output
    assert '"seed": 4' in result.output and '"task": "cola"' in result.output


def one_red_line(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    return lines[0]


def test_bad_input_is_one_line_and_exit_1(tmp_path):
    assert "method='prefix'" in one_red_line(["train", "--model", "m", "--task", "rte", "--method", "prefix"])
    assert "unknown task 'squad'" in one_red_line(["train", "--model", "m", "--task", "squad"])
    assert "bottleneck" in one_red_line(["train", "--model", "m", "--task", "rte", "--method", "houlsby"])
    assert "no job spec at" in one_red_line(["train", "--spec", str(tmp_path / "nope.json")])
    (tmp_path / "bad.json").write_text("{")
    assert "not valid JSON" in one_red_line(["train", "--spec", str(tmp_path / "bad.json")])
    assert "no job spec at" in one_red_line(["predict", "--checkpoint", str(tmp_path), "--task", "rte",
                                             "--split", "dev"])


def test_output_dir_of_another_job_is_refused(tmp_path, real_glue):
    out = tmp_path / "job"
    out.mkdir()
    (out / "spec.json").write_text(json.dumps({"task": "cola", "model": MINILM, "method": "full"}))
    line = one_red_line(["train", "--model", MINILM, "--task", "rte", "--method", "full", "--data-dir", str(real_glue),
                         "--output-dir", str(out)])
    assert "holds another job" in line


def test_help_options_and_defaults():
    assert invoke("-h").exit_code == 0
    run_help = invoke("run", "--help").output
    assert "local | slurm" in run_help
    train_help = invoke("train", "-h").output
    assert "(default 32)" in train_help and "(default 2e-05)" in train_help  # batch size, learning rate


def test_the_original_scripts_flags_are_accepted(tmp_path, real_glue):
    proc = glue_bench("train", "--casing", MINILM, "--bottleneck_size", "32", "--non_linearity", "gelu",
                      "--task", "mrpc", "--batch_size", "32", "--epochs", "10", "--max_seq_length", "128",
                      "--learning_rate", "3e-4", "--warmup_ratio", "0.1", "--saved_models_dir", "saved_models",
                      "--dry-run", cwd=tmp_path, env={"GLUE_DATA_DIR": str(real_glue)})
    assert '"method": "houlsby"' in proc.stdout and '"bottleneck": 32' in proc.stdout
    assert '"learning_rate": 0.0003' in proc.stdout and "into saved_models" in proc.stdout
    assert "--casing -> --model" in proc.stderr and "--method houlsby" in proc.stderr


LIGHT = ("import sys; from glue_bench.cli import main; sys.argv = ['glue-bench', *sys.argv[1:]]\n"
         "try:\n    main()\nexcept SystemExit as e:\n"
         "    heavy = [m for m in ('torch', 'deepspeed', 'wandb', 'transformers') if m in sys.modules]\n"
         "    print('HEAVY', heavy); raise\n")


@pytest.mark.parametrize(("model", "why"), [
    ("/no/such/folder", "no such folder"), ("text", "no config.json"), ("gpt2", "model_type 'gpt2'"),
    ("bad//id", "neither a model folder nor a hub id")])
def test_a_bad_model_is_one_line_before_anything_heavy_and_writes_nothing(tmp_path, model, why):
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


@pytest.mark.parametrize(("args", "message"), [
    (["--slots", "-1"], "--slots -1: must be at least 1"), (["--slots", "0"], "--slots 0: must be at least 1"),
    (["--retries", "-2"], "--retries -2: must be 0 or more"), (["--executor", "nope"], "--executor 'nope'")])
def test_bad_run_options_are_one_line(tmp_path, args, message):
    atomic_write_json(tmp_path / "manifest.json", {"name": "s", "results_dir": str(tmp_path / "r"), "jobs": []})
    result = CliRunner().invoke(app, ["run", str(tmp_path), "--dry-run", *args])
    assert result.exit_code == 1 and message in result.output, result.output


def test_summaries_count_in_the_singular():
    from glue_bench.cli.output import plural

    assert (plural(1, "epoch"), plural(2, "epoch"), plural(1, "file")) == ("1 epoch", "2 epochs", "1 file")


def test_log_lines_are_plain_off_a_terminal():
    import logging

    from glue_bench.cli import configure_logging

    configure_logging()  # under pytest stderr is not a terminal
    handlers = logging.getLogger().handlers
    assert handlers and all(type(h) is logging.StreamHandler for h in handlers)  # no rich wrapping at 80 columns


def test_version():
    from importlib.metadata import version

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"glue-bench {version('glue-bench')}"


def test_hub_data_offline_is_refused_before_anything_is_written(tmp_path):
    result = runner.invoke(app, ["train", "--model", MINILM, "--task", "rte", "--data-dir", "hub", "--output-dir",
                                 str(tmp_path / "o")], env={"HF_HUB_OFFLINE": "1"})
    lines = [line for line in result.output.splitlines() if line.strip() and "resolves to" not in line]
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert "RTE: cannot reach nyu-mll/glue/rte" in lines[0]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("command", ["plan", "report"])
def test_an_os_error_is_one_line_naming_the_path(tmp_path, command, real_glue):
    """A file where a folder is expected (the same boundary catches a read-only folder or a full disk)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    if command == "plan":
        sweep = {"name": "s", "model": MINILM, "tasks": ["rte"], "methods": ["full"], "data": str(real_glue)}
        (tmp_path / "s.yaml").write_text(json.dumps(sweep))
        args = ["plan", str(tmp_path / "s.yaml"), "--jobs-dir", str(blocker / "jobs")]
    else:
        from job_folders import write_job

        write_job(tmp_path / "results" / "rte", "rte", 0.6)
        args = ["report", str(tmp_path / "results"), "--out-dir", str(blocker / "report")]
    result = runner.invoke(app, args)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert lines[0].startswith("error: ") and str(blocker) in lines[0] and "Traceback" not in result.output
