"""Any other peft tuner, by its type name, with its config keys passed through (`method: peft`,
`peft_type: LOKR`, `peft_options`), so a method glue-bench does not list can be benchmarked on the same path.

The config is peft's own class for the type, built from the options as given; an option peft declares as a list
takes one comma-separated string (as `target_modules` does). `target_modules` is glue-bench's own key (default:
query and value, translated for each encoder family). Prompt-learning methods do not fit a sequence classifier's
fine-tuning loop and are refused. Trained: what the tuner marks trainable, and the head.
"""

from __future__ import annotations

import dataclasses
import typing

from glue_bench.errors import GlueBenchError
from glue_bench.train.methods.peft_path import prepare_with
from glue_bench.train.methods.targets import target_names


def config_class(peft_type: str):
    from peft import PeftType
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING, PEFT_TYPE_TO_TUNER_MAPPING

    key = peft_type.upper()
    if key not in PEFT_TYPE_TO_TUNER_MAPPING:
        tuners = ", ".join(sorted(str(t.value) if isinstance(t, PeftType) else str(t)
                                  for t in PEFT_TYPE_TO_TUNER_MAPPING))
        raise GlueBenchError(f"peft_type {peft_type}: not a peft tuner of this peft version (tuners: {tuners})")
    return PEFT_TYPE_TO_CONFIG_MAPPING[key]


def _takes_list(kind) -> bool:
    """Whether a config field's type admits a list (peft's `Optional[Union[list[str], str]]` and the like)."""
    if typing.get_origin(kind) in (list, tuple):
        return True
    return any(_takes_list(arg) for arg in typing.get_args(kind))


def peft_config(model, spec):
    cls = config_class(spec.peft_type)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    options = {}
    for key, value in spec.peft_options:
        if key not in fields or not fields[key].init:
            raise GlueBenchError(f"peft_options: {cls.__name__} has no key {key!r}")
        if isinstance(value, str) and _takes_list(hints.get(key)) and "," in value:
            value = [part.strip() for part in value.split(",") if part.strip()]
        options[key] = value
    try:
        return cls(target_modules=target_names(model, "peft", spec.target_modules), **options)
    except (TypeError, ValueError) as e:
        raise GlueBenchError(f"peft_options: {cls.__name__} refused them: {str(e).splitlines()[0]}") from None


def prepare(model, spec) -> None:
    prepare_with(model, spec, peft_config(model, spec))
