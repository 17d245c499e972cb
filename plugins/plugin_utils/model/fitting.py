# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""Model stage, fitting primitives: the communication basis of the scaling fit, weighted non-negative least
squares, and the between-run noise that decides whether a two-count slope is real. ``scaling`` builds
its per-type fits (``PhaseFit``, ``ScalingModel``) from these; the method is in its docstring and in
docs/optimize.md."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_common import TrainingPhase

try:
    import numpy as np
    from scipy.optimize import nnls as _nnls
except ImportError:  # pragma: no cover - reported by the action plugin
    np = None
    _nnls = None

MIN_REL_SE = 0.01  # weight floor: no point counts as more precise than 1% of its value

# Between-run noise. Two probe runs of the same configuration differ by more than their within-run standard
# errors say: each run gets other hosts (CPU stepping, memory bandwidth, neighbours, placement in the network),
# so its whole level moves, and a probe's mean step time carries that run's offset. Published measurements of
# public IaaS clouds (e.g. Leitner and Cito, "Patterns in the Chaos - a Study of Performance Variation and
# Predictability in Public IaaS Clouds", ACM TOIT 16(3), 2016) found that instances of one type differ between
# instances and over time, typically by a few percent for CPU-bound work and more for I/O and network. The prior
# is a relative standard deviation of 3% per run. When some configuration was probed in several runs, the
# spread of their means updates it (a scaled-inverse-chi-square update with BETWEEN_RUN_PRIOR_DF degrees of
# freedom for the prior, so two repeats do not overturn it and many do).
BETWEEN_RUN_CV = 0.03
BETWEEN_RUN_PRIOR_DF = 4.0
# A slope measured from two node counts is accepted only when the rise exceeds this many standard deviations of
# the difference of the two probes' means (within-run standard errors and between-run noise): about 97.5%
# one-sided, so a rise the noise alone makes once in forty pairs of probes is not taken as scaling.
NOISE_FLOOR_Z = 1.96


def _r(n):
    return 2.0 * (n - 1.0) / n


DEFAULT_SHAPE = "ring"
SHAPES = {
    "ring": _r,
    "log2": math.log2,
    "linear": lambda n: n - 1.0,
}


def _one(n):
    return 1.0


def _jump(n):
    return 1.0 if n > 1 else 0.0


def basis_columns(k: int, shape: str = "ring"):
    """Feature functions for a fit on k distinct node counts (see the module docstring)."""
    lin = SHAPES["linear"]
    main = SHAPES[shape]
    if k <= 1:
        return [_one]
    if k == 2:
        return [_one, main]
    if k == 3:
        return [_one, main, lin] if shape != "linear" else [_one, _r, lin]
    return [_one, _jump, main, lin] if shape != "linear" else [_one, _jump, _r, lin]


def nnls_fit(ns, ys, ses, columns):
    """Weighted NNLS. Returns the coefficient vector."""
    A = np.array([[f(n) for f in columns] for n in ns], dtype=float)
    y = np.asarray(ys, dtype=float)
    s = np.maximum(np.asarray(ses, dtype=float), MIN_REL_SE * np.abs(y))
    s = np.where(s > 0, s, 1.0)
    w = 1.0 / s
    coef = _nnls(A * w[:, None], y * w)[0]
    return coef


def _eval(coef, columns, n):
    return float(sum(c * f(n) for c, f in zip(coef, columns)))


@dataclass
class Point:
    nodes: int
    y: float
    y_se: float
    comm: float | None
    comm_se: float
    compute: float | None


def run_variance(point, between_cv):
    """Variance of a probe's mean step time as an estimate of another run's: within-run standard error plus the
    between-run noise (relative standard deviation ``between_cv``)."""
    se = point.y_se if point.y_se and point.y_se > 0 else 0.0
    return se * se + (between_cv * point.y) ** 2


def slope_is_above_noise(p_lo, p_hi, between_cv, z=NOISE_FLOOR_Z):
    """True when the step time measured at the larger count exceeds the one at the smaller count by more than
    ``z`` standard deviations of their difference (between-run noise included)."""
    sd = math.sqrt(run_variance(p_lo, between_cv) + run_variance(p_hi, between_cv))
    return (p_hi.y - p_lo.y) > z * sd


def estimate_between_run_cv(measurement, prior=BETWEEN_RUN_CV, prior_df=BETWEEN_RUN_PRIOR_DF):
    """(relative between-run standard deviation, number of repeated runs that informed it).

    The prior (``BETWEEN_RUN_CV`` with ``BETWEEN_RUN_PRIOR_DF`` degrees of freedom) is updated with the relative
    spread of the run means of every configuration probed in two or more runs (one phase per configuration: a
    run's offset is common to its phases). The spread of run means also holds their within-run error, so the
    estimate errs on the wide side.
    """
    ss, df, runs = 0.0, 0, 0
    for cm in measurement.configs.values():
        phases = getattr(cm, "phases", {}) or {}
        pm = phases.get(TrainingPhase.ADVERSARIAL) or next(iter(phases.values()), None)
        means = [float(v) for v in (getattr(pm, "run_means", None) or []) if v and v > 0]
        if len(means) >= 2:
            mu = sum(means) / len(means)
            ss += sum(((v - mu) / mu) ** 2 for v in means)
            df += len(means) - 1
            runs += len(means)
    return math.sqrt((prior_df * prior * prior + ss) / (prior_df + df)), runs
