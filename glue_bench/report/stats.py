"""Statistics for the report: intervals over seeds, paired tests, multiple-comparison and rank tests. Pure.

Two kinds of paired test, both two-sided:
- over dev examples (`paired_example_test`): a paired bootstrap of the examples, the same resampled examples
  for every seed and both methods, so it asks whether the difference would hold on another dev set of the
  same size (it does not account for the spread over seeds);
- over seeds (`seed_permutation_test`): an exact sign-flip test of the per-seed differences, which can not
  give a p below `smallest_seed_p(n)`: with 3 seeds nothing is ever significant at 0.05.
Everything random takes a seed (default 0), so a report is the same every time it is built.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from glue_bench.tasks import GLUE_TASKS

METRICS = ("accuracy", "f1", "matthews_correlation", "pearson", "spearman")
"""The metrics `metric_value` and `paired_example_test` know."""

_CHUNK_FLOATS = 6_250_000
"""Bootstrap weights held at once (50 MB of float64; the int64 counts they come from as much again)."""


def seed_interval(values: Sequence[float], confidence: float = 0.95, resamples: int = 9999,
                  seed: int = 0, statistic: str = "mean") -> tuple[float, float] | None:
    """A percentile bootstrap interval of the mean (or `statistic="median"`) over seeds; None for fewer than 2
    values."""
    data = np.asarray(values, dtype=np.float64)
    if data.size < 2:
        return None
    if np.all(data == data[0]):
        return float(data[0]), float(data[0])
    function = np.median if statistic == "median" else np.mean
    result = stats.bootstrap((data,), function, confidence_level=confidence, n_resamples=resamples,
                             method="percentile", rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _columns(pred: np.ndarray, labels: np.ndarray, metric: str, classes: np.ndarray | None = None) -> np.ndarray:
    """Per-example columns (n, m) whose weighted sums over examples determine the metric (MCC: one pair of
    columns per class of `classes`, default those in `labels` and `pred`)."""
    if metric == "accuracy":
        return np.stack([np.ones(len(pred)), pred == labels], axis=1).astype(np.float64)
    if metric == "f1":
        if not np.isin(labels, (0, 1)).all() or not np.isin(pred, (0, 1)).all():
            raise ValueError("f1 is binary: labels and predictions must be 0 or 1")
        tp, fp, fn = (pred == 1) & (labels == 1), (pred == 1) & (labels == 0), (pred == 0) & (labels == 1)
        return np.stack([tp, fp, fn], axis=1).astype(np.float64)
    if metric == "matthews_correlation":
        classes = np.unique(np.concatenate([labels, pred])) if classes is None else classes
        return np.column_stack([np.ones(len(pred)), pred == labels, pred[:, None] == classes,
                                labels[:, None] == classes]).astype(np.float64)
    if metric in ("pearson", "spearman"):
        x, y = pred.astype(np.float64), labels.astype(np.float64)
        if metric == "spearman":
            x, y = stats.rankdata(x), stats.rankdata(y)
        x, y = x - x.mean(), y - y.mean()  # centred: the moments below lose less to cancellation
        return np.stack([np.ones(len(x)), x, y, x * x, y * y, x * y], axis=1)
    raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")


def _from_sums(sums: np.ndarray, metric: str) -> np.ndarray:
    """The metric from the weighted column sums (..., m); undefined values (a zero denominator) are 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric == "accuracy":
            value = sums[..., 1] / sums[..., 0]
        elif metric == "f1":
            tp, fp, fn = sums[..., 0], sums[..., 1], sums[..., 2]
            value = 2 * tp / (2 * tp + fp + fn)
        elif metric == "matthews_correlation":
            k = (sums.shape[-1] - 2) // 2
            s, c = sums[..., 0], sums[..., 1]
            p, t = sums[..., 2:2 + k], sums[..., 2 + k:]
            cov_pt = c * s - (p * t).sum(-1)
            value = cov_pt / np.sqrt((s * s - (p * p).sum(-1)) * (s * s - (t * t).sum(-1)))
        else:
            w, sx, sy, sxx, syy, sxy = np.moveaxis(sums, -1, 0)
            mx, my = sx / w, sy / w
            vx, vy = sxx / w - mx * mx, syy / w - my * my
            # a resample of equal values leaves rounding noise, not a variance
            vx = np.where(vx <= 1e-12 * sxx / w, 0.0, vx)
            vy = np.where(vy <= 1e-12 * syy / w, 0.0, vy)
            value = np.clip((sxy / w - mx * my) / np.sqrt(vx * vy), -1.0, 1.0)
    return np.nan_to_num(value, nan=0.0, posinf=0.0, neginf=0.0)


