"""Trainable parameters per method configuration, before anything runs: counted on torch's meta device from the
model's configuration alone (`glue_bench.cost.shapes`, no weights, no download for the built-in hub ids), as the
papers count them (task head left out) and with the head, beside the count printed by each shipped reference
table's matching row (`glue_bench.report.references`: same model, family and size).

A published count is printed rounded ("1.33M"); ours is said to differ when it is outside that rounding by more
than 10%, and docs/methods.md says why the known ones differ (what the paper counts, which projections).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from glue_bench.method_config import MethodConfig
from glue_bench.spec import JobSpec

SAME_WITHIN = 0.10
"""A published count within this share of ours (after its rounding) is the same count."""


@dataclass(frozen=True, slots=True)
class Published:
    reference: str
    label: str
    trainable: str

    @property
    def value(self) -> float | None:
        return parse_count(self.trainable)


def parse_count(text: str) -> float | None:
    """`1.33M` -> 1.33e6, `0.043M` -> 43e3, `184M` -> 184e6, `125k` -> 125e3 (None: not a count)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKMG]?)\s*", text or "")
    if not match:
        return None
    return float(match.group(1)) * {"": 1, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}[match.group(2)]


def same_model(a: str, b: str) -> bool:
    """`roberta-base` and `FacebookAI/roberta-base` name one model; a folder is never a hub id's."""
    return a == b or (a.split("/")[-1] == b.split("/")[-1] and not a.startswith((".", "/", "~"))
                      and not b.startswith((".", "/", "~")))


def published_counts(model: str, config: MethodConfig) -> list[Published]:
    """The counts of the shipped reference rows of this model, family and (where a row names one) size."""
    from glue_bench.report.references import references

    out = []
    for reference in references().values():
        if not same_model(reference.model, model):
            continue
        for row in reference.rows:
            if row.family != config.family or not row.trainable or row.best_size:
                continue
            if row.size is not None and config.size is not None and row.size != config.size:
                continue
            out.append(Published(reference.name, row.label, row.trainable))
    return out


def differs(ours: int, published: Published) -> bool:
    value = published.value
    return value is not None and abs(ours - value) > SAME_WITHIN * max(value, 1)


def count_lines(specs: list[JobSpec], structures) -> list[str]:
    """The table of `plan --estimate`: one row per (model, method configuration), ours beside the papers'."""
    seen: dict[tuple[str, MethodConfig], JobSpec] = {}
    for spec in specs:
        seen.setdefault((spec.model, MethodConfig.of(spec)), spec)
    lines = ["", "trainable parameters (meta device; papers count without the task head):",
             "| configuration | ours, as papers count | with the head (first task's) | published |",
             "|---|---|---|---|"]
    notes = []
    for (model, config), spec in sorted(seen.items(), key=lambda kv: kv[0][1].order):
        structure = structures.get(spec)
        if structure is None:
            continue
        ours = structure.paper_trainable
        published = published_counts(model, config)
        cells = []
        for p in published:
            cells.append(f"{p.trainable} ({p.reference}: {p.label})")
            if differs(ours, p):
                notes.append(f"{config.label}: ours {ours:,} against {p.trainable} in {p.reference} "
                             "(docs/methods.md: what each paper counts)")
        lines.append(f"| {config.label} | {ours:,} | {structure.trainable:,} | {'; '.join(cells) or '-'} |")
    return lines + [f"differs: {note}" for note in notes]
