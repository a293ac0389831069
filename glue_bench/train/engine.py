"""The DeepSpeed engine of a job: its config (a pure function of the spec), torch's AdamW, the schedule, and
one optimizer step.

DeepSpeed is pinned to 0.19 in pyproject.toml: this module sets private engine attributes
(`_global_grad_norm`, `clip_fp32_gradients`, `enable_backward_allreduce`) that other releases may rename.
"""

from __future__ import annotations

import numpy as np
import torch

from glue_bench.spec import JobSpec
from glue_bench.train.data import Encoded, Padding, rank_micro_batches
from glue_bench.train.methods import method_hooks
from glue_bench.train.methods.common import head_parameters
from glue_bench.train.runtime import Run, to_device


def build_deepspeed_config(spec: JobSpec, world_size: int, precision: str) -> dict:
    """The DeepSpeed config of a job: a pure function of the spec, world size and resolved precision."""
    micro, accum = spec.batch_layout(world_size)
    config = {
        "train_batch_size": spec.batch_size,
        "train_micro_batch_size_per_gpu": micro,
        "gradient_accumulation_steps": accum,
        "gradient_clipping": spec.max_grad_norm,
        "zero_optimization": {"stage": spec.zero_stage},
        "zero_allow_untested_optimizer": True,  # we hand DeepSpeed torch's AdamW
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
    if precision == "bf16" and spec.zero_stage == 0:
        # fp32 weights and optimizer, bf16 matmuls under torch.autocast (the Trainer's bf16): without ZeRO,
        # DeepSpeed's bf16 weights go through its fp16-style optimizer wrapper, whose per-tensor overflow checks
        # and master-weight copies cost up to 1.9x in step time on a GPU (benchmarks/gpu/)
        config["torch_autocast"] = {"enabled": True, "dtype": "bfloat16"}
    elif precision == "bf16":
        config["bf16"] = {"enabled": True}
    elif precision == "fp16":
        # fp16 needs a ZeRO optimizer for world-size-free optimizer checkpoints
        config["fp16"] = {"enabled": True, "loss_scale": 0, "initial_scale_power": 16}
        config["zero_optimization"]["stage"] = max(1, spec.zero_stage)
    return config


def build_engine(model, spec: JobSpec, run: Run, precision: str, warmup_steps: int, total_steps: int):
    """The DeepSpeed engine of a job: torch's fused AdamW, warmup + linear decay, gradient clipping.

    Returns (engine, DeepSpeed config)."""
    ds_config = build_deepspeed_config(spec, run.world, precision)
    return initialize_engine(model, spec, run, ds_config, warmup_steps, total_steps), ds_config


def initialize_engine(model, spec: JobSpec, run: Run, ds_config: dict, warmup_steps: int, total_steps: int):
    """`deepspeed.initialize` with the job's optimizer and schedule under a given DeepSpeed config (a job's is
    `build_deepspeed_config`; benchmarks pass variants of it)."""
    import deepspeed

    # fused: one kernel per parameter group on CPUs and GPUs (the per-tensor loop cost ~0.2 s a step on MiniLM)
    optimizer = torch.optim.AdamW(optimizer_groups(model, spec), lr=spec.learning_rate, fused=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, linear_schedule(warmup_steps, total_steps))
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, lr_scheduler=scheduler,
                                           config=ds_config)
    if engine.get_global_grad_norm() is None and not ds_config["zero_optimization"]["stage"]:
        # fp32 weights without ZeRO: DeepSpeed clips but drops the norm; keep it for the history. Every rank
        # holds the same, all-reduced gradients here, so torch's foreach clip (one fused norm, one fused scale)
        # does what DeepSpeed's does tensor by tensor, less its all-reduce of the norm.
        trainable = [p for p in engine.module.parameters() if p.requires_grad]

        def clip_and_keep_norm() -> None:
            # a private attribute of DeepSpeed 0.19 (pinned in pyproject.toml)
            engine._global_grad_norm = torch.nn.utils.clip_grad_norm_(trainable, spec.max_grad_norm, foreach=True)
        engine.clip_fp32_gradients = clip_and_keep_norm
    if run.world == 1 and not ds_config["zero_optimization"]["stage"]:
        # one rank and no ZeRO: nothing to reduce; skips DeepSpeed's flatten, all-reduce and unflatten copies
        engine.enable_backward_allreduce = False  # private to DeepSpeed 0.19 (pinned in pyproject.toml)
    return engine


def optimizer_groups(model, spec: JobSpec) -> list[dict]:
    """AdamW groups: weight decay on weight matrices, none on biases, LayerNorm parameters and (IA)³'s
    scales (they start at one: decay would pull them to zero, not to the pretrained model); within each, one group
    per learning rate: the task head's `head_learning_rate` and the method's own factors (LoRA+'s B matrices)."""
    hooks = method_hooks(model)
    head = {id(p) for p in head_parameters(model)}
    no_decay = {id(p) for m in model.modules() if isinstance(m, torch.nn.LayerNorm) for p in m.parameters()}
    # the groups at the job's rate come first, as before there were others (checkpoints keep their layout);
    # DeepSpeed drops an empty group, so there is none
    groups: dict[tuple[bool, float], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        decays = not (name.endswith(".bias") or ".ia3_l." in name or id(p) in no_decay)
        lr = spec.head_learning_rate if id(p) in head and spec.head_learning_rate else spec.learning_rate
        groups.setdefault((decays, lr * hooks.learning_rate_scale(name)), []).append(p)
    order = sorted(groups, key=lambda key: (key[1] != spec.learning_rate, not key[0], key[1]))
    return [{"params": groups[key], "weight_decay": spec.weight_decay if key[0] else 0.0, "lr": key[1]}
            for key in order]


def linear_schedule(warmup_steps: int, total_steps: int):
    """lr multiplier: linear warmup to 1, then linear decay to 0 at `total_steps`."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))
    return factor


def train_step(engine, train: Encoded, batch_rows: np.ndarray, run: Run, accum: int, collator: Padding,
               step: int = 0):
    """One optimizer step on one global batch: this rank's micro-batches, forward, backward, step, with the
    method's hooks (`glue_bench.train.methods.MethodHooks`) around it. `step`: optimizer steps done before.

    Returns (sum of micro-batch task losses x examples, as a device tensor; examples seen by this rank)."""
    hooks = method_hooks(engine.module)
    loss_sum, examples = 0.0, 0
    for rows in rank_micro_batches(batch_rows, run.world, run.rank, accum):
        batch = to_device(collator(train, rows), run.device)
        out = engine(**batch)
        # The model's loss is a mean over the micro-batch; rescale so that DeepSpeed's averaging over
        # accumulation steps and ranks yields the exact global-batch mean.
        engine.backward(hooks.loss(out.loss) * (len(rows) * run.world * accum / len(batch_rows)))
        if engine.is_gradient_accumulation_boundary():
            hooks.before_step(step)
        engine.step()
        loss_sum = loss_sum + out.loss.detach() * len(rows)
        examples += len(rows)
    hooks.after_step(step)
    return loss_sum, examples
