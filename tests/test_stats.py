"""Report statistics (glue_bench/report/stats.py) on hand-computed cases, against scikit-learn and scipy, and
generated inputs (hypothesis)."""

import math
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from glue_bench.report.stats import (
    expected_max,
    friedman_ranks,
    holm,
    metric_value,
    paired_example_test,
    seed_interval,
    seed_permutation_test,
    seeds_needed,
    smallest_seed_p,
)
from glue_bench.results.metrics import METRIC_FUNCTIONS as SKLEARN  # scikit-learn's and scipy's own functions


def random_data(metric: str, n: int, seed: int, classes: int = 2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if metric in ("pearson", "spearman"):
        labels = rng.normal(size=n)  # continuous: no ties, so spearman's ranks are plain
        return labels + rng.normal(size=n), labels
    labels = rng.integers(0, classes, n)
    return np.where(rng.random(n) < 0.7, labels, rng.integers(0, classes, n)), labels


def test_metric_value_by_hand():
    labels = np.array([1, 1, 0, 0, 1])
    preds = np.array([1, 0, 0, 1, 1])
    # tp=2 fp=1 fn=1 tn=1: acc 3/5, F1 = 2*2/(2*2+1+1) = 2/3, MCC = (2*1-1*1)/sqrt(3*3*2*2) = 1/6
    assert metric_value(preds, labels, "accuracy") == pytest.approx(0.6)
    assert metric_value(preds, labels, "f1") == pytest.approx(2 / 3)
    assert metric_value(preds, labels, "matthews_correlation") == pytest.approx(1 / 6)
    # weights (2, 0, 1, 1, 1): the first example twice, the second dropped: tp=3 fp=1 fn=0 tn=1
    # acc 4/5, F1 = 6/7, MCC = (3*1-1*0)/sqrt(4*3*1*2) = 3/sqrt(24)
    w = np.array([2, 0, 1, 1, 1])
    assert metric_value(preds, labels, "accuracy", w) == pytest.approx(0.8)
    assert metric_value(preds, labels, "f1", w) == pytest.approx(6 / 7)
    assert metric_value(preds, labels, "matthews_correlation", w) == pytest.approx(3 / math.sqrt(24))
    # constant predictions: MCC and correlations are undefined, reported as 0 (as sklearn and results.metrics)
    assert metric_value(np.zeros(5, int), labels, "matthews_correlation") == 0.0
    assert metric_value(np.ones(4), np.array([0.0, 1.0, 2.0, 3.0]), "pearson") == 0.0
    with pytest.raises(ValueError, match="unknown metric 'bleu'"):
        metric_value(preds, labels, "bleu")
    with pytest.raises(ValueError, match="binary"):
        metric_value(np.array([0, 2]), np.array([0, 1]), "f1")


@pytest.mark.parametrize(("metric", "classes"), [("accuracy", 3), ("f1", 2), ("matthews_correlation", 2),
                                                 ("matthews_correlation", 3), ("pearson", 0), ("spearman", 0)])
def test_metric_value_equals_sklearn_and_scipy(metric, classes):
    for seed in range(3):
        preds, labels = random_data(metric, 300, seed, classes)
        assert metric_value(preds, labels, metric) == pytest.approx(SKLEARN[metric](labels, preds), abs=1e-12)


@pytest.mark.parametrize("metric", ["accuracy", "f1", "matthews_correlation", "pearson"])
def test_weights_count_examples_as_repeats(metric):
    preds, labels = random_data(metric, 60, 7)
    weights = np.random.default_rng(8).integers(0, 4, size=(3, 60))
    rows = metric_value(preds, labels, metric, weights)  # (B, n) weights: one value per row
    assert rows.shape == (3,)
    for w, value in zip(weights, rows, strict=True):
        expected = SKLEARN[metric](np.repeat(labels, w), np.repeat(preds, w))
        assert value == pytest.approx(expected, abs=1e-12)
        assert metric_value(preds, labels, metric, w) == pytest.approx(value, abs=1e-15)


def test_paired_example_test_identical_predictions():
    preds, labels = random_data("accuracy", 200, 0)
    a = np.stack([preds, np.roll(preds, 1), preds[::-1]])
    r = paired_example_test(a, a.copy(), labels, "matthews_correlation", resamples=200)
    # every bootstrap delta is 0 too, and |0 - 0| >= 0 counts all of them: p = (1 + 200) / 201
    assert (r.delta, r.p, r.low, r.high) == (0.0, 1.0, 0.0, 0.0)
    assert (r.examples, r.seeds, r.resamples) == (200, 3, 200)


def test_paired_example_test_clear_winner():
    labels = np.tile([0, 1], 100)
    right = np.stack([labels, labels])
    half = np.stack([np.where(np.arange(200) < 100, labels, 1 - labels)] * 2)  # wrong on the second half
    r = paired_example_test(right, half, labels, "accuracy", resamples=500)
    # delta = 1 - 0.5; a bootstrap delta is 1 - (share of resampled examples in the first half), about 0.5 +- 0.035,
    # never 0.5 away from 0.5: p is the floor 1 / 501
    assert r.delta == pytest.approx(0.5)
    assert r.p == pytest.approx(1 / 501)
    assert 0.4 < r.low < 0.5 < r.high < 0.6
    swapped = paired_example_test(half, right, labels, "accuracy", resamples=500)
    assert swapped.delta == pytest.approx(-0.5) and swapped.p == r.p  # same resamples, negated deltas
    assert (swapped.low, swapped.high) == pytest.approx((-r.high, -r.low))


@pytest.mark.parametrize("metric", ["accuracy", "f1", "matthews_correlation", "pearson", "spearman"])
def test_paired_example_test_p_in_range_and_reproducible(metric):
    labels = random_data(metric, 300, 0)[1]
    a = np.stack([random_data(metric, 300, s)[0] for s in (1, 2)])
    b = np.stack([random_data(metric, 300, s)[0] for s in (3, 4)])
    r = paired_example_test(a, b, labels, metric, resamples=300, seed=5)
    assert 0 < r.p <= 1 and r.low <= r.high
    expected = np.mean([SKLEARN[metric](labels, pa) - SKLEARN[metric](labels, pb) for pa, pb in zip(a, b, strict=True)])
    assert r.delta == pytest.approx(expected, abs=1e-12)
    assert paired_example_test(a, b, labels, metric, resamples=300, seed=5) == r
    assert paired_example_test(a, b, labels, metric, resamples=300, seed=6) != r


def test_paired_example_test_rejects_unpaired_seeds():
    preds, labels = random_data("accuracy", 50, 0)
    with pytest.raises(ValueError, match="3 seeds of A and 2 of B"):
        paired_example_test(np.stack([preds] * 3), np.stack([preds] * 2), labels, "accuracy")
    with pytest.raises(ValueError, match="labels"):
        paired_example_test(np.stack([preds] * 2), np.stack([preds] * 2), labels[:-1], "accuracy")


def test_seed_permutation_test_by_hand():
    # 3 seeds, all differences positive: only "no flip" reaches the observed mean and only "flip all" its
    # negative: p = 2 / 2^3
    assert seed_permutation_test([0.8, 0.9, 0.7], [0.7, 0.85, 0.6]) == pytest.approx(0.25)
    # differences (3, 1, -1, 2), sum 5; flipping a subset of magnitudes summing to F gives |7 - 2F|, >= 5 when
    # F <= 1 ({}, {1}, {1'}) or F >= 6 ({3,1,2}, {3,1',2}, {3,1,1',2}): 6 of 16
    assert seed_permutation_test([3.0, 1.0, 0.0, 2.0], [0.0, 0.0, 1.0, 0.0]) == pytest.approx(6 / 16)
    assert seed_permutation_test([0.5, 0.6], [0.5, 0.6]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same seeds"):
        seed_permutation_test([1.0, 2.0], [1.0])


def test_smallest_seed_p_and_seeds_needed():
    assert [smallest_seed_p(n) for n in (1, 3, 5, 6)] == [1.0, 0.25, 0.0625, 0.03125]
    assert seeds_needed() == 6 and seeds_needed(0.25) == 3 and seeds_needed(0.0625) == 5 and seeds_needed(0.01) == 8
    for n in range(1, 7):  # all differences positive reaches the floor
        assert seed_permutation_test(np.arange(n) + 1.0, np.zeros(n)) == pytest.approx(smallest_seed_p(n))


def test_seed_interval():
    assert seed_interval([0.8]) is None and seed_interval([]) is None
    assert seed_interval([0.7, 0.7, 0.7]) == (0.7, 0.7)
    values = [0.81, 0.84, 0.79, 0.86, 0.80]
    low, high = seed_interval(values)
    assert 0.79 <= low < np.mean(values) < high <= 0.86  # a percentile interval of means stays within the data
    assert seed_interval(values) == (low, high)
    narrow = seed_interval(values, confidence=0.5)
    assert low < narrow[0] < narrow[1] < high


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 -> 3*0.01 = 0.03, 2*0.03 = 0.06, max(1*0.04, 0.06) = 0.06; back in input order
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.2]) == pytest.approx([0.5, 0.4])  # 2*0.2 = 0.4, max(0.5, 0.4)
    assert holm([0.6, 0.9]) == [1.0, 1.0]  # 2*0.6 capped
    assert holm([]) == []
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([0.5, 1.5])


