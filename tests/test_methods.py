import pytest
import torch
from tiny import MINILM, tiny_config

from glue_bench.errors import GlueBenchError
from glue_bench.spec import JobSpec
from glue_bench.train.methods import apply_method
from glue_bench.train.methods.houlsby import Adapter, DropoutThenAdapter


def classifier(kind: str, num_labels: int = 2):
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    config = tiny_config(kind)
    config.num_labels = num_labels
    return AutoModelForSequenceClassification.from_config(config).eval()


def houlsby(m: int = 8, **kw) -> JobSpec:
    return JobSpec(task="rte", model="x", method="houlsby", bottleneck=m, **kw)


# Hand-computed for hidden d=32, 2 layers, m=8, 2 labels:
#   adapters 2 layers x 2 x (2*d*m + d + m) = 2 * 2 * 552 = 2208
#   LayerNorms (2 per layer + embeddings) x 2d = 5 * 64 = 320
#   head: BERT classifier d*2+2 = 66; RoBERTa/ELECTRA dense d*d+d + out_proj 66 = 1122
@pytest.mark.parametrize(("kind", "expected"), [("bert", 2594), ("roberta", 3650), ("electra", 3650)])
def test_houlsby_trainable_count_by_hand(kind, expected):
    model = classifier(kind)
    counts = apply_method(model, houlsby(8))
    assert counts.trainable == expected
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == expected
    assert len([m for m in model.modules() if isinstance(m, Adapter)]) == 4


def test_regression_head_count():
    assert apply_method(classifier("bert", num_labels=1), houlsby(8)).trainable == 2208 + 320 + 33


def test_layernorm_head_and_full_counts():
    assert apply_method(classifier("bert"), JobSpec(task="rte", model="x", method="layernorm_head")).trainable == 386
    model = classifier("bert")
    counts = apply_method(model, JobSpec(task="rte", model="x", method="full"))
    assert counts.trainable == counts.total == sum(p.numel() for p in model.parameters())
    assert counts.base_model == counts.total - 66


def test_pooler_and_everything_else_frozen():
    model = classifier("bert")
    apply_method(model, houlsby(8))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert not any("pooler" in n or "attention.self" in n or n.endswith("dense.weight") and "adapter" not in n
                   and "classifier" not in n for n in trainable)
    assert "bert.embeddings.LayerNorm.weight" in trainable
    assert "bert.encoder.layer.1.output.dropout.adapter.up.weight" in trainable


def test_adapters_fire_twice_per_layer_and_sit_before_residual_and_layernorm():
    model = classifier("bert")
    apply_method(model, houlsby(8, adapter_init_std=0.5))
    calls = []
    for m in model.modules():
        if isinstance(m, Adapter):
            m.register_forward_hook(lambda mod, inp, out: calls.append(mod))
    block = model.bert.encoder.layer[0].attention.output
    seen = {}
    block.register_forward_hook(lambda mod, args, out: seen.update(args=args, out=out))
    ids = torch.tensor([[101, 2023, 2003, 1037, 3231, 102]])
    model(input_ids=ids)
    assert len(calls) == 2 * 2  # two adapters per layer, two layers
    hidden, residual = seen["args"]
    adapter = block.dropout.adapter
    expected = block.LayerNorm(adapter(block.dense(hidden)) + residual)  # dropout is identity in eval
    torch.testing.assert_close(seen["out"], expected)


def test_perturbing_an_up_projection_changes_the_logits():
    model = classifier("bert")
    apply_method(model, houlsby(8))
    ids = torch.tensor([[101, 2023, 2003, 1037, 3231, 102]])
    before = model(input_ids=ids).logits.detach().clone()
    with torch.no_grad():
        up = model.bert.encoder.layer[1].output.dropout.adapter.up.weight
        up.add_(torch.randn_like(up))  # a constant shift would vanish in the LayerNorm
    assert not torch.allclose(before, model(input_ids=ids).logits)


def test_adapter_init_is_near_identity_with_exact_bottleneck():
    torch.manual_seed(0)
    a = Adapter(384, 64, "gelu", 1e-3)
    assert a.down.out_features == 64 and a.up.in_features == 64
    assert torch.count_nonzero(a.down.bias) == 0 and torch.count_nonzero(a.up.bias) == 0
    assert a.down.weight.std().item() == pytest.approx(1e-3, rel=0.05)
    x = torch.randn(2, 5, 384)
    assert (a(x) - x).abs().max() < 1e-3


@pytest.mark.parametrize("name", ["relu", "swish", "tanh"])
def test_non_linearities(name):
    model = classifier("bert")
    apply_method(model, houlsby(8, non_linearity=name))
    block = model.bert.encoder.layer[0].output.dropout
    assert isinstance(block, DropoutThenAdapter)
    assert type(block.adapter.act).__name__ == {"relu": "ReLU", "swish": "SiLU", "tanh": "Tanh"}[name]


def test_unsupported_architecture_is_one_line_naming_it():
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    model = DistilBertForSequenceClassification(DistilBertConfig(dim=32, n_layers=1, n_heads=2, hidden_dim=64))
    with pytest.raises(GlueBenchError, match=r"unsupported architecture DistilBertForSequence\w+ \(distilbert"):
        apply_method(model, houlsby(8))


def test_minilm_m64_trainable_count_is_605954():
    from glue_bench.tasks import TASKS
    from glue_bench.train.models import load_model

    model = load_model(MINILM, TASKS["sst2"])
    counts = apply_method(model, houlsby(64))
    assert counts.trainable == 605_954  # 595,200 adapters + 9,984 LayerNorms + 770 head (GLUE.md)
    assert counts.base_model == sum(p.numel() for p in model.bert.parameters()) - 595_200
    assert counts.trainable_percent == pytest.approx(100 * 605_954 / counts.base_model)