def metric_value(pred: np.ndarray, labels: np.ndarray, metric: str,
                 weights: np.ndarray | None = None) -> float | np.ndarray:
    """The metric of `pred` against `labels`, each example counted `weights` times (default once).

    Weights of shape (n,) give a float, of shape (B, n) an array of B values. Unweighted, it equals
    scikit-learn's accuracy_score, f1_score (binary, positive class 1) and matthews_corrcoef, and scipy's
    pearsonr and spearmanr (an undefined correlation is 0, as in `results.metrics`). Spearman ranks the
    full data once, so a weighted spearman is the pearson of those ranks, not of re-ranked resamples.
    """
    pred, labels = np.asarray(pred), np.asarray(labels)
    if pred.shape != labels.shape or pred.ndim != 1:
        raise ValueError(f"predictions {pred.shape} and labels {labels.shape}: give two vectors of one length")
    cols = _columns(pred, labels, metric)
    w = np.ones(len(pred)) if weights is None else np.asarray(weights, dtype=np.float64)
    value = _from_sums(w @ cols, metric)
    return float(value) if value.ndim == 0 else value


@dataclass(frozen=True, slots=True)
class ExampleTest:
    """A paired bootstrap test of two methods over dev examples."""

    delta: float
    """Mean over seeds of metric(A) - metric(B) on the full dev set."""
    p: float
    """Two-sided p-value, (1 + #{|delta* - delta| >= |delta|}) / (resamples + 1)."""
    low: float
    """2.5th percentile of the bootstrap deltas."""
    high: float
    """97.5th percentile of the bootstrap deltas."""
    examples: int
    """Dev examples."""
    seeds: int
    """Seed pairs (seed s of A with seed s of B)."""
    resamples: int
    """Bootstrap resamples of the examples."""
    se: float = 0.0
    """Standard deviation of the bootstrap deltas (the standard error of `delta`)."""

    @property
    def p_normal(self) -> float:
        """Two-sided p of delta / se under a normal law: finer than `p` where `p` is at its floor."""
        if self.se <= 0:
            return 1.0 if self.delta == 0 else 0.0
        return float(2 * stats.norm.sf(abs(self.delta) / self.se))

    @property
    def p_fine(self) -> float:
        """`p`, or `p_normal` where the bootstrap's `p` is at its floor 1 / (resamples + 1) and so says only that
        p is at most that (a report correcting for many comparisons needs the finer value)."""
        floor = 1 / (self.resamples + 1)
        return min(self.p, self.p_normal) if self.p <= floor else self.p