def test_friedman_ranks_by_hand():
    scores = {
        "b": {"cola": 0.8, "sst2": 0.8, "mrpc": 0.7, "rte": 0.9, "qqp": 0.5},  # qqp: only b has it, not ranked
        "a": {"cola": 0.9, "sst2": 0.9, "mrpc": 0.9, "rte": 0.8},
        "c": {"cola": 0.7, "sst2": 0.7, "mrpc": 0.8, "rte": 0.7},
    }
    r = friedman_ranks(scores)
    # ranks per task (a, b, c): cola 1 2 3, sst2 1 2 3, mrpc 1 3 2, rte 2 1 3 -> means 1.25, 2, 2.75
    # chi2 = 12N/(k(k+1)) * (sum R^2 - k(k+1)^2/4) = 12*4/12 * (1.5625 + 4 + 7.5625 - 12) = 4.5, df 2: p = e^-2.25
    # CD = 2.343 * sqrt(3*4/(6*4)) = 1.657 > 2.75 - 1.25: no pair differs
    assert r.tasks == ("cola", "sst2", "mrpc", "rte")  # GLUE order
    assert list(r.average_ranks.items()) == [("a", 1.25), ("b", 2.0), ("c", 2.75)]
    assert r.statistic == pytest.approx(4.5) and r.p == pytest.approx(math.exp(-2.25))
    assert r.critical_difference == pytest.approx(2.343 * math.sqrt(0.5), abs=1e-3)
    assert r.different == () and r.alpha == 0.05
    # six tasks, always a > b > c: ranks 1, 2, 3; chi2 = 12*6/12 * (1 + 4 + 9 - 12) = 12, p = e^-6;
    # CD = 2.343 * sqrt(12/36) = 1.353: only a and c (2 apart) differ
    six = {m: {f"t{i}": s for i in range(6)} for m, s in (("c", 0.1), ("b", 0.2), ("a", 0.3))}
    r = friedman_ranks(six)
    assert r.statistic == pytest.approx(12.0) and r.p == pytest.approx(math.exp(-6))
    assert r.different == (("a", "c"),)
    # ties share the mean rank; a table of ties is no evidence at all
    tied = friedman_ranks({m: {"rte": 0.5, "cola": 0.5} for m in "xyz"})
    assert tied.average_ranks == {"x": 2.0, "y": 2.0, "z": 2.0} and (tied.statistic, tied.p) == (0.0, 1.0)


