"""Measurement, statistics: the robust mean and its interval, the warm-up cut and the drift fit."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.paramount.cluster.plugins.plugin_utils.measurement.statistics import fit_drift, robust_mean, warmup_cut


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.001, 1000.0), min_size=1, max_size=40), st.floats(0.01, 100.0))
def test_robust_mean_is_bounded_and_scale_equivariant(xs, c):
    e = robust_mean(xs)
    assert min(xs) - 1e-9 <= e.mean <= max(xs) + 1e-9
    assert e.low <= e.mean <= e.high
    e2 = robust_mean([x * c for x in xs])
    assert math.isclose(e2.mean, e.mean * c, rel_tol=1e-6, abs_tol=1e-9)


def test_robust_mean_limits_a_single_spike_but_counts_it():
    xs = [1.0] * 9 + [50.0]
    e = robust_mean(xs)
    assert 1.0 < e.mean < 1.2
    assert e.clipped == 1


def _throttled_steps(rng, n, slow):
    """Step times under a CPU quota: 3 or 4 (``slow`` of them) whole throttle periods of 100 ms, plus a few ms of
    jitter, in random order."""
    steps = [(0.4 if i < slow else 0.3) + rng.uniform(0.001, 0.004) for i in range(n)]
    rng.shuffle(steps)
    return steps


@pytest.mark.parametrize("slow", [4, 6, 10, 15])
def test_robust_mean_counts_a_second_mode_of_throttled_steps(slow):
    # With more than half of the steps within a few ms of each other the MAD collapses; clipping at 3 of those
    # "standard deviations" cut every 4-period step to 3 periods (-4% to -12% against the plain mean).
    import random
    for seed in range(10):
        xs = _throttled_steps(random.Random(100 * slow + seed), 30, slow)
        e = robust_mean(xs)
        assert abs(e.mean / (sum(xs) / len(xs)) - 1) < 0.01
        assert e.clipped <= 2 * 3  # at most a tenth of the steps on each side


def test_robust_mean_still_clips_rare_stragglers_of_throttled_steps():
    import random
    steps = _throttled_steps(random.Random(1), 30, 0)
    e = robust_mean(steps[:-2] + [3.0, 5.0])  # two stragglers: 10 and 17 periods
    assert e.clipped == 2
    assert e.mean < 0.31


def test_robust_mean_ignores_non_finite_and_handles_empty():
    assert robust_mean([]) is None
    assert robust_mean([float("nan")]) is None
    assert robust_mean([2.0]).mean == 2.0


def test_warmup_cut_drops_first_and_a_decaying_drift():
    seq = [3.0, 1.8, 1.4, 1.0, 1.01, 0.99, 1.0, 1.02, 0.98, 1.0, 1.0, 1.01]
    cut = warmup_cut(seq, 1)
    assert cut >= 3
    assert warmup_cut([1.0, 1.0, 1.0, 1.0], 1) == 1
    assert warmup_cut([5.0], 1) == 1


def test_fit_drift_finds_a_settling_decay_and_not_noise():
    import random
    rnd = random.Random(4)
    seq = [1.0 + 0.8 * math.exp(-i / 1.0) + rnd.gauss(0, 0.01) for i in range(1, 11)]
    rho, tau = fit_drift(seq, 1)
    assert 0.5 < rho < 1.2 and tau == 1.0
    flat = [1.0 + rnd.gauss(0, 0.02) for _index in range(10)]
    assert fit_drift(flat, 1) is None
    assert fit_drift([2.0, 1.0, 1.0], 1) is None  # too short
    exact = [2.0 + 1.0 * math.exp(-i / 2.0) for i in range(1, 11)]
    rho, tau = fit_drift(exact, 1)
    assert rho == pytest.approx(0.5, rel=1e-6) and tau == 2.0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0.0, 100.0), min_size=0, max_size=30))
def test_fit_drift_never_raises(seq):
    res = fit_drift(seq, 1)
    assert res is None or (res[0] > 0 and res[1] > 0)
