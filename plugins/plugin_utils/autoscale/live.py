# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""Live measurement of an elastic training: formations, progress, progress lost at a change, timeline rows.

The records come from the planner's log reader (``measurement.records``): every record is checked against the log
contract, and a partial last line of a growing log is dropped like any corrupt line.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import statistics

from ansible_collections.paramount.cluster.plugins.plugin_utils.decision import billing
from ansible_collections.paramount.cluster.plugins.plugin_utils.measurement.records import find_log_files, read_log_file

# a formation's first iterations (start-up, re-forming) are not its steady speed
STEADY_SKIP_ITERATIONS = 3
# the steady speed is the median of the latest iterations, so a slowdown shows within a few rounds
STEADY_WINDOW_ITERATIONS = 30
MIN_STEADY_ITERATIONS = 3


def read_records(folder):
    """Every valid record of the node logs under folder, in time order (none while the folder is missing)."""
    if not os.path.isdir(folder):
        return []
    records = []
    for path in find_log_files(folder):
        records.extend(read_log_file(path).records)
    records.sort(key=lambda r: float(r.get("time") or 0.0))
    return records


def logged_types(path):
    """Instance types the start records of one log file name."""
    return {r["instance_type"] for r in read_log_file(path).records if r["event"] == "start"}


def formation_id(start_record):
    """The formation of a ``start`` record (records older than the ``formation`` key: attempt and world size)."""
    return str(start_record.get("formation")
               or "%s-%s" % (start_record.get("attempt"), start_record.get("world_size")))


@dataclasses.dataclass
class Formation:
    """One formed group of the training (constant membership and world size)."""

    formation_id: str
    started: float
    hosts: dict  # host -> instance type
    world_size: int
    local_batch: int
    samples_per_epoch: int
    epochs: int
    resume_samples_seen: int
    resume_step: int
    steps: dict = dataclasses.field(default_factory=dict)  # step -> max seconds over ranks
    step_times: dict = dataclasses.field(default_factory=dict)  # step -> time of the record
    phases: dict = dataclasses.field(default_factory=dict)  # step -> phase
    ended: dict = dataclasses.field(default_factory=dict)  # (host, rank) -> end record
    records: list = dataclasses.field(default_factory=list)  # every record of its processes, in order
    last_step: int = -1
    samples_seen: int = 0

    def _steady_steps(self, phase=None, skip=STEADY_SKIP_ITERATIONS):
        """The formation's steps after its first ``skip``, in order; only those of ``phase`` when given."""
        return [s for s in sorted(self.steps)[skip:] if phase is None or self.phases.get(s) == phase]

    def seconds_per_iteration(self, phase=None, skip=STEADY_SKIP_ITERATIONS, last=STEADY_WINDOW_ITERATIONS):
        """Median step time of the steady steps (the first ``skip`` steps of a formation are dropped), of one
        ``phase`` when given, over the latest ``last`` of them; None until there are enough.

        A phase's steps cost what that phase computes (warm-up steps train the generator alone), so a speed that
        is compared with a prediction for one phase is measured in that phase only."""
        steady = self._steady_steps(phase, skip)[-last:]
        if len(steady) < MIN_STEADY_ITERATIONS:
            return None
        return statistics.median(self.steps[s] for s in steady)

    def steady_iterations(self, phase=None, skip=STEADY_SKIP_ITERATIONS):
        return len(self._steady_steps(phase, skip))

    def hourly_cost(self, prices):
        return sum(float(prices.get(t, 0.0)) for t in self.hosts.values())

    def homogeneous(self):
        types = set(self.hosts.values())
        return next(iter(types)) if len(types) == 1 else None


@dataclasses.dataclass
class LiveState:
    formations: list
    total_samples: int
    samples_seen: int
    completed: bool

    @property
    def current(self):
        return self.formations[-1] if self.formations else None

    @property
    def remaining_samples(self):
        return max(0, self.total_samples - self.samples_seen)


def _new_formation(rec):
    return Formation(formation_id(rec), float(rec.get("time") or 0.0), {}, int(rec.get("world_size") or 1),
                     int(rec.get("local_batch") or 1), int(rec.get("samples_per_epoch") or 0),
                     int(rec.get("epochs") or 0), int(rec.get("resume_samples_seen") or 0),
                     int(rec.get("resume_step") or 0))


def live_state(records):
    """Formations (by the ``formation`` id of the start records) and progress of a training run."""
    formations = {}
    by_proc = {}  # (host, rank) -> formation id
    completed = False
    total = 0
    seen = 0
    for rec in records:
        event = rec.get("event")
        host = rec.get("host")
        key = (host, rec.get("rank"))
        if event == "start":
            form = formations.setdefault(formation_id(rec), _new_formation(rec))
            form.hosts[host] = rec.get("instance_type") or "unknown"
            form.records.append(rec)
            by_proc[key] = form.formation_id
            total = max(total, form.samples_per_epoch * form.epochs)
            seen = max(seen, form.resume_samples_seen)
            continue
        fid = by_proc.get(key)
        if fid is None:
            continue
        form = formations[fid]
        form.records.append(rec)
        if event == "iteration":
            step = int(rec.get("step", -1))
            form.steps[step] = max(form.steps.get(step, 0.0), float(rec.get("seconds") or 0.0))
            form.step_times[step] = max(form.step_times.get(step, 0.0), float(rec.get("time") or 0.0))
            form.phases[step] = rec.get("phase")
            form.last_step = max(form.last_step, step)
            form.samples_seen = form.resume_samples_seen + (form.last_step + 1 - form.resume_step) \
                * form.world_size * form.local_batch
            seen = max(seen, form.samples_seen)
        elif event == "end":
            form.ended[key] = rec
            if rec.get("samples_seen") is not None:  # exact (an epoch's last batch may be short)
                form.samples_seen = int(rec["samples_seen"])
                seen = max(seen, form.samples_seen)
            if rec.get("status") == "completed":
                completed = True
    return LiveState(list(formations.values()), total, seen, completed)


def lost_progress(formations, checkpoint_interval):
    """Samples repeated at each change: a formation resumes at resume_samples_seen; the one before it had
    reached samples_seen. Returns [(formation id, repeated samples, repeated steps at the old size, within)]."""
    out = []
    for prev, cur in zip(formations, formations[1:]):
        repeated = max(0, prev.samples_seen - cur.resume_samples_seen)
        steps = repeated / float(max(1, prev.world_size * prev.local_batch))
        out.append((cur.formation_id, repeated, steps, steps <= checkpoint_interval))
    return out


def timeline_rows(state, prices):
    """Per formation: start time, nodes by type, throughput (samples/s) and the cost accumulated so far."""
    rows = []
    cost = 0.0
    forms = state.formations
    for i, form in enumerate(forms):
        end = forms[i + 1].started if i + 1 < len(forms) else max(list(form.step_times.values()) + [form.started])
        by_type = dict(collections.Counter(form.hosts.values()))
        spi = form.seconds_per_iteration(last=len(form.steps))
        throughput = form.world_size * form.local_batch / spi if spi else None
        cost += billing.cost_of(form.hourly_cost(prices), max(0.0, end - form.started))
        rows.append({"formation": form.formation_id, "start": form.started, "end": end, "nodes_by_type": by_type,
                     "throughput": throughput, "cost_so_far": cost, "samples_seen": form.samples_seen})
    return rows
