# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""``measure()``: every run under a results folder pooled into estimates of seconds per iteration, per
(instance_type, nodes) and training phase, with confidence intervals; init time apart.

Steps: read the records (``records``), the job and the runs (``runs``), rate every attempt of every usable run
per phase (``rating``), pool the steady steps per configuration, then one robust mean per configuration and
phase (``statistics``). Nothing here predicts configurations that were not probed (``model.scaling``) and
nothing here decides (``decision``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from ansible_collections.paramount.cluster.plugins.plugin_utils.measurement.rating import (
    init_seconds,
    steady_states,
    step_series,
    window_rates,
)
from ansible_collections.paramount.cluster.plugins.plugin_utils.measurement.records import (
    load_records,
    short_list,
)
from ansible_collections.paramount.cluster.plugins.plugin_utils.measurement.runs import (
    JobInfo,
    attempts,
    job_info,
    read_runs,
)
from ansible_collections.paramount.cluster.plugins.plugin_utils.measurement.statistics import (
    Estimate,
    median_profile,
    most_common,
    require_numeric_stack,
    robust_mean,
)
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_common import ParamountError

try:
    import numpy as np
except ImportError:  # pragma: no cover - reported by require_numeric_stack
    np = None


@dataclass
class PhaseMeasurement:
    seconds: Estimate  # seconds per iteration of a homogeneous cluster of this type and size
    compute: Estimate | None  # this type's own compute_seconds
    comm: Estimate | None  # step time beyond the slowest type's compute (all-reduce and waits)
    dropped: int = 0  # warm-up iterations dropped
    startup_iterations: float = 0.0  # extra time at the start of the phase, in steady iterations (median)
    drift_corrected: int = 0  # attempts whose warm-up drift was fitted and divided out
    # startup_profile[i]: excess of the phase's first i + 1 probe iterations over the steady mean, in steady
    # iterations (median over attempts, never negative): what a job of i + 1 iterations repeats of the probe
    startup_profile: list = field(default_factory=list)
    # the mean step time of each probe run of this configuration (several when it was probed repeatedly: the
    # model then learns the between-run variation from them)
    run_means: list = field(default_factory=list)


@dataclass
class ConfigMeasurement:
    instance_type: str
    nodes: int
    basis: str  # 'homogeneous' (probed as is) or 'heterogeneous' (rated from compute_seconds in a mixed run)
    run_ids: list
    ranks_per_node: float
    world_size: int
    iterations_per_epoch: int | None
    epochs: int | None
    warmup_iterations: int | None
    phases: dict
    init: Estimate | None


@dataclass
class Measurement:
    results_dir: str
    files: list
    job: JobInfo
    runs: list
    configs: dict  # (instance_type, nodes) -> ConfigMeasurement
    failed_types: dict  # instance_type -> reason (only types with no usable data)
    warnings: list

    @property
    def workload(self):
        return self.job.workload

    def types(self):
        return sorted({key[0] for key in self.configs})


@dataclass
class _PhaseSamples:
    """The steady steps of one configuration and phase, pooled over attempts and runs."""

    y: list = field(default_factory=list)
    compute: list = field(default_factory=list)
    comm: list = field(default_factory=list)
    dropped: int = 0
    excess: list = field(default_factory=list)
    profile: list = field(default_factory=list)
    drift: list = field(default_factory=list)
    by_run: dict = field(default_factory=lambda: defaultdict(list))

    def add(self, run_id, state, series, itype):
        kept = state.corrected(series.y[itype])
        self.y.extend(kept)
        self.by_run[run_id].extend(kept)
        self.compute.extend(state.corrected(series.compute[itype]))
        self.comm.extend(state.corrected(series.own_comm[itype]))
        self.dropped += state.cut
        self.excess.append(state.excess)
        self.profile.append(state.profile)
        if state.drift is not None:
            self.drift.append((state.drift, state.borrowed))

    def measurement(self):
        est = robust_mean(self.y)
        if est is None:
            return None
        return PhaseMeasurement(est, robust_mean(self.compute), robust_mean(self.comm), self.dropped,
                                float(np.median(self.excess)) if self.excess else 0.0, len(self.drift),
                                median_profile(self.profile),
                                [float(np.mean(v)) for _rid, v in sorted(self.by_run.items()) if v])


@dataclass
class _ConfigRuns:
    """What the runs of one configuration say about its shape (ranks per node, the job's size)."""

    world: int
    runs: set = field(default_factory=set)
    rpn: list = field(default_factory=list)
    ipe: list = field(default_factory=list)
    epochs: list = field(default_factory=list)
    warmup: list = field(default_factory=list)

    def add(self, run_id, ranks_per_node, first_start):
        self.runs.add(run_id)
        self.rpn.append(ranks_per_node)
        self.ipe.append(first_start["iterations_per_epoch"])
        self.epochs.append(first_start["epochs"])
        self.warmup.append(first_start["warmup_iterations"])


class _Pool:
    """Everything measured so far, by (instance_type, nodes, basis)."""

    def __init__(self, drop_first, cpu_bound_types):
        self.drop_first = drop_first
        self.cpu_bound_types = cpu_bound_types
        self.samples = defaultdict(lambda: defaultdict(_PhaseSamples))  # key -> phase -> _PhaseSamples
        self.shapes = {}  # key -> _ConfigRuns
        self.inits = defaultdict(list)  # key -> init seconds per attempt
        self.type_runs = defaultdict(list)  # type -> [(run_id, usable, reason)]

    def add_attempt(self, run, attempt, warnings):
        """Pool one attempt's steady steps; True when it added to some configuration."""
        rates = (window_rates(attempt.iterations, run.host_types, warnings, run.run_id, attempt.attempt)
                 if attempt.mixed else {})
        series = step_series(attempt, run.host_types, rates, self.cpu_bound_types)
        states = steady_states(series, self.drop_first)
        for phase, ser in series.items():
            for t in attempt.types:
                key = (t, attempt.nodes, attempt.basis)
                self.samples[key][phase].add(run.run_id, states[phase], ser, t)
                self.shapes.setdefault(key, _ConfigRuns(attempt.world_size))
        used = False
        for t in attempt.types:
            key = (t, attempt.nodes, attempt.basis)
            if key in self.shapes:
                self.shapes[key].add(run.run_id, attempt.ranks_per_node[t], attempt.first_start)
                used = True
        a_init = [r for r in run.records if r["event"] == "init" and r["attempt"] == attempt.attempt]
        if a_init:
            for t in attempt.types:
                self.inits[(t, attempt.nodes, attempt.basis)].append(
                    init_seconds(a_init, t, run.host_types, attempt.mixed))
        return used

    def add_run(self, run, warnings, ranks_per_node):
        info = run.info
        if run.unusable:
            info.usable, info.reason = False, run.unusable
            for t in run.types:
                self.type_runs[t].append((run.run_id, False, run.unusable))
            warnings.append("run %s not used: %s (files: %s)" % (run.run_id, run.unusable, short_list(info.files, 2)))
            return
        if info.status == "unknown":
            warnings.append("run %s has no 'end' record (still running or log truncated); its iterations are used"
                            % run.run_id)
            info.reason = "no end record"
        used_any = False
        for attempt in attempts(run, warnings, ranks_per_node):
            used_any = self.add_attempt(run, attempt, warnings) or used_any
        for t in run.types:
            self.type_runs[t].append((run.run_id, used_any, "" if used_any else "no usable iteration"))
        if not used_any:
            info.usable = False
            info.reason = info.reason or "no usable iteration"

    def configurations(self):
        """(instance_type, nodes) -> ConfigMeasurement; a homogeneous probe of a size beats a rating of the same
        size from a mixed run."""
        configs = {}
        for key in sorted(self.samples):
            t, n, basis = key
            phases = {phase: b.measurement() for phase, b in self.samples[key].items()}
            phases = {phase: pm for phase, pm in phases.items() if pm is not None}
            if not phases:
                continue
            m = self.shapes[key]
            cm = ConfigMeasurement(
                instance_type=t, nodes=n, basis=basis, run_ids=sorted(m.runs),
                ranks_per_node=float(np.median(m.rpn)) if m.rpn else 1.0,
                world_size=m.world,
                iterations_per_epoch=most_common(m.ipe) if m.ipe else None,
                epochs=most_common(m.epochs) if m.epochs else None,
                warmup_iterations=most_common(m.warmup) if m.warmup else None,
                phases=phases,
                init=robust_mean(self.inits.get(key, [])),
            )
            if (t, n) in configs and configs[(t, n)].basis == "homogeneous":
                continue
            configs[(t, n)] = cm
        return configs

    def failed_types(self, configs):
        """instance_type -> why it has no measurement (types with a usable run are left out)."""
        measured = {key[0] for key in configs}
        failed = {}
        for t, lst in sorted(self.type_runs.items()):
            if t not in measured:
                reasons = sorted({"%s: %s" % (rid, why) for rid, ok, why in lst if not ok})
                failed[t] = "no usable probe run (%s)" % short_list(reasons, 3)
        return failed


def measure(results_dir: str, exclude=(), drop_first: int = 1, ranks_per_node=None,
            cpu_bound_types=()) -> Measurement:
    """Read and measure every run under ``results_dir``.

    ``cpu_bound_types``: instance types whose communication is CPU work done under the node's own CPU quota (the
    catalog's ``cpu_share``): in a mixed run their communication is scaled from the slowest type's pace to their
    own (see rating.own_communication).

    Raises ParamountError for: no logs, no valid record, unknown schema version, several
    workloads, no usable run. Everything else (bad lines, failed or incomplete runs, ranks
    without a start record) is dropped with a warning that names the file or run.
    """
    require_numeric_stack()
    files, records, warnings = load_records(results_dir, exclude)
    job = job_info(records, results_dir, warnings)
    runs = read_runs(records)
    pool = _Pool(drop_first, cpu_bound_types)
    for run in runs:
        pool.add_run(run, warnings, ranks_per_node)
    configs = pool.configurations()
    if not configs:
        detail = short_list(["%s (%s)" % (run.run_id, run.info.reason) for run in runs], 4)
        raise ParamountError("results_dir %s: no usable probe run: %s" % (results_dir, detail))
    return Measurement(results_dir, files, job, [run.info for run in runs], configs, pool.failed_types(configs),
                       warnings)
