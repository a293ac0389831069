"""FourierFT (Gao et al. 2024) through peft: each targeted weight's update is the inverse 2-D Fourier transform of a
spectrum with `n_frequency` trained coefficients at fixed random positions (peft's `random_loc_seed`, the same
for every job), scaled by `fourier_scaling`.

Trained: the coefficients, and the head (its own learning rate in the paper's recipe: `head_learning_rate`).
The coefficients start from a standard normal draw, as in the paper and peft's default, so the model does not start
exactly as the pretrained one.
"""

from __future__ import annotations

from glue_bench.train.methods.peft_path import prepare_with
from glue_bench.train.methods.targets import target_names


def peft_config(model, spec):
    from peft import FourierFTConfig

    return FourierFTConfig(n_frequency=spec.n_frequency, scaling=spec.fourier_scaling,
                           target_modules=target_names(model, "fourierft", spec.target_modules))


def prepare(model, spec) -> None:
    prepare_with(model, spec, peft_config(model, spec))
