"""The estimate's arithmetic against hand-computed values, structures counted on prepared tiny models, the
calibration file and the FLOP fallback when there is none."""

import json

import numpy as np
import pytest
from conftest import glue_bench

from glue_bench.cost.arithmetic import (
    Rate,
    Speed,
    SplitLengths,
    Structure,
    dev_passes,
    eval_flops_per_token,
    fit_rate,
    job_seconds,
    job_work,
    schedule_seconds,
    train_flops_per_token,
)
from glue_bench.cost.calibration import Calibration, Target, find_calibration, load_calibrations, save_calibration
from glue_bench.cost.eta import speed_correction
from glue_bench.cost.pricing import estimate_specs, spec_work, split_lengths
from glue_bench.cost.shapes import Structures, build_structure
from glue_bench.errors import GlueBenchError
from glue_bench.spec import JobSpec

S = Structure(trainable_matmul=100, frozen_matmul=1000, trainable=150, total=1200, layers=2, hidden=8)


def test_flops_per_token_by_hand():
    # 6 x 100 + 4 x 1000 + 12 x 2 x 8 x 10 = 600 + 4000 + 1920
    assert train_flops_per_token(S, 10) == 6520
    # 2 x 1100 + 4 x 2 x 8 x 10 = 2200 + 640
    assert eval_flops_per_token(S, 10) == 2840


def test_steps_passes_and_job_work_by_hand():
    assert dev_passes(3, 4, None) == 4  # 3 epoch ends + the final prediction
    # steps 1..12, every 5: 5 and 10; neither is an epoch end (4, 8, 12) -> 2 more; every 4: all are epoch ends
    assert dev_passes(3, 4, 5) == 6 and dev_passes(3, 4, 4) == 4
    work = job_work(SplitLengths(100, 2000, True), [SplitLengths(40, 1200, True)], [SplitLengths(70, 1400, True)],
                    epochs=3, per_epoch=4, eval_batch=32)
    assert (work.steps, work.train_tokens, work.train_seq) == (12, 6000, 20.0)
    assert work.eval_batches == 4 * 2 + 3  # 4 dev passes of 2 batches, 3 test batches
    assert work.eval_tokens == 4 * 1200 + 1400 and work.eval_seq == pytest.approx(6200 / 230)


def test_split_lengths_from_sizes_or_the_cache():
    import numpy as np

    assert split_lengths("rte", "train", None, 0, 128) == SplitLengths(2490, round(2490 * 66.6), False)
    assert split_lengths("rte", "train", 100, 0, 128).examples == 100
    assert split_lengths("cola", "train", None, 0, 8).tokens == 8551 * 8  # the mean is capped by the truncation
    lengths = np.arange(1, 11)
    every = split_lengths("rte", "train", None, 0, 128, cached=lengths)
    assert every == SplitLengths(10, 55, True)
    some = split_lengths("rte", "train", 4, 3, 128, cached=lengths)
    assert some.examples == 4 and some.measured and 4 <= some.tokens <= 34


def test_fit_rate_recovers_a_line_and_degenerate_cases():
    flops = [1e9, 2e9, 3e9, 4e9, 5e9, 6e9]
    rate = fit_rate(flops, [0.5 + f / 1e10 for f in flops])  # 0.5 s overhead, 10 GFLOP/s
    assert rate.overhead == pytest.approx(0.5) and rate.flops_per_s == pytest.approx(1e10)
    assert fit_rate([1e9, 1e9], [0.2, 0.4]) == Rate(pytest.approx(0.3), 0.0)  # no spread: all overhead
    assert fit_rate([1e9, 2e9], [1.0, 0.5]).flops_per_s == 0.0  # heavier was faster: all overhead
    negative = fit_rate([1e9, 2e9, 3e9, 4e9], [0.01, 0.02, 0.5, 0.6])  # the line would cross below zero
    assert negative.overhead == 0 and negative.flops_per_s == pytest.approx(10e9 / 1.13)
    with pytest.raises(ValueError):
        fit_rate([], [])


def test_job_seconds_and_schedule_by_hand():
    work = job_work(SplitLengths(64, 640, True), [SplitLengths(32, 320, True)], [], epochs=1, per_epoch=2,
                    eval_batch=32)
    speed = Speed(Rate(0.1, 1e6), Rate(0.01, 2e6), startup_s=5.0)
    train = 640 * train_flops_per_token(S, 10) / 1e6  # 4.1728 s
    evals = 2 * 320 * eval_flops_per_token(S, 10) / 2e6  # 2 dev passes: 0.9088 s
    assert job_seconds(work, S, speed) == pytest.approx(5.0 + 2 * 0.1 + train + 2 * 0.01 + evals)
    assert schedule_seconds([5, 4, 3, 3], 2) == 8 and schedule_seconds([5, 4, 3, 3], 1) == 15
    assert speed_correction([100, 100, 100], [50, 100, None]) == pytest.approx(1.5)
    assert speed_correction([], []) == 1.0


