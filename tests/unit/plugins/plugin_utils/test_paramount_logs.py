"""Measurement: parsing log contract v1 and turning probe runs into estimates."""
from __future__ import annotations

import json
import math
import os

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests import loggen as lg
from ansible_collections.paramount.cluster.plugins.plugin_utils import paramount_logs as pl
from ansible_collections.paramount.cluster.plugins.plugin_utils.measurement import records
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_common import TRAINING_PHASES, ParamountError

from .optimize_testlib import load_schema, probe, write_lines

SCHEMA = load_schema()
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def _records(hosts=(("n0", "sim.small"),), **kw):
    timing = lg.SimpleTiming(lg.SIM_SPEED, seed=1)
    return lg.run_records("r1", "wl", list(hosts), timing, **kw)


# ---------------------------------------------------------------- generator against the schema

def test_generator_records_are_valid_against_the_trainer_schema():
    recs = _records(hosts=(("a", "sim.small"), ("b", "sim.large")), ranks_per_node=2, attempts=2)
    flat = [r for lst in recs.values() for r in lst]
    assert {r["event"] for r in flat} == {"start", "init", "iteration", "end"}
    for r in flat:
        VALIDATOR.validate(r)
        assert pl.validate_record(r) is None


def test_generator_layout_one_log_per_node_with_all_local_ranks(tmp_path):
    recs = _records(hosts=(("a", "sim.small"), ("b", "sim.small")), ranks_per_node=2)
    paths = lg.write_run(str(tmp_path), recs)
    assert sorted(os.path.basename(p) for p in paths) == ["a.log", "b.log"]
    assert (tmp_path / "a.out").exists()
    ranks = {json.loads(line)["rank"] for line in (tmp_path / "b.log").read_text().splitlines()}
    assert ranks == {2, 3}


def test_the_reader_checks_what_the_shipped_schema_requires():
    """The required keys of every event come from the shipped schema: leaving out any one of them is named."""
    contract = records.log_contract()
    assert set(contract.events) == set(SCHEMA["properties"]["event"]["enum"])
    recs = _records(hosts=(("a", "sim.small"),))["a"]
    for event in contract.events:
        rec = next((r for r in recs if r["event"] == event), None)
        if rec is None:  # the generator writes no epoch record
            continue
        branch = next(b for b in SCHEMA["allOf"] if b["if"]["properties"]["event"]["const"] == event)
        for key in set(SCHEMA["required"]) - {"event", "schema"} | set(branch["then"]["required"]):
            reason = pl.validate_record({k: v for k, v in rec.items() if k != key})
            assert reason == "%s record: missing key %r" % (event, key)


def test_the_training_phases_are_the_schemas():
    iteration = next(b for b in SCHEMA["allOf"] if b["if"]["properties"]["event"]["const"] == "iteration")
    assert list(TRAINING_PHASES) == iteration["then"]["properties"]["phase"]["enum"] == list(pl.PHASES)


def test_a_schema_the_reader_cannot_check_is_refused_not_half_checked(tmp_path, monkeypatch):
    changed = json.loads(json.dumps(SCHEMA))
    changed["properties"]["host"]["pattern"] = "^[a-z]+$"
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(changed))
    monkeypatch.setattr(records, "LOG_SCHEMA_PATH", str(path))
    records.log_contract.cache_clear()
    try:
        with pytest.raises(ParamountError, match="'host' uses pattern"):
            records.log_contract()
        monkeypatch.setattr(records, "LOG_SCHEMA_PATH", str(tmp_path / "missing.json"))
        with pytest.raises(ParamountError, match="cannot be read"):
            records.log_contract()
    finally:
        records.log_contract.cache_clear()


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6),
                         st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=5))
