# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""Robust statistics of step times: a winsorized mean with a confidence interval, the warm-up cut and the
warm-up drift fit (numpy and scipy; the action plugin reports them missing)."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_common import (
    ParamountError,
    is_finite_number,
)

try:
    import numpy as np
    from scipy import stats as _stats
    from scipy.optimize import nnls as _nnls
except ImportError:  # pragma: no cover - reported by the action plugin
    np = None
    _stats = None
    _nnls = None


@dataclass
class Estimate:
    """Robust mean of a sample with a two-sided confidence interval."""

    mean: float
    se: float
    low: float
    high: float
    n: int
    clipped: int = 0

    def as_dict(self):
        return {"mean": self.mean, "low": self.low, "high": self.high, "n": self.n}


# Winsorize at median +/- WINSOR_K robust standard deviations. Stragglers are part of the real
# cost of a step, so they are clipped, not dropped: one huge spike in ten samples cannot double
# the estimate, while frequent moderate slow-downs still raise it. At most WINSOR_SHARE of the
# samples (at least one) are clipped on each side: the MAD collapses when more than half of the
# steps take nearly the same time (step times under a CPU quota are whole numbers of throttle
# periods, e.g. 3 or 4 periods of 100 ms), and a second mode that holds a tenth of the steps or
# more is part of the real cost, not a straggler.
WINSOR_K = 3.0
WINSOR_SHARE = 0.10
MIN_REL_SPREAD = 0.005  # robust sd floor, as a share of the median (identical samples)
SINGLE_SAMPLE_REL_SE = 0.10  # one sample: assume a 10% standard error
CONFIDENCE = 0.95


def robust_mean(values, k: float = WINSOR_K, confidence: float = CONFIDENCE) -> Estimate | None:
    """Winsorized mean with a Student-t confidence interval. None for an empty sample."""
    x = np.asarray([v for v in values if is_finite_number(v)], dtype=float)
    n = int(x.size)
    if n == 0:
        return None
    if n == 1:
        m = float(x[0])
        se = abs(m) * SINGLE_SAMPLE_REL_SE
        z = 1.959963984540054
        return Estimate(m, se, m - z * se, m + z * se, 1, 0)
    med = float(np.median(x))
    sd = 1.4826 * float(np.median(np.abs(x - med)))
    sd = max(sd, MIN_REL_SPREAD * abs(med), 1e-12)
    lo_c, hi_c = med - k * sd, med + k * sd
    # at most `most` samples clipped on each side (n >= 2 here, so most < n)
    most = max(1, math.ceil(round(WINSOR_SHARE * n, 9)))
    ordered = np.sort(x)
    lo_c = min(lo_c, float(ordered[most]))
    hi_c = max(hi_c, float(ordered[n - 1 - most]))
    w = np.clip(x, lo_c, hi_c)
    clipped = int(np.count_nonzero((x < lo_c) | (x > hi_c)))
    m = float(w.mean())
    se = float(w.std(ddof=1)) / math.sqrt(n)
    t = float(_stats.t.ppf(0.5 + confidence / 2.0, n - 1))
    return Estimate(m, se, m - t * se, m + t * se, n, clipped)