def test_structures_counted_on_the_prepared_model(tiny_bert, tmp_path):
    full = build_structure(JobSpec(task="rte", model=str(tiny_bert), method="full"))
    # per layer q, k, v, o (32 x 32), intermediate and output (32 x 64): 4 x 1024 + 2 x 2048 = 8192; pooler
    # 32 x 32, classifier 2 x 32 (the head: 2 x 32 weights + 2 biases)
    assert full == Structure(trainable_matmul=2 * 8192 + 1024 + 64, frozen_matmul=0, trainable=full.total,
                             total=full.total, layers=2, hidden=32, head_trainable=2 * 32 + 2)
    assert full.paper_trainable == full.total - 66
    houlsby = build_structure(JobSpec(task="rte", model=str(tiny_bert), method="houlsby", bottleneck=4))
    # two adapters per layer (32 x 4 down, 4 x 32 up) and the classifier train; the encoder and pooler are frozen
    assert houlsby.trainable_matmul == 2 * 2 * 2 * 128 + 64
    assert houlsby.frozen_matmul == 2 * 8192 + 1024
    structures = Structures(tmp_path, build=True)
    assert structures.get(JobSpec(task="mrpc", model=str(tiny_bert), method="full", seed=7)) == full  # same shape
    structures.save()
    again = Structures(tmp_path, build=False)
    assert again.get(JobSpec(task="rte", model=str(tiny_bert), method="full")) == full
    assert again.get(JobSpec(task="rte", model=str(tiny_bert), method="houlsby", bottleneck=4)) is None


def _calibration(model: str, method: str, device: str, when: str = "2025-01-01") -> Calibration:
    return Calibration(model=model, method=method, device=device, precision="fp32",
                       speed=Speed(Rate(0.0, 1e9), Rate(0.0, 2e9), 3.0), structure=S, tokens_per_s=100.0,
                       task="cola", measured_at=when)


def test_calibration_file_round_trip_and_lookup(tmp_path):
    cpu = Target.cpu(1)
    save_calibration(_calibration("m", "full", cpu.name), tmp_path)
    save_calibration(_calibration("m", "full", cpu.name, "2025-02-01"), tmp_path)  # same key: replaced
    save_calibration(_calibration("m", "houlsby", "NVIDIA H100 80GB HBM3"), tmp_path)
    found = load_calibrations(tmp_path)
    assert len(found) == 2
    assert find_calibration(found, "m", "full", cpu).measured_at == "2025-02-01"
    assert find_calibration(found, "m", "houlsby", Target.cuda("h100", "fp32")) is not None
    assert find_calibration(found, "m", "houlsby", Target.cuda("a100", "fp32")) is None
    assert find_calibration(found, "other", "full", cpu) is None
    (tmp_path / "calibration.json").write_text("{not json")
    with pytest.raises(GlueBenchError, match="not a valid calibration file"):
        load_calibrations(tmp_path)


def test_estimate_uses_the_calibration_and_scales_by_flops(tiny_bert, tmp_path):
    specs = [JobSpec(task="rte", model=str(tiny_bert), method="houlsby", bottleneck=b, max_train_samples=64,
                     epochs=1, predict_test=False) for b in (4, 8)]
    structures = Structures(tmp_path, build=True)
    target = Target.cpu(1)
    from glue_bench.model_source import model_identity

    calibration = _calibration(model_identity(str(tiny_bert)), "houlsby", target.name)
    est = estimate_specs(specs, target, structures=structures, calibrations=[calibration])
    assert est.sources["houlsby"].startswith("calibration of")
    small, large = (est.job_seconds[s.job_id] for s in specs)
    assert large > small  # the same rate, more FLOPs for m=8
    assert est.total.jobs == 2 and est.total.examples_x_epochs == 128


def test_missing_calibration_gives_the_flop_estimate_and_says_so(tiny_bert, tmp_path):
    spec = JobSpec(task="rte", model=str(tiny_bert), method="full", max_train_samples=64, epochs=2)
    structures = Structures(tmp_path, build=True)
    for target in (Target.cpu(1), Target.cuda("h100")):
        est = estimate_specs([spec], target, structures=structures, calibrations=[])
        source = est.sources["full"]
        assert source.startswith("no calibration: FLOP estimate") and "glue-bench calibrate" in source
        assert est.total.seconds > 0
    with pytest.raises(GlueBenchError, match="--gpu-type tpu: unknown"):
        estimate_specs([spec], Target.cuda("tpu"), structures=structures, calibrations=[])