record_like = st.fixed_dictionaries(
    {},
    optional={
        "event": st.sampled_from(["start", "init", "iteration", "epoch", "end", "other", 3]),
        "schema": st.sampled_from([1, 2, 1.0, "1", True]),
        "run_id": st.sampled_from(["r", "", 5]),
        "host": st.sampled_from(["h", ""]),
        "rank": json_scalars, "attempt": json_scalars, "time": json_scalars,
        "instance_type": st.sampled_from(["t2.small", ""]),
        "local_rank": json_scalars, "world_size": json_scalars, "nodes": json_scalars,
        "local_batch": json_scalars, "samples_per_epoch": json_scalars, "iterations_per_epoch": json_scalars,
        "epochs": json_scalars, "warmup_iterations": json_scalars, "workload": st.sampled_from(["w", ""]),
        "seconds": json_scalars, "epoch": json_scalars, "iteration": json_scalars, "step": json_scalars,
        "phase": st.sampled_from(["warmup", "adversarial", "x"]), "compute_seconds": json_scalars,
        "samples": json_scalars, "iterations": json_scalars,
        "status": st.sampled_from(["completed", "stopped", "failed", "ok"]),
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(record_like)
def test_validate_record_agrees_with_the_json_schema(rec):
    """The plugin's hand-written check accepts exactly what the trainer's JSON Schema accepts
    (NaN and infinities, which JSON cannot carry, are rejected by both)."""
    ours = pl.validate_record(rec) is None
    theirs = VALIDATOR.is_valid(rec)
    has_nonfinite = any(isinstance(v, float) and not math.isfinite(v) for v in rec.values())
    if has_nonfinite and theirs:
        theirs = False  # jsonschema lets inf pass 'minimum'; JSON text cannot hold it; we reject
    assert ours == theirs, (pl.validate_record(rec), rec)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=40), st.binary(max_size=40).map(lambda b: b.decode("latin-1"))),
                max_size=20))
def test_parser_never_raises_on_garbage_lines(tmp_path_factory, lines):
    d = tmp_path_factory.mktemp("garbage")
    path = d / "n.log"
    path.write_text("\n".join(lines), encoding="utf-8", errors="replace")
    res = pl.read_log_file(str(path))
    assert all(pl.validate_record({k: v for k, v in r.items() if not k.startswith("_")}) is None
               for r in res.records)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 400), st.integers(1, 3))
def test_parser_keeps_every_valid_line_before_a_truncation(cut, seed):
    recs = _records(hosts=(("n0", "sim.small"),))["n0"]
    text = "".join(json.dumps(r) + "\n" for r in recs)
    truncated = text[: max(0, len(text) - cut)]
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "n0.log")
        with open(p, "w") as handle:
            handle.write(truncated)
        res = pl.read_log_file(p)
    complete_lines = truncated.count("\n")
    assert len(res.records) >= complete_lines
    assert len(res.records) + len(res.problems) == len([ln for ln in truncated.split("\n") if ln.strip()])


# ---------------------------------------------------------------- robust statistics

@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.001, 1000.0), min_size=1, max_size=40), st.floats(0.01, 100.0))
def test_robust_mean_is_bounded_and_scale_equivariant(xs, c):
    e = pl.robust_mean(xs)
    assert min(xs) - 1e-9 <= e.mean <= max(xs) + 1e-9
    assert e.low <= e.mean <= e.high
    e2 = pl.robust_mean([x * c for x in xs])
    assert math.isclose(e2.mean, e.mean * c, rel_tol=1e-6, abs_tol=1e-9)


def test_robust_mean_limits_a_single_spike_but_counts_it():
    xs = [1.0] * 9 + [50.0]
    e = pl.robust_mean(xs)
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
        e = pl.robust_mean(xs)
        assert abs(e.mean / (sum(xs) / len(xs)) - 1) < 0.01
        assert e.clipped <= 2 * 3  # at most a tenth of the steps on each side


def test_robust_mean_still_clips_rare_stragglers_of_throttled_steps():
    import random
    steps = _throttled_steps(random.Random(1), 30, 0)
    e = pl.robust_mean(steps[:-2] + [3.0, 5.0])  # two stragglers: 10 and 17 periods
    assert e.clipped == 2
    assert e.mean < 0.31


def test_robust_mean_ignores_non_finite_and_handles_empty():
    assert pl.robust_mean([]) is None
    assert pl.robust_mean([float("nan")]) is None
    assert pl.robust_mean([2.0]).mean == 2.0


def test_warmup_cut_drops_first_and_a_decaying_drift():
    seq = [3.0, 1.8, 1.4, 1.0, 1.01, 0.99, 1.0, 1.02, 0.98, 1.0, 1.0, 1.01]
    cut = pl.warmup_cut(seq, 1)
    assert cut >= 3
    assert pl.warmup_cut([1.0, 1.0, 1.0, 1.0], 1) == 1
    assert pl.warmup_cut([5.0], 1) == 1


# ---------------------------------------------------------------- measurement

