# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""Rating one attempt: per training phase, each instance type's seconds per step (as in a cluster of its own
type), its compute and communication terms, and where the steady state starts (warm-up cut or drift)."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from ansible_collections.paramount.cluster.plugins.plugin_utils.measurement.runs import AttemptLog
from ansible_collections.paramount.cluster.plugins.plugin_utils.measurement.statistics import (
    DRIFT_MIN_SAMPLES,
    fit_drift,
    most_common,
    robust_mean,
    warmup_cut,
)
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_common import is_finite_number


@dataclass
class PhaseSeries:
    """Per step of one phase of an attempt: each type's step time and compute, the step's communication."""

    y: dict = field(default_factory=lambda: defaultdict(list))  # type -> seconds per step (NaN: not logged)
    compute: dict = field(default_factory=lambda: defaultdict(list))  # type -> its compute seconds
    comm: list = field(default_factory=list)  # step time beyond the slowest type's compute
    own_comm: dict = field(default_factory=lambda: defaultdict(list))  # type -> comm at its own pace


@dataclass
class SteadyState:
    """Where the steady state of one phase of an attempt starts and how the warm-up is taken out."""

    cut: int  # leading steps dropped
    factors: list  # per step, the fitted drift to divide out (1.0 without a drift)
    excess: float  # start-up time of the phase, in steady iterations
    profile: list  # excess of the first i + 1 iterations, in steady iterations
    drift: tuple | None  # (a / m, tau) fitted or borrowed, None without one
    borrowed: bool  # the drift was fitted on a longer phase of the same attempt

    def corrected(self, values):
        """The steady values (from the cut on), the drift divided out, NaN (types that did not log) dropped."""
        return [v / f for v, f in zip(values[self.cut:], self.factors[self.cut:]) if not math.isnan(v)]


def own_communication(comm, compute, itype, cpu_bound):
    """The communication time of ``itype`` in a cluster of its own, from a step of a run of several types.

    A step's communication (its time beyond the slowest type's compute) goes at the pace of the slowest rank: a
    collective ends when its last rank has done its part. Where that part is network transfer (NCCL between GPU
    nodes) the pace is the wire's and the time is right for every type. Where it is CPU work done under the
    node's own quota (gloo between emulated nodes or CPU instances with a ``cpu_share``) it goes at the slowest
    rank's CPU speed, and a faster type does the same work in proportion to its own compute time (measured: a
    homogeneous cluster's communication is 4-5% of its step time on 0.15 to 0.60 CPU shares). One mixed run
    cannot tell the two apart; the catalog says which a type is."""
    slowest = max(compute.values())
    if not cpu_bound or slowest <= 0:
        return comm
    return comm * compute[itype] / slowest


def window_rates(iteration_records, host_types, warnings, run_id, attempt):
    """(type, phase) -> seconds per step of that type alone, from the compute-only windows of a mixed probe.

    In a synchronous job a rank faster than the slowest waits at every all-reduce and never spends its CPU
    quota (or a burstable instance's credits): its bursts of compute run faster than the type sustains, so
    the per-step ``compute_seconds`` rates it too fast. The trainer's window (``window_seconds``, trainer
    --probe-window) runs whole steps with no collective, busy all along as in a cluster of its own type.
    Each window's first step is dropped (it starts the data iterator); the rate is the remaining steps' total
    time over their number, pooled over the type's ranks: a throttled step shorter than the throttle period
    either fits in a run slot or waits out a stop, so single steps are bimodal and only the total is the rate
    (a median would pick one mode)."""
    steps = defaultdict(list)
    for r in iteration_records:
        window = r.get("window_seconds")
        if window is None or r["host"] not in host_types:
            continue
        if (not isinstance(window, list) or len(window) < 2
                or not all(is_finite_number(v) and v >= 0 for v in window)):
            warnings.append("run %s attempt %d: host %s step %s: window_seconds is not a list of two or more "
                            "non-negative numbers; its window is not used" % (run_id, attempt, r["host"], r["step"]))
            continue
        steps[(host_types[r["host"]], r["phase"])].extend(window[1:])
    return {key: float(sum(values) / len(values)) for key, values in steps.items() if values}