def test_plan_estimate_prints_per_task_and_total(tiny_bert, real_glue, tmp_path):
    sweep = tmp_path / "s.yaml"
    sweep.write_text(json.dumps({"name": "priced", "model": str(tiny_bert), "data": str(real_glue),
                                 "tasks": ["rte", "mrpc"], "methods": {"full": {"learning_rate": 1e-4}},
                                 "epochs": [1, 2], "max_train_samples": 64, "gpus_per_job": 0}))
    proc = glue_bench("plan", str(sweep), "--dry-run", "--estimate", "--slots", "2", cwd=tmp_path,
                      env={"GLUE_BENCH_CACHE": str(tmp_path / "cache")})
    out = proc.stdout
    assert "| RTE | 2 | 192 |" in out and "| MRPC | 2 | 192 |" in out and "| total | 4 | 384 |" in out
    assert "full: no calibration: FLOP estimate" in out and "wall time on 2 slots" in out
    bad = glue_bench("plan", str(sweep), "--dry-run", "--estimate", "--device", "tpu", cwd=tmp_path, check=False)
    assert bad.returncode == 1 and "--device 'tpu': choose cpu or cuda" in bad.stderr


def test_steps_per_epoch_is_the_rule_training_follows_with_several_ranks():
    """A last partial batch smaller than one row per rank's micro-batch is skipped by training
    (`fit` drops it): pricing counts the same steps (it used to count that batch with several ranks)."""
    from glue_bench.train.data import train_batches

    spec = JobSpec(task="rte", model="m", batch_size=32, num_procs=4, micro_batch_size=4)  # 4 ranks x 4 x accum 2
    assert spec.smallest_batch(4) == 8
    for rows in (96, 100, 103, 104, 127):
        kept = [b for b in train_batches(np.arange(rows), 32, 0, 0, False) if len(b) >= spec.smallest_batch(4)]
        assert spec.steps_per_epoch(rows, 4) == len(kept)
    assert spec.steps_per_epoch(100, 4) == 3 and spec.steps_per_epoch(104, 4) == 4
    assert spec.replace(micro_batch_size=None).steps_per_epoch(100, 1) == 4  # one rank, no accumulation
    work, _ = spec_work(spec.replace(max_train_samples=100, predict_test=False))
    assert work.steps == 3 * spec.epochs


def test_eval_batch_rule():
    assert JobSpec(task="rte", model="m", batch_size=32).eval_batch(1) == 64
    assert JobSpec(task="rte", model="m", batch_size=32).eval_batch(4) == 32  # micro 8 -> at least 32


def test_eta_corrects_the_phases_training_throughput_does_not_see():
    """A small job: 10 s of training, 50 s of evaluation and prediction, 20 s of start-up and saving (80 s)."""
    from glue_bench.cost.eta import JobEstimate, job_correction, progress_eta, remaining_seconds, sweep_eta

    small = JobEstimate(seconds=80.0, train_seconds=10.0, train_examples=100, epochs=2, startup_seconds=20.0)
    assert small.eval_seconds == 50.0
    # half way (epoch 1 of 2): 5 s of training left; of 50 s of evaluation, 1 of 3 passes done -> 33.3 s left
    assert remaining_seconds(small, {"epoch": 1}, 1.0, 1.0) == pytest.approx(5 + 50 * 2 / 3)
    assert remaining_seconds(small, {"epoch": 1}, 2.0, 3.0) == pytest.approx(10 + 100)
    estimates = dict.fromkeys(("a", "b", "c"), small)
    assert job_correction(estimates, {}) is None
    assert job_correction(estimates, {"a": 160.0, "b": 240.0}) == pytest.approx(2.5)  # median of 2 and 3
    # training runs as estimated (10 ex/s), but the finished jobs took twice as long as priced: pending x2
    seconds, correction = sweep_eta(estimates, {"b": {"epoch": 1, "train/examples_per_s": 10.0}}, ["c"], 1,
                                    {"a": 160.0})
    assert correction == 2.0
    assert seconds == pytest.approx((5 * 1.0 + 50 * 2 / 3 * 2.0) + 80 * 2.0)
    # without estimates: from progress; a job 1/4 done after 30 s takes 120 s, so 90 s left, plus a pending one
    # at the finished jobs' mean (100 s), on one slot
    assert progress_eta({"x": (30.0, 0.25)}, [100.0], 1, 1) == pytest.approx(90 + 100)
    assert progress_eta({"x": (30.0, 0.25)}, [], 1, 2) == pytest.approx(120)  # the pending one takes 120 too
    assert progress_eta({}, [], 3, 1) is None
