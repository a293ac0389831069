"""Published GLUE numbers shipped as data (`glue_bench/report/reference_tables/*.json`), and their comparison with a
report's rows. No torch.

Each table has its citation, model, split (dev or test) and protocol (in words, and as the rule your rows are
scored by when they meet it: `best-epoch`, `last-epoch` or `held-out`, mean or median of how many seeds), and
rows of a method family (None for methods glue-bench does not have) with the numbers as printed and where each
comes from (copied from earlier work, started from MNLI, Houlsby's setup). A number is keyed by the report column it
corresponds to, which names its metric (`MRPC F1` or `MRPC acc`, `STS-B P` or `STS-B S`), so each number
is compared only with the same metric of your own row, and a difference is given only when the split is
dev as well.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources

from glue_bench.choices import Aggregate, Protocol, values
from glue_bench.errors import GlueBenchError
from glue_bench.method_config import FAMILIES
from glue_bench.report.aggregate import COLUMNS, Row

COLUMN_NAMES = tuple(c[0] for c in COLUMNS)


@dataclass(frozen=True, slots=True)
class PublishedRow:
    """One printed row of a reference table."""

    label: str
    family: str | None
    scores: dict[str, float]
    """Report column (which names the metric) -> the number as printed, in percent."""
    size: int | None = None
    """Adapter size or LoRA rank, where the source gives it."""
    best_size: bool = False
    """A per-task best over sizes (Houlsby's "8-256")."""
    trainable: str | None = None
    """Trainable parameters as the source prints them."""
    total: float | None = None
    """The source's own average, as printed."""
    provenance: str | None = None
    """Where the whole row comes from when not from the source's own runs (`copied`: from earlier work; `houlsby
    setup`: the † rows)."""
    cell_provenance: dict[str, str] = field(default_factory=dict)
    """Column -> where that number comes from when it differs from the row's (`mnli start`: trained from the
    MNLI checkpoint)."""


PROVENANCE = {"copied": "copied from earlier work", "houlsby setup": "Houlsby et al.'s setup (†)",
              "mnli start": "started from the MNLI checkpoint"}


@dataclass(frozen=True, slots=True)
class Rule:
    """A reference's protocol as data: your rows meet it scored the same way."""

    protocol: str = "best-epoch"
    aggregate: str = "mean"
    seeds: int | None = None
    note: str | None = None
    """Set when your rows could not be scored by the reference's own protocol (then they are the report's)."""

    def to_dict(self) -> dict:
        return {"protocol": self.protocol, "aggregate": self.aggregate, "seeds": self.seeds, "note": self.note}

    @property
    def words(self) -> str:
        seeds = f" of {self.seeds} seeds" if self.seeds else " over seeds"
        return f"{self.protocol}, {self.aggregate}{seeds}" + (f" ({self.note}: the report's protocol instead)"
                                                               if self.note else "")


@dataclass(frozen=True, slots=True)
class Reference:
    """A published table with what is needed to read it."""

    name: str
    citation: str
    model: str
    split: str
    protocol: str
    rows: tuple[PublishedRow, ...] = field(default_factory=tuple)
    rule: Rule = field(default_factory=Rule)


def _load(text: str, source: str) -> Reference:
    data = json.loads(text)
    rows = []
    for row in data["rows"]:
        unknown = set(row["scores"]) - set(COLUMN_NAMES)
        if unknown or (row["family"] is not None and row["family"] not in FAMILIES):
            raise GlueBenchError(f"{source}: row {row['label']!r} has unknown columns {sorted(unknown)} or family")
        cells = dict(row.get("cell_provenance", {}))
        if set(cells) - set(row["scores"]) or any(v not in PROVENANCE for v in
                                                  [*cells.values(), *([row["provenance"]] if row.get("provenance")
                                                                      else [])]):
            raise GlueBenchError(f"{source}: row {row['label']!r} has an unknown provenance or column")
        rows.append(PublishedRow(label=row["label"], family=row["family"], scores=dict(row["scores"]),
                                 size=row.get("size"), best_size=row.get("best_size", False),
                                 trainable=row.get("trainable"), total=row.get("total"),
                                 provenance=row.get("provenance"), cell_provenance=cells))
    if data["split"] not in ("dev", "test"):
        raise GlueBenchError(f"{source}: split must be dev or test")
    rule = Rule(**data["rule"])
    if rule.protocol not in values(Protocol) or rule.aggregate not in values(Aggregate):
        raise GlueBenchError(f"{source}: rule {data['rule']} names an unknown protocol or aggregate")
    return Reference(name=data["name"], citation=data["citation"], model=data["model"], split=data["split"],
                     protocol=data["protocol"], rows=tuple(rows), rule=rule)


def references() -> dict[str, Reference]:
    """Every shipped reference table, by name."""
    folder = resources.files("glue_bench.report") / "reference_tables"
    tables = {}
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        if item.name.endswith(".json"):
            ref = _load(item.read_text(), item.name)
            tables[ref.name] = ref
    return tables


def get_reference(name: str) -> Reference:
    tables = references()
    if name not in tables:
        raise GlueBenchError(f"no reference table {name!r}; glue-bench references lists {', '.join(tables)}")
    return tables[name]


def matching_row(reference: Reference, row: Row) -> PublishedRow | None:
    """The published row of the same family as `row`: a best-size row for a best-size row where there is one,
    else the nearest size (on a log scale), else the first of the family."""
    family = row.family
    candidates = [p for p in reference.rows if family is not None and p.family == family]
    if not candidates:
        return None
    if row.kind == "best-size":
        best = [p for p in candidates if p.best_size]
        if best:
            return best[0]
    size = row.method.size if row.method is not None else None
    sized = [p for p in candidates if p.size is not None and not p.best_size]
    if size and sized:
        return min(sized, key=lambda p: (abs(math.log2(p.size) - math.log2(size)), p.size))
    plain = [p for p in candidates if not p.best_size]
    return (plain or candidates)[0]


@dataclass(frozen=True, slots=True)
class Comparison:
    """One of your rows beside the published row it corresponds to."""

    row: Row
    published: PublishedRow | None
    columns: tuple[str, ...]
    """The columns the published row has, in report order."""
    differences: dict[str, float]
    """Column -> yours minus published, where both exist and the published split is dev."""


def compare(reference: Reference, rows: list[Row]) -> list[Comparison]:
    """Each method row of the report beside the published row of its family (and nearest size)."""
    out = []
    for row in rows:
        if row.kind == "baseline":
            continue
        published = matching_row(reference, row)
        columns = tuple(c for c in COLUMN_NAMES if published is not None and c in published.scores)
        diffs = {}
        if published is not None and reference.split == "dev":
            diffs = {c: row.cells[c].shown - published.scores[c] for c in columns if c in row.cells}
        out.append(Comparison(row, published, columns, diffs))
    return out
