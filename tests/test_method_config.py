"""Pfeiffer, LoRA, BitFit, (IA)³ and train_pooler: counts by hand, each method's forward written out by hand."""

import pytest
import torch
from test_methods import classifier
from tiny import MINILM

from glue_bench.errors import GlueBenchError
from glue_bench.method_config import FAMILIES, MethodConfig
from glue_bench.spec import JobSpec
from glue_bench.train.methods import REGISTRY, apply_method
from glue_bench.train.methods.pfeiffer import PfeifferOutput

IDS = torch.tensor([[101, 2023, 2003, 1037, 3231, 102], [101, 2307, 2154, 102, 0, 0]])
MASK = (IDS != 0).long()


def spec(method: str, **kw) -> JobSpec:
    return JobSpec(task="rte", model="x", method=method, **kw)


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


def test_ia3_scales_get_no_weight_decay():
    from glue_bench.train.engine import optimizer_groups

    model = classifier("bert")
    apply_method(model, spec("ia3"))
    decay, plain = optimizer_groups(model, 0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(".ia3_l." not in names[id(p)] for p in decay["params"])
    assert sum(".ia3_l." in names[id(p)] for p in plain["params"]) == 6
    assert {names[id(p)] for p in decay["params"]} == {"classifier.weight"}