def test_measure_homogeneous_probes(tmp_path):
    probe(tmp_path, counts=(1, 2))
    m = pl.measure(str(tmp_path))
    assert m.workload == "esrgan-tiny-test"
    assert set(m.configs) == {(t, n) for t in ("sim.small", "sim.medium", "sim.large") for n in (1, 2)}
    small = m.configs[("sim.small", 1)].phases["adversarial"].seconds.mean
    large = m.configs[("sim.large", 1)].phases["adversarial"].seconds.mean
    assert small / large == pytest.approx(4.0, rel=0.1)
    cm = m.configs[("sim.medium", 2)]
    assert cm.basis == "homogeneous" and cm.iterations_per_epoch == 500 and cm.init.mean > 0
    assert cm.phases["adversarial"].dropped >= 1
    assert not m.warnings


def test_heterogeneous_run_rates_each_type_by_its_own_compute(tmp_path):
    """One mixed run: the slow type sets the shared step time, but each type is rated by its compute."""
    timing = lg.SimpleTiming(lg.SIM_SPEED, noise=0.01, seed=3)
    probe(tmp_path, counts=(), heterogeneous=True, timing=timing)
    m = pl.measure(str(tmp_path))
    rec = [json.loads(line) for line in (tmp_path / "probe-hetero" / "probe-2.log").read_text().splitlines()]
    it = [r for r in rec if r["event"] == "iteration"]
    assert all(r["compute_seconds"] < 0.5 * r["seconds"] for r in it)  # the large node waits for the small one
    small = m.configs[("sim.small", 3)].phases["adversarial"]
    large = m.configs[("sim.large", 3)].phases["adversarial"]
    assert m.configs[("sim.large", 3)].basis == "heterogeneous"
    assert small.compute.mean / large.compute.mean == pytest.approx(4.0, rel=0.1)
    comm = 0.02 * 2
    assert large.seconds.mean == pytest.approx(0.2 / 0.6 + comm, rel=0.05)


def _mixed_run_with_windows(tmp_path, window=True, init_waits=True, window_value=None, cpu_bound_types=()):
    """A mixed probe of a slow (sim.small) and a fast (sim.large) node where the fast node's per-step compute is
    a burst (half its sustained time, as when it idles at every all-reduce), its compute-only windows show the
    sustained time, and the fast node's init includes waiting for the slow one."""
    sustained = {"sim.small": 1.2, "sim.large": 0.3}
    recs = lg.run_records("mixed", "wl", [("s", "sim.small"), ("l", "sim.large")],
                          lg.SimpleTiming(lg.SIM_SPEED, noise=0.0, seed=1))
    first_of_phase = set()
    for host, itype in (("s", "sim.small"), ("l", "sim.large")):
        for r in recs[host]:
            if r["event"] == "init":
                r["seconds"] = 20.0  # the fast rank waited for the slow one
                if init_waits:
                    r["wait_seconds"] = 0.0 if itype == "sim.small" else 15.0
            if r["event"] != "iteration":
                continue
            r["seconds"] = 1.25
            r["compute_seconds"] = 1.2 if itype == "sim.small" else 0.15  # the fast node's burst
            if window and (r["phase"], host) not in first_of_phase:
                first_of_phase.add((r["phase"], host))
                r["window_seconds"] = window_value or [9.0] + [sustained[itype]] * 4  # first step dropped
    lg.write_run(str(tmp_path / "mixed"), recs)
    for r in (r for lst in recs.values() for r in lst):
        VALIDATOR.validate(r)
    return pl.measure(str(tmp_path), cpu_bound_types=cpu_bound_types)


def test_mixed_run_rates_each_type_by_its_compute_only_window(tmp_path):
    m = _mixed_run_with_windows(tmp_path)
    comm = 1.25 - 1.2
    for itype, sustained in (("sim.small", 1.2), ("sim.large", 0.3)):
        phases = m.configs[(itype, 2)].phases
        assert set(phases) == {"warmup", "adversarial"}
        for pm in phases.values():
            assert pm.compute.mean == pytest.approx(sustained)
            assert pm.seconds.mean == pytest.approx(sustained + comm)
            assert pm.comm.mean == pytest.approx(comm)
    assert not m.warnings


