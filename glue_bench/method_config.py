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
FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("full", "every parameter"),
    Family("houlsby", "two bottleneck adapters per layer, every LayerNorm and the head (Houlsby et al. 2019)",
           ADAPTER_PARAMS, ("bottleneck",), "bottleneck"),
    Family("pfeiffer", "one bottleneck adapter per layer after the feed-forward block, and the head "
           "(Pfeiffer et al. 2021)", ADAPTER_PARAMS, ("bottleneck",), "bottleneck"),
    Family("lora", "low-rank updates of the chosen projections (default query and value), and the head "
           "(Hu et al. 2021, through peft)", ("rank", "alpha", "lora_dropout", "target_modules", "train_pooler"),
           ("rank",), "rank", uses_peft=True),
    Family("bitfit", "every bias of the encoder and the head (Ben Zaken et al. 2022)", ("train_pooler",)),
    Family("ia3", "learned scales of keys, values and the feed-forward activations, and the head "
           "(Liu et al. 2022, through peft)", ("target_modules", "train_pooler"), uses_peft=True),
    Family("layernorm_head", "every LayerNorm and the head (the Houlsby recipe without adapters)", ("train_pooler",)),
)}
METHODS = tuple(FAMILIES)
METHOD_PARAMS = tuple(dict.fromkeys(p for f in FAMILIES.values() for p in f.params))
"""Every spec field that is a method parameter."""
STRUCTURAL = ("bottleneck", "rank", "alpha", "target_modules", "train_pooler")
"""Method parameters that make a report row; the others are selected per task like the learning rate."""
SIZE_LETTER = {"bottleneck": "m", "rank": "r"}

# Target-module presets: names of Linear modules relative to an encoder layer (see methods/targets.py).
TARGET_PRESETS: dict[str, tuple[str, ...]] = {
    "qv": ("query", "value"),
    "qkv": ("query", "key", "value"),
    "attention": ("query", "key", "value", "attention.output.dense"),
    "all": ("query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"),
    "ia3": ("key", "value", "output.dense"),
}
DEFAULT_TARGETS = {"lora": "qv", "ia3": "ia3"}
"""Per peft family, the preset used when `target_modules` is not set: LoRA's query and value (Hu et al.);
(IA)³'s keys, values and the feed-forward output's input (Liu et al.; not the attention output)."""
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
            if name not in family.params:
                continue
            value = getattr(spec, name)
            if name == "alpha":
                value = lora_alpha(spec.rank, value)
            elif name == "target_modules" and value is not None:
                value = ",".join(target_entries(spec.method, value))
                if value == ",".join(target_entries(spec.method, None)):
                    value = None
            if value not in (None, False):
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
            if name in without:
                continue
            if name in SIZE_LETTER:
                parts.append(f"{SIZE_LETTER[name]}={value}")
            elif name == "alpha":
                parts.append(f"a={_number(value)}")
            elif name == "target_modules":
                parts.append(f"t={value}")
            elif name == "train_pooler":
                parts.append("+pooler")
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
        drop = ("bottleneck", "rank", "alpha")
        return self.family, tuple(p for p in self.params if p[0] not in drop)

    @property
    def best_size_label(self) -> str:
        """`houlsby (best m per task)`, `lora +pooler (best r per task)`."""
        letter = SIZE_LETTER[FAMILIES[self.family].size]
        return " ".join([self.family, *self._parts(without=("bottleneck", "rank", "alpha")),
                         f"(best {letter} per task)"])

    @property
    def order(self) -> tuple:
        """Report order: family as listed in FAMILIES, then size, then the other parameters."""
        rest = tuple(str(v) for n, v in self.params if n not in SIZE_LETTER)
        return (METHODS.index(self.family), self.size or 0, rest)

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, **dict(self.params)}


def id_part(spec) -> str:
    """The method's readable part of a job id: `houlsby-m64`, `pfeiffer-m48`, `lora-r8-a16`, `ia3`;
    `-pooler` when the pooler trains."""
    parts = [spec.method]
    if spec.bottleneck is not None:
        parts.append(f"m{spec.bottleneck}")
    if spec.rank is not None:
        parts += [f"r{spec.rank}", f"a{_number(lora_alpha(spec.rank, spec.alpha))}"]
    if spec.train_pooler:
        parts.append("pooler")
    return "-".join(parts)
