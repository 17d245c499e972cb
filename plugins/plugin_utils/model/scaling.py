# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""Model stage, the scaling model: predict seconds per iteration (per phase), init time and iteration counts for
every candidate (instance_type, nodes), with uncertainty, from a ``measurement.estimates.Measurement``.

Seconds per iteration of type T on n nodes, phase p:

* measured (T, n): the measurement itself (robust mean and its confidence interval);
* T probed at two or more node counts: Ernest-style non-negative least squares of T's own
  measured step times on a communication basis whose size follows the number of distinct
  counts k (weights 1/standard error):

  - k = 2: t(n) = a + b * r(n)                    r(n) = 2 (n - 1) / n, the per-rank volume of a ring all-reduce
  - k = 3: t(n) = a + b * r(n) + c * (n - 1)      plus a latency / straggler term growing with the ring
  - k >= 4: t(n) = a + j * [n > 1] + b * r(n) + c * (n - 1)   plus a one-off cost of leaving the node

  all coefficients >= 0, so the fitted step time never falls as nodes are added; the curve is then
  shifted by the residual at the measured counts (the nearest one outside the measured range,
  linearly interpolated inside it), so measured points stay exact;
* T probed at exactly two counts whose step times differ by no more than the between-run noise floor
  (``slope_is_above_noise``): no slope of its own; the communication-shape prior a + s C(n) below (C pooled over
  all runs, s scaled to T's own measured communication) with the level a pooled over both measured points,
  residuals interpolated between them (measured points stay exact);
* T probed at one count n0 only (the documented communication model): the step time is T's own
  compute plus communication C(n), where C is fitted by the same NNLS on the communication
  time (step time minus the slowest rank's ``compute_seconds``) observed in every run of the
  workload, all types pooled. When T's own run had more than one node, C is rescaled to T's own
  communication at n0 (network speed differs by type); otherwise t(n) = t(n0) + C(n) - C(n0).
  With communication observed at one node count n_c > 1 only, C(n) = C(n_c) r(n) / r(n_c).
  With no multi-node run at all, other node counts cannot be predicted: they are reported as such.

Uncertainty: a parametric bootstrap (every measured mean redrawn from its standard error and the
between-run noise, the whole model refitted, the job's own run level drawn once more) gives a 95% interval; for predictions that rest on an assumed shape the
interval is widened to cover the same fit with the alternative shapes log2(n) and (n - 1) in
place of r(n).

Iterations: a measured configuration uses its own start record (iterations_per_epoch x epochs);
any other uses ceil(samples_per_epoch / (nodes x ranks_per_node x local_batch)) x epochs. The
first ``warmup_iterations`` (global steps) are warm-up steps, the rest adversarial.

Start-up: the first iterations of each phase (dropped, or divided by a fitted warm-up drift) cost
more than the steady ones; their excess, in steady iterations, is measured per configuration and
added once per phase (nearest measured count for other counts), never capped: a job repeats the probe's
first iterations, so its predicted time is never below their measured time plus the steady rate for the
rest. A job phase shorter than the probe's gets the excess of as many first probe iterations as it runs.

Init time: measured per configuration (the slowest rank's ``init`` record); other counts are
anchored at the nearest measured count and grow linearly with the node count, with the slope
fitted by NNLS (per type when it was probed at two counts, else the median slope of the types
that were, else zero).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_common import ParamountError, TrainingPhase

from ansible_collections.paramount.cluster.plugins.plugin_utils.model.fitting import (
    BETWEEN_RUN_CV,
    DEFAULT_SHAPE,
    SHAPES,
    Point,
    _eval,
    _one,
    basis_columns,
    estimate_between_run_cv,
    nnls_fit,
    np,
    run_variance,
    slope_is_above_noise,
)


class PhaseFit:
    """One fitted model for one phase, built from point data (means already drawn).

    A type measured at exactly two node counts whose step-time rise is not above the between-run noise floor
    (``slope_is_above_noise``) gets no slope of its own: its curve is the communication-shape prior, the pooled
    communication curve C(n) scaled to the type's own measured communication, with a level pooled over both
    measured points (weights 1 / variance), ``self.prior[t] = (level, scale)``.
    """

    def __init__(self, points_by_type, shape="ring", between_cv=BETWEEN_RUN_CV):
        self.shape = shape
        self.between_cv = float(between_cv)
        self.points = points_by_type  # T -> {n: Point}
        self.type_fit = {}
        self.prior = {}
        for t, pts in points_by_type.items():
            ns = sorted(pts)
            if len(ns) == 2 and not slope_is_above_noise(pts[ns[0]], pts[ns[1]], self.between_cv):
                self.prior[t] = None  # filled once the pooled communication curve is known
            elif len(ns) >= 2:
                cols = basis_columns(len(ns), shape)
                coef = nnls_fit(ns, [pts[n].y for n in ns], [pts[n].y_se for n in ns], cols)
                self.type_fit[t] = (coef, cols)
        # pooled communication curve
        comm_obs = [(n, p.comm, p.comm_se) for pts in points_by_type.values() for n, p in pts.items()
                    if p.comm is not None]
        self.comm = None
        self.comm_counts = sorted({obs[0] for obs in comm_obs})
        if comm_obs:
            distinct = self.comm_counts
            if len(distinct) >= 2:
                cols = basis_columns(len(distinct), shape)
                coef = nnls_fit([o[0] for o in comm_obs], [o[1] for o in comm_obs], [o[2] for o in comm_obs], cols)
                self.comm = ("fit", coef, cols)
            elif distinct[0] > 1:
                nc = distinct[0]
                mean = float(np.mean([o[1] for o in comm_obs]))
                f = SHAPES[shape]
                self.comm = ("scale", mean / f(nc) if f(nc) > 0 else 0.0, f)
        for t in list(self.prior):
            self.prior[t] = self._prior_curve(points_by_type[t])

    def _prior_curve(self, pts):
        """(level, scale) of the communication-shape prior for one type: scale = the type's own communication
        over the pooled curve at its multi-node counts (1 without either), level = the variance-weighted mean
        of y - scale x C(n) over its measured points."""
        own = [(p.comm, self.comm_at(n)) for n, p in pts.items() if n > 1 and p.comm is not None]
        own = [(c, cc) for c, cc in own if cc is not None and cc > 0]
        scale = sum(pair[0] for pair in own) / sum(pair[1] for pair in own) if own else 1.0
        curve = {n: scale * (self.comm_at(n) or 0.0) for n in pts}
        w = {n: 1.0 / max(run_variance(p, self.between_cv), 1e-300) for n, p in pts.items()}
        level = sum(w[n] * (p.y - curve[n]) for n, p in pts.items()) / sum(w.values())
        return level, scale

    def comm_at(self, n):
        if self.comm is None:
            return None
        if self.comm[0] == "fit":
            return _eval(self.comm[1], self.comm[2], n)
        if n == 1:
            return 0.0
        return self.comm[1] * self.comm[2](n)

    def predict(self, t, n):
        """(value, method) or (None, reason)."""
        pts = self.points.get(t)
        if not pts:
            return None, "not probed"
        if n in pts:
            return pts[n].y, "measured"
        if self.prior.get(t) is not None:
            # slope within the noise floor: the communication-shape prior with the pooled level; between the two
            # measured counts the residuals are interpolated, so measured points stay exact
            level, scale = self.prior[t]
            ns = sorted(pts)
            value = level + scale * (self.comm_at(n) or 0.0)
            if ns[0] < n < ns[-1]:
                res = {m: pts[m].y - (level + scale * (self.comm_at(m) or 0.0)) for m in ns}
                value += res[ns[0]] + (res[ns[-1]] - res[ns[0]]) * (n - ns[0]) / float(ns[-1] - ns[0])
            return max(value, 0.0), "prior-2"
        if t in self.type_fit:
            # the NNLS curve, shifted by the residual of the measured counts around n (the nearest one
            # beyond the measured range, linearly interpolated inside it): measured points stay exact
            # and the prediction never falls below the last measurement as nodes are added
            coef, cols = self.type_fit[t]
            ns = sorted(pts)
            res = {m: pts[m].y - _eval(coef, cols, m) for m in ns}
            if n > ns[-1]:
                r = res[ns[-1]]
            elif n < ns[0]:
                r = res[ns[0]]
            else:
                hi = min(m for m in ns if m > n)
                lo = max(m for m in ns if m < n)
                r = res[lo] + (res[hi] - res[lo]) * (n - lo) / float(hi - lo)
            return max(_eval(coef, cols, n) + r, 0.0), "nnls-%d" % len(pts)
        (n0, p0), = pts.items()
        if self.comm is None:
            return None, ("probed at %d node(s) only, and no probe run with more than one node measured "
                          "the communication time" % n0)
        c_n, c_0 = self.comm_at(n), self.comm_at(n0)
        if n0 > 1 and p0.comm is not None and c_0 and c_0 > 0:
            base = p0.y - p0.comm
            return max(base + p0.comm * c_n / c_0, 0.0), "transfer-scaled"
        return max(p0.y + c_n - c_0, 0.0), "transfer-additive"


@dataclass
class Prediction:
    instance_type: str
    nodes: int
    measured: bool
    basis: str
    seconds_per_iteration: dict  # phase -> [mean, low, high]
    iterations: dict  # phase -> int
    # total_seconds also holds, per phase, startup_iterations[phase] x its seconds per iteration: the
    # extra time of the first (warm-up) iterations of the phase seen in the probes
    init_seconds: list  # [mean, low, high]
    total_seconds: list  # [mean, low, high], init + all iterations, setup excluded
    notes: list = field(default_factory=list)
    startup_iterations: dict = field(default_factory=dict)

    @property
    def iterations_total(self):
        return int(sum(self.iterations.values()))

    @property
    def mean_seconds_per_iteration(self):
        total = self.iterations_total
        if total <= 0:
            return None
        return sum(self.seconds_per_iteration[p][0] * k for p, k in self.iterations.items() if k) / total


class Unpredictable(Exception):
    """The candidate cannot be predicted; str() is the reason."""


def _draw(rng, mean, se, size):
    if se is None or not se > 0:
        return np.full(size, mean, dtype=float)
    return np.maximum(rng.normal(mean, se, size), 0.0)


class ScalingModel:
    """Fitted model for one workload. ``predict(T, n)`` returns a Prediction or raises Unpredictable."""

    def __init__(self, measurement, epochs=None, ranks_per_node=None, n_boot=200, seed=0, shape=DEFAULT_SHAPE,
                 between_run_cv=None):
        if np is None:  # pragma: no cover
            raise ParamountError("paramount.cluster.optimize needs numpy and scipy on the controller")
        self.m = measurement
        self.job = measurement.job
        self.epochs = int(epochs) if epochs else None
        self.rpn_override = float(ranks_per_node) if ranks_per_node else None
        self.n_boot = int(n_boot)
        self.rng = np.random.default_rng(seed)
        self.points = {p: {} for p in TrainingPhase.values()}
        self.startup = {}  # (phase, type) -> {nodes: extra steady iterations at the start of the phase}
        self.startup_profile = {}  # (phase, type) -> {nodes: the same for the first 1, 2, ... probe iterations}
        for (t, n), cm in measurement.configs.items():
            for p, pm in cm.phases.items():
                if p not in self.points:
                    self.points[p] = {}
                comm = pm.comm.mean if pm.comm is not None else None
                comm_se = pm.comm.se if pm.comm is not None else 0.0
                comp = pm.compute.mean if pm.compute is not None else None
                self.points[p].setdefault(t, {})[n] = Point(n, pm.seconds.mean, pm.seconds.se, comm, comm_se, comp)
                self.startup.setdefault((p, t), {})[n] = float(getattr(pm, "startup_iterations", 0.0) or 0.0)
                self.startup_profile.setdefault((p, t), {})[n] = list(getattr(pm, "startup_profile", None) or [])
        self.shape = shape
        if between_run_cv is None:
            self.between_cv, self.between_runs = estimate_between_run_cv(measurement)
        else:
            self.between_cv, self.between_runs = float(between_run_cv), 0
        cv = self.between_cv
        alternatives = [s for s in SHAPES if s != shape]
        self.fits = {p: PhaseFit(pts, shape, cv) for p, pts in self.points.items() if pts}
        self.alt_fits = {p: [PhaseFit(pts, s, cv) for s in alternatives] for p, pts in self.points.items() if pts}
        self.boot_fits = {p: [] for p in self.fits}
        for p, pts in self.points.items():
            if not pts:
                continue
            for _draw_index in range(self.n_boot):
                drawn = {}
                for t, by_n in pts.items():
                    drawn[t] = {}
                    for n, pt in by_n.items():
                        # a probe's mean is off by its run's level as well as by its standard error
                        y = float(_draw(self.rng, pt.y, math.sqrt(run_variance(pt, cv)), 1)[0])
                        c = float(_draw(self.rng, pt.comm, pt.comm_se, 1)[0]) if pt.comm is not None else None
                        drawn[t][n] = Point(n, y, pt.y_se, c, pt.comm_se, pt.compute)
                self.boot_fits[p].append(PhaseFit(drawn, shape, cv))
        # the job is one more run, with its own level: the prediction interval of its total includes it
        self.future_run = np.maximum(self.rng.normal(1.0, cv, self.n_boot), 0.0) if self.n_boot else np.ones(0)
        # init
        self.init_points = {}
        for (t, n), cm in measurement.configs.items():
            if cm.init is not None:
                self.init_points.setdefault(t, {})[n] = cm.init
        self.init_slope = {}
        slopes = []
        for t, pts in self.init_points.items():
            if len(pts) >= 2:
                ns = sorted(pts)
                coef = nnls_fit(ns, [pts[n].mean for n in ns], [pts[n].se for n in ns], [_one, SHAPES["linear"]])
                self.init_slope[t] = float(coef[1])
                slopes.append(float(coef[1]))
        self.pooled_init_slope = float(np.median(slopes)) if slopes else None
        # phase ratios (warm-up / adversarial) for types that lack one phase
        ratios = []
        for t in self.types():
            for n in self.points.get(TrainingPhase.WARMUP, {}).get(t, {}):
                adv = self.points.get(TrainingPhase.ADVERSARIAL, {}).get(t, {}).get(n)
                if adv is not None and adv.y > 0:
                    ratios.append(self.points[TrainingPhase.WARMUP][t][n].y / adv.y)
        self.warmup_ratio = float(np.median(ratios)) if ratios else None

    # ------------------------------------------------------------------------------------
    def types(self):
        return sorted({t for p in self.points.values() for t in p})

    def measured_counts(self, t):
        return sorted({n for (tt, n) in self.m.configs if tt == t})

    def ranks_per_node(self, t):
        if self.rpn_override:
            return self.rpn_override
        vals = [cm.ranks_per_node for key, cm in self.m.configs.items() if key[0] == t]
        return float(np.median(vals)) if vals else 1.0

    def iterations(self, t, n):
        """(iterations by phase, source text)."""
        epochs = self.epochs
        cm = self.m.configs.get((t, n))
        warm = self.job.warmup_iterations
        if cm is not None and cm.basis == "homogeneous" and cm.iterations_per_epoch:
            total = cm.iterations_per_epoch * (epochs or cm.epochs or self.job.epochs)
            if cm.warmup_iterations is not None:
                warm = cm.warmup_iterations
            src = "start record"
        else:
            ranks = max(1, int(round(n * self.ranks_per_node(t))))
            ipe = int(math.ceil(self.job.samples_per_epoch / float(ranks * self.job.local_batch)))
            total = ipe * (epochs or self.job.epochs)
            src = "samples_per_epoch / (nodes x ranks_per_node x local_batch)"
        w = min(int(warm), int(total))
        return {TrainingPhase.WARMUP.value: w, TrainingPhase.ADVERSARIAL.value: int(total) - w}, src

    def _phase_values(self, p, t, n):
        """(central, draws array, alternatives list, method) or raises Unpredictable."""
        fit = self.fits.get(p)
        if fit is None:
            raise Unpredictable("phase %s was never measured" % p)
        central, how = fit.predict(t, n)
        if central is None:
            raise Unpredictable(how)
        draws = np.array([bf.predict(t, n)[0] for bf in self.boot_fits[p]], dtype=float)
        draws = draws[np.isfinite(draws)] if draws.size else draws
        alts = []
        if how != "measured":
            for af in self.alt_fits[p]:
                v = af.predict(t, n)[0]
                if v is not None:
                    alts.append(v)
        return central, draws, alts, how

    def predict(self, t, n) -> Prediction:
        n = int(n)
        if n < 1:
            raise Unpredictable("node count must be >= 1")
        if t not in self.types():
            raise Unpredictable("not probed")
        notes = []
        iters, src = self.iterations(t, n)
        cm = self.m.configs.get((t, n))
        measured = cm is not None
        spi = {}
        draws_by_phase = {}
        methods = set()
        for p in TrainingPhase.values():
            if iters.get(p, 0) <= 0 and not (p in self.points and t in self.points[p]):
                continue
            have = p in self.points and t in self.points[p]
            if have:
                c, d, alts, how = self._phase_values(p, t, n)
                methods.add(how)
            else:
                other = (TrainingPhase.ADVERSARIAL if p == TrainingPhase.WARMUP else TrainingPhase.WARMUP).value
                if not (other in self.points and t in self.points[other]):
                    raise Unpredictable("no iteration of %s measured" % t)
                c0, d0, a0, how = self._phase_values(other, t, n)
                methods.add(how)
                if p == TrainingPhase.WARMUP and self.warmup_ratio is not None:
                    f = float(self.warmup_ratio)
                    notes.append("warm-up phase not probed on %s: %.3g x its adversarial time (median ratio "
                                 "of the types that were)" % (t, f))
                elif p == TrainingPhase.WARMUP:
                    f = 1.0
                    notes.append("warm-up phase not probed on any type: its steps are priced at the "
                                 "adversarial time (an upper bound)")
                elif self.warmup_ratio:
                    f = 1.0 / self.warmup_ratio
                    notes.append("adversarial phase not probed on %s: %.3g x its warm-up time (median ratio "
                                 "of the types that were)" % (t, f))
                else:
                    raise Unpredictable("the adversarial phase was not probed on %s and no type was probed in "
                                        "both phases" % t)
                c, d, alts = c0 * f, d0 * f, [a * f for a in a0]
            lo, hi = self._interval(c, d, alts)
            spi[p] = [c, lo, hi]
            draws_by_phase[p] = (c, d, alts)
        if not spi:
            raise Unpredictable("no iteration measured")
        init_c, init_d, init_note = self._init(t, n)
        if init_note:
            notes.append(init_note)
        # startup: the dropped / drifting first iterations of each phase, in steady iterations
        startup = {}
        for p in spi:
            if iters.get(p, 0) > 0:
                startup[p] = self.startup_iterations(p, t, n, iters[p])
        # total
        total_c = init_c + sum(spi[p][0] * (iters.get(p, 0) + startup.get(p, 0.0)) for p in spi)
        nb = min([len(v[1]) for v in draws_by_phase.values()] + [len(init_d), len(self.future_run)])
        tot_d = init_d[:nb].copy()
        for p, (c, d, alts) in draws_by_phase.items():
            tot_d = tot_d + d[:nb] * self.future_run[:nb] * (iters.get(p, 0) + startup.get(p, 0.0))
        alt_tot = []
        n_alt = max([len(v[2]) for v in draws_by_phase.values()] + [0])
        for i in range(n_alt):
            alt_tot.append(init_c + sum((v[2][i] if i < len(v[2]) else v[0]) * (iters.get(p, 0) + startup.get(p, 0.0))
                                        for p, v in draws_by_phase.items()))
        tlo, thi = self._interval(total_c, tot_d, alt_tot)
        if measured:
            basis = "measured" if cm.basis == "homogeneous" else "measured (rated in a heterogeneous probe run)"
        elif any(m.startswith("nnls") for m in methods):
            basis = "fitted: NNLS on %s's node counts %s" % (t, self.measured_counts(t))
        elif "prior-2" in methods:
            basis = ("prior: %s's step time at node counts %s differs by less than the between-run noise, so the "
                     "communication shape of all runs with a level pooled over both" % (t, self.measured_counts(t)))
        else:
            basis = ("transfer: %s probed at %s node(s), pooled communication model"
                     % (t, ",".join(str(c) for c in self.measured_counts(t))))
        if src != "start record" and measured:
            notes.append("iterations from %s" % src)
        init_interval = [init_c, float(init_d.min()) if init_d.size else init_c,
                         float(init_d.max()) if init_d.size else init_c]
        return Prediction(t, n, measured, basis, spi, iters, init_interval, [total_c, tlo, thi], notes, startup)

    def startup_iterations(self, p, t, n, iterations):
        """Measured start-up excess (in steady iterations) that a phase of ``iterations`` iterations repeats, from
        the nearest measured node count: the whole excess of the probe's phase when the job runs at least as many
        iterations as the probe did, else the excess of the probe's first ``iterations`` iterations. Never capped:
        a predicted total is never below the measured time of the probe iterations it repeats (measured start-up
        plus the steady rate for the remaining iterations)."""
        st = self.startup.get((p, t)) or {}
        if not st or iterations <= 0:
            return 0.0
        n0 = min(st, key=lambda c: (abs(c - n), c))
        profile = (self.startup_profile.get((p, t)) or {}).get(n0) or []
        if iterations < len(profile):
            return float(profile[int(iterations) - 1])
        return float(st[n0])

    @staticmethod
    def _interval(central, draws, alts):
        if draws is not None and len(draws) >= 10:
            lo, hi = np.percentile(draws, [2.5, 97.5])
        else:
            lo = hi = central
        vals = [lo, hi, central] + list(alts)
        return float(min(vals)), float(max(vals))

    def _init(self, t, n):
        pts = self.init_points.get(t)
        if not pts:
            return 0.0, np.zeros(self.n_boot), "no init record for %s: init time counted as 0" % t
        if n in pts:
            e = pts[n]
            return e.mean, _draw(self.rng, e.mean, e.se, self.n_boot), None
        n0 = min(pts, key=lambda c: (abs(c - n), c))
        e = pts[n0]
        slope = self.init_slope.get(t, self.pooled_init_slope)
        note = None
        if slope is None:
            slope = 0.0
            if n != n0:
                note = "init time taken as constant in the node count (no type probed at two counts)"
        c = max(e.mean + slope * (n - n0), 0.0)
        return c, np.maximum(_draw(self.rng, e.mean, e.se, self.n_boot) + slope * (n - n0), 0.0), note

    # ------------------------------------------------------------------------------------
    def cross_check(self):
        """Measured against predicted seconds per iteration for every measured (type, nodes, phase).

        ``kind`` is ``leave-one-out`` (refit without the point: a real check of the scaling model) for
        types probed at two or more counts, ``fitted`` (the NNLS curve at the point) otherwise when
        available. A type probed at one count has nothing to check: its point is listed as ``probed``
        (the model's value there is the measurement), to show where the probes are beside the points the
        trained job adds (the ledger's ``trained`` points).
        """
        out = []
        for p, pts in self.points.items():
            fit = self.fits.get(p)
            for t, by_n in sorted(pts.items()):
                if len(by_n) < 2:
                    for n, pt in sorted(by_n.items()):
                        v, how = fit.predict(t, n) if fit is not None else (None, "")
                        if v is not None:
                            out.append({"instance_type": t, "nodes": n, "phase": p, "measured": pt.y,
                                        "predicted": v, "kind": "probed", "method": how})
                    continue
                for n, pt in sorted(by_n.items()):
                    reduced = {tt: dict(bn) for tt, bn in pts.items()}
                    del reduced[t][n]
                    v, how = PhaseFit(reduced, self.shape, self.between_cv).predict(t, n)
                    if v is not None:
                        out.append({"instance_type": t, "nodes": n, "phase": p, "measured": pt.y,
                                    "predicted": v, "kind": "leave-one-out", "method": how})
                    if fit is not None and t in fit.type_fit:
                        coef, cols = fit.type_fit[t]
                        out.append({"instance_type": t, "nodes": n, "phase": p, "measured": pt.y,
                                    "predicted": _eval(coef, cols, n), "kind": "fitted", "method": "nnls"})
        return out