def test_cpu_bound_communication_goes_at_each_types_own_pace(tmp_path):
    """A type whose communication is CPU work under its quota (the catalog's cpu_share) does it at its own speed:
    the mixed step's communication, measured at the slowest type's pace, is scaled by the type's compute over the
    slowest's. The slowest type keeps it whole; a type not named keeps it whole too (network-bound)."""
    comm = 1.25 - 1.2
    m = _mixed_run_with_windows(tmp_path, cpu_bound_types={"sim.small", "sim.large"})
    for itype, sustained in (("sim.small", 1.2), ("sim.large", 0.3)):
        for pm in m.configs[(itype, 2)].phases.values():
            own = comm * sustained / 1.2
            assert pm.comm.mean == pytest.approx(own)
            assert pm.seconds.mean == pytest.approx(sustained + own)
    m = _mixed_run_with_windows(tmp_path / "network", cpu_bound_types={"sim.small"})
    assert m.configs[("sim.large", 2)].phases["adversarial"].comm.mean == pytest.approx(comm)


def test_mixed_run_without_windows_keeps_the_per_step_compute(tmp_path):
    """Logs of trainers before --probe-window: the old rating, unchanged."""
    m = _mixed_run_with_windows(tmp_path, window=False)
    assert m.configs[("sim.large", 2)].phases["adversarial"].compute.mean == pytest.approx(0.15)


def test_mixed_run_rates_init_per_type_without_the_waits(tmp_path):
    m = _mixed_run_with_windows(tmp_path)
    assert m.configs[("sim.large", 2)].init.mean == pytest.approx(5.0)
    assert m.configs[("sim.small", 2)].init.mean == pytest.approx(20.0)
    # without wait_seconds (older trainers) every type gets the run's init, as before
    m = _mixed_run_with_windows(tmp_path / "old", init_waits=False)
    assert m.configs[("sim.large", 2)].init.mean == pytest.approx(20.0)


@pytest.mark.parametrize("bad", [[0.3], ["x", 0.3], [0.3, -1.0], "0.3"])
def test_a_malformed_window_is_not_used_and_named(tmp_path, bad):
    recs = lg.run_records("mixed", "wl", [("s", "sim.small"), ("l", "sim.large")],
                          lg.SimpleTiming(lg.SIM_SPEED, noise=0.0, seed=1))
    lg.write_run(str(tmp_path / "plain" / "mixed"), recs)
    first = next(r for r in recs["l"] if r["event"] == "iteration")
    first["window_seconds"] = bad
    lg.write_run(str(tmp_path / "bad" / "mixed"), recs)
    m = pl.measure(str(tmp_path / "bad"))
    assert any("host l step 0: window_seconds" in w for w in m.warnings), m.warnings
    plain = pl.measure(str(tmp_path / "plain"))
    assert (m.configs[("sim.large", 2)].phases["warmup"].compute.mean
            == plain.configs[("sim.large", 2)].phases["warmup"].compute.mean)


def test_restarts_drop_the_first_iteration_of_every_attempt(tmp_path):
    recs = _records(hosts=(("n0", "sim.medium"),), attempts=3, phases=(("adversarial", 6),))
    lg.write_run(str(tmp_path / "r1"), recs)
    m = pl.measure(str(tmp_path))
    pm = m.configs[("sim.medium", 1)].phases["adversarial"]
    assert pm.dropped >= 3
    assert pm.seconds.n <= 15


def test_missing_rank_files_are_fine(tmp_path):
    recs = _records(hosts=(("a", "sim.small"), ("b", "sim.small"), ("c", "sim.small")))
    del recs["b"]
    lg.write_run(str(tmp_path / "deep" / "er" / "r1"), recs)
    m = pl.measure(str(tmp_path))
    assert ("sim.small", 3) in m.configs


