"""Bad inputs a new user meets in the first week: one clear line, exit 1, nothing written; output that is true."""

import json
from pathlib import Path

from test_control_plane import rte, write_done_job
from typer.testing import CliRunner

from glue_bench.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), env={"COLUMNS": "200"})


def test_report_into_an_impossible_folder_is_one_line(tmp_path):
    write_done_job(tmp_path / "results" / "s", rte(), 0.6)
    result = invoke("report", str(tmp_path / "results" / "s"), "--out-dir", "/dev/null/x")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1].startswith("error: cannot write the report to /dev/null/x")


def test_submit_of_a_method_the_sweep_never_had_names_what_it_has_and_writes_nothing(tmp_path):
    results = tmp_path / "results" / "s"
    write_done_job(results, rte(), 0.6)
    out = tmp_path / "sub.zip"
    result = invoke("submit", str(results), "--method", "nosuch", "--allow-partial", "--out", str(out))
    assert result.exit_code == 1 and "--method 'nosuch': choose one of full, houlsby" in result.output
    result = invoke("submit", str(results), "--method", "pfeiffer", "--allow-partial", "--out", str(out))
    assert result.exit_code == 1
    assert "no done job of pfeiffer" in result.output and "it has full" in result.output
    result = invoke("submit", str(results), "--method", "houlsby", "--bottleneck", "8", "--allow-partial",
                    "--out", str(out))
    assert result.exit_code == 1 and "no done job of houlsby m=8" in result.output
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_help_options_and_defaults():
    assert invoke("-h").exit_code == 0
    run_help = invoke("run", "--help").output
    assert "local | slurm" in run_help
    train_help = invoke("train", "-h").output
    assert "(default 32)" in train_help and "(default 2e-05)" in train_help  # batch size, learning rate


def test_status_says_epoch_only_when_known_and_names_resumable_jobs(tmp_path):
    from glue_bench.results import claims
    from glue_bench.results.job_folder import JobDir, atomic_write_json

    results = tmp_path / "results"
    specs = [rte(seed=1), rte(seed=2)]
    atomic_write_json(tmp_path / "jobs" / "manifest.json", {
        "name": "s", "results_dir": str(results),
        "jobs": [{"id": s.job_id, "task": "rte", "method": "full", "size": 1} for s in specs]})
    running, resumable = (JobDir(results / s.job_id) for s in specs)
    assert claims.try_claim(running.path) is not None
    running.history_path.write_text(json.dumps({"event": "start", "step": 0}) + "\n"
                                    + json.dumps({"step": 6, "train/loss": 0.5}) + "\n")
    (resumable.checkpoints_dir / "last-00000010").mkdir(parents=True)
    result = invoke("status", str(tmp_path / "jobs"))
    assert result.exit_code == 0, result.output
    assert "None" not in result.output and f"running {running.name} on " in result.output
    assert "(step 6)" in result.output
    assert f"1 pending job(s) resume from a checkpoint: {resumable.name}" in result.output


def test_plan_dry_run_says_nothing_was_written(tiny_bert, real_glue, tmp_path):
    import yaml

    sweep = {"name": "x", "model": str(tiny_bert), "data": str(real_glue), "tasks": ["rte"], "methods": ["full"]}
    (tmp_path / "x.yaml").write_text(yaml.safe_dump(sweep))
    result = invoke("plan", str(tmp_path / "x.yaml"), "--jobs-dir", str(tmp_path / "jobs"), "--dry-run")
    assert result.exit_code == 0 and "nothing written" in result.output
    assert not (tmp_path / "jobs").exists()


def test_a_job_folder_with_a_corrupt_spec_is_named_by_the_report(tmp_path):
    results = tmp_path / "results" / "s"
    write_done_job(results, rte(), 0.6)
    (results / "broken-job").mkdir()
    (results / "broken-job" / "spec.json").write_text("{")
    result = invoke("report", str(results))
    assert result.exit_code == 0, result.output
    assert "1 unreadable (broken-job: spec.json" in result.output


def test_summaries_count_in_the_singular():
    from glue_bench.cli.output import plural

    assert (plural(1, "epoch"), plural(2, "epoch"), plural(1, "file")) == ("1 epoch", "2 epochs", "1 file")


def test_docs_describe_the_shipped_demo():
    import yaml

    root = Path(__file__).resolve().parents[1]
    demo = yaml.safe_load((root / "jobs" / "demo.yaml").read_text())
    sweeps_md = (root / "docs" / "sweeps.md").read_text()
    readme = (root / "README.md").read_text()
    assert demo["tasks"] == ["sst2", "stsb"] and "on SST-2 and STS-B" in " ".join(readme.split())
    assert list(demo["methods"]) == ["full", "houlsby", "pfeiffer", "lora"] and "jobs/demo.yaml" in sweeps_md
    assert "`submission.json`)" not in (root / "docs" / "report.md").read_text()
    readme = (root / "README.md").read_text()
    # the demo's time and table are written by scripts/demo.py between markers, not typed
    assert readme.count("<!-- demo:time -->") == 1 and readme.count("<!-- demo:table -->") == 1
    assert "minutes" not in (root / "jobs" / "demo.yaml").read_text().splitlines()[0]


def test_log_lines_are_plain_off_a_terminal():
    import logging

    from glue_bench.cli import configure_logging

    configure_logging()  # under pytest stderr is not a terminal
    handlers = logging.getLogger().handlers
    assert handlers and all(type(h) is logging.StreamHandler for h in handlers)  # no rich wrapping at 80 columns


def test_the_installed_model_line_is_said_once(caplog):
    import logging

    import glue_bench.model_source as source

    source._SAID.discard("sentence-transformers/all-MiniLM-L6-v2")
    with caplog.at_level(logging.INFO, logger="glue_bench.model_source"):
        for _ in range(3):
            source.resolve_model("sentence-transformers/all-MiniLM-L6-v2")
    assert sum("resolves to the installed package" in r.getMessage() for r in caplog.records) == 1
