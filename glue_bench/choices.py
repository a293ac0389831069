"""Every closed choice of glue-bench, declared once as a `Literal`: the tuple of its values (for messages, CLI
choices and checks) is read from the type, never written out again. Spec fields use them (`JobSpec`), and so do
commands' options."""

from __future__ import annotations

import typing
from typing import Literal

from glue_bench.errors import GlueBenchError
from glue_bench.method_config import METHODS

Method = Literal[METHODS]  # the families declared in `glue_bench.method_config.FAMILIES`
NonLinearity = Literal["gelu", "relu", "swish", "tanh"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
WandbMode = Literal["auto", "online", "offline", "disabled"]
Device = Literal["cpu", "cuda"]
Executor = Literal["local", "slurm"]
WnliPolicy = Literal["model", "majority"]
Selection = Literal["best-dev"]
Prune = Literal["none", "asha"]
Protocol = Literal["best-epoch", "last-epoch", "held-out"]
Aggregate = Literal["mean", "median"]


def values(choice: typing.Any) -> tuple[str, ...]:
    """The values of a `Literal` choice."""
    return typing.get_args(choice)


def check(choice: typing.Any, value: typing.Any, name: str) -> None:
    """Refuse a value that is not one of `choice`'s, in one line naming `name` (a flag or a key)."""
    if value not in values(choice):
        raise GlueBenchError(f"{name} {value!r}: choose {one_of(choice)}")


def one_of(choice: typing.Any) -> str:
    """`cpu or cuda`, `auto, online, offline or disabled`."""
    *head, last = values(choice)
    return f"{', '.join(head)} or {last}" if head else last
