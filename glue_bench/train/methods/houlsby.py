"""Houlsby bottleneck adapters (Houlsby et al. 2019), as the original code places them.

Two adapters per layer, on the attention output and the feed-forward output, each applied after the
block's output projection and dropout and before its residual add and LayerNorm. An adapter projects
d -> m, applies a non-linearity, projects m -> d and adds its input back (skip connection); both
projections start from a small normal init and zero biases, so a new adapter is close to the identity.
Trained: the adapters, every LayerNorm and the task head; BERT's pooler stays frozen as in the original
(`train_pooler` trains it too).
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from glue_bench.train.methods.common import (
    extra_parameters,
    head_parameters,
    layernorm_parameters,
    output_blocks,
    train_only,
)

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "swish": nn.SiLU, "tanh": nn.Tanh}


class Bottleneck(nn.Module):
    """up(act(down(z))): exactly m units; both projections from a small normal init with zero biases (Pfeiffer
    adapters use it as it is)."""

    def __init__(self, hidden_size: int, bottleneck: int, non_linearity: str = "gelu", init_std: float = 1e-3):
        super().__init__()
        self.down = nn.Linear(hidden_size, bottleneck)
        self.act = ACTIVATIONS[non_linearity]()
        self.up = nn.Linear(bottleneck, hidden_size)
        for linear in (self.down, self.up):
            nn.init.normal_(linear.weight, std=init_std)
            nn.init.zeros_(linear.bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.up(self.act(self.down(z)))


class Adapter(Bottleneck):
    """x + up(act(down(x))): a bottleneck of exactly m units with a skip connection."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + super().forward(x)


class DropoutThenAdapter(nn.Module):
    """Takes the place of an output block's dropout, so the adapter sees the projected, dropped-out
    output and its result goes on into the block's residual add and LayerNorm unchanged."""

    def __init__(self, dropout: nn.Dropout, adapter: Adapter):
        super().__init__()
        self.dropout = dropout
        self.adapter = adapter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.adapter(self.dropout(x))


def adapters(model) -> list[Adapter]:
    return [m for m in model.modules() if isinstance(m, Adapter)]


def prepare(model, spec) -> None:
    for _, block in output_blocks(model):
        adapter = Adapter(block.dense.out_features, spec.bottleneck, spec.non_linearity, spec.adapter_init_std)
        block.dropout = DropoutThenAdapter(block.dropout, adapter.to(block.dense.weight.device))
    adapter_params = itertools.chain.from_iterable(a.parameters() for a in adapters(model))
    train_only(model, itertools.chain(adapter_params, layernorm_parameters(model), head_parameters(model),
                                      extra_parameters(model, spec)))
