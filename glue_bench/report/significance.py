"""Which differences hold: paired tests of the report's rows, per task and across tasks. No torch.

Per task, every method row is compared with full fine-tuning and with the best other method row on that task,
on the task's main metric (its first score metric: CoLA MCC, MRPC F1, STS-B Pearson, MNLI-m accuracy, ...):

- over dev examples, seed by seed: a paired bootstrap of the examples (`stats.paired_example_test`) on the
  predictions of the evaluation the protocol chose for each seed the two rows share (under `held-out`, on the
  reporting half only); where the bootstrap p is at its floor 1 / (resamples + 1), the normal approximation
  from the bootstrap's standard error gives the finer p that a correction over many comparisons needs
  (`ExampleTest.p_fine`);
- over seeds: an exact sign-flip test of the per-seed task scores (the task score, not only the main metric;
  `stats.seed_permutation_test`), which cannot
  reject at 0.05 with fewer than `stats.seeds_needed()` seeds; the report says so.

Each kind of p-value is corrected over all the comparisons of the report (Holm). Across tasks, the method rows
are ranked with a Friedman test and Nemenyi's critical difference (`stats.friedman_ranks`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from glue_bench.method_config import MethodConfig
from glue_bench.report.aggregate import Row
from glue_bench.report.collect import read_dev_predictions
from glue_bench.report.stats import (
    Ranking,
    friedman_ranks,
    holm,
    paired_example_test,
    seed_permutation_test,
    seeds_needed,
    smallest_seed_p,
)
from glue_bench.results.metrics import dev_half_a
from glue_bench.tasks import GLUE_TASKS, TASKS

LEVELS = (0.01, 0.05)


@dataclass
class Comparison:
    """One row against another on one task."""

    task: str
    row: str
    other: str
    against: str
    """`full` (full fine-tuning) or `best other` (the best other row on this task)."""
    metric: str
    """The main metric tested (`split/metric`)."""
    seeds: int
    """Seeds both rows share."""
    delta: float | None = None
    """Mean over the shared seeds of the row's metric minus the other's, in points (the example test's)."""
    p_examples: float | None = None
    p_examples_holm: float | None = None
    p_seeds: float | None = None
    p_seeds_holm: float | None = None
    smallest_seed_p: float | None = None
    """The smallest p the seed test can give with this many seeds."""
    note: str | None = None
    """Why a test could not be made."""

    @property
    def verdict(self) -> str:
        """`holds at 0.01`, `holds at 0.05`, `does not hold` or `too little to tell` (examples, Holm-corrected)."""
        if self.p_examples_holm is None:
            return "too little to tell"
        for level in LEVELS:
            if self.p_examples_holm < level:
                return f"holds at {level:g}"
        return "does not hold"

    @property
    def seeds_verdict(self) -> str:
        if self.p_seeds_holm is None:
            return "too few seeds (need 2)"
        if self.smallest_seed_p is not None and self.smallest_seed_p > 0.05:
            return f"cannot tell with {self.seeds} (p >= {self.smallest_seed_p:.3g})"
        return f"holds at 0.05 (p {self.p_seeds_holm:.3g})" if self.p_seeds_holm < 0.05 else \
            f"does not hold (p {self.p_seeds_holm:.3g})"

    def to_dict(self) -> dict:
        return {"task": self.task, "row": self.row, "other": self.other, "against": self.against,
                "metric": self.metric, "seeds": self.seeds, "delta": _round(self.delta),
                "p_examples": _round(self.p_examples), "p_examples_holm": _round(self.p_examples_holm),
                "p_seeds": _round(self.p_seeds), "p_seeds_holm": _round(self.p_seeds_holm),
                "smallest_seed_p": _round(self.smallest_seed_p), "verdict": self.verdict,
                "seeds_verdict": self.seeds_verdict, "note": self.note}


def _round(x: float | None) -> float | None:
    return None if x is None else round(float(x), 6)


def _predictions(row: Row, task: str, split: str, seeds: list[int]):
    """(predictions (seeds, n), labels) of the protocol's chosen evaluations, or a reason they are missing."""
    selection = row.selections[task]
    by_seed = {r.seed: r for r in selection.records}
    preds, labels = [], None
    for seed in seeds:
        record = by_seed[seed]
        got = read_dev_predictions(record, split, record.chosen_step)
        if got is None:
            return None, f"{record.job_id} kept no predictions of its chosen evaluation"
        p, y = got
        if record.example_half == "b":
            keep = ~dev_half_a(len(y))
            p, y = p[keep], y[keep]
        if labels is not None and (len(y) != len(labels) or not np.array_equal(y, labels)):
            return None, "the rows' dev sets differ (max_eval_samples)"
        labels = y
        preds.append(p)
    return (np.stack(preds), labels), None


def compare_pair(task: str, row: Row, other: Row, against: str, resamples: int = 1000) -> Comparison:
    split, metric = TASKS[task].score[0]
    a, b = row.seed_scores[task], other.seed_scores[task]
    seeds = sorted(set(a) & set(b))
    out = Comparison(task, row.label, other.label, against, f"{split}/{metric}", len(seeds))
    if not seeds:
        out.note = "no seed in common"
        return out
    if len(seeds) >= 2:
        out.p_seeds = seed_permutation_test([a[s] for s in seeds], [b[s] for s in seeds])
        out.smallest_seed_p = smallest_seed_p(len(seeds))
    try:
        got, why = _predictions(row, task, split, seeds)
        got_b, why_b = _predictions(other, task, split, seeds)
    except (OSError, ValueError) as e:  # a prediction file gone or unreadable: said, not fatal
        out.note = f"predictions unreadable ({type(e).__name__}: {e})"[:200]
        return out
    if why or why_b:
        out.note = why or why_b
        return out
    (pa, labels), (pb, labels_b) = got, got_b
    if not np.array_equal(labels, labels_b):
        out.note = "the rows' dev sets differ (max_eval_samples)"
        return out
    test = paired_example_test(pa, pb, labels, metric, resamples=resamples)
    out.delta, out.p_examples = 100 * test.delta, test.p_fine
    return out


def comparisons(rows: list[Row], resamples: int = 1000) -> list[Comparison]:
    """Per task, every method row against full fine-tuning and against the best other method row, with the
    Holm-corrected p-values filled in."""
    methods = [r for r in rows if r.kind == "method"]
    full = next((r for r in methods if r.method == MethodConfig("full")), None)
    out: list[Comparison] = []
    for task in GLUE_TASKS:
        present = [r for r in methods if task in r.selections]
        wanted = [(row, full, "full") for row in present
                  if full is not None and row is not full and task in full.selections]
        for row in present:
            others = [r for r in present if r is not row]
            if others:
                # the best other by the choosing score (under held-out not by the half the test reads)
                wanted.append((row, max(others, key=lambda r: r.selections[task].mean_score), "best other"))
        pairs: set[frozenset[str]] = set()  # a pair is tested once: against full first, then as a best other
        for row, other, against in wanted:
            if frozenset((row.label, other.label)) not in pairs:
                pairs.add(frozenset((row.label, other.label)))
                out.append(compare_pair(task, row, other, against, resamples))
    for attr in ("p_examples", "p_seeds"):
        tested = [c for c in out if getattr(c, attr) is not None]
        for c, adjusted in zip(tested, holm([getattr(c, attr) for c in tested]), strict=True):
            setattr(c, attr + "_holm", adjusted)
    return out


def ranking(rows: list[Row]) -> Ranking | None:
    """The method rows ranked over the tasks they all have (None with fewer than 3 rows or 2 tasks)."""
    scores = {r.label: dict(r.task_scores) for r in rows if r.kind == "method"}
    return friedman_ranks(scores)


def seeds_note(rows: list[Row]) -> str:
    """What the seeds alone can tell, said once per report."""
    counts = sorted({len(s) for r in rows if r.kind == "method" for s in r.seed_scores.values()})
    need = seeds_needed(0.05)
    if not counts:
        return ""
    return (f"Seeds per setting: {', '.join(map(str, counts))}. A test over seeds alone cannot reject at 0.05 with "
            f"fewer than {need} seeds (the smallest two-sided p of an exact sign-flip test is 2/2^n: "
            f"{smallest_seed_p(counts[-1]):.3g} with {counts[-1]}), so the verdicts rest on the dev examples, "
            "seed by seed; they do not account for the spread over seeds.")
