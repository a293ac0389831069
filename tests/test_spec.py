"""The job spec (glue_bench/spec.py): its fields and their checks, its id, its batch rules."""

import json

import pytest
from job_folders import rte

from glue_bench.errors import GlueBenchError
from glue_bench.plan.sweep_file import expand_sweep, parse_sweep
from glue_bench.spec import FIELDS, JobSpec, format_lr


def spec(**kw) -> JobSpec:
    return JobSpec(**{"task": "rte", "model": "bert-base-uncased", "method": "houlsby", "bottleneck": 64,
                      "learning_rate": 3e-4, "seed": 1, **kw})


def test_job_id_is_readable_and_stable():
    job = spec()
    assert job.job_id.startswith("rte-houlsby-m64-lr3e-4-e3-s1-")
    assert job.job_id == spec().job_id
    assert len(job.job_id.rsplit("-", 1)[1]) == 8


def test_id_ignores_paths_gpus_and_logging_but_not_hyperparameters():
    base = spec().job_id
    assert spec(data="/some/where/glue_data").job_id == base
    assert spec(num_gpus=4, micro_batch_size=8, log_every_steps=1, keep_checkpoints=True).job_id == base
    for change in ({"seed": 2}, {"bottleneck": 8}, {"precision": "bf16"}, {"max_train_samples": 100},
                   {"learning_rate": 3e-3}, {"non_linearity": "relu"}, {"epochs": 20}):
        assert spec(**change).job_id != base, change


def test_model_folder_is_identified_by_its_weights_not_its_path(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.safetensors").write_bytes(b"same weights")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "model.safetensors").write_bytes(b"other weights")
    ids = [spec(model=str(tmp_path / n)).job_id for n in "abc"]
    assert ids[0] == ids[1] != ids[2]


def test_a_field_at_its_default_does_not_enter_the_hash():
    # Fields added later with a default must not rename existing jobs: a field at its default is skipped.
    assert spec().content_hash() == spec(adapter_init_std=1e-3, data_seed=0).content_hash()
    assert spec().content_hash() != spec(adapter_init_std=1e-2).content_hash()


def test_json_round_trip_and_unknown_fields(tmp_path):
    job = spec(tags=("demo",))
    path = tmp_path / "job.json"
    path.write_text(job.to_json())
    assert JobSpec.load(path) == job
    with pytest.raises(GlueBenchError, match="unknown field 'bottle'"):
        JobSpec.from_dict({**json.loads(job.to_json()), "bottle": 3})


@pytest.mark.parametrize(("change", "field"), [
    ({"task": "squad"}, "task"), ({"method": "prefix"}, "method"), ({"bottleneck": 0}, "bottleneck"),
    ({"method": "full"}, "bottleneck"), ({"learning_rate": -1.0}, "learning_rate"),
    ({"zero_stage": 3}, "zero_stage"), ({"precision": "fp8"}, "precision"), ({"warmup_ratio": 1.5}, "warmup_ratio"),
    ({"non_linearity": "sigmoid"}, "non_linearity"), ({"max_train_samples": 0}, "max_train_samples"),
])
def test_invalid_fields_are_named(change, field):
    with pytest.raises(GlueBenchError, match=rf"field {field}="):
        spec(**change)


def test_batch_layout_keeps_the_global_batch():
    assert spec(batch_size=32).batch_layout(1) == (32, 1)
    assert spec(batch_size=32).batch_layout(2) == (16, 1)
    assert spec(batch_size=32, micro_batch_size=4).batch_layout(2) == (4, 4)
    with pytest.raises(GlueBenchError, match="not divisible"):
        spec(batch_size=30, micro_batch_size=4).batch_layout(2)


def test_format_lr():
    assert [format_lr(x) for x in (3e-5, 1e-3, 2.5e-4, 0.1)] == ["3e-5", "1e-3", "2.5e-4", "1e-1"]


def test_setting_key_is_the_id_without_the_seed():
    assert rte(seed=1).setting_key == rte(seed=7).setting_key
    assert rte(num_gpus=4, log_every_steps=1).setting_key == rte().setting_key  # not in the id
    for name in ("max_grad_norm", "data_seed", "zero_stage", "max_eval_samples", "warmup_ratio"):
        default = FIELDS[name].default
        other = {"max_grad_norm": 0.5, "data_seed": 1, "zero_stage": 1, "max_eval_samples": 5,
                 "warmup_ratio": 0.2}[name]
        assert other != default
        assert rte(**{name: other}).setting_key != rte().setting_key, name


def test_booleans_are_type_checked():
    with pytest.raises(Exception, match="predict_test='maybe'.*true or false"):
        JobSpec(task="rte", model="m", predict_test="maybe")
    with pytest.raises(Exception, match="keep_checkpoints"):
        JobSpec.from_dict({"task": "rte", "model": "m", "keep_checkpoints": "no"})
    sweep = parse_sweep({"name": "s", "model": "m", "tasks": ["rte"], "methods": ["full"], "group_by_length": "off"})
    with pytest.raises(GlueBenchError, match="sweep key group_by_length"):
        expand_sweep(sweep)
