# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""Measurement: read paramount-iteration logs (trainer log contract v1) and turn them into
per-configuration estimates of seconds per iteration, per phase, with confidence intervals.

Nothing here predicts configurations that were not probed (that is ``paramount_model``) and
nothing here decides (``paramount_decision``).

Pipeline: ``find_log_files`` -> ``read_log_file`` (line by line, never raises on a bad line) ->
``measure`` (group by run, attempt, (instance_type, nodes) and phase; drop warm-up iterations;
robust mean with a confidence interval; init time apart).
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field

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

SCHEMA_VERSION = 1
LOG_SUFFIXES = (".log", ".jsonl")
PHASES = ("warmup", "adversarial")
EVENTS = ("start", "init", "iteration", "epoch", "end")
END_STATUSES = ("completed", "stopped", "failed")

_BASE_REQUIRED = {
    "run_id": "str",
    "host": "str",
    "rank": "int0",
    "attempt": "int0",
    "time": "num0",
}
_EVENT_REQUIRED = {
    "start": {
        "instance_type": "str",
        "local_rank": "int0",
        "world_size": "int1",
        "nodes": "int1",
        "local_batch": "int1",
        "samples_per_epoch": "int1",
        "iterations_per_epoch": "int1",
        "epochs": "int1",
        "warmup_iterations": "int0",
        "workload": "str",
    },
    "init": {"seconds": "num0"},
    "iteration": {
        "epoch": "int0",
        "iteration": "int0",
        "step": "int0",
        "phase": "phase",
        "seconds": "num0",
        "compute_seconds": "num0",
        "samples": "int0",
    },
    "epoch": {"epoch": "int0", "seconds": "num0", "iterations": "int0"},
    "end": {"status": "status", "seconds": "num0"},
}


def _check(value, kind):
    """Return None when ``value`` fits ``kind``, else a short reason."""
    if kind == "str":
        return None if isinstance(value, str) and value != "" else "must be a non-empty string"
    if kind in ("int0", "int1"):
        low = 0 if kind == "int0" else 1
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "must be an integer"
        if isinstance(value, float) and (not math.isfinite(value) or value != int(value)):
            return "must be an integer"
        return None if value >= low else "must be >= %d" % low
    if kind == "num0":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "must be a number"
        if not math.isfinite(value):
            return "is not finite (%r)" % value
        return None if value >= 0 else "is negative (%r)" % value
    if kind == "phase":
        return None if value in PHASES else "must be one of %s" % ", ".join(PHASES)
    if kind == "status":
        return None if value in END_STATUSES else "must be one of %s" % ", ".join(END_STATUSES)
    raise AssertionError(kind)  # pragma: no cover


def validate_record(rec) -> str | None:
    """Check one decoded JSON value against log contract v1.

    Returns None when valid, otherwise a reason. Mirrors
    ``trainer/paramount_trainer/schemas/log-record-v1.schema.json`` (a unit test keeps both in step).
    A record whose ``schema`` is another version is reported as ``unknown schema version``.
    """
    if not isinstance(rec, dict):
        return "not a JSON object"
    if "event" not in rec:
        return "missing key 'event'"
    if "schema" not in rec:
        return "missing key 'schema'"
    schema = rec["schema"]
    if isinstance(schema, bool) or schema != SCHEMA_VERSION:
        if isinstance(schema, int) and not isinstance(schema, bool):
            return "unknown schema version %r" % (schema,)
        return "schema must be %d, got %r" % (SCHEMA_VERSION, schema)
    if rec["event"] not in EVENTS:
        return "unknown event %r" % (rec["event"],)
    required = dict(_BASE_REQUIRED)
    required.update(_EVENT_REQUIRED[rec["event"]])
    for key, kind in required.items():
        if key not in rec:
            return "%s record: missing key %r" % (rec["event"], key)
        problem = _check(rec[key], kind)
        if problem:
            return "%s record: %s %s" % (rec["event"], key, problem)
    return None


def _reject_constant(name):
    # json accepts NaN/Infinity by default; keep them as floats so validation names the key
    return float(name.replace("Infinity", "inf").replace("NaN", "nan"))


