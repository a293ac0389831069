import json
import subprocess
import sys

from typer.testing import CliRunner

from glue_bench.cli import app

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
    qnli = next(line for line in result.output.splitlines() if "QNLI" in line)
    assert "train missing" in qnli and "dev yes" in qnli


def test_train_dry_run_prints_the_spec_and_the_launch(tmp_path):
    result = runner.invoke(app, ["train", "--model", "bert-base-uncased", "--task", "RTE", "--method", "houlsby",
                                 "--bottleneck", "64", "--learning-rate", "3e-4", "--seed", "1", "--num-procs", "2",
                                 "--output-dir", str(tmp_path / "job"), "--dry-run"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert '"task": "rte"' in result.output and '"bottleneck": 64' in result.output
    assert "would run rte-houlsby-m64-lr3e-4-e3-s1-" in result.output
    assert "torch.distributed.run" in result.output and "--nproc-per-node 2" in result.output
    assert not (tmp_path / "job").exists()


def test_spec_file_with_flag_overrides(tmp_path):
    spec = tmp_path / "job.json"
    spec.write_text(json.dumps({"task": "cola", "model": "bert-base-uncased", "method": "full", "seed": 3}))
    result = runner.invoke(app, ["train", "--spec", str(spec), "--seed", "4", "--dry-run"], env={"COLUMNS": "250"})
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


def test_output_dir_of_another_job_is_refused(tmp_path):
    out = tmp_path / "job"
    out.mkdir()
    (out / "spec.json").write_text(json.dumps({"task": "cola", "model": "bert-base-uncased", "method": "full"}))
    line = one_red_line(["train", "--model", "bert-base-uncased", "--task", "rte", "--method", "full",
                         "--output-dir", str(out)])
    assert "holds another job" in line
