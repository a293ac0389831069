"""Method configurations (glue_bench/method_config.py) and the spec's method fields: which parameters apply to
which method, the job id parts, the labels and size groups the report uses."""

import pytest
from tiny import spec

from glue_bench.errors import GlueBenchError
from glue_bench.method_config import MethodConfig


@pytest.mark.parametrize(("method", "params", "field"), [
    ("houlsby", {"bottleneck": 8, "rank": 4}, "rank"),
    ("lora", {"rank": 4, "bottleneck": 8}, "bottleneck"),
    ("full", {"train_pooler": True}, "train_pooler"),
    ("bitfit", {"target_modules": "qv"}, "target_modules"),
    ("pfeiffer", {"bottleneck": 8, "alpha": 2.0}, "alpha"),
])
def test_parameter_that_does_not_apply_is_refused(method, params, field):
    with pytest.raises(GlueBenchError, match=rf"{field}=.*does not apply to {method}"):
        spec(method, **params)


def test_required_parameters():
    with pytest.raises(GlueBenchError, match="lora needs rank"):
        spec("lora")
    with pytest.raises(GlueBenchError, match="pfeiffer needs bottleneck"):
        spec("pfeiffer")


def test_job_id_parts_and_existing_ids_unchanged():
    assert spec("pfeiffer", bottleneck=48).job_id.startswith("rte-pfeiffer-m48-lr2e-5-e3-s42-")
    assert spec("lora", rank=8, alpha=16).job_id.startswith("rte-lora-r8-a16-lr2e-5-")
    assert spec("lora", rank=8).job_id.startswith("rte-lora-r8-a8-")
    assert spec("bitfit").job_id.startswith("rte-bitfit-lr")
    assert spec("ia3").job_id.startswith("rte-ia3-lr")
    assert spec("houlsby", bottleneck=64, train_pooler=True).job_id.startswith("rte-houlsby-m64-pooler-lr")
    # the new fields at their defaults do not enter the hash: an old spec keeps its id
    old = spec("houlsby", bottleneck=64)
    assert old.job_id.split("-")[-1] == old.content_hash()[:8]
    assert "rank" not in old._keyed() and "train_pooler" not in old._keyed()


def test_method_config_labels_and_size_groups():
    lora = MethodConfig.of(spec("lora", rank=8, alpha=16))
    assert lora.label == "lora r=8 a=16" and lora.size == 8
    assert MethodConfig.of(spec("lora", rank=8)) == MethodConfig.of(spec("lora", rank=8, alpha=8))
    assert MethodConfig.of(spec("lora", rank=8, target_modules="query,value")) == MethodConfig.of(spec("lora", rank=8))
    assert MethodConfig.of(spec("lora", rank=4, target_modules="qkv")).label == "lora r=4 a=4 t=query,key,value"
    pooled = MethodConfig.of(spec("houlsby", bottleneck=64, train_pooler=True))
    assert pooled.label == "houlsby m=64 +pooler"
    assert pooled.best_size_label == "houlsby +pooler (best m per task)"
    assert MethodConfig.of(spec("houlsby", bottleneck=8)).best_size_label == "houlsby (best m per task)"
    assert MethodConfig.of(spec("houlsby", bottleneck=8, non_linearity="relu")).label == "houlsby m=8"
    assert MethodConfig.of(spec("bitfit")).size_group is None
    assert (MethodConfig.of(spec("lora", rank=4, alpha=8)).size_group
            == MethodConfig.of(spec("lora", rank=16, alpha=32)).size_group)