@dataclass
class FileResult:
    path: str
    records: list = field(default_factory=list)
    problems: list = field(default_factory=list)  # (line, reason) for lines that were dropped
    unknown_schema: list = field(default_factory=list)  # (line, version)
    lines: int = 0


def read_log_file(path: str) -> FileResult:
    """Read one JSON-lines node log. Bad lines are dropped with their line number and reason."""
    result = FileResult(path)
    try:
        handle = open(path, "r", encoding="utf-8", errors="replace")
    except OSError as exc:
        result.problems.append((0, "cannot be read (%s)" % exc.strerror))
        return result
    with handle:
        for lineno, line in enumerate(handle, start=1):
            result.lines = lineno
            text = line.strip()
            if not text:
                continue
            try:
                rec = json.loads(text, parse_constant=_reject_constant)
            except (ValueError, RecursionError):
                result.problems.append((lineno, "truncated or corrupt line (not JSON)"))
                continue
            reason = validate_record(rec)
            if reason is None:
                rec = dict(rec)
                rec["_file"] = path
                rec["_line"] = lineno
                result.records.append(rec)
            elif reason.startswith("unknown schema version"):
                result.unknown_schema.append((lineno, rec.get("schema")))
            else:
                result.problems.append((lineno, reason))
    return result


def find_log_files(results_dir: str, exclude=()) -> list[str]:
    """Every ``*.log`` / ``*.jsonl`` file under ``results_dir`` at any depth, sorted.

    Directories in ``exclude`` (e.g. the output_dir when it sits inside results_dir) are skipped.
    """
    if not results_dir:
        raise ParamountError("results_dir is empty")
    if not os.path.exists(results_dir):
        raise ParamountError("results_dir %s does not exist" % results_dir)
    if not os.path.isdir(results_dir):
        raise ParamountError("results_dir %s is not a directory" % results_dir)
    skip = {os.path.realpath(p) for p in exclude if p}
    found = []
    for dirpath, dirnames, filenames in os.walk(results_dir):
        dirnames[:] = sorted(d for d in dirnames if os.path.realpath(os.path.join(dirpath, d)) not in skip)
        for name in sorted(filenames):
            if name.endswith(LOG_SUFFIXES):
                found.append(os.path.join(dirpath, name))
    return found


# --------------------------------------------------------------------------------------------
# robust statistics
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# measurement
# --------------------------------------------------------------------------------------------

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


def _mode(values):
    counts = Counter(values)
    best = max(counts.values())
    return sorted(v for v, c in counts.items() if c == best)[0]


def _short_list(items, limit=3):
    items = list(items)
    text = ", ".join(str(i) for i in items[:limit])
    if len(items) > limit:
        text += ", ... (%d in all)" % len(items)
    return text


def load_records(results_dir: str, exclude=()):
    """Read every log file; returns (files, records, warnings). Raises ParamountError when
    there is nothing to measure or a file uses an unknown schema version."""
    files = find_log_files(results_dir, exclude)
    if not files:
        raise ParamountError(
            "results_dir %s: no log files found (expected the trainer's JSON-lines node logs "
            "named *.log, at any depth)" % results_dir)
    records, warnings, unknown = [], [], []
    for path in files:
        res = read_log_file(path)
        records.extend(res.records)
        if res.unknown_schema:
            versions = sorted({repr(item[1]) for item in res.unknown_schema})
            unknown.append("%s line %d (schema %s)" % (path, res.unknown_schema[0][0], "/".join(versions)))
        if res.problems:
            if not res.records and not res.unknown_schema:
                warnings.append("%s: ignored, no valid log record (%d problem lines; first: line %d: %s)"
                                % (path, len(res.problems), res.problems[0][0], res.problems[0][1]))
            else:
                lines = _short_list("%d (%s)" % (ln, why) for ln, why in res.problems)
                warnings.append("%s: dropped %d bad line(s): %s" % (path, len(res.problems), lines))
    if unknown:
        raise ParamountError(
            "unknown log schema version in %s; this plugin reads schema %d only: upgrade the "
            "collection or move those files out of results_dir" % (_short_list(unknown), SCHEMA_VERSION))
    if not records:
        raise ParamountError(
            "results_dir %s: no valid paramount-iteration record in %d log file(s): %s"
            % (results_dir, len(files), _short_list(warnings, 2)))
    return files, records, warnings


