"""Fast dropout (glue_bench/train/dropout.py): its keep mask, and the written-out attention it swaps in."""

import pytest
import torch
from tiny import classifier, houlsby

from glue_bench.train import dropout
from glue_bench.train.dropout import FastDropout, fast_dropout, keep_mask, use_fast_dropout
from glue_bench.train.methods import apply_method


def test_keep_mask_rate_and_seeding():
    torch.manual_seed(0)
    mask = keep_mask((1000, 1000), 0.9)
    assert mask.dtype == torch.bool and mask.shape == (1000, 1000)
    # 10^6 Bernoulli(0.9) draws: the rate is 0.9 within 5 standard deviations (3e-4 each)
    assert abs(mask.float().mean().item() - 0.9) < 5 * 3e-4
    assert abs(keep_mask((1000, 1000), 0.5).float().mean().item() - 0.5) < 5 * 5e-4
    torch.manual_seed(0)
    assert torch.equal(keep_mask((1000, 1000), 0.9), mask)  # all randomness from torch's generator
    assert not torch.equal(keep_mask((1000, 1000), 0.9), mask)
    assert keep_mask((3, 5, 7), 0.9).shape == (3, 5, 7)  # odd element count


def test_fast_dropout_scales_kept_values_and_gradients():
    x = torch.randn(64, 33, requires_grad=True)
    torch.manual_seed(1)
    y = fast_dropout(x, 0.25)
    kept = y != 0
    assert 0.6 < kept.float().mean().item() < 0.9
    assert torch.allclose(y[kept], x[kept] / 0.75)
    y.sum().backward()
    assert torch.allclose(x.grad, kept.float() / 0.75)
    assert fast_dropout(x, 0.25, training=False) is x
    assert fast_dropout(x, 0.0) is x
    assert torch.equal(fast_dropout(x, 1.0), torch.zeros_like(x))


@pytest.mark.parametrize("kind", ["bert", "roberta", "electra"])
def test_swapped_model_predicts_the_same_and_trains_like_plain_attention(kind):
    ids = torch.randint(1000, 2000, (4, 12))
    mask = torch.ones(4, 12, dtype=torch.long)
    mask[1, 7:] = 0
    mask[3, 3:] = 0
    model = classifier(kind)
    apply_method(model, houlsby(8))
    reference = model(input_ids=ids, attention_mask=mask).logits
    dropouts = [m for m in model.modules() if type(m) is torch.nn.Dropout]
    assert use_fast_dropout(model) == len(dropouts) > 0
    assert not any(type(m) is torch.nn.Dropout for m in model.modules())
    assert model.config._attn_implementation == dropout.ATTENTION
    # eval: SDPA, unchanged
    assert torch.equal(model(input_ids=ids, attention_mask=mask).logits, reference)
    # training with (almost) no dropout goes through the written-out attention with its padding mask
    # and gives the same logits
    for m in model.modules():
        if isinstance(m, FastDropout):
            m.p = 1e-12
    model.train()
    trained = model(input_ids=ids, attention_mask=mask).logits
    assert torch.allclose(trained, reference, atol=1e-5)
    # real dropout changes them, the same way under the same seed
    for m in model.modules():
        if isinstance(m, FastDropout):
            m.p = 0.1
    torch.manual_seed(3)
    first = model(input_ids=ids, attention_mask=mask).logits
    torch.manual_seed(3)
    assert torch.equal(model(input_ids=ids, attention_mask=mask).logits, first)
    assert not torch.allclose(first, reference, atol=1e-5)


def test_attention_probabilities_are_dropped_out(monkeypatch):
    """The written-out attention drops out whole attention probabilities with the keep mask."""
    q, k, v = (torch.randn(2, 2, 5, 4) for _ in range(3))
    module = torch.nn.Module()
    drops = []
    real = dropout.keep_mask

    def spy(shape, keep):
        drops.append((tuple(shape), keep))
        return real(shape, keep)
    monkeypatch.setattr(dropout, "keep_mask", spy)
    out, weights = dropout.attention(module, q, k, v, None, dropout=0.5, scaling=0.5)
    assert weights is None and out.shape == (2, 5, 2, 4)
    assert drops == [((2, 2, 5, 5), 0.5)]
