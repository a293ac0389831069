"""Pfeiffer bottleneck adapters (Pfeiffer et al. 2021; the adapters library's `SeqBnConfig`).

One adapter per layer, at the feed-forward output only. With h the block's projected, dropped-out output,
x the block's input and LN the block's pretrained LayerNorm (used twice, frozen):

    y = LN(h + A(LN(h + x)) + x),   A(z) = up(act(down(z)))

A has exactly m units, no skip of its own (h is the residual); both projections start from a small normal
init and zero biases, so a new adapter leaves the block close to the pretrained one. Trained: the adapters
and the task head (and the pooler with `train_pooler`); every LayerNorm stays frozen.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from glue_bench.train.methods.common import extra_parameters, head_parameters, train_only
from glue_bench.train.methods.houlsby import Bottleneck


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
    return [m for m in model.modules() if type(m) is Bottleneck]


def prepare(model, spec) -> None:
    for layer in model.base_model.encoder.layer:
        block = layer.output
        adapter = Bottleneck(block.dense.out_features, spec.bottleneck, spec.non_linearity, spec.adapter_init_std)
        layer.output = PfeifferOutput(block, adapter.to(block.dense.weight.device))
    adapter_params = itertools.chain.from_iterable(a.parameters() for a in adapters(model))
    train_only(model, itertools.chain(adapter_params, head_parameters(model), extra_parameters(model, spec)))
