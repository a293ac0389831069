"""`glue-bench predict` (glue_bench/train/predict.py) without a model: the data folder a job is predicted on."""

import json

from job_folders import rte, write_done_job

from glue_bench.results.job_folder import atomic_write_json


def test_predict_reuses_the_glue_data_folder_the_job_was_trained_on(tmp_path, monkeypatch):
    from glue_bench.train.predict import trained_on

    spec = rte()  # data: auto
    folder = write_done_job(tmp_path, spec, 0.6)
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics["provenance"] = {"data": {"source": "glue_data", "folder": "/data/glue_data"}}
    atomic_write_json(folder / "metrics.json", metrics)
    monkeypatch.delenv("GLUE_DATA_DIR", raising=False)
    assert trained_on(folder, spec) == "/data/glue_data"
    assert trained_on(folder, spec.replace(data="/elsewhere")) == "/elsewhere"
    monkeypatch.setenv("GLUE_DATA_DIR", "/set/now")
    assert trained_on(folder, spec) == "auto"
