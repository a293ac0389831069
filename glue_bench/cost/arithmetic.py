"""What a job costs, as arithmetic: its tokens, its FLOPs and its device seconds (pure, no torch, no files).

A job's device time is modelled as

    start-up + steps x per-step overhead + training FLOPs / FLOP rate
             + evaluation batches x per-batch overhead + evaluation FLOPs / FLOP rate

where the two (overhead, rate) pairs come from a calibration (`glue-bench calibrate` measures them on real
batches) or, without one, from a stated fraction of the device's matmul rate and a stated launch floor.
FLOPs per token (Kaplan et al. 2020, as used for MFU): a matmul weight costs 2 FLOPs per token forward,
2 more for the gradient of its input and 2 for its own gradient, so 6 per trainable weight and 4 per frozen
one (no weight gradient); attention adds 4 x layers x hidden x sequence length forward (QK^T and AV),
12 x ... in training. Embeddings, LayerNorms and biases are not matmuls and are left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Structure:
    """What the FLOP model needs of a prepared model (counted from `requires_grad` on its Linear layers)."""

    trainable_matmul: int
    """Weights of Linear layers that train (biases excluded)."""
    frozen_matmul: int
    """Weights of Linear layers that stay frozen."""
    trainable: int
    """All trainable parameters (what the optimizer updates)."""
    total: int
    """All parameters."""
    layers: int
    """Transformer layers."""
    hidden: int
    """Hidden size."""
    head_trainable: int = -1
    """Trainable parameters of the task head (outside the base encoder): the papers leave them out of their counts
    (-1: not counted, in a structure kept before it was)."""

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__}

    @classmethod
    def from_dict(cls, d: dict) -> Structure:
        return cls(**{k: int(d[k]) for k in cls.__slots__ if k in d or k != "head_trainable"})

    @property
    def paper_trainable(self) -> int:
        """Trainable parameters as the papers count them: the task head left out."""
        return self.trainable - max(0, self.head_trainable)


def train_flops_per_token(s: Structure, seq: float) -> float:
    """Training FLOPs per token at mean sequence length `seq`: 6 x trainable + 4 x frozen matmul weights,
    plus attention (12 x layers x hidden x seq)."""
    return 6 * s.trainable_matmul + 4 * s.frozen_matmul + 12 * s.layers * s.hidden * seq


def eval_flops_per_token(s: Structure, seq: float) -> float:
    """Forward-only FLOPs per token: 2 x every matmul weight, plus attention (4 x layers x hidden x seq)."""
    return 2 * (s.trainable_matmul + s.frozen_matmul) + 4 * s.layers * s.hidden * seq


@dataclass(frozen=True, slots=True)
class SplitLengths:
    """Token counts of one split: from the token cache's real lengths, or official size x mean length."""

    examples: int
    tokens: int
    """Non-pad tokens of those examples (after truncation)."""
    measured: bool
    """True: the real lengths from the token cache; False: official size x a documented mean length."""

    @property
    def mean(self) -> float:
        return self.tokens / self.examples if self.examples else 0.0


@dataclass(frozen=True, slots=True)
class JobWork:
    """The work of one job: optimizer steps and tokens trained, evaluation batches and tokens predicted."""

    train_examples: int
    """Training examples per epoch (after `max_train_samples`)."""
    epochs: int
    steps: int
    """Optimizer steps over all epochs."""
    train_tokens: int
    """Non-pad tokens trained on, all epochs."""
    train_seq: float
    """Mean non-pad tokens per training example."""
    eval_batches: int
    """Batches of every dev evaluation, the final dev prediction and the test prediction."""
    eval_tokens: int
    """Non-pad tokens of those batches."""
    eval_seq: float
    """Mean non-pad tokens per evaluated example."""


def dev_passes(epochs: int, per_epoch: int, eval_every_steps: int | None) -> int:
    """Passes over the dev splits: one per epoch end, one every N steps (except at epoch ends, where the
    epoch's own evaluation runs), and the final prediction with the best weights."""
    extra = 0
    if eval_every_steps:
        total = epochs * per_epoch
        both = math.lcm(eval_every_steps, per_epoch) if per_epoch else 0
        extra = total // eval_every_steps - (total // both if both else 0)
    return epochs + extra + 1


