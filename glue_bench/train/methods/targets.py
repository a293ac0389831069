"""Which projections a peft method adapts.

Target names are Linear modules relative to an encoder layer: an entry matches a module whose name in its
layer equals the entry (`attention.output.dense`, `output.dense`), and an entry without a dot also matches
the last part of the name (`query` matches `attention.self.query`; `dense` matches all three projections
called dense). BERT's names work on every encoder family: each family translates them to its own
(`glue_bench.encoders`: DeBERTa's `query` is `attention.self.query_proj`, ModernBERT's `query`, `key` and `value`
are its fused `attn.Wqkv`), and a family's own names work too. peft itself gets the full names of the matched
modules, so it adapts exactly those: its suffix rule would let `output.dense` take the attention output's
projection too.
"""

from __future__ import annotations

from torch import nn

from glue_bench.errors import GlueBenchError
from glue_bench.train.methods.common import architecture_name, encoder_of, layers_prefix


def layer_linears(model) -> list[tuple[str, str]]:
    """(full name, name relative to its layer) of every Linear module inside the encoder's layers."""
    prefix = layers_prefix(model)
    found = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and name.startswith(prefix):
            found.append((name, name[len(prefix):].split(".", 1)[1]))
    return found


def family_entries(model, family: str, target_modules: str | None) -> list[str]:
    """The target entries in the encoder family's own names (`glue_bench.encoders.Encoder.target_entries`)."""
    return encoder_of(model).target_entries(family, target_modules)


def resolve_targets(model, family: str, target_modules: str | None) -> dict[str, list[str]]:
    """Entry -> the full module names it matches; an entry that matches nothing is an error."""
    linears = layer_linears(model)
    resolved = {}
    for entry in family_entries(model, family, target_modules):
        names = [full for full, rel in linears
                 if rel == entry or ("." not in entry and rel.rsplit(".", 1)[-1] == entry)]
        if not names:
            known = ", ".join(sorted({rel for _, rel in linears}))
            raise GlueBenchError(f"target_modules: {entry!r} matches no projection of {architecture_name(model)}"
                                 f" (names in a layer: {known})")
        resolved[entry] = names
    return resolved


def target_names(model, family: str, target_modules: str | None) -> list[str]:
    """The full names of every projection a peft family adapts, sorted."""
    return sorted({name for names in resolve_targets(model, family, target_modules).values() for name in names})
