"""BOFT (Liu et al. 2024) through peft: each targeted weight is rotated by a product of `butterfly_factor`
butterfly-permuted block-diagonal orthogonal matrices with blocks of `block_size` (Cayley parametrised), and its
output rows rescaled.

peft runs more than one butterfly factor only with its CUDA kernel; without it (on the CPU, or when the kernel
cannot be built) peft silently falls back to one factor. glue-bench refuses `butterfly_factor` above 1 where the
kernel is missing instead, so a job never trains another method than the one its id names. Trained: the
rotations' parameters and scales, and the head.
"""

from __future__ import annotations

import contextlib
import warnings

import torch

from glue_bench.errors import GlueBenchError
from glue_bench.train.methods.peft_path import on_meta, prepare_with
from glue_bench.train.methods.targets import target_names


def butterfly_kernel_available() -> bool:
    """Whether peft's CUDA butterfly kernel loads here (peft tries to build it once and warns when it cannot: the
    warning is this function's answer, not printed)."""
    from peft.tuners.boft.layer import get_fbd_cuda

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return get_fbd_cuda() is not None


@contextlib.contextmanager
def counting_as_asked():
    """On the meta device (counting parameters, pricing a GPU sweep anywhere): peft's layers as the kernel would
    build them, so `butterfly_factor` counts as asked (nothing runs on the meta device, so the kernel is not used)."""
    from unittest import mock

    with mock.patch("peft.tuners.boft.layer.get_fbd_cuda", return_value=object()), torch.device("cpu"):
        yield


def peft_config(model, spec):
    from peft import BOFTConfig

    return BOFTConfig(boft_block_size=spec.block_size, boft_n_butterfly_factor=spec.butterfly_factor,
                      target_modules=target_names(model, "boft", spec.target_modules))


def prepare(model, spec) -> None:
    if on_meta(model):
        # peft builds the butterfly permutations with host values (`.item()`): on the CPU, as the kernel would
        with counting_as_asked():
            prepare_with(model, spec, peft_config(model, spec))
        return
    if spec.butterfly_factor > 1 and not butterfly_kernel_available():
        raise GlueBenchError(f"boft: butterfly_factor {spec.butterfly_factor} needs peft's CUDA butterfly kernel, "
                             "which is not available here (peft would fall back to 1 factor): use "
                             "butterfly_factor 1 or a GPU machine that can build the kernel")
    with warnings.catch_warnings():  # with butterfly_factor 1, peft's kernel is not needed: its warning is not news
        warnings.simplefilter("ignore")
        prepare_with(model, spec, peft_config(model, spec))
