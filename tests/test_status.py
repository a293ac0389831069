"""`glue-bench status` (glue_bench/run/status.py and what the CLI prints of it)."""

import json

from conftest import invoke
from job_folders import rte


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


def planned_with_done_jobs(tmp_path, specs):
    from job_folders import write_done_job

    from glue_bench.results.job_folder import atomic_write_json

    results = tmp_path / "results"
    atomic_write_json(tmp_path / "jobs" / "manifest.json", {
        "name": "s", "results_dir": str(results),
        "jobs": [{"id": s.job_id, "task": "rte", "method": "full", "size": 1} for s in specs]})
    return [write_done_job(results, s, 0.6, rows=50) for s in specs]


def test_a_changed_prediction_file_is_named_by_status_verify_and_report(tmp_path):
    """One verdict, naming the job and the file: status --verify and report say the same."""
    folders = planned_with_done_jobs(tmp_path, [rte(seed=1), rte(seed=2)])
    dev = folders[1] / "predictions" / "dev.tsv"
    dev.write_text(dev.read_text().replace("\t1\t1", "\t0\t1", 1))  # same size, other content
    plain = invoke("status", str(tmp_path / "jobs")).output
    assert "done 2" in plain  # the stat check alone cannot see it
    verified = invoke("status", str(tmp_path / "jobs"), "--verify").output
    assert "done 1" in verified
    assert f"not done {folders[1].name}: predictions/dev.tsv was changed after the job wrote it" in verified


def test_a_truncated_prediction_file_gets_the_same_verdict_from_status_and_report(tmp_path):
    from glue_bench.report.collect import collect

    folders = planned_with_done_jobs(tmp_path, [rte(seed=1)])
    dev = folders[0] / "predictions" / "dev.tsv"
    dev.write_bytes(dev.read_bytes()[:40])
    status = invoke("status", str(tmp_path / "jobs")).output
    line = next(line for line in status.splitlines() if line.startswith("not done"))
    assert folders[0].name in line and "predictions/dev.tsv is 40 bytes" in line
    (record,) = collect(tmp_path / "results")
    assert not record.done and "predictions/dev.tsv is 40 bytes" in record.error
    assert "corrupt" not in record.error


def test_status_shows_an_eta_whenever_a_job_runs_even_without_estimates(tmp_path):
    """No structure is known (no `plan --estimate`, no calibration): the ETA comes from the running job's
    progress since its claim."""
    import time

    from glue_bench.results import claims
    from glue_bench.results.job_folder import JobDir, atomic_write_json

    results, spec = tmp_path / "results", rte(seed=1, epochs=4)
    atomic_write_json(tmp_path / "jobs" / "manifest.json", {
        "name": "s", "results_dir": str(results), "jobs": [{"id": spec.job_id, "task": "rte", "method": "full"}]})
    (tmp_path / "jobs" / f"{spec.job_id}.json").write_text(spec.to_json())
    job = JobDir(results / spec.job_id)
    claim = claims.try_claim(job.path)
    claim["start"] = time.time() - 60  # claimed a minute ago
    atomic_write_json(job.claim_path, claim)
    job.history_path.write_text(json.dumps({"step": 8, "epoch": 1.0, "train/loss": 0.5}) + "\n")
    result = invoke("status", str(tmp_path / "jobs"))
    eta = next(line for line in result.output.splitlines() if line.startswith("ETA"))
    # a quarter done after 60 s: 180 s (0.05 h) left
    assert eta.startswith("ETA 0.05 h on 1 slot(s) for 1 job(s) left (from the jobs' progress so far")