def job_work(train: SplitLengths, dev: list[SplitLengths], test: list[SplitLengths], *, epochs: int,
             per_epoch: int, eval_batch: int, eval_every_steps: int | None = None) -> JobWork:
    """A job's steps, tokens and evaluation batches from the lengths of its (subset of) splits and its steps per
    epoch (`JobSpec.steps_per_epoch`, the rule training follows)."""
    passes = dev_passes(epochs, per_epoch, eval_every_steps)
    batches = passes * sum(math.ceil(d.examples / eval_batch) for d in dev) \
        + sum(math.ceil(t.examples / eval_batch) for t in test)
    eval_tokens = passes * sum(d.tokens for d in dev) + sum(t.tokens for t in test)
    eval_examples = passes * sum(d.examples for d in dev) + sum(t.examples for t in test)
    return JobWork(train_examples=train.examples, epochs=epochs, steps=per_epoch * epochs,
                   train_tokens=train.tokens * epochs, train_seq=train.mean, eval_batches=batches,
                   eval_tokens=eval_tokens, eval_seq=eval_tokens / eval_examples if eval_examples else 0.0)


@dataclass(frozen=True, slots=True)
class Rate:
    """Seconds of a batch = overhead + FLOPs / flops_per_s (a fitted line; `overhead` is launch and
    optimizer-update time that does not grow with tokens)."""

    overhead: float
    """Seconds per batch that do not depend on its tokens."""
    flops_per_s: float
    """Achieved FLOP/s on the part that does."""

    def seconds(self, batches: int, flops: float) -> float:
        return batches * self.overhead + (flops / self.flops_per_s if self.flops_per_s > 0 else 0.0)

    def to_dict(self) -> dict:
        return {"overhead_s": self.overhead, "flops_per_s": self.flops_per_s}

    @classmethod
    def from_dict(cls, d: dict) -> Rate:
        return cls(float(d["overhead_s"]), float(d["flops_per_s"]))


def fit_rate(flops: list[float], seconds: list[float]) -> Rate:
    """A line seconds = overhead + flops / rate through timed batches, robust to a noisy one: the batches
    are split at the median FLOPs into a lighter and a heavier half, and the line joins the halves' medians.
    Without a spread in FLOPs, or with a negative slope, every second counts as overhead; a negative
    intercept becomes zero overhead at the mean rate."""
    if len(flops) != len(seconds) or not flops:
        raise ValueError("fit_rate needs as many timings as FLOP counts, at least one")
    pairs = sorted(zip(flops, seconds, strict=True))
    half = len(pairs) // 2
    low, high = pairs[:half], pairs[len(pairs) - half:]
    if half == 0 or _median([f for f, _ in high]) <= _median([f for f, _ in low]):
        return Rate(_median(seconds), 0.0)
    f0, s0 = _median([f for f, _ in low]), _median([s for _, s in low])
    f1, s1 = _median([f for f, _ in high]), _median([s for _, s in high])
    if s1 <= s0:
        return Rate(_median(seconds), 0.0)
    per_flop = (s1 - s0) / (f1 - f0)
    overhead = s0 - per_flop * f0
    if overhead < 0:
        return Rate(0.0, sum(flops) / sum(seconds))
    return Rate(overhead, 1 / per_flop)


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2


@dataclass(frozen=True, slots=True)
class Speed:
    """How fast one method configuration runs on one device: what `job_seconds` needs."""

    train: Rate
    eval: Rate
    startup_s: float
    """Fixed seconds per job: process start, imports, model load, engine, saving weights and results."""


def job_seconds(work: JobWork, structure: Structure, speed: Speed) -> float:
    """Device seconds of one job (start-up, training, every evaluation and the test prediction)."""
    train_flops = work.train_tokens * train_flops_per_token(structure, work.train_seq)
    eval_flops = work.eval_tokens * eval_flops_per_token(structure, work.eval_seq)
    return speed.startup_s + speed.train.seconds(work.steps, train_flops) + speed.eval.seconds(work.eval_batches,
                                                                                                 eval_flops)


def schedule_seconds(durations: list[float], slots: int) -> float:
    """Wall seconds of jobs on `slots` parallel slots, started largest first on the first free slot (what the
    local executor does)."""
    free = [0.0] * max(1, slots)
    for d in sorted(durations, reverse=True):
        i = min(range(len(free)), key=free.__getitem__)
        free[i] += d
    return max(free)
