"""AdaLoRA (Zhang et al. 2023) through peft: low-rank updates in SVD form, P diag(E) Q, whose rank budget moves
during training to the projections that matter (importance from weight x gradient, smoothed).

Each targeted projection starts with `init_rank` singular values (default 1.5 x `rank`); after `adalora_tinit`
steps the budget shrinks on a cubic schedule to an average of `rank` per projection, reallocated every
`adalora_delta_t` steps, and stays fixed for the last `adalora_tfinal` steps. A penalty (`orth_reg_weight`) keeps P
and Q orthogonal. The paper's default targets are every projection of a layer (q, k, v, the attention output and
both feed-forward projections).

What it needs from the loop (`AdaLoraHooks`): the job's total step count (in its config), the orthogonality
penalty on the loss (peft adds it in `AdaLoraModel.forward`, which glue-bench's loop does not call), and
`update_and_allocate` at every optimizer step where the gradients are still in the parameters (DeepSpeed clears
them in its step, so it runs just before the step, on the weights before it, and the rank mask is applied again
after the step). Its allocator's state (importance averages and the rank pattern) goes into the resumable
checkpoint. ZeRO moves the gradients out of the parameters: AdaLoRA jobs run at ZeRO stage 0.
"""

from __future__ import annotations

import math

import torch

from glue_bench.errors import GlueBenchError
from glue_bench.method_config import lora_alpha
from glue_bench.train.methods.peft_path import MethodHooks, prepare_with
from glue_bench.train.methods.targets import target_names

PLACEHOLDER_STEPS = 10**6
"""AdaLoRA's config needs a total step count when it is built; the job's own replaces it in `begin`."""


def init_rank(spec) -> int:
    return spec.init_rank or math.ceil(1.5 * spec.rank)


def peft_config(model, spec):
    from peft import AdaLoraConfig

    return AdaLoraConfig(init_r=init_rank(spec), target_r=spec.rank, lora_alpha=lora_alpha(spec.rank, spec.alpha),
                         lora_dropout=spec.lora_dropout, tinit=spec.adalora_tinit, tfinal=spec.adalora_tfinal,
                         deltaT=spec.adalora_delta_t, orth_reg_weight=spec.orth_reg_weight,
                         total_step=PLACEHOLDER_STEPS,
                         target_modules=target_names(model, "adalora", spec.target_modules))


class AdaLoraHooks(MethodHooks):
    """The loop's part of AdaLoRA: total steps, the orthogonality penalty, the budget at each step, its state."""

    def __init__(self, tuner, spec):
        self.tuner = tuner
        self.config = tuner.peft_config["default"]
        self.factors = [(name, p) for name, p in tuner.model.named_parameters()
                        if ".lora_A." in name or ".lora_B." in name]

    def begin(self, total_steps: int) -> None:
        config = self.config
        if config.tinit + config.tfinal >= total_steps:
            raise GlueBenchError(f"adalora: adalora_tinit {config.tinit} + adalora_tfinal {config.tfinal} leave no "
                                 f"step of the job's {total_steps} to move the budget in")
        config.total_step = total_steps

    def loss(self, loss: torch.Tensor) -> torch.Tensor:
        """peft's penalty (`AdaLoraModel.forward`): mean over P and Q of ||P P^T - I||_F (A) and ||Q^T Q - I||_F (B)."""
        if not self.config.orth_reg_weight or not self.factors:
            return loss
        penalty = loss.new_zeros(())
        for name, p in self.factors:
            cov = p @ p.T if ".lora_A." in name else p.T @ p
            penalty = penalty + torch.linalg.matrix_norm(cov - torch.eye(*cov.shape, device=cov.device,
                                                                         dtype=cov.dtype))
        return loss + self.config.orth_reg_weight * penalty / len(self.factors)

    def before_step(self, step: int) -> None:
        with torch.no_grad():
            self.tuner.update_and_allocate(step)
        self._keep_pattern()

    def after_step(self, step: int) -> None:
        if self.config.rank_pattern:  # the step moved masked singular values off zero: mask them again
            with torch.no_grad():
                self.tuner.rankallocator.mask_using_rank_pattern(self.tuner.model, self.config.rank_pattern)

    def _keep_pattern(self) -> None:
        folder_config = getattr(self.tuner.model, "peft_folder_config", None)
        if folder_config is not None:
            folder_config.rank_pattern = self.config.rank_pattern

    def state_dict(self) -> dict:
        allocator = self.tuner.rankallocator
        return {"ipt": dict(allocator.ipt), "exp_avg_ipt": dict(allocator.exp_avg_ipt),
                "exp_avg_unc": dict(allocator.exp_avg_unc), "rank_pattern": self.config.rank_pattern,
                "total_step": self.config.total_step}

    def load_state_dict(self, state: dict) -> None:
        allocator = self.tuner.rankallocator
        for name in ("ipt", "exp_avg_ipt", "exp_avg_unc"):
            setattr(allocator, name, dict(state.get(name, {})))
        self.config.rank_pattern = state.get("rank_pattern")
        self._keep_pattern()


def prepare(model, spec) -> None:
    prepare_with(model, spec, peft_config(model, spec), AdaLoraHooks)