def paired_example_test(a: np.ndarray, b: np.ndarray, labels: np.ndarray, metric: str, resamples: int = 1000,
                        seed: int = 0) -> ExampleTest:
    """A paired bootstrap over dev examples of the mean-over-seeds difference between methods A and B.

    `a`, `b`: predictions (seeds, n), seed s of A paired with seed s of B. Each resample draws multinomial
    counts of the n examples, the same for every seed and both methods; the p-value shifts the bootstrap
    deltas to the null (Efron and Tibshirani's rule) and can not be below 1 / (resamples + 1).
    """
    a, b, labels = np.atleast_2d(a), np.atleast_2d(b), np.asarray(labels)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{a.shape[0]} seeds of A and {b.shape[0]} of B: pair them (trim to the common seeds)")
    n = labels.shape[0]
    if a.shape[1] != n or b.shape[1] != n or labels.ndim != 1:
        raise ValueError(f"predictions {a.shape} and {b.shape} for {labels.shape} labels: give (seeds, n) and (n,)")
    if resamples < 1:
        raise ValueError(f"resamples={resamples}: give at least 1")
    seeds = a.shape[0]
    delta = float(np.mean([metric_value(pa, labels, metric) - metric_value(pb, labels, metric)
                           for pa, pb in zip(a, b, strict=True)]))
    classes = np.unique(np.concatenate([labels, a.ravel(), b.ravel()]))  # MCC: the same columns for every seed
    cols = [_columns(p, labels, metric, classes) for p in (*a, *b)]
    m = cols[0].shape[1]
    cols = np.concatenate(cols, axis=1)  # (n, 2 * seeds * m): one product per chunk for everything
    rng, chunk = np.random.default_rng(seed), max(1, _CHUNK_FLOATS // n)
    uniform = np.full(n, 1.0 / n)
    deltas = []
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        weights = rng.multinomial(n, uniform, size=size).astype(np.float64)
        values = _from_sums((weights @ cols).reshape(size, 2, seeds, m), metric)
        deltas.append((values[:, 0] - values[:, 1]).mean(axis=1))
    boot = np.concatenate(deltas)
    p = (1 + np.count_nonzero(np.abs(boot - delta) >= abs(delta))) / (resamples + 1)
    low, high = np.percentile(boot, [2.5, 97.5])
    return ExampleTest(delta=delta, p=float(p), low=float(low), high=float(high), examples=n, seeds=seeds,
                       resamples=resamples, se=float(np.std(boot, ddof=1)) if resamples > 1 else 0.0)


def seed_permutation_test(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p of the mean paired difference over seeds: exact over all 2^n sign flips up to 16 seeds,
    9999 random flips (seeded) beyond."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size == 0:
        raise ValueError(f"{x.size} and {y.size} seed scores: give the same seeds of both methods")
    if x.size == 1:  # both signs of one difference are as extreme as itself (scipy wants two)
        return 1.0
    result = stats.permutation_test((x, y), lambda u, v, axis: np.mean(u - v, axis=axis), vectorized=True,
                                    permutation_type="samples", alternative="two-sided",
                                    n_resamples=2**16 if x.size <= 16 else 9999, rng=np.random.default_rng(0))
    return float(result.pvalue)


def smallest_seed_p(n: int) -> float:
    """The smallest two-sided p a sign-flip test over n seeds can give: 2 / 2^n (0.25 for 3 seeds)."""
    if n < 1:
        raise ValueError(f"n={n}: give at least one seed")
    return min(1.0, 2.0 / 2**n)


def seeds_needed(alpha: float = 0.05) -> int:
    """The fewest seeds whose sign-flip test can reach p <= alpha (6 for 0.05)."""
    if not 0 < alpha:
        raise ValueError(f"alpha={alpha}: give a positive level")
    return max(1, math.ceil(math.log2(2 / alpha) - 1e-12))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order (step-down, monotone, capped at 1)."""
    p = np.asarray(pvalues, dtype=np.float64)
    if p.size and not ((p >= 0) & (p <= 1)).all():
        raise ValueError(f"p-values {list(pvalues)}: each must be in [0, 1]")
    order = np.argsort(p, kind="stable")
    scaled = (p.size - np.arange(p.size)) * p[order]
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted.tolist()


@dataclass(frozen=True, slots=True)
class Ranking:
    """Methods ranked over tasks: the Friedman test and the Nemenyi critical difference (Demsar 2006)."""

    tasks: tuple[str, ...]
    """The tasks every method has, the only ones ranked."""
    average_ranks: dict[str, float]
    """Mean rank per method over the tasks (1 = best, ties averaged), best first."""
    statistic: float
    """Friedman chi-square (tie-corrected, as scipy computes it; 0 when every task is a tie)."""
    p: float
    """Friedman p-value."""
    critical_difference: float
    """Nemenyi CD: average ranks further apart than this differ at `alpha`."""
    different: tuple[tuple[str, str], ...]
    """Pairs (better, worse) whose average ranks differ by more than the CD."""
    alpha: float
    """The level of the test and the CD."""


def _task_order(tasks: set[str]) -> tuple[str, ...]:
    return tuple(t for t in GLUE_TASKS if t in tasks) + tuple(sorted(tasks - set(GLUE_TASKS)))


def friedman_ranks(scores: Mapping[str, Mapping[str, float]], alpha: float = 0.05) -> Ranking | None:
    """Rank methods over the tasks they all have (scores[method][task], higher is better); None for fewer
    than 3 methods or 2 shared tasks. CD = q_alpha * sqrt(k (k + 1) / (6 N)), q_alpha the studentized range
    quantile over sqrt(2)."""
    methods = list(scores)
    if len(methods) < 3:
        return None
    tasks = _task_order(set.intersection(*(set(scores[m]) for m in methods)))
    if len(tasks) < 2:
        return None
    table = np.array([[scores[m][t] for m in methods] for t in tasks], dtype=np.float64)  # (N, k)
    ranks = np.apply_along_axis(stats.rankdata, 1, -table).mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic, p = stats.friedmanchisquare(*table.T)
    if not np.isfinite(statistic):  # every task a tie: nothing to tell apart
        statistic, p = 0.0, 1.0
    k, n = len(methods), len(tasks)
    q = stats.studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2)
    cd = float(q * math.sqrt(k * (k + 1) / (6 * n)))
    ordered = sorted(zip(methods, ranks.tolist(), strict=True), key=lambda mr: (mr[1], mr[0]))
    different = tuple((m1, m2) for i, (m1, r1) in enumerate(ordered) for m2, r2 in ordered[i + 1:] if r2 - r1 > cd)
    return Ranking(tasks=tasks, average_ranks=dict(ordered), statistic=float(statistic), p=float(p),
                   critical_difference=cd, different=different, alpha=alpha)


def expected_max(values: Sequence[float]) -> list[float]:
    """Expected validation performance (Dodge et al. 2019): for n = 1..N, the expected best of n
    configurations drawn with replacement from the N observed values,

        E[max_n] = sum_i v_(i) * ((i / N)^n - ((i - 1) / N)^n),   v_(1) <= ... <= v_(N),

    as (i / N)^n is the chance that all n draws are among the i smallest. n = 1 gives the mean, n -> inf
    the maximum."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    if v.size == 0:
        return []
    cdf = np.arange(v.size + 1) / v.size
    return [float(v @ np.diff(cdf**n)) for n in range(1, v.size + 1)]
