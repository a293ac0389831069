"""OFT (Qiu et al. 2023) through peft: each targeted weight is rotated by a block-diagonal orthogonal matrix with
blocks of `block_size` (Cayley parametrised; `OFTConfig(oft_block_size=b)`).

Trained: the blocks' parameters, and the head. It starts as the pretrained model (the rotations start at the
identity).
"""

from __future__ import annotations

from glue_bench.train.methods.peft_path import prepare_with
from glue_bench.train.methods.targets import target_names


def peft_config(model, spec):
    from peft import OFTConfig

    return OFTConfig(r=0, oft_block_size=spec.block_size,
                     target_modules=target_names(model, "oft", spec.target_modules))


def prepare(model, spec) -> None:
    prepare_with(model, spec, peft_config(model, spec))
