# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""The job and its runs as the log records describe them: which workload, which run used which hosts and
types, how it ended, and per attempt (a torchrun restart) its formation and its steps, one record per rank."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from ansible_collections.paramount.cluster.plugins.plugin_utils.measurement.records import short_list
from ansible_collections.paramount.cluster.plugins.plugin_utils.measurement.statistics import most_common
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_common import ParamountError

JOB_KEYS = ("samples_per_epoch", "local_batch", "epochs", "warmup_iterations")
STATUS_PRECEDENCE = ("failed", "completed", "stopped")  # one failed rank fails the attempt


@dataclass
class RunInfo:
    run_id: str
    files: list
    host_types: dict
    nodes: int
    world_size: int
    status: str
    usable: bool
    reason: str
    wall_seconds: float | None
    attempts: int
    heterogeneous: bool
    iterations: int = 0

    def as_dict(self):
        types = sorted(set(self.host_types.values()))
        return {
            "run_id": self.run_id,
            "instance_types": types,
            "hosts": dict(sorted(self.host_types.items())),
            "nodes": self.nodes,
            "world_size": self.world_size,
            "status": self.status,
            "used": self.usable,
            "reason": self.reason,
            "seconds": self.wall_seconds,
            "attempts": self.attempts,
            "iterations_logged": self.iterations,
            "files": sorted(self.files),
        }


@dataclass
class JobInfo:
    workload: str
    samples_per_epoch: int
    local_batch: int
    epochs: int
    warmup_iterations: int


def check_single_workload(records, results_dir):
    """The one workload every start record names (a plan is for one workload)."""
    by_workload = defaultdict(set)
    for r in records:
        if r["event"] == "start":
            by_workload[r["workload"]].add(r["_file"])
    if len(by_workload) > 1:
        detail = "; ".join("%r in %s" % (w, short_list(sorted(f), 2)) for w, f in sorted(by_workload.items()))
        raise ParamountError(
            "results_dir %s holds logs of %d different workloads (%s): a plan is for one workload; "
            "point results_dir at one workload's runs" % (results_dir, len(by_workload), detail))
    if not by_workload:
        raise ParamountError(
            "results_dir %s: no 'start' record in any log, so the workload and the job's size are "
            "unknown (logs truncated at the beginning?)" % results_dir)
    return next(iter(by_workload))


def job_info(records, results_dir, warnings) -> JobInfo:
    """The job's workload and size, as most start records state them (a disagreement is warned about)."""
    workload = check_single_workload(records, results_dir)
    starts = [r for r in records if r["event"] == "start"]
    job = JobInfo(workload, **{key: most_common([r[key] for r in starts]) for key in JOB_KEYS})
    for key in JOB_KEYS:
        seen = sorted({r[key] for r in starts})
        if len(seen) > 1:
            warnings.append("start records disagree on %s (%s); using %s"
                            % (key, ", ".join(str(s) for s in seen), getattr(job, key)))
    return job


def run_status(recs):
    """(status of the run's last attempt, a 'failed' end record of it or None); 'unknown' without end records."""
    ends = [r for r in recs if r["event"] == "end"]
    if not ends:
        return "unknown", None
    last_attempt = max(r["attempt"] for r in ends)
    statuses = {r["status"] for r in ends if r["attempt"] == last_attempt}
    status = next(s for s in STATUS_PRECEDENCE if s in statuses)
    bad = [r for r in ends if r["attempt"] == last_attempt and r["status"] == "failed"]
    return status, (bad[0] if bad else None)


@dataclass
class RunLog:
    """One run's records sorted out: its start and iteration records, each host's type and the RunInfo that
    plan.json reports. ``unusable`` says why no iteration of it can be used ('' when some can)."""

    run_id: str
    records: list
    starts: list
    iterations: list
    host_types: dict
    info: RunInfo
    unusable: str = ""

    @property
    def types(self):
        return set(self.host_types.values())


def _host_types(starts):
    """({host: instance type}, a conflict message or None): the latest start record of a host wins."""
    host_types, conflict = {}, None
    for s in sorted(starts, key=lambda r: (r["attempt"], r["time"])):
        prev = host_types.get(s["host"])
        if prev is not None and prev != s["instance_type"]:
            conflict = "host %s reports instance types %s and %s" % (s["host"], prev, s["instance_type"])
        host_types[s["host"]] = s["instance_type"]
    return host_types, conflict