def test_bad_lines_nan_and_negative_are_dropped_with_a_warning(tmp_path):
    recs = _records()["n0"]
    lines = [json.dumps(r) for r in recs]
    it = [i for i, r in enumerate(recs) if r["event"] == "iteration"]
    lines[it[3]] = lines[it[3]].replace('"seconds": ', '"seconds": NaN, "x": ', 1)
    bad = dict(recs[it[4]], seconds=-1.0)
    lines[it[4]] = json.dumps(bad)
    lines.insert(5, "not json at all")
    lines.append(lines[-1][: len(lines[-1]) // 2])  # truncated last line
    write_lines(str(tmp_path / "r" / "n0.log"), lines)
    m = pl.measure(str(tmp_path))
    assert ("sim.small", 1) in m.configs
    text = " ".join(m.warnings)
    assert "n0.log" in text and "dropped 4 bad line(s)" in text
    assert "is negative" in text and "not finite" in text and "corrupt" in text


def test_no_logs_is_a_clear_error(tmp_path):
    with pytest.raises(ParamountError, match="no log files found"):
        pl.measure(str(tmp_path))
    with pytest.raises(ParamountError, match="does not exist"):
        pl.measure(str(tmp_path / "missing"))
    (tmp_path / "x.log").write_text("launcher output\nmore\n")
    with pytest.raises(ParamountError, match="no valid paramount-iteration record"):
        pl.measure(str(tmp_path))


def test_two_workloads_are_an_error_naming_both(tmp_path):
    probe(tmp_path / "a", types=("sim.small",))
    probe(tmp_path / "b", types=("sim.large",), workload="other-workload")
    with pytest.raises(ParamountError, match="2 different workloads") as err:
        pl.measure(str(tmp_path))
    assert "other-workload" in str(err.value) and "esrgan-tiny-test" in str(err.value)


def test_unknown_schema_version_is_an_error_naming_the_file(tmp_path):
    recs = _records()["n0"]
    recs = [dict(r, schema=2) for r in recs]
    write_lines(str(tmp_path / "r" / "n0.log"), recs)
    with pytest.raises(ParamountError, match=r"unknown log schema version in .*n0\.log line 1 \(schema 2\)"):
        pl.measure(str(tmp_path))


def test_only_failed_runs_is_an_error(tmp_path):
    probe(tmp_path, types=("sim.small",), status="failed")
    with pytest.raises(ParamountError, match="no usable probe run.*failed"):
        pl.measure(str(tmp_path))


def test_a_type_whose_runs_all_failed_is_reported(tmp_path):
    probe(tmp_path / "ok", types=("sim.medium",))
    probe(tmp_path / "bad", types=("sim.small",), status="failed")
    m = pl.measure(str(tmp_path))
    assert "sim.small" in m.failed_types and "failed" in m.failed_types["sim.small"]
    assert m.types() == ["sim.medium"]


def test_run_without_start_or_end(tmp_path):
    recs = _records(status=None)["n0"]
    write_lines(str(tmp_path / "a" / "n0.log"), recs)
    other = [r for r in _records()["n0"] if r["event"] != "start"]
    other = [dict(r, run_id="r2") for r in other]
    write_lines(str(tmp_path / "b" / "n0.log"), other)
    m = pl.measure(str(tmp_path))
    assert any("no 'end' record" in w for w in m.warnings)
    assert any("r2 not used: no 'start' record" in w for w in m.warnings)


def test_fit_drift_finds_a_settling_decay_and_not_noise():
    import random
    rnd = random.Random(4)
    seq = [1.0 + 0.8 * math.exp(-i / 1.0) + rnd.gauss(0, 0.01) for i in range(1, 11)]
    rho, tau = pl.fit_drift(seq, 1)
    assert 0.5 < rho < 1.2 and tau == 1.0
    flat = [1.0 + rnd.gauss(0, 0.02) for _index in range(10)]
    assert pl.fit_drift(flat, 1) is None
    assert pl.fit_drift([2.0, 1.0, 1.0], 1) is None  # too short
    exact = [2.0 + 1.0 * math.exp(-i / 2.0) for i in range(1, 11)]
    rho, tau = pl.fit_drift(exact, 1)
    assert rho == pytest.approx(0.5, rel=1e-6) and tau == 2.0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0.0, 100.0), min_size=0, max_size=30))
def test_fit_drift_never_raises(seq):
    res = pl.fit_drift(seq, 1)
    assert res is None or (res[0] > 0 and res[1] > 0)


def test_drift_is_divided_out_of_the_estimate(tmp_path):
    timing = lg.SimpleTiming({"sim.large": 0.6}, noise=0.005, drift=1.0, seed=2)
    probe(tmp_path, types=("sim.large",), timing=timing, phases=(("warmup", 3), ("adversarial", 12)))
    pm = pl.measure(str(tmp_path)).configs[("sim.large", 1)].phases["adversarial"]
    assert pm.seconds.mean == pytest.approx(0.2 / 0.6, rel=0.02)
    assert pm.startup_iterations > 0.5
