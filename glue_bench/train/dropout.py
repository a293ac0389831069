"""Dropout with cheap masks on the CPU.

torch draws a CPU dropout mask one element at a time from its global generator, on one thread (its MKL path
is for Intel CPUs only): `aten::bernoulli_` is 11% of an SST-2 step in `python -m benchmarks profile` on the
2-core benchmark machine; more on long pairs, where the attention probabilities ([batch, heads, length,
length]) are dropped out too.

Here each mask costs one draw from torch's generator, which seeds numpy's SFC64; its 32-bit words compared
with keep x 2**32 give Bernoulli(keep) up to a 2**-32 rounding of keep. All
randomness still comes from torch's generator, so seeding, the RNG state in checkpoints and resuming work as
before; the masks differ from torch's, so a run is not bit-identical to one with `nn.Dropout`.

`use_fast_dropout(model)` swaps every `nn.Dropout` of a model for `FastDropout` and, for models on torch's
SDPA attention (BERT, RoBERTa, ELECTRA, ...), routes attention through `attention`, which drops the
attention probabilities out the same way while training and calls SDPA unchanged otherwise. GPU jobs keep
torch's own fused dropout.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)

ATTENTION = "glue_bench_sdpa"


def keep_mask(shape: torch.Size | tuple[int, ...], keep: float) -> torch.Tensor:
    """A bool mask of `shape`, each element True with probability `keep` (0 < keep < 1), independently."""
    n = math.prod(shape)
    seed = int(torch.randint(0, 2**63 - 1, (), dtype=torch.int64))
    words = np.random.SFC64(seed).random_raw((n + 1) // 2).view(np.uint32)[:n]
    threshold = np.uint32(min(round(keep * 2**32), 2**32 - 1))
    return torch.from_numpy(words < threshold).view(shape)


def fast_dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """`torch.nn.functional.dropout(x, p, training)` with the mask from `keep_mask`."""
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    scale = keep_mask(x.shape, 1.0 - p).to(device=x.device, dtype=x.dtype).mul_(1.0 / (1.0 - p))
    return x * scale


class FastDropout(nn.Dropout):
    """`nn.Dropout` (same `p`, same state dict) with masks from `keep_mask`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fast_dropout(x, self.p, self.training)


def attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None,
              **kwargs):
    """transformers' SDPA attention; while training with dropout, the same attention written out, with the
    probabilities dropped out by `fast_dropout`. Shapes as in transformers: [batch, heads, length, head dim] in,
    [batch, length, heads, head dim] out."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if dropout == 0.0:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=0.0, scaling=scaling,
                                      **kwargs)
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:  # True: attend
            weights = weights.masked_fill(~attention_mask, torch.finfo(weights.dtype).min)
        else:
            weights = weights + attention_mask
    weights = fast_dropout(torch.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype), dropout)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), None


def register_attention() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    AttentionInterface.register(ATTENTION, attention)
    AttentionMaskInterface.register(ATTENTION, ALL_MASK_ATTENTION_FUNCTIONS["sdpa"])


def use_fast_dropout(model: nn.Module) -> int:
    """Swap `model`'s dropout for `FastDropout` and `attention` in place. Returns the number of modules swapped."""
    swapped = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is nn.Dropout:
                fast = FastDropout(child.p, child.inplace)
                fast.train(child.training)
                setattr(module, name, fast)
                swapped += 1
    config = getattr(model, "config", None)
    if config is not None and getattr(config, "_attn_implementation", None) == "sdpa":
        register_attention()
        try:
            model.set_attn_implementation(ATTENTION)
        except (AttributeError, NotImplementedError, ValueError) as e:  # a model that takes no custom attention
            log.info("attention dropout stays torch's: %s", e)
    return swapped