def read_run(run_id, recs) -> RunLog:
    starts = [r for r in recs if r["event"] == "start"]
    iterations = [r for r in recs if r["event"] == "iteration"]
    host_types, conflict = _host_types(starts)
    status, bad_end = run_status(recs)
    end_secs = [r["seconds"] for r in recs if r["event"] == "end"]
    times = [r["time"] for r in recs]
    wall = max(end_secs) if end_secs else (max(times) - min(times) if times else None)
    info = RunInfo(run_id, sorted({r["_file"] for r in recs}), host_types,
                   max((s["nodes"] for s in starts), default=0), max((s["world_size"] for s in starts), default=0),
                   status, True, "", wall, len({r["attempt"] for r in recs}), len(set(host_types.values())) > 1,
                   len(iterations))
    unusable = ""
    if not starts:
        unusable = "no 'start' record (log truncated at the beginning?)"
    elif conflict:
        unusable = conflict
    elif status == "failed":
        where = "rank %s on %s" % (bad_end["rank"], bad_end["host"]) if bad_end else "a rank"
        unusable = "run failed (end status 'failed' from %s)" % where
    elif not iterations:
        unusable = "no iteration record"
    return RunLog(run_id, recs, starts, iterations, host_types, info, unusable)


def read_runs(records):
    """Every run of the records, by run id."""
    by_run = defaultdict(list)
    for r in records:
        by_run[r["run_id"]].append(r)
    return [read_run(run_id, by_run[run_id]) for run_id in sorted(by_run)]


@dataclass
class AttemptLog:
    """One attempt of a run: its formation (from its start records, or the previous attempt's) and its steps,
    ``steps[step][rank]`` the first iteration record of that rank."""

    attempt: int
    starts: list
    first_start: dict  # the lowest rank's start record: the attempt's size and the job's shape
    iterations: list
    steps: dict
    types: list  # the instance types that logged iterations, sorted
    ranks_per_node: dict = field(default_factory=dict)  # type -> ranks per node

    @property
    def nodes(self):
        return self.first_start["nodes"]

    @property
    def world_size(self):
        return self.first_start["world_size"]

    @property
    def mixed(self):
        return len(self.types) > 1

    @property
    def basis(self):
        """'homogeneous' (probed as is) or 'heterogeneous' (each type rated from its share of a mixed run)."""
        return "heterogeneous" if self.mixed else "homogeneous"


def _steps(iterations, host_types, warnings, run_id, attempt):
    """step -> rank -> record, the first one of each rank; duplicates and hosts without a start are warned."""
    steps = defaultdict(dict)
    dups = 0
    unknown_host = set()
    for r in sorted(iterations, key=lambda r: (r["step"], r["time"])):
        if r["host"] not in host_types:
            unknown_host.add(r["host"])
            continue
        if r["rank"] in steps[r["step"]]:
            dups += 1
            continue
        steps[r["step"]][r["rank"]] = r
    if dups:
        warnings.append("run %s attempt %d: %d duplicate iteration record(s) ignored" % (run_id, attempt, dups))
    if unknown_host:
        warnings.append("run %s attempt %d: iterations from host(s) %s without a 'start' record ignored"
                        % (run_id, attempt, short_list(sorted(unknown_host))))
    return steps


def _ranks_per_node(types, starts, host_types, world, nodes, forced):
    """Ranks per node of each type: the option when given, else the start records' count (the whole run's
    average for a single type)."""
    rpn = {}
    for t in types:
        t_hosts = {s["host"] for s in starts if host_types.get(s["host"]) == t}
        t_ranks = {s["rank"] for s in starts if host_types.get(s["host"]) == t}
        if forced:
            rpn[t] = float(forced)
        elif len(types) > 1 and t_hosts:
            rpn[t] = len(t_ranks) / float(len(t_hosts))
        else:
            rpn[t] = world / float(nodes)
    return rpn


def attempts(run: RunLog, warnings, ranks_per_node=None):
    """The attempts of ``run`` that logged iterations of known hosts, in order. An attempt without start
    records of its own (a restart that logged none) keeps the formation of the one before."""
    start_by_attempt = defaultdict(list)
    for s in run.starts:
        start_by_attempt[s["attempt"]].append(s)
    last_starts = None
    for att in sorted({r["attempt"] for r in run.records}):
        a_starts = start_by_attempt.get(att) or last_starts or run.starts
        last_starts = a_starts
        first = min(a_starts, key=lambda r: r["rank"])
        a_iters = [r for r in run.iterations if r["attempt"] == att]
        if not a_iters:
            continue
        steps = _steps(a_iters, run.host_types, warnings, run.run_id, att)
        types = sorted({run.host_types[r["host"]] for step in steps.values() for r in step.values()})
        if not types:
            continue
        rpn = _ranks_per_node(types, a_starts, run.host_types, first["world_size"], first["nodes"], ranks_per_node)
        yield AttemptLog(att, a_starts, first, a_iters, steps, types, rpn)
