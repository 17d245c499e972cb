"""Model: scaling fits, transfer to unmeasured counts, iterations, uncertainty."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.paramount.cluster.plugins.plugin_utils.measurement.estimates import (
    ConfigMeasurement,
    Measurement,
    PhaseMeasurement,
    measure,
)
from ansible_collections.paramount.cluster.plugins.plugin_utils.measurement.runs import JobInfo
from ansible_collections.paramount.cluster.plugins.plugin_utils.measurement.statistics import Estimate
from ansible_collections.paramount.cluster.plugins.plugin_utils.model import scaling as pm
from ansible_collections.paramount.cluster.plugins.plugin_utils.model import fitting
from tests import loggen as lg

from ..optimize_testlib import probe


def _est(v, se=None):
    se = abs(v) * 0.01 if se is None else se
    return Estimate(v, se, v - 2 * se, v + 2 * se, 10)


def _measurement(points, init=None, comm=None, samples=4000, batch=4, epochs=5, warmup=100, rpn=1):
    """points: {(type, n): {phase: seconds}} -> Measurement, without logs."""
    configs = {}
    for (t, n), phases in points.items():
        ph = {}
        for p, v in phases.items():
            c = comm(n) if comm else 0.0
            ph[p] = PhaseMeasurement(_est(v), _est(max(v - c, 1e-6)), _est(c, 1e-4))
        configs[(t, n)] = ConfigMeasurement(
            t, n, "homogeneous", ["r"], rpn, n * rpn, math.ceil(samples / (n * rpn * batch)), epochs, warmup, ph,
            _est(init(n)) if init else None)
    job = JobInfo("wl", samples, batch, epochs, warmup)
    return Measurement("/x", [], job, [], configs, {}, [])


def test_measured_configuration_is_returned_as_measured():
    m = _measurement({("a", 1): {"adversarial": 1.0, "warmup": 0.5}}, init=lambda n: 3.0)
    mod = pm.ScalingModel(m, n_boot=50)
    p = mod.predict("a", 1)
    assert p.measured and p.basis == "measured"
    assert p.iterations == {"warmup": 100, "adversarial": 4900}
    assert p.total_seconds[0] == pytest.approx(3.0 + 100 * 0.5 + 4900 * 1.0)
    assert p.total_seconds[1] <= p.total_seconds[0] <= p.total_seconds[2]


def _truth(n):
    return 1.0 + 0.3 * fitting._r(n) + 0.05 * (n - 1)


def _comm(n):
    return 0.1 * fitting._r(n)


def test_nnls_recovers_an_exact_ring_curve():
    truth = _truth
    m = _measurement({("a", n): {"adversarial": truth(n)} for n in (1, 2, 4)})
    mod = pm.ScalingModel(m, n_boot=20)
    for n in (3, 6, 8):
        p = mod.predict("a", n)
        assert not p.measured and p.basis.startswith("fitted")
        assert p.seconds_per_iteration["adversarial"][0] == pytest.approx(truth(n), rel=1e-3)


def test_one_count_types_borrow_the_pooled_communication_curve():
    comm = _comm
    pts = {("a", n): {"adversarial": 1.0 + comm(n)} for n in (1, 2, 4)}
    pts[("b", 1)] = {"adversarial": 0.5}
    m = _measurement(pts, comm=comm)
    mod = pm.ScalingModel(m, n_boot=20)
    p = mod.predict("b", 4)
    assert p.basis.startswith("transfer")
    assert p.seconds_per_iteration["adversarial"][0] == pytest.approx(0.5 + comm(4), rel=0.02)


def test_one_count_type_probed_on_several_nodes_keeps_its_own_network_speed():
    pts = {("a", 2): {"adversarial": 1.2}}
    m = _measurement(pts, comm=lambda n: 0.2 * fitting._r(n))
    mod = pm.ScalingModel(m, n_boot=20)
    p4 = mod.predict("a", 4).seconds_per_iteration["adversarial"][0]
    assert p4 == pytest.approx(1.0 + 0.2 * fitting._r(4), rel=0.02)
    assert mod.predict("a", 1).seconds_per_iteration["adversarial"][0] == pytest.approx(1.0, rel=0.02)


def test_without_any_multi_node_probe_other_counts_are_unpredictable():
    m = _measurement({("a", 1): {"adversarial": 1.0}, ("b", 1): {"adversarial": 2.0}})
    mod = pm.ScalingModel(m, n_boot=10)
    with pytest.raises(pm.Unpredictable, match="no probe run with more than one node"):
        mod.predict("a", 2)
    with pytest.raises(pm.Unpredictable, match="not probed"):
        mod.predict("zzz", 1)


def test_iterations_for_unmeasured_counts_and_epochs_override():
    m = _measurement({("a", 1): {"adversarial": 1.0}, ("a", 2): {"adversarial": 1.1}}, samples=1000, batch=4,
                     epochs=2, warmup=10, rpn=2)
    mod = pm.ScalingModel(m, n_boot=10)
    assert mod.iterations("a", 3)[0] == {"warmup": 10, "adversarial": math.ceil(1000 / 24) * 2 - 10}
    mod2 = pm.ScalingModel(m, epochs=7, n_boot=10)
    assert sum(mod2.iterations("a", 1)[0].values()) == 125 * 7


def test_missing_warmup_phase_uses_the_ratio_of_types_that_have_it():
    m = _measurement({("a", 1): {"adversarial": 1.0, "warmup": 0.25}, ("b", 1): {"adversarial": 2.0}})
    p = pm.ScalingModel(m, n_boot=10).predict("b", 1)
    assert p.seconds_per_iteration["warmup"][0] == pytest.approx(0.5)
    assert any("warm-up phase not probed" in n for n in p.notes)


def test_init_grows_with_nodes_when_two_counts_were_probed():
    m = _measurement({("a", n): {"adversarial": 1.0} for n in (1, 2)}, init=lambda n: 2.0 + 1.5 * n)
    mod = pm.ScalingModel(m, n_boot=10)
    assert mod.predict("a", 6).init_seconds[0] == pytest.approx(2.0 + 1.5 * 6, rel=0.02)


def test_cross_check_uses_leave_one_out(tmp_path):
    probe(tmp_path, counts=(1, 2, 4), types=("sim.large",))
    mod = pm.ScalingModel(measure(str(tmp_path)), n_boot=10)
    rows = mod.cross_check()
    loo = [r for r in rows if r["kind"] == "leave-one-out"]
    assert len(loo) == 6
    adv = [r for r in loo if r["phase"] == "adversarial"]
    assert all(abs(r["predicted"] / r["measured"] - 1) < 0.2 for r in adv)


def test_cross_check_lists_the_points_of_types_probed_at_one_count():
    """The quick start probes each type at one count: its figure still shows every probed point."""
    m = _measurement({("a", 1): {"adversarial": 1.0, "warmup": 0.25}, ("b", 3): {"adversarial": 2.0}})
    rows = pm.ScalingModel(m, n_boot=10).cross_check()
    probed = sorted((r["instance_type"], r["nodes"], r["phase"]) for r in rows if r["kind"] == "probed")
    assert probed == [("a", 1, "adversarial"), ("a", 1, "warmup"), ("b", 3, "adversarial")]
    assert all(r["predicted"] == pytest.approx(r["measured"]) for r in rows)


@settings(max_examples=60, deadline=None)
@given(
    base=st.floats(0.01, 10.0),
    steps=st.lists(st.floats(-0.5, 2.0), min_size=1, max_size=3),
    counts=st.sets(st.sampled_from([1, 2, 3, 4, 6, 8]), min_size=1, max_size=4),
)
def test_predictions_are_positive_finite_and_never_fall_with_more_nodes(base, steps, counts):
    counts = sorted(counts)
    ys, y = {}, base
    for i, n in enumerate(counts):
        ys[n] = max(y, 1e-3)
        y = y * (1 + steps[min(i, len(steps) - 1)] * 0.2)
    pts = {("a", n): {"adversarial": v} for n, v in ys.items()}
    pts[("b", 2)] = {"adversarial": 1.0}
    m = _measurement(pts, comm=lambda n: 0.05 * (n - 1))
    mod = pm.ScalingModel(m, n_boot=5)
    # a type whose two-count slope is within the noise floor follows the prior curve beyond its measured counts,
    # which does not fall with more nodes but may start below a noisy high last measurement
    prior = mod.fits["adversarial"].prior.get("a") is not None
    prev = None
    for n in range(1, 11):
        try:
            p = mod.predict("a", n)
        except pm.Unpredictable:
            continue
        v = p.seconds_per_iteration["adversarial"][0]
        assert math.isfinite(v) and v >= 0
        assert p.total_seconds[1] <= p.total_seconds[0] <= p.total_seconds[2]
        if n in ys:
            assert v == ys[n]
        elif prev is not None and len(counts) >= 2 and n > max(counts) + (1 if prior else 0):
            assert v >= prev - 1e-9
        prev = v


@settings(max_examples=30, deadline=None)
@given(c=st.floats(0.1, 10.0))
def test_model_is_scale_equivariant(c):
    pts = {("a", 1): {"adversarial": 1.0}, ("a", 2): {"adversarial": 1.3}, ("a", 4): {"adversarial": 1.5}}
    m1 = _measurement(pts)
    m2 = _measurement({k: {p: v * c for p, v in ph.items()} for k, ph in pts.items()})
    for n in (3, 8):
        a = pm.ScalingModel(m1, n_boot=0).predict("a", n).seconds_per_iteration["adversarial"][0]
        b = pm.ScalingModel(m2, n_boot=0).predict("a", n).seconds_per_iteration["adversarial"][0]
        assert b == pytest.approx(a * c, rel=1e-4)


def test_end_to_end_noise_free_prediction_is_close(tmp_path):
    timing = lg.SimpleTiming(lg.SIM_SPEED, noise=0.0, drift=0.0, comm=lambda n: 0.05 * fitting._r(n))
    probe(tmp_path, counts=(1, 2), timing=timing)
    mod = pm.ScalingModel(measure(str(tmp_path)), n_boot=20)
    p = mod.predict("sim.medium", 4)
    assert p.seconds_per_iteration["adversarial"][0] == pytest.approx(0.2 / 0.3 + 0.05 * fitting._r(4), rel=0.01)


def _with_startup(m, phase, excess, profile=None):
    import dataclasses
    for key, cm in m.configs.items():
        cm.phases[phase] = dataclasses.replace(cm.phases[phase], startup_iterations=excess,
                                               startup_profile=list(profile or []))
    return m


def test_measured_start_up_is_not_capped_at_the_jobs_iterations():
    """30 steady iterations of measured start-up excess stay in a 10-iteration job (the old cap kept 10)."""
    m = _measurement({("a", 1): {"adversarial": 1.0}}, init=lambda n: 2.0, samples=40, batch=4, epochs=1, warmup=0)
    m = _with_startup(m, "adversarial", 30.0)
    p = pm.ScalingModel(m, n_boot=0).predict("a", 1)
    assert p.iterations == {"warmup": 0, "adversarial": 10}
    assert p.startup_iterations["adversarial"] == pytest.approx(30.0)
    assert p.total_seconds[0] == pytest.approx(2.0 + 1.0 * (10 + 30.0))


def test_a_job_shorter_than_the_probe_repeats_the_probes_first_iterations():
    m = _measurement({("a", 1): {"adversarial": 1.0}}, init=lambda n: 0.0, samples=12, batch=4, epochs=1, warmup=0)
    m = _with_startup(m, "adversarial", 12.0, profile=[6.0, 9.0, 10.5, 11.2, 11.6, 11.8, 11.9, 12.0, 12.0, 12.0])
    p = pm.ScalingModel(m, n_boot=0).predict("a", 1)
    assert p.iterations["adversarial"] == 3
    assert p.total_seconds[0] == pytest.approx(3 + 10.5)


def test_slow_first_iterations_with_ten_probe_iterations_end_to_end(tmp_path):
    """First iterations up to 9x slower, only ten probe iterations: the predicted time of a job as long as the
    probe is the probe's measured time; a shorter job gets the time of the probe's first iterations."""
    timing = lg.SimpleTiming(lg.SIM_SPEED, noise=0.0, drift=8.0, init=0.0, init_per_node=0.0)
    root = tmp_path / "p"
    probe(root, types=("sim.medium",), counts=(1,), timing=timing, phases=(("adversarial", 10),),
          samples_per_epoch=40, local_batch=4, epochs=1, warmup_iterations=0)
    steps = [0.2 / 0.3 * (1.0 + 8.0 * 0.5 ** i) for i in range(10)]
    meas = measure(str(root))
    p10 = pm.ScalingModel(meas, n_boot=0).predict("sim.medium", 1)
    assert p10.iterations["adversarial"] == 10
    assert p10.total_seconds[0] == pytest.approx(sum(steps), rel=0.01)
    p4 = pm.ScalingModel(meas, epochs=1, n_boot=0)
    p4.m.configs[("sim.medium", 1)].iterations_per_epoch = 4
    assert p4.predict("sim.medium", 1).total_seconds[0] == pytest.approx(sum(steps[:4]), rel=0.01)


def _two_counts(y1, y2, comm2, n1=1, n2=2, rel_se=0.01):
    """Type a at two counts; its own measured communication at n2 is comm2 (0 on one node)."""
    configs = {}
    for n, y, c in ((n1, y1, 0.0 if n1 == 1 else comm2 * fitting._r(n1) / fitting._r(n2)), (n2, y2, comm2)):
        ph = {"adversarial": PhaseMeasurement(_est(y, rel_se * y), _est(y - c), _est(c, 1e-4))}
        configs[("a", n)] = ConfigMeasurement("a", n, "homogeneous", ["r"], 1, n, 1000, 1, 0, ph, _est(1.0))
    return Measurement("/x", [], JobInfo("wl", 4000, 4, 1, 0), [], configs, {}, [])


def _spi(mod, n):
    return mod.predict("a", n).seconds_per_iteration["adversarial"][0]


def test_a_two_count_slope_within_the_noise_floor_is_not_extrapolated():
    """Measured rise 1.00 -> 1.02 s, within two standard deviations of between-run noise: the prediction for 8
    nodes follows the measured communication (0.005 s at 2 nodes, ring shape) with the level pooled over both
    probes, not the noisy rise x r(8) / r(2) (1.035 s)."""
    mod = pm.ScalingModel(_two_counts(1.00, 1.02, 0.005), n_boot=0)
    level = (1.00 + (1.02 - 0.005)) / 2  # equal weights: the two variances are nearly the same
    assert _spi(mod, 8) == pytest.approx(level + 0.005 * fitting._r(8), rel=2e-3)
    assert mod.predict("a", 8).basis.startswith("prior")
    assert (_spi(mod, 1), _spi(mod, 2)) == (1.00, 1.02)  # measured points stay measured


def test_a_slope_above_the_noise_floor_is_kept():
    mod = pm.ScalingModel(_two_counts(1.00, 1.30, 0.30), n_boot=0)
    assert _spi(mod, 8) == pytest.approx(1.00 + 0.30 * fitting._r(8), rel=1e-3)
    assert mod.predict("a", 8).basis.startswith("fitted")


def test_the_noise_floor_counts_between_run_noise_not_only_within_run_errors():
    """A 5% rise beats the within-run standard errors (1%) alone but not the between-run noise (3% per run)."""
    m = _two_counts(1.00, 1.05, 0.01)
    assert pm.ScalingModel(m, n_boot=0, between_run_cv=0.0).predict("a", 8).basis.startswith("fitted")
    assert pm.ScalingModel(m, n_boot=0).predict("a", 8).basis.startswith("prior")
    assert pm.ScalingModel(m, n_boot=0).between_cv == pm.BETWEEN_RUN_CV


def test_step_time_does_not_fall_as_nodes_are_added():
    """With a fixed per-rank batch a lower step time on 2 nodes than on 1 is noise: the extrapolation does not
    carry the fall (the old fit clamped the slope at 0 and repeated the lower 2-node figure)."""
    mod = pm.ScalingModel(_two_counts(1.00, 0.95, 0.01), n_boot=0)
    preds = [_spi(mod, n) for n in range(3, 9)]
    assert all(b >= a for a, b in zip(preds, preds[1:]))
    assert preds[0] > 0.95 and preds[0] == pytest.approx((1.00 + 0.95 - 0.01) / 2 + 0.01 * fitting._r(3), rel=2e-3)


def test_interpolation_between_the_two_measured_counts_stays_exact():
    mod = pm.ScalingModel(_two_counts(1.00, 1.01, 0.004, n1=2, n2=4), n_boot=0)
    assert (_spi(mod, 2), _spi(mod, 4)) == (1.00, 1.01)
    fit = mod.fits["adversarial"]
    level, scale = fit.prior["a"]
    curve = {n: level + scale * fit.comm_at(n) for n in (2, 3, 4)}
    res2, res4 = 1.00 - curve[2], 1.01 - curve[4]
    assert _spi(mod, 3) == pytest.approx(curve[3] + (res2 + res4) / 2, rel=1e-9)
    assert 1.00 <= _spi(mod, 3) <= 1.01


def test_repeated_probes_update_the_between_run_noise(tmp_path):
    """Two runs of one configuration whose means differ by 20% say the runs vary more than the 3% prior."""
    for rid, speed in (("r1", 0.30), ("r2", 0.36)):
        timing = lg.SimpleTiming({"sim.medium": speed}, noise=0.0, drift=0.0)
        recs = lg.run_records(rid, "wl", [("host-" + rid, "sim.medium")], timing, samples_per_epoch=400)
        lg.write_run(str(tmp_path / rid), recs, out_files=False)
    meas = measure(str(tmp_path))
    means = meas.configs[("sim.medium", 1)].phases["adversarial"].run_means
    assert len(means) == 2 and means[0] == pytest.approx(0.2 / 0.30, rel=1e-3)
    cv, runs = pm.estimate_between_run_cv(meas)
    mu = sum(means) / 2
    ss = sum(((v - mu) / mu) ** 2 for v in means)
    assert runs == 2 and cv == pytest.approx(math.sqrt((4 * 0.03 ** 2 + ss) / 5))
    assert pm.ScalingModel(meas, n_boot=0).between_cv == pytest.approx(cv)


def test_intervals_hold_the_between_run_noise_of_the_next_run():
    """A measured configuration's 95% interval covers another run of it (3% level noise), not only the ~0.3%
    standard error of its probe's mean."""
    mod = pm.ScalingModel(_two_counts(1.00, 1.30, 0.30, rel_se=0.001), n_boot=400)
    p = mod.predict("a", 1)
    lo, hi = p.total_seconds[1] / p.total_seconds[0], p.total_seconds[2] / p.total_seconds[0]
    assert lo < 0.95 and hi > 1.05