def _check_single_workload(records, results_dir):
    by_workload = defaultdict(set)
    for r in records:
        if r["event"] == "start":
            by_workload[r["workload"]].add(r["_file"])
    if len(by_workload) > 1:
        detail = "; ".join("%r in %s" % (w, _short_list(sorted(f), 2)) for w, f in sorted(by_workload.items()))
        raise ParamountError(
            "results_dir %s holds logs of %d different workloads (%s): a plan is for one workload; "
            "point results_dir at one workload's runs" % (results_dir, len(by_workload), detail))
    if not by_workload:
        raise ParamountError(
            "results_dir %s: no 'start' record in any log, so the workload and the job's size are "
            "unknown (logs truncated at the beginning?)" % results_dir)
    return next(iter(by_workload))


def _run_status(recs):
    ends = [r for r in recs if r["event"] == "end"]
    if not ends:
        return "unknown", None
    last_attempt = max(r["attempt"] for r in ends)
    statuses = {r["status"] for r in ends if r["attempt"] == last_attempt}
    for s in ("failed", "completed", "stopped"):
        if s in statuses:
            status = s
            break
    bad = [r for r in ends if r["attempt"] == last_attempt and r["status"] == "failed"]
    return status, (bad[0] if bad else None)


def measure(results_dir: str, exclude=(), drop_first: int = 1, ranks_per_node=None,
            cpu_bound_types=()) -> Measurement:
    """Read and measure every run under ``results_dir``.

    ``cpu_bound_types``: instance types whose communication is CPU work done under the node's own CPU quota (the
    catalog's ``cpu_share``): in a mixed run their communication is scaled from the slowest type's pace to their
    own (see _own_communication).

    Raises ParamountError for: no logs, no valid record, unknown schema version, several
    workloads, no usable run. Everything else (bad lines, failed or incomplete runs, ranks
    without a start record) is dropped with a warning that names the file or run.
    """
    if np is None:  # pragma: no cover
        raise ParamountError("paramount.cluster.optimize needs numpy and scipy on the controller")
    files, records, warnings = load_records(results_dir, exclude)
    workload = _check_single_workload(records, results_dir)

    by_run = defaultdict(list)
    for r in records:
        by_run[r["run_id"]].append(r)

    starts_all = [r for r in records if r["event"] == "start"]
    job = JobInfo(
        workload=workload,
        samples_per_epoch=_mode([r["samples_per_epoch"] for r in starts_all]),
        local_batch=_mode([r["local_batch"] for r in starts_all]),
        epochs=_mode([r["epochs"] for r in starts_all]),
        warmup_iterations=_mode([r["warmup_iterations"] for r in starts_all]),
    )
    for key in ("samples_per_epoch", "local_batch", "epochs", "warmup_iterations"):
        seen = sorted({r[key] for r in starts_all})
        if len(seen) > 1:
            warnings.append("start records disagree on %s (%s); using %s"
                            % (key, ", ".join(str(s) for s in seen), getattr(job, key)))

    runs = []
    # (type, nodes, basis) -> phase -> lists of per-step values
    samples = defaultdict(lambda: defaultdict(lambda: {"y": [], "compute": [], "comm": [], "dropped": 0,
                                                       "excess": [], "profile": [], "drift": [],
                                                       "by_run": defaultdict(list)}))
    inits = defaultdict(list)
    meta = {}
    type_runs = defaultdict(list)  # type -> [(run_id, usable, reason)]

    for run_id in sorted(by_run):
        recs = by_run[run_id]
        run_files = sorted({r["_file"] for r in recs})
        starts = [r for r in recs if r["event"] == "start"]
        host_types = {}
        conflict = None
        for s in sorted(starts, key=lambda r: (r["attempt"], r["time"])):
            prev = host_types.get(s["host"])
            if prev is not None and prev != s["instance_type"]:
                conflict = "host %s reports instance types %s and %s" % (s["host"], prev, s["instance_type"])
            host_types[s["host"]] = s["instance_type"]
        status, bad_end = _run_status(recs)
        end_secs = [r["seconds"] for r in recs if r["event"] == "end"]
        times = [r["time"] for r in recs]
        wall = max(end_secs) if end_secs else (max(times) - min(times) if times else None)
        attempts = len({r["attempt"] for r in recs})
        iters = [r for r in recs if r["event"] == "iteration"]
        nodes = max((s["nodes"] for s in starts), default=0)
        world = max((s["world_size"] for s in starts), default=0)
        info = RunInfo(run_id, run_files, host_types, nodes, world, status, True, "", wall, attempts,
                       len(set(host_types.values())) > 1, len(iters))
        runs.append(info)
        reason = ""
        if not starts:
            reason = "no 'start' record (log truncated at the beginning?)"
        elif conflict:
            reason = conflict
        elif status == "failed":
            where = "rank %s on %s" % (bad_end["rank"], bad_end["host"]) if bad_end else "a rank"
            reason = "run failed (end status 'failed' from %s)" % where
        elif not iters:
            reason = "no iteration record"
        if reason:
            info.usable = False
            info.reason = reason
            for t in set(host_types.values()):
                type_runs[t].append((run_id, False, reason))
            warnings.append("run %s not used: %s (files: %s)" % (run_id, reason, _short_list(run_files, 2)))
            continue
        if status == "unknown":
            warnings.append("run %s has no 'end' record (still running or log truncated); its iterations are used"
                            % run_id)
            info.reason = "no end record"

        # configuration of each attempt
        attempt_ids = sorted({r["attempt"] for r in recs})
        start_by_attempt = defaultdict(list)
        for s in starts:
            start_by_attempt[s["attempt"]].append(s)
        last_starts = None
        used_any = False
        for att in attempt_ids:
            a_starts = start_by_attempt.get(att) or last_starts
            if not a_starts:
                a_starts = starts
            last_starts = a_starts
            s0 = min(a_starts, key=lambda r: r["rank"])
            a_nodes, a_world = s0["nodes"], s0["world_size"]
            a_iters = [r for r in iters if r["attempt"] == att]
            if not a_iters:
                continue
            # steps: step -> rank -> record (first one wins)
            steps = defaultdict(dict)
            dups = 0
            unknown_host = set()
            for r in sorted(a_iters, key=lambda r: (r["step"], r["time"])):
                if r["host"] not in host_types:
                    unknown_host.add(r["host"])
                    continue
                if r["rank"] in steps[r["step"]]:
                    dups += 1
                    continue
                steps[r["step"]][r["rank"]] = r
            if dups:
                warnings.append("run %s attempt %d: %d duplicate iteration record(s) ignored" % (run_id, att, dups))
            if unknown_host:
                warnings.append("run %s attempt %d: iterations from host(s) %s without a 'start' record ignored"
                                % (run_id, att, _short_list(sorted(unknown_host))))
            att_hosts = {r["host"] for step in steps.values() for r in step.values()}
            att_types = sorted({host_types[h] for h in att_hosts})
            if not att_types:
                continue
            # ranks per node of each type in this attempt
            rpn = {}
            for t in att_types:
                t_hosts = {s["host"] for s in a_starts if host_types.get(s["host"]) == t}
                t_ranks = {s["rank"] for s in a_starts if host_types.get(s["host"]) == t}
                if len(att_types) == 1:
                    rpn[t] = a_world / float(a_nodes)
                elif t_hosts:
                    rpn[t] = len(t_ranks) / float(len(t_hosts))
                else:
                    rpn[t] = a_world / float(a_nodes)
                if ranks_per_node:
                    rpn[t] = float(ranks_per_node)
            # a mixed run rates each type by its compute-only windows when it has them (see _window_rates)
            rates = _window_rates(a_iters, host_types, warnings, run_id, att) if len(att_types) > 1 else {}
            # per-step series
            series = defaultdict(lambda: {"y": defaultdict(list), "compute": defaultdict(list), "comm": [],
                                          "own_comm": defaultdict(list)})
            for step in sorted(steps):
                by_rank = steps[step]
                phase = _mode([r["phase"] for r in by_rank.values()])
                step_s = max(r["seconds"] for r in by_rank.values())
                comp = {}
                for t in att_types:
                    vals = [r["compute_seconds"] for r in by_rank.values() if host_types[r["host"]] == t]
                    if vals:
                        comp[t] = sum(vals) / len(vals)
                if not comp:
                    continue
                slowest = max(comp.values())
                comm = max(step_s - slowest, 0.0)
                for t in comp:
                    if (t, phase) in rates:
                        comp[t] = rates[(t, phase)]
                ser = series[phase]
                ser["comm"].append(comm)
                for t in att_types:
                    own = _own_communication(comm, comp, t, t in cpu_bound_types) if t in comp else comm
                    ser["own_comm"][t].append(own)
                    if len(att_types) == 1:
                        ser["y"][t].append(step_s)
                        ser["compute"][t].append(comp[t])
                    elif t in comp:
                        ser["y"][t].append(comp[t] + own)
                        ser["compute"][t].append(comp[t])
                    else:
                        ser["y"][t].append(float("nan"))
                        ser["compute"][t].append(float("nan"))
            basis = "homogeneous" if len(att_types) == 1 else "heterogeneous"
            refs = {phase: _reference_series(ser) for phase, ser in series.items()}
            drifts = {phase: fit_drift(ref[drop_first:], drop_first) for phase, ref in refs.items()}
            fitted = [d for ph, d in sorted(drifts.items(), key=lambda kv: -len(refs[kv[0]])) if d]
            for phase, ser in series.items():
                ref = refs[phase]
                drift = drifts[phase]
                borrowed = False
                if drift is None and len(ref) - drop_first < DRIFT_MIN_SAMPLES and fitted:
                    drift, borrowed = fitted[0], True
                if drift is not None:
                    cut = min(drop_first, len(ref))
                    rho, tau = drift
                    fac = [1.0 + rho * math.exp(-i / tau) for i in range(len(ref))]
                else:
                    cut = warmup_cut(ref, drop_first)
                    fac = [1.0] * len(ref)
                kept_ref = [v / f for v, f in zip(ref[cut:], fac[cut:]) if not math.isnan(v)]
                steady = robust_mean(kept_ref)
                excess = 0.0
                profile = []  # excess of the first i + 1 iterations, in steady iterations
                if steady is not None and steady.mean > 0:
                    excess = max(0.0, sum(v - steady.mean for v in ref if not math.isnan(v))) / steady.mean
                    acc = 0.0
                    for v in ref:
                        acc += 0.0 if math.isnan(v) else (v - steady.mean) / steady.mean
                        profile.append(acc)
                for t in att_types:
                    key = (t, a_nodes, basis)
                    bucket = samples[key][phase]
                    kept_y = [v / f for v, f in zip(ser["y"][t][cut:], fac[cut:]) if not math.isnan(v)]
                    bucket["y"].extend(kept_y)
                    bucket["by_run"][run_id].extend(kept_y)
                    bucket["compute"].extend(v / f for v, f in zip(ser["compute"][t][cut:], fac[cut:]) if not math.isnan(v))
                    bucket["comm"].extend(v / f for v, f in zip(ser["own_comm"][t][cut:], fac[cut:]))
                    bucket["dropped"] += cut
                    bucket["excess"].append(excess)
                    bucket["profile"].append(profile)
                    if drift is not None:
                        bucket["drift"].append((drift, borrowed))
                    meta.setdefault(key, {"runs": set(), "rpn": [], "world": a_world, "ipe": [], "epochs": [],
                                          "warmup": []})
            for t in att_types:
                key = (t, a_nodes, basis)
                if key not in meta:
                    continue
                m = meta[key]
                m["runs"].add(run_id)
                m["rpn"].append(rpn[t])
                m["ipe"].append(s0["iterations_per_epoch"])
                m["epochs"].append(s0["epochs"])
                m["warmup"].append(s0["warmup_iterations"])
                used_any = True
            a_init = [r for r in recs if r["event"] == "init" and r["attempt"] == att]
            if a_init:
                for t in att_types:
                    inits[(t, a_nodes, basis)].append(_init_seconds(a_init, t, host_types, len(att_types) > 1))
        for t in set(host_types.values()):
            type_runs[t].append((run_id, used_any, "" if used_any else "no usable iteration"))
        if not used_any:
            info.usable = False
            info.reason = info.reason or "no usable iteration"

    configs = {}
    for key in sorted(samples):
        t, n, basis = key
        phases = {}
        for phase, b in samples[key].items():
            est = robust_mean(b["y"])
            if est is None:
                continue
            phases[phase] = PhaseMeasurement(est, robust_mean(b["compute"]), robust_mean(b["comm"]), b["dropped"],
                                             float(np.median(b["excess"])) if b["excess"] else 0.0,
                                             len(b["drift"]), _median_profile(b["profile"]),
                                             [float(np.mean(v)) for _rid, v in sorted(b["by_run"].items()) if v])
        if not phases:
            continue
        m = meta[key]
        cm = ConfigMeasurement(
            instance_type=t, nodes=n, basis=basis, run_ids=sorted(m["runs"]),
            ranks_per_node=float(np.median(m["rpn"])) if m["rpn"] else 1.0,
            world_size=m["world"],
            iterations_per_epoch=_mode(m["ipe"]) if m["ipe"] else None,
            epochs=_mode(m["epochs"]) if m["epochs"] else None,
            warmup_iterations=_mode(m["warmup"]) if m["warmup"] else None,
            phases=phases,
            init=robust_mean(inits.get(key, [])),
        )
        if (t, n) in configs:
            # a homogeneous probe of the same size beats a rating from a mixed run
            if configs[(t, n)].basis == "homogeneous":
                continue
        configs[(t, n)] = cm

    failed_types = {}
    measured_types = {key[0] for key in configs}
    for t, lst in sorted(type_runs.items()):
        if t in measured_types:
            continue
        reasons = sorted({"%s: %s" % (rid, why) for rid, ok, why in lst if not ok})
        failed_types[t] = "no usable probe run (%s)" % _short_list(reasons, 3)

    if not configs:
        detail = _short_list(["%s (%s)" % (r.run_id, r.reason) for r in runs], 4)
        raise ParamountError("results_dir %s: no usable probe run: %s" % (results_dir, detail))

    return Measurement(results_dir, files, job, runs, configs, failed_types, warnings)