def step_series(attempt: AttemptLog, host_types, rates, cpu_bound_types):
    """phase -> PhaseSeries of the attempt. A step lasts as long as its slowest rank; a type's compute is the
    mean over its ranks (or its window rate); in a mixed run a type's step is its compute plus its own
    communication (see own_communication)."""
    series = defaultdict(PhaseSeries)
    for step in sorted(attempt.steps):
        by_rank = attempt.steps[step]
        phase = most_common([r["phase"] for r in by_rank.values()])
        step_s = max(r["seconds"] for r in by_rank.values())
        comp = {}
        for t in attempt.types:
            vals = [r["compute_seconds"] for r in by_rank.values() if host_types[r["host"]] == t]
            if vals:
                comp[t] = sum(vals) / len(vals)
        if not comp:
            continue
        comm = max(step_s - max(comp.values()), 0.0)
        for t in comp:
            if (t, phase) in rates:
                comp[t] = rates[(t, phase)]
        ser = series[phase]
        ser.comm.append(comm)
        for t in attempt.types:
            ser.own_comm[t].append(own_communication(comm, comp, t, t in cpu_bound_types) if t in comp else comm)
            if not attempt.mixed:
                ser.y[t].append(step_s)
                ser.compute[t].append(comp[t])
            elif t in comp:
                ser.y[t].append(comp[t] + ser.own_comm[t][-1])
                ser.compute[t].append(comp[t])
            else:
                ser.y[t].append(float("nan"))
                ser.compute[t].append(float("nan"))
    return series


def reference_series(ser: PhaseSeries):
    """The series the warm-up cut is decided on: the step time of the attempt's slowest type."""
    best = None
    for ys in ser.y.values():
        clean = [v for v in ys if not math.isnan(v)]
        if len(clean) == len(ys) and (best is None or (ys and sum(ys) > sum(best))):
            best = ys
    return best if best is not None else ser.comm


def steady_states(series, drop_first):
    """phase -> SteadyState. A significant warm-up drift is divided out (a phase too short to fit one borrows
    the attempt's longest fitted phase's); without one, slow leading steps are cut (warmup_cut)."""
    refs = {phase: reference_series(ser) for phase, ser in series.items()}
    drifts = {phase: fit_drift(ref[drop_first:], drop_first) for phase, ref in refs.items()}
    fitted = [d for ph, d in sorted(drifts.items(), key=lambda kv: -len(refs[kv[0]])) if d]
    out = {}
    for phase, ref in refs.items():
        drift, borrowed = drifts[phase], False
        if drift is None and len(ref) - drop_first < DRIFT_MIN_SAMPLES and fitted:
            drift, borrowed = fitted[0], True
        if drift is not None:
            rho, tau = drift
            cut = min(drop_first, len(ref))
            factors = [1.0 + rho * math.exp(-i / tau) for i in range(len(ref))]
        else:
            cut = warmup_cut(ref, drop_first)
            factors = [1.0] * len(ref)
        state = SteadyState(cut, factors, 0.0, [], drift, borrowed)
        steady = robust_mean(state.corrected(ref))
        if steady is not None and steady.mean > 0:
            state.excess = max(0.0, sum(v - steady.mean for v in ref if not math.isnan(v))) / steady.mean
            acc = 0.0
            for v in ref:
                acc += 0.0 if math.isnan(v) else (v - steady.mean) / steady.mean
                state.profile.append(acc)
        out[phase] = state
    return out


def init_seconds(init_records, instance_type, host_types, mixed):
    """Init of ``instance_type`` in one attempt: the attempt's slowest rank. In a mixed run a fast rank's init
    includes waiting for the slow ones (the process group forms when every rank has started), so each type is
    rated by its own ranks' init less their logged waits (``wait_seconds``), when every one of them logged it."""
    if mixed:
        own = [r for r in init_records if host_types.get(r["host"]) == instance_type]
        if own and all(is_finite_number(r.get("wait_seconds")) for r in own):
            return max(max(0.0, r["seconds"] - r["wait_seconds"]) for r in own)
    return max(r["seconds"] for r in init_records)
