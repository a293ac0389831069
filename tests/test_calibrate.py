"""`glue-bench calibrate`: real optimizer steps, evaluation batches and a real two-step job (the start-up) of a tiny
BERT on real RTE rows, stored for `plan --estimate`, and the stored speeds priced back."""

from __future__ import annotations

import json

from conftest import glue_bench

from glue_bench.cost.calibration import Target, find_calibration, load_calibrations
from glue_bench.model_source import model_identity


def test_calibrate_times_steps_evaluation_and_startup_and_stores_them(tmp_path, tiny_bert, real_glue):
    cache = tmp_path / "cache"
    proc = glue_bench("calibrate", "--model", str(tiny_bert), "--method", "full", "--method", "houlsby:bottleneck=8",
                      "--task", "rte", "--data-dir", str(real_glue), "--device", "cpu", "--steps", "3",
                      "--warmup", "1", "--cache-dir", str(cache), env={"WANDB_MODE": "disabled"})
    assert "stored in" in proc.stdout
    stored = json.loads((cache / "calibration.json").read_text())
    assert {e["method"] for e in stored["entries"]} == {"full", "houlsby"}
    found = load_calibrations(cache)
    for method in ("full", "houlsby"):
        entry = find_calibration(found, model_identity(str(tiny_bert)), method, Target.cpu(1))
        assert entry is not None, method
        assert entry.speed.train.flops_per_s > 0 and entry.speed.eval.flops_per_s > 0
        assert entry.speed.startup_s > 0  # a real job in a fresh process, less its fitted work
        assert entry.structure.trainable <= entry.structure.total
    houlsby = find_calibration(found, model_identity(str(tiny_bert)), "houlsby", Target.cpu(1))
    full = find_calibration(found, model_identity(str(tiny_bert)), "full", Target.cpu(1))
    assert houlsby.structure.trainable < full.structure.trainable
