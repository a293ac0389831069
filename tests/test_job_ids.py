"""Job ids are the names results live under: those of every shipped sweep file (and of a fixture sweep with every
method family) are pinned. A deliberate change to a sweep file updates its list in the same commit:
`python tests/test_job_ids.py` rewrites the lists."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from glue_bench.plan.sweep_file import expand_sweep, load_sweep

ROOT = Path(__file__).resolve().parents[1]
PINNED = ROOT / "tests" / "fixtures" / "job_ids"
SWEEPS = sorted(ROOT.glob("jobs/*.yaml")) + [PINNED / "every-method.yaml"]


def planned_ids(sweep_file: Path) -> list[str]:
    return sorted(spec.job_id for spec in expand_sweep(load_sweep(sweep_file)))


@pytest.mark.parametrize("sweep_file", SWEEPS, ids=lambda p: p.stem)
def test_job_ids_are_pinned(sweep_file: Path) -> None:
    pinned = (PINNED / f"{sweep_file.stem}.txt").read_text().split()
    ids = planned_ids(sweep_file)
    assert len(ids) == len(set(ids))
    assert ids == pinned, f"{sweep_file.name}: job ids changed; if deliberate, rerun python {Path(__file__).name}"


def test_every_shipped_sweep_file_has_a_pinned_list() -> None:
    assert {p.stem for p in SWEEPS} == {p.stem for p in PINNED.glob("*.txt")}


if __name__ == "__main__":
    for path in SWEEPS:
        (PINNED / f"{path.stem}.txt").write_text("\n".join(planned_ids(path)) + "\n")
    sys.exit(0)
