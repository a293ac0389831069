"""Method families and typed method configurations (no torch).

A family (`houlsby`, `lora`, ...) says which spec fields are its parameters, which of them are required,
and which one is its size (adapters: the bottleneck; LoRA: the rank). A `MethodConfig` is a family with its
structural parameters (size, LoRA alpha, target modules, `train_pooler`): one row of the report. The other
method parameters (non-linearity, init, LoRA dropout) are hyperparameters, selected per task on dev like the
learning rate. The code that changes the model lives in `glue_bench/methods/`, one module per family.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Family:
    """One fine-tuning method: its name, what trains, and its parameters (spec fields)."""

    name: str
    """The `method` value."""
    summary: str
    """What trains, in a line."""
    params: tuple[str, ...] = ()
    """Spec fields that apply to this method (any other method parameter must stay at its default)."""
    required: tuple[str, ...] = ()
    """Fields that must be set."""
    size: str | None = None
    """The parameter the report's "best size per task" row ranges over."""
    uses_peft: bool = False
    """Implemented through the `peft` library (and saved in its folder format too)."""


ADAPTER_PARAMS = ("bottleneck", "non_linearity", "adapter_init_std", "train_pooler")
LORA_PARAMS = ("rank", "alpha", "lora_dropout", "target_modules", "train_pooler", "loraplus_ratio")
ADALORA_PARAMS = ("rank", "init_rank", "alpha", "lora_dropout", "target_modules", "train_pooler", "adalora_tinit",
                  "adalora_tfinal", "adalora_delta_t", "orth_reg_weight")
FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("full", "every parameter"),
    Family("houlsby", "two bottleneck adapters per layer, every LayerNorm and the head (Houlsby et al. 2019)",
           ADAPTER_PARAMS, ("bottleneck",), "bottleneck"),
    Family("pfeiffer", "one bottleneck adapter per layer after the feed-forward block, and the head "
           "(Pfeiffer et al. 2021)", ADAPTER_PARAMS, ("bottleneck",), "bottleneck"),
    Family("lora", "low-rank updates of the chosen projections (default query and value), and the head "
           "(Hu et al. 2021, through peft)", LORA_PARAMS, ("rank",), "rank", uses_peft=True),
    Family("bitfit", "every bias of the encoder and the head (Ben Zaken et al. 2022)", ("train_pooler",)),
    Family("ia3", "learned scales of keys, values and the feed-forward activations, and the head "
           "(Liu et al. 2022, through peft)", ("target_modules", "train_pooler"), uses_peft=True),
    Family("layernorm_head", "every LayerNorm and the head (the Houlsby recipe without adapters)", ("train_pooler",)),
    Family("dora", "LoRA with each weight's update split into a trained magnitude and a low-rank direction "
           "(Liu et al. 2024, peft's use_dora)", LORA_PARAMS, ("rank",), "rank", uses_peft=True),
    Family("pissa", "LoRA started from each weight's top-r singular vectors, the frozen base keeping the rest "
           "(Meng et al. 2024, through peft)", LORA_PARAMS, ("rank",), "rank", uses_peft=True),
    Family("adalora", "low-rank updates in SVD form whose rank budget moves to the important projections during "
           "training (Zhang et al. 2023, through peft)", ADALORA_PARAMS, ("rank",), "rank", uses_peft=True),
    Family("vera", "one pair of frozen random low-rank matrices shared by every layer, trained scaling vectors per "
           "projection (Kopiczko et al. 2024, through peft)", ("rank", "target_modules", "train_pooler"),
           ("rank",), "rank", uses_peft=True),
    Family("fourierft", "a few trained spectral coefficients per projection at fixed random frequencies "
           "(Gao et al. 2024, through peft)", ("n_frequency", "fourier_scaling", "target_modules", "train_pooler"),
           ("n_frequency",), "n_frequency", uses_peft=True),
    Family("boft", "butterfly-factorised orthogonal rotations of the chosen projections (Liu et al. 2024, through "
           "peft)", ("block_size", "butterfly_factor", "target_modules", "train_pooler"), ("block_size",),
           "block_size", uses_peft=True),
    Family("oft", "block-diagonal orthogonal rotations of the chosen projections (Qiu et al. 2023, through peft)",
           ("block_size", "target_modules", "train_pooler"), ("block_size",), "block_size", uses_peft=True),
    Family("hra", "a chain of r Householder reflections of each chosen projection (Yuan et al. 2024, through "
           "peft)", ("rank", "target_modules", "train_pooler"), ("rank",), "rank", uses_peft=True),
    Family("lntuning", "a trained copy of every LayerNorm of the encoder, and the head (Zhao et al. 2024, through "
           "peft)", ("train_pooler",), uses_peft=True),
    Family("peft", "any other peft tuner by its type name, with its config keys passed through",
           ("peft_type", "peft_options", "target_modules", "train_pooler"), ("peft_type",), uses_peft=True),
)}
METHODS = tuple(FAMILIES)
METHOD_PARAMS = tuple(dict.fromkeys(p for f in FAMILIES.values() for p in f.params))
"""Every spec field that is a method parameter."""
STRUCTURAL = ("bottleneck", "rank", "init_rank", "n_frequency", "block_size", "butterfly_factor", "alpha",
              "target_modules", "train_pooler", "loraplus_ratio", "peft_type", "peft_options", "init_from")