def _init_seconds(init_records, instance_type, host_types, mixed):
    """Init of ``instance_type`` in one attempt: the attempt's slowest rank. In a mixed run a fast rank's init
    includes waiting for the slow ones (the process group forms when every rank has started), so each type is
    rated by its own ranks' init less their logged waits (``wait_seconds``), when every one of them logged it."""
    if mixed:
        own = [r for r in init_records if host_types.get(r["host"]) == instance_type]
        if own and all(is_finite_number(r.get("wait_seconds")) for r in own):
            return max(max(0.0, r["seconds"] - r["wait_seconds"]) for r in own)
    return max(r["seconds"] for r in init_records)


def _own_communication(comm, compute, itype, cpu_bound):
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


def _window_rates(iteration_records, host_types, warnings, run_id, attempt):
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


def _median_profile(profiles):
    """Element-wise median of the attempts' cumulative excess profiles (each index over the attempts that
    reached it), clipped at 0."""
    longest = max((len(p) for p in profiles), default=0)
    out = []
    for i in range(longest):
        vals = [p[i] for p in profiles if len(p) > i]
        out.append(max(0.0, float(np.median(vals))))
    return out


def _reference_series(ser):
    """The series the warm-up cut is decided on: the step time of the attempt's slowest type."""
    best = None
    for t, ys in ser["y"].items():
        clean = [v for v in ys if not math.isnan(v)]
        if len(clean) == len(ys) and (best is None or (ys and sum(ys) > sum(best))):
            best = ys
    return best if best is not None else ser["comm"]
