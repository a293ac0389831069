"""Houlsby bottleneck adapters (Houlsby et al. 2019), as the original code places them.

Two adapters per layer, on the attention output and the feed-forward output, each applied after the
block's output projection and dropout and before its residual add and LayerNorm. Where that is in each
encoder family is data (`glue_bench.encoders.Encoder.adapter_after`): BERT-style and DeBERTa layers take them
at their output blocks' dropout; a pre-LayerNorm layer (ModernBERT) at the last module of each sublayer, whose
output goes straight into the residual add (docs/methods.md says why). An adapter projects
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
    encoder_layers,
    encoder_of,
    extra_parameters,
    head_parameters,
    layernorm_parameters,
    set_submodule,
    submodule,
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


class ThenAdapter(nn.Module):
    """Takes the place of the module an adapter follows (an output block's dropout; a pre-LN sublayer's last
    projection), so the adapter sees that module's output and its result goes on into the residual add
    unchanged. The module keeps its place as `dropout` (its parameters, if any, are renamed under it)."""

    def __init__(self, dropout: nn.Module, adapter: nn.Module):
        super().__init__()
        self.dropout = dropout
        self.adapter = adapter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.adapter(self.dropout(x))


DropoutThenAdapter = ThenAdapter
"""Its name where it follows a dropout (BERT-style layers)."""


def insert_adapter(layer: nn.Module, path: str, adapter: nn.Module) -> None:
    """Put `adapter` after the module at `path` in `layer`, on that module's device."""
    inner = submodule(layer, path)
    device = next(iter(inner.parameters()), None)
    set_submodule(layer, path, ThenAdapter(inner, adapter.to(device.device) if device is not None else adapter))


def adapters(model) -> list[Adapter]:
    return [m for m in model.modules() if isinstance(m, Adapter)]


def prepare(model, spec) -> None:
    hidden, places = model.config.hidden_size, encoder_of(model).adapter_after
    for layer in encoder_layers(model):
        device = next(layer.parameters()).device
        for path in places:
            insert_adapter(layer, path, Adapter(hidden, spec.bottleneck, spec.non_linearity,
                                                spec.adapter_init_std).to(device))
    adapter_params = itertools.chain.from_iterable(a.parameters() for a in adapters(model))
    train_only(model, itertools.chain(adapter_params, layernorm_parameters(model), head_parameters(model),
                                      extra_parameters(model, spec)))
