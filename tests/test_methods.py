"""The methods (glue_bench/train/methods/) applied to tiny encoders: trainable counts by hand, each method's
forward written out by hand, train_pooler, targets, and the refusals."""

import pytest
import torch
from tiny import MINILM, classifier, houlsby, spec

from glue_bench.errors import GlueBenchError
from glue_bench.method_config import FAMILIES
from glue_bench.spec import JobSpec
from glue_bench.train.methods import REGISTRY, apply_method
from glue_bench.train.methods.houlsby import Adapter, DropoutThenAdapter
from glue_bench.train.methods.pfeiffer import PfeifferOutput


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


# -- pfeiffer, lora, bitfit, ia3 and train_pooler --------------------------------------------------------------

IDS = torch.tensor([[101, 2023, 2003, 1037, 3231, 102], [101, 2307, 2154, 102, 0, 0]])
MASK = (IDS != 0).long()


# Hand-computed for the tiny encoders (hidden d=32, 2 layers, feed-forward 64, 2 labels):
#   head: BERT classifier 32*2+2 = 66; RoBERTa/ELECTRA dense 32*32+32 + out_proj 66 = 1122
#   pfeiffer m=8: 2 layers x (2*32*8 + 32 + 8) = 1104
#   lora r=4 on query, value: 2 layers x 2 x (4*32 + 32*4) = 1024
#   bitfit: per layer q, k, v, attention output, attention LN beta, feed-forward 64, output, output LN beta
#           = 7*32 + 64 = 288; x2 = 576; + embeddings LN beta 32 = 608; BERT's pooler bias 32 (the others'
#           classifiers have no pooler)
#   ia3: 2 layers x (key 32 + value 32 + feed-forward input 64) = 256
HEAD = {"bert": 66, "roberta": 1122, "electra": 1122}
CASES = [
    ("pfeiffer", {"bottleneck": 8}, {"bert": 1104, "roberta": 1104, "electra": 1104}),
    ("lora", {"rank": 4}, {"bert": 1024, "roberta": 1024, "electra": 1024}),
    ("bitfit", {}, {"bert": 640, "roberta": 608, "electra": 608}),
    ("ia3", {}, {"bert": 256, "roberta": 256, "electra": 256}),
]


@pytest.mark.parametrize("kind", ["bert", "roberta", "electra"])
@pytest.mark.parametrize(("method", "params", "own"), CASES, ids=[c[0] for c in CASES])
def test_trainable_counts_by_hand(kind, method, params, own):
    model = classifier(kind)
    counts = apply_method(model, spec(method, **params))
    assert counts.trainable == own[kind] + HEAD[kind]
    assert counts.head == HEAD[kind]
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == counts.trainable


def test_train_pooler_adds_the_pooler_and_refuses_encoders_without_one():
    pooler = 32 * 32 + 32
    for method, params, base in (("houlsby", {"bottleneck": 8}, 2594), ("layernorm_head", {}, 386),
                                 ("lora", {"rank": 4}, 1090), ("bitfit", {}, 706)):
        counts = apply_method(classifier("bert"), spec(method, train_pooler=True, **params))
        # bitfit already trains the pooler's bias
        assert counts.trainable == base + pooler - (32 if method == "bitfit" else 0), method
    with pytest.raises(GlueBenchError, match=r"train_pooler: RobertaForSequenceClassification .* has no pooler"):
        apply_method(classifier("roberta"), spec("pfeiffer", bottleneck=8, train_pooler=True))


def test_minilm_counts_from_the_issue():
    from glue_bench.tasks import TASKS
    from glue_bench.train.models import load_model

    expected = {"lora": ({"rank": 8}, 73_728), "pfeiffer": ({"bottleneck": 64}, 297_600),
                "bitfit": ({}, 26_112), "ia3": ({}, 6 * (384 + 384 + 1536))}
    for method, (params, own) in expected.items():
        model = load_model(MINILM, TASKS["sst2"])
        counts = apply_method(model, spec(method, **params))
        assert counts.trainable == own + 770, method


def test_registry_is_the_families():
    assert list(REGISTRY) == list(FAMILIES)


