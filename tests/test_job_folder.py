"""One job's folder (glue_bench/results/job_folder.py): "done" by stat and by reading the files, the error record,
atomic writes."""

import json
import time

from job_folders import rte, write_done_job

from glue_bench.results.job_folder import JobDir, atomic_write_json, is_done


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


def _finished(tmp_path, predict_test=True):
    (tmp_path / "predictions").mkdir(parents=True)
    (tmp_path / "predictions" / "dev.tsv").write_text("idx\tprediction\tlabel\n0\t1\t1\n1\t0\t1\n")
    (tmp_path / "predictions" / "test.tsv").write_text("idx\tprediction\n0\t1\n")
    metrics = {"schema_version": 1, "job_id": "x", "task": "rte", "method": "full", "dev": {},
               "task_score": 0.5, "predictions": {"dev": 2, "test": 1}, "spec": {"predict_test": predict_test}}
    atomic_write_json(tmp_path / "metrics.json", metrics)
    return metrics


def test_is_done_requires_valid_metrics_and_complete_predictions(tmp_path):
    assert not is_done(tmp_path)
    metrics = _finished(tmp_path)
    assert is_done(tmp_path)
    (tmp_path / "predictions" / "test.tsv").write_text("idx\tprediction\n")  # truncated
    assert not is_done(tmp_path)
    (tmp_path / "predictions" / "test.tsv").write_text("idx\tprediction\n0\t1\n")
    atomic_write_json(tmp_path / "metrics.json", {**metrics, "schema_version": 99})
    assert not is_done(tmp_path)
    (tmp_path / "metrics.json").write_text('{"schema_version": 1, "job_id"')  # half-written
    assert not is_done(tmp_path)
    atomic_write_json(tmp_path / "metrics.json", {**metrics, "predictions": {"dev": 2}})  # test file not listed
    assert not is_done(tmp_path)


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


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    atomic_write_json(tmp_path / "a.json", {"x": 1})
    atomic_write_json(tmp_path / "a.json", {"x": 2})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


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