"""Method parameters that make a report row; the others are selected per task like the learning rate."""
SIZE_LETTER = {"bottleneck": "m", "rank": "r", "n_frequency": "n", "block_size": "b"}
SIZES = tuple(SIZE_LETTER)
"""Every family's size parameter."""

# Target-module presets: names of Linear modules relative to an encoder layer (see methods/targets.py).
TARGET_PRESETS: dict[str, tuple[str, ...]] = {
    "qv": ("query", "value"),
    "qkv": ("query", "key", "value"),
    "attention": ("query", "key", "value", "attention.output.dense"),
    "all": ("query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"),
    "ia3": ("key", "value", "output.dense"),
}
DEFAULT_TARGETS = {"lora": "qv", "ia3": "ia3", "dora": "qv", "pissa": "qv", "adalora": "all", "vera": "qv",
                   "fourierft": "qv", "boft": "qv", "oft": "qv", "hra": "qv", "peft": "qv"}
"""Per peft family, the preset used when `target_modules` is not set: LoRA's query and value (Hu et al.; also
DoRA, PiSSA, VeRA, FourierFT, BOFT, OFT, HRA and any `peft` tuner); AdaLoRA's every projection (Zhang et al.);
(IA)³'s keys, values and the feed-forward output's input (Liu et al.; not the attention output). An encoder
family may have its own (`glue_bench.encoders`: ModernBERT's fused q, k, v)."""
FEEDFORWARD_TARGETS = ("output.dense", "intermediate.dense")
"""(IA)³ scales the input of these (the feed-forward activations); of the others, the output."""


def target_entries(family: str, target_modules: str | None) -> tuple[str, ...]:
    """The module names a peft family targets: a preset name, or comma-separated names."""
    value = target_modules or DEFAULT_TARGETS[family]
    if value in TARGET_PRESETS:
        return TARGET_PRESETS[value]
    return tuple(dict.fromkeys(e.strip() for e in value.split(",") if e.strip()))


def lora_alpha(rank: int, alpha: float | None) -> float:
    """LoRA's alpha: as given, or the rank (scale alpha/r = 1, the paper's "alpha = the first r tried")."""
    return float(rank) if alpha is None else float(alpha)


def _number(x: float) -> str:
    return f"{x:g}"


LABEL_PARTS = {
    "alpha": lambda v: [f"a={_number(v)}"], "target_modules": lambda v: [f"t={v}"],
    "train_pooler": lambda v: ["+pooler"], "init_rank": lambda v: [f"r0={v}"],
    "butterfly_factor": lambda v: [f"bf={v}"],
    "loraplus_ratio": lambda v: [f"lora+={_number(v)}"], "peft_type": lambda v: [str(v).lower()],
    "peft_options": lambda v: [f"{k}={x}" for k, x in v], "init_from": lambda v: [f"from={v}"],
}
"""How each structural parameter other than a size reads in a label (`a=16`, `+pooler`, `from=mnli`)."""


