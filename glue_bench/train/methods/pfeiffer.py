"""Pfeiffer bottleneck adapters (Pfeiffer et al. 2021; the adapters library's `SeqBnConfig`).

One adapter per layer, at the feed-forward output only. With h the block's projected, dropped-out output,
x the block's input and LN the block's pretrained LayerNorm (used twice, frozen):

    y = LN(h + A(LN(h + x)) + x),   A(z) = up(act(down(z)))

A has exactly m units, no skip of its own (h is the residual). A pre-LayerNorm encoder (ModernBERT) has no
LayerNorm after the feed-forward residual add to use twice: there the adapter takes the feed-forward output h
before the residual add, y = x + h + A(h) (the adapters library's placement for pre-LN models), the same place
as Houlsby's feed-forward adapter. Both projections start from a small normal init and zero biases, so a new
adapter leaves the block close to the pretrained one. Trained: the adapters and the task head (and the pooler
with `train_pooler`); every LayerNorm stays frozen.
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
    set_submodule,
    submodule,
    train_only,
)
from glue_bench.train.methods.houlsby import Adapter, Bottleneck, insert_adapter


class PfeifferOutput(nn.Module):
    """Takes the place of a layer's feed-forward output block; keeps its `dense`, `dropout` and
    `LayerNorm` under their names, so the pretrained weights keep theirs."""

    def __init__(self, block: nn.Module, adapter: Bottleneck):
        super().__init__()
        self.dense, self.dropout, self.LayerNorm = block.dense, block.dropout, block.LayerNorm
        self.adapter = adapter

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        h = self.dropout(self.dense(hidden_states))
        return self.LayerNorm(h + self.adapter(self.LayerNorm(h + input_tensor)) + input_tensor)


def adapters(model) -> list[Bottleneck]:
    return [m for m in model.modules() if type(m) in (Bottleneck, Adapter)]


def prepare(model, spec) -> None:
    encoder, hidden = encoder_of(model), model.config.hidden_size
    for layer in encoder_layers(model):
        device = next(layer.parameters()).device
        if encoder.pfeiffer_block is None:  # pre-LN: h + A(h) before the residual add
            insert_adapter(layer, encoder.adapter_after[1],
                           Adapter(hidden, spec.bottleneck, spec.non_linearity, spec.adapter_init_std).to(device))
            continue
        block = submodule(layer, encoder.pfeiffer_block)
        adapter = Bottleneck(hidden, spec.bottleneck, spec.non_linearity, spec.adapter_init_std)
        set_submodule(layer, encoder.pfeiffer_block, PfeifferOutput(block, adapter.to(device)))
    adapter_params = itertools.chain.from_iterable(a.parameters() for a in adapters(model))
    train_only(model, itertools.chain(adapter_params, head_parameters(model), extra_parameters(model, spec)))
