"""Measurement, estimates: probe runs turned into per-configuration estimates (``measure``), rating heterogeneous
runs, restarts, bad lines and the errors a user sees."""
from __future__ import annotations

import json

import jsonschema
import pytest

from tests import loggen as lg
from ansible_collections.paramount.cluster.plugins.plugin_utils.measurement.estimates import measure
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_common import ParamountError

from ..optimize_testlib import load_schema, node_records, probe, write_lines

VALIDATOR = jsonschema.Draft202012Validator(load_schema())


def test_measure_homogeneous_probes(tmp_path):
    probe(tmp_path, counts=(1, 2))
    m = measure(str(tmp_path))
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
    m = measure(str(tmp_path))
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
    return measure(str(tmp_path), cpu_bound_types=cpu_bound_types)


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
    m = measure(str(tmp_path / "bad"))
    assert any("host l step 0: window_seconds" in w for w in m.warnings), m.warnings
    plain = measure(str(tmp_path / "plain"))
    assert (m.configs[("sim.large", 2)].phases["warmup"].compute.mean
            == plain.configs[("sim.large", 2)].phases["warmup"].compute.mean)


def test_restarts_drop_the_first_iteration_of_every_attempt(tmp_path):
    recs = node_records(hosts=(("n0", "sim.medium"),), attempts=3, phases=(("adversarial", 6),))
    lg.write_run(str(tmp_path / "r1"), recs)
    m = measure(str(tmp_path))
    pm = m.configs[("sim.medium", 1)].phases["adversarial"]
    assert pm.dropped >= 3
    assert pm.seconds.n <= 15


def test_missing_rank_files_are_fine(tmp_path):
    recs = node_records(hosts=(("a", "sim.small"), ("b", "sim.small"), ("c", "sim.small")))
    del recs["b"]
    lg.write_run(str(tmp_path / "deep" / "er" / "r1"), recs)
    m = measure(str(tmp_path))
    assert ("sim.small", 3) in m.configs


def test_bad_lines_nan_and_negative_are_dropped_with_a_warning(tmp_path):
    recs = node_records()["n0"]
    lines = [json.dumps(r) for r in recs]
    it = [i for i, r in enumerate(recs) if r["event"] == "iteration"]
    lines[it[3]] = lines[it[3]].replace('"seconds": ', '"seconds": NaN, "x": ', 1)
    bad = dict(recs[it[4]], seconds=-1.0)
    lines[it[4]] = json.dumps(bad)
    lines.insert(5, "not json at all")
    lines.append(lines[-1][: len(lines[-1]) // 2])  # truncated last line
    write_lines(str(tmp_path / "r" / "n0.log"), lines)
    m = measure(str(tmp_path))
    assert ("sim.small", 1) in m.configs
    text = " ".join(m.warnings)
    assert "n0.log" in text and "dropped 4 bad line(s)" in text
    assert "is negative" in text and "not finite" in text and "corrupt" in text


def test_no_logs_is_a_clear_error(tmp_path):
    with pytest.raises(ParamountError, match="no log files found"):
        measure(str(tmp_path))
    with pytest.raises(ParamountError, match="does not exist"):
        measure(str(tmp_path / "missing"))
    (tmp_path / "x.log").write_text("launcher output\nmore\n")
    with pytest.raises(ParamountError, match="no valid paramount-iteration record"):
        measure(str(tmp_path))


def test_two_workloads_are_an_error_naming_both(tmp_path):
    probe(tmp_path / "a", types=("sim.small",))
    probe(tmp_path / "b", types=("sim.large",), workload="other-workload")
    with pytest.raises(ParamountError, match="2 different workloads") as err:
        measure(str(tmp_path))
    assert "other-workload" in str(err.value) and "esrgan-tiny-test" in str(err.value)


def test_unknown_schema_version_is_an_error_naming_the_file(tmp_path):
    recs = node_records()["n0"]
    recs = [dict(r, schema=2) for r in recs]
    write_lines(str(tmp_path / "r" / "n0.log"), recs)
    with pytest.raises(ParamountError, match=r"unknown log schema version in .*n0\.log line 1 \(schema 2\)"):
        measure(str(tmp_path))


def test_only_failed_runs_is_an_error(tmp_path):
    probe(tmp_path, types=("sim.small",), status="failed")
    with pytest.raises(ParamountError, match="no usable probe run.*failed"):
        measure(str(tmp_path))


def test_a_type_whose_runs_all_failed_is_reported(tmp_path):
    probe(tmp_path / "ok", types=("sim.medium",))
    probe(tmp_path / "bad", types=("sim.small",), status="failed")
    m = measure(str(tmp_path))
    assert "sim.small" in m.failed_types and "failed" in m.failed_types["sim.small"]
    assert m.types() == ["sim.medium"]


def test_run_without_start_or_end(tmp_path):
    recs = node_records(status=None)["n0"]
    write_lines(str(tmp_path / "a" / "n0.log"), recs)
    other = [r for r in node_records()["n0"] if r["event"] != "start"]
    other = [dict(r, run_id="r2") for r in other]
    write_lines(str(tmp_path / "b" / "n0.log"), other)
    m = measure(str(tmp_path))
    assert any("no 'end' record" in w for w in m.warnings)
    assert any("r2 not used: no 'start' record" in w for w in m.warnings)


def test_drift_is_divided_out_of_the_estimate(tmp_path):
    timing = lg.SimpleTiming({"sim.large": 0.6}, noise=0.005, drift=1.0, seed=2)
    probe(tmp_path, types=("sim.large",), timing=timing, phases=(("warmup", 3), ("adversarial", 12)))
    pm = measure(str(tmp_path)).configs[("sim.large", 1)].phases["adversarial"]
    assert pm.seconds.mean == pytest.approx(0.2 / 0.6, rel=0.02)
    assert pm.startup_iterations > 0.5