@dataclass(frozen=True, slots=True)
class MethodConfig:
    """A family with its structural parameters: the unit the report compares (one row)."""

    family: str
    params: tuple[tuple[str, Any], ...] = ()
    """(field, value) for each structural parameter that is set, in `STRUCTURAL` order."""

    @classmethod
    def of(cls, spec) -> MethodConfig:
        """The configuration of a job spec (LoRA's alpha as used, so alpha=None and alpha=r are one row)."""
        family = FAMILIES[spec.method]
        params = []
        for name in STRUCTURAL:
            if name not in family.params and name != "init_from":
                continue
            value = getattr(spec, name)
            if name == "init_from":
                value = spec.init_from_task  # the source's task: the seeds of a row start from their own sources
            if name == "alpha":
                value = lora_alpha(spec.rank, value)
            elif name == "target_modules" and value is not None:
                value = ",".join(target_entries(spec.method, value))
                if value == ",".join(target_entries(spec.method, None)):
                    value = None
            if name == "butterfly_factor" and value == 1:
                value = None  # one factor: plain block-diagonal rotations, the default
            if value not in (None, False, ()):
                params.append((name, value))
        return cls(spec.method, tuple(params))

    def get(self, name: str, default: Any = None) -> Any:
        return dict(self.params).get(name, default)

    @property
    def size(self) -> int | None:
        """The size parameter's value (bottleneck or rank), if the family has one."""
        size = FAMILIES[self.family].size
        return self.get(size) if size else None

    @property
    def label(self) -> str:
        """`full`, `houlsby m=64`, `lora r=8 a=16`, `lora r=8 a=16 t=query,key,value`, `bitfit +pooler`."""
        return " ".join([self.family, *self._parts()])

    def _parts(self, without: tuple[str, ...] = ()) -> list[str]:
        parts = []
        for name, value in self.params:
            if name not in without:
                parts += [f"{SIZE_LETTER[name]}={value}"] if name in SIZE_LETTER else LABEL_PARTS[name](value)
        return parts

    @property
    def tags(self) -> list[str]:
        """wandb tags of the structural parameters: `m=64`, `r=8`, `a=16`, `t=query,key`, `pooler`."""
        return [part.lstrip("+") for part in self._parts()]

    @property
    def size_group(self) -> tuple[str, tuple] | None:
        """What stays fixed when the report picks the best size per task: everything but the size (and
        LoRA's alpha, which is usually scaled with the rank). None for a family without a size."""
        if FAMILIES[self.family].size is None:
            return None
        drop = (*SIZES, "init_rank", "alpha")
        return self.family, tuple(p for p in self.params if p[0] not in drop)

    @property
    def best_size_label(self) -> str:
        """`houlsby (best m per task)`, `lora +pooler (best r per task)`."""
        letter = SIZE_LETTER[FAMILIES[self.family].size]
        return " ".join([self.family, *self._parts(without=(*SIZES, "init_rank", "alpha")),
                         f"(best {letter} per task)"])

    @property
    def order(self) -> tuple:
        """Report order: family as listed in FAMILIES, then size, then the other parameters."""
        rest = tuple(str(v) for n, v in self.params if n not in SIZE_LETTER)
        return (METHODS.index(self.family), self.size or 0, rest)

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, **dict(self.params)}


def id_part(spec) -> str:
    """The method's readable part of a job id: `houlsby-m64`, `pfeiffer-m48`, `lora-r8-a16`, `ia3`, `vera-r256`,
    `fourierft-n1000`, `boft-b8`, `peft-lokr`; `-pooler` when the pooler trains (the hash has every parameter)."""
    parts = [spec.method]
    if spec.bottleneck is not None:
        parts.append(f"m{spec.bottleneck}")
    if spec.rank is not None:
        parts.append(f"r{spec.rank}")
        if "alpha" in FAMILIES[spec.method].params:
            parts.append(f"a{_number(lora_alpha(spec.rank, spec.alpha))}")
    for name in ("n_frequency", "block_size"):
        if getattr(spec, name) is not None:
            parts.append(f"{SIZE_LETTER[name]}{getattr(spec, name)}")
    if spec.peft_type:
        parts.append(spec.peft_type.lower())
    if spec.init_from:
        parts.append(f"from{spec.init_from_task}")
    if spec.train_pooler:
        parts.append("pooler")
    return "-".join(parts)