def test_pfeiffer_block_is_the_formula_by_hand():
    model = classifier("bert")
    apply_method(model, spec("pfeiffer", bottleneck=8, adapter_init_std=0.5, non_linearity="relu"))
    block = model.bert.encoder.layer[1].output
    assert isinstance(block, PfeifferOutput)
    assert model.bert.encoder.layer[1].attention.output.__class__.__name__ == "BertSelfOutput"  # untouched
    seen = {}
    block.register_forward_hook(lambda mod, args, out: seen.update(args=args, out=out))
    model(input_ids=IDS, attention_mask=MASK)
    hidden, x = seen["args"]
    ln, a = block.LayerNorm, block.adapter
    h = hidden @ block.dense.weight.T + block.dense.bias  # dropout is the identity in eval
    z = torch.nn.functional.layer_norm(h + x, ln.normalized_shape, ln.weight, ln.bias, ln.eps)
    adapter = torch.relu(z @ a.down.weight.T + a.down.bias) @ a.up.weight.T + a.up.bias
    expected = torch.nn.functional.layer_norm(h + adapter + x, ln.normalized_shape, ln.weight, ln.bias, ln.eps)
    torch.testing.assert_close(seen["out"], expected)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert not any("LayerNorm" in n for n in trainable)
    assert "bert.encoder.layer.0.output.adapter.down.weight" in trainable
    assert "bert.encoder.layer.0.output.dense.weight" in dict(model.named_parameters())  # pretrained names kept


def test_lora_projection_is_wx_plus_scaled_bax_and_starts_unchanged():
    base = classifier("bert")
    before = base(input_ids=IDS, attention_mask=MASK).logits.detach().clone()
    model = classifier("bert")
    apply_method(model, spec("lora", rank=4, alpha=12))
    assert torch.equal(model(input_ids=IDS, attention_mask=MASK).logits, before)  # B = 0: exactly the base model
    query = model.bert.encoder.layer[0].attention.self.query
    a, b = query.lora_A["default"].weight, query.lora_B["default"].weight
    assert torch.count_nonzero(b) == 0 and torch.count_nonzero(a) > 0
    with torch.no_grad():
        b.normal_()
    x = torch.randn(3, 5, 32)
    w = query.base_layer
    expected = x @ w.weight.T + w.bias + (12 / 4) * (x @ a.T @ b.T)
    torch.testing.assert_close(query(x), expected, atol=1e-6, rtol=1e-6)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n in trainable if ".lora_" in n or n.startswith("classifier.")}
    assert {n.split(".")[6] for n in trainable if ".lora_" in n} == {"query", "value"}


def test_lora_target_presets_and_names():
    model = classifier("bert")
    apply_method(model, spec("lora", rank=2, target_modules="attention.output.dense,output.dense"))
    adapted = {n.rsplit(".lora_", 1)[0] for n, _ in model.named_parameters() if ".lora_A." in n}
    assert adapted == {f"bert.encoder.layer.{i}.{m}" for i in (0, 1)
                       for m in ("attention.output.dense", "output.dense")}
    model = classifier("bert")
    counts = apply_method(model, spec("lora", rank=2, target_modules="all"))
    # per layer: q, k, v, attention output 4 x 2*(2*32) = 512; intermediate 2*32 + 64*2 = 192; output 192
    assert counts.trainable == 2 * (512 + 192 + 192) + 66


def test_ia3_scales_keys_values_and_feedforward_input_and_starts_unchanged():
    base = classifier("bert")
    before = base(input_ids=IDS, attention_mask=MASK).logits.detach().clone()
    model = classifier("bert")
    apply_method(model, spec("ia3"))
    torch.testing.assert_close(model(input_ids=IDS, attention_mask=MASK).logits, before, atol=0, rtol=0)
    scaled = {n.rsplit(".ia3_l", 1)[0]: p.shape for n, p in model.named_parameters() if ".ia3_l." in n}
    assert set(scaled) == {f"bert.encoder.layer.{i}.{m}" for i in (0, 1)
                           for m in ("attention.self.key", "attention.self.value", "output.dense")}
    assert scaled["bert.encoder.layer.0.output.dense"] == (1, 64)  # the feed-forward input, not its output
    assert scaled["bert.encoder.layer.0.attention.self.key"] == (32, 1)


def test_ia3_gets_its_targets_on_electra():
    model = classifier("electra")
    apply_method(model, spec("ia3"))
    assert sum(".ia3_l." in n for n, _ in model.named_parameters()) == 6


def test_target_that_matches_nothing_is_one_clear_error():
    with pytest.raises(GlueBenchError, match=r"target_modules: 'qurey' matches no projection of BertFor\w+ .*"
                                             r"names in a layer: .*attention.self.query"):
        apply_method(classifier("bert"), spec("lora", rank=4, target_modules="query,qurey"))


def test_ia3_scales_get_no_weight_decay():
    from glue_bench.train.engine import optimizer_groups

    model = classifier("bert")
    apply_method(model, spec("ia3"))
    decay, plain = optimizer_groups(model, spec("ia3", weight_decay=0.01))
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(".ia3_l." not in names[id(p)] for p in decay["params"])
    assert sum(".ia3_l." in names[id(p)] for p in plain["params"]) == 6
    assert {names[id(p)] for p in decay["params"]} == {"classifier.weight"}