def test_friedman_ranks_none_and_demsar_table():
    assert friedman_ranks({"a": {"rte": 1.0, "cola": 1.0}, "b": {"rte": 0.0, "cola": 0.0}}) is None
    one_shared = {m: {"rte": s, m: s} for m, s in zip("abc", (1, 2, 3), strict=True)}
    assert friedman_ranks(one_shared) is None
    for k, q in ((3, 2.343), (4, 2.569), (5, 2.728)):  # Demsar (2006), Table 5(a), alpha = 0.05
        n = 7
        scores = {f"m{j}": {f"t{i}": float((i * j) % 5) for i in range(n)} for j in range(k)}
        r = friedman_ranks(scores)
        assert r.critical_difference / math.sqrt(k * (k + 1) / (6 * n)) == pytest.approx(q, abs=1e-3)


def test_expected_max_by_hand():
    # sorted 0.5, 0.7, 0.9, N = 3; weights (i/3)^n - ((i-1)/3)^n:
    # n=1: 1/3 each -> mean 0.7; n=2: 1/9, 3/9, 5/9 -> (0.5 + 2.1 + 4.5)/9 = 7.1/9
    # n=3: 1/27, 7/27, 19/27 -> (0.5 + 4.9 + 17.1)/27 = 22.5/27
    assert expected_max([0.9, 0.5, 0.7]) == pytest.approx([0.7, 7.1 / 9, 22.5 / 27])
    assert expected_max([0.6]) == [0.6] and expected_max([]) == []


probabilities = st.lists(st.floats(0, 1), max_size=12)
scores = st.lists(st.floats(-1, 1), min_size=1, max_size=30)


@given(probabilities)
def test_holm_is_monotone_and_bounded(p):
    adjusted = holm(p)
    assert len(adjusted) == len(p)
    assert all(r <= a <= 1 for r, a in zip(p, adjusted, strict=True))
    by_raw = [a for _, a in sorted(zip(p, adjusted, strict=True))]
    assert all(x <= y for x, y in pairwise(by_raw))


@given(scores)
def test_expected_max_runs_from_mean_to_max(values):
    e = expected_max(values)
    assert len(e) == len(values)
    assert e[0] == pytest.approx(np.mean(values), abs=1e-12)
    assert all(x <= y + 1e-12 for x, y in pairwise(e))
    assert e[-1] <= max(values) + 1e-12


@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=6))
def test_seed_permutation_p_is_a_valid_sign_flip_p(pairs):
    a, b = zip(*pairs, strict=True)
    p = seed_permutation_test(a, b)
    assert smallest_seed_p(len(pairs)) - 1e-12 <= p <= 1.0
    assert p * 2 ** len(pairs) == pytest.approx(round(p * 2 ** len(pairs)))  # a count of the 2^n flips