def warmup_cut(seq, drop_first: int = 1, k: float = 3.0) -> int:
    """Index of the first iteration kept in one attempt/phase sequence.

    Drops ``drop_first`` iterations, then keeps dropping leading iterations while each is slower
    than the median of what follows by more than ``k`` robust standard deviations (a warm-up
    drift), dropping at most a third of the sequence and keeping at least 3 iterations.
    """
    n = len(seq)
    cut = min(max(drop_first, 0), n)
    if n - cut <= 1:
        # too short to drop anything beyond the first: keep what is left (may be nothing)
        return cut
    limit = cut + max(0, (n - cut) // 3)
    while cut < limit and n - cut > 3:
        rest = np.asarray(seq[cut + 1:], dtype=float)
        med = float(np.median(rest))
        sd = max(1.4826 * float(np.median(np.abs(rest - med))), 0.01 * abs(med), 1e-12)
        if seq[cut] > med + k * sd:
            cut += 1
        else:
            break
    return cut


DRIFT_TAUS = (0.5, 1.0, 2.0, 3.0, 5.0, 8.0)
DRIFT_MIN_SAMPLES = 6
DRIFT_P = 0.01
DRIFT_SETTLED = 0.10  # the fitted drift must have fallen below 10% by the last iteration


def _despike(seq):
    """Replace isolated upward spikes (stragglers) by the median of their neighbours."""
    y = [float(v) for v in seq]
    out = list(y)
    for i in range(len(y)):
        window = y[max(0, i - 2):i] + y[i + 1:i + 3]
        if len(window) < 2:
            continue
        med = float(np.median(window))
        sd = max(1.4826 * float(np.median(np.abs(np.asarray(window) - med))), 0.01 * abs(med), 1e-12)
        if y[i] > med + 4 * sd and (i == 0 or y[i] > y[i - 1]) and (i == len(y) - 1 or y[i] > y[i + 1]):
            out[i] = med
    return out


def fit_drift(seq, first_index=1):
    """Warm-up drift of one attempt/phase sequence: y_i = m + a exp(-i / tau), a >= 0, tau from a grid,
    i counted from the start of the phase (``first_index`` is the index of ``seq[0]``).

    Returns (a / m, tau) when the decay explains significantly more than a constant does (F test,
    p < 0.01, tau counted as a parameter), at least 6 iterations are there, tau <= n / 3 and the
    fitted drift has fallen below 10% of the level by the last iteration; else None (the caller then
    drops leading outliers instead).
    """
    y = [v for v in seq if not math.isnan(v)]
    n = len(y)
    if n < DRIFT_MIN_SAMPLES or n != len(seq):
        return None
    y = np.asarray(_despike(y))
    idx = first_index + np.arange(n, dtype=float)
    rss0 = float(((y - y.mean()) ** 2).sum())
    if rss0 <= 0:
        return None
    best = None
    for tau in DRIFT_TAUS:
        if tau > n / 3.0:
            break  # a slower decay than the window can show is not told apart from the level
        X = np.column_stack([np.ones(n), np.exp(-idx / tau)])
        coef = _nnls(X, y)[0]
        rss = float(((y - X @ coef) ** 2).sum())
        if best is None or rss < best[0]:
            best = (rss, coef, tau)
    rss1, coef, tau = best
    m, a = float(coef[0]), float(coef[1])
    if a <= 0 or m <= 0:
        return None
    if a * math.exp(-idx[-1] / tau) > DRIFT_SETTLED * m:
        return None  # still drifting at the end of the probe: the level would be an extrapolation
    if rss1 <= 1e-18 * rss0:
        return a / m, tau
    f = (rss0 - rss1) / (rss1 / (n - 3))
    p = 1.0 - float(_stats.f.cdf(f, 1, n - 3))
    return (a / m, tau) if p < DRIFT_P else None


def most_common(values):
    """The most frequent value (the smallest of those tied): what most start records say."""
    counts = Counter(values)
    best = max(counts.values())
    return sorted(v for v, c in counts.items() if c == best)[0]


def median_profile(profiles):
    """Element-wise median of the attempts' cumulative excess profiles (each index over the attempts that
    reached it), clipped at 0."""
    longest = max((len(p) for p in profiles), default=0)
    out = []
    for i in range(longest):
        vals = [p[i] for p in profiles if len(p) > i]
        out.append(max(0.0, float(np.median(vals))))
    return out


def require_numeric_stack():
    """Raise the user-facing error when numpy or scipy is missing on the controller."""
    if np is None:  # pragma: no cover
        raise ParamountError("paramount.cluster.optimize needs numpy and scipy on the controller")
