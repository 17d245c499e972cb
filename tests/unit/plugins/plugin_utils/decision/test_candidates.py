"""Decision, candidates: pricing (by the catalog's billing rule), constraints, ranking, Pareto front, runner-up."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from ansible_collections.paramount.cluster.plugins.plugin_utils.decision import candidates
from ansible_collections.paramount.cluster.plugins.plugin_utils.model.scaling import Prediction, Unpredictable
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_catalog import CatalogEntry


class FakeModel:
    """Anything with predict(type, nodes) and types() will do: time = work / (speed x nodes) + 5 x nodes."""

    def __init__(self, speed):
        self.speed = speed

    def types(self):
        return sorted(self.speed)

    def predict(self, t, n):
        if t not in self.speed:
            raise Unpredictable("not probed")
        if n > 4:
            raise Unpredictable("too far")
        spi = 1.0 / self.speed[t] + 0.1 * (n - 1)
        iters = 1000 // n
        total = iters * spi + 5 * n
        return Prediction(t, n, n == 1, "fake", {"adversarial": [spi, spi, spi]}, {"adversarial": iters},
                          [5.0 * n] * 3, [total, total * 0.9, total * 1.1])


CAT = {
    "slow": CatalogEntry("slow", 1, 1, 0, 0.010, "test"),
    "mid": CatalogEntry("mid", 1, 1, 0, 0.018, "test"),
    "fast": CatalogEntry("fast", 1, 1, 0, 0.050, "test"),
    "nopri": CatalogEntry("nopri", 1, 1, 0, None, "", "no price in catalog x"),
}
SPEED = {"slow": 0.15, "mid": 0.30, "fast": 0.60, "nopri": 1.0}


def _run(objective="cost", counts=(1, 2, 4, 8), **kw):
    k = candidates.Constraints(objective=objective, **kw)
    cands, excl = candidates.build_candidates(FakeModel(SPEED), CAT, ["slow", "mid", "fast", "nopri", "unprobed"],
                                              list(counts), k)
    candidates.pareto_front(cands)
    ordered = candidates.rank(cands, objective)
    chosen, msg = candidates.decide(ordered, objective)
    return SimpleNamespace(chosen=chosen, msg=msg, ordered=ordered, excluded=excl)


def test_cost_and_time_objectives():
    res = _run("cost")
    assert res.msg is None and res.chosen.instance_type == "mid" and res.chosen.nodes == 1
    chosen = _run("time").chosen
    assert (chosen.instance_type, chosen.nodes) == ("fast", 4)
    reasons = {e["instance_type"]: e["reason"] for e in res.excluded}
    assert "no price" in reasons["nopri"] and "not in the catalog" in reasons["unprobed"]


def test_unpredictable_candidates_are_listed_with_their_reason():
    ordered = _run("cost").ordered
    eight = [c for c in ordered if c.nodes == 8]
    assert eight and all(not c.feasible and "cannot be predicted: too far" in c.reason for c in eight)
    assert ordered[-1].nodes == 8  # ranked last


def test_constraints_and_guardrail():
    res = _run("time", max_hourly_cost=0.1)
    assert res.chosen.hourly_cost <= 0.1
    over = [c for c in res.ordered if c.predicted and c.hourly_cost > 0.1]
    assert over and all("max_hourly_cost" in c.reason and not c.feasible for c in over)
    assert _run("cost", deadline=2000).chosen.predicted_seconds <= 2000
    chosen = _run("time", measured_only=True).chosen
    assert chosen.nodes == 1 and chosen.measured


def test_setup_seconds_count_for_deadline_and_cost_but_not_predicted_time():
    a = _run("cost").chosen
    b = _run("cost", setup_seconds=600.0).chosen
    assert b.predicted_seconds == a.predicted_seconds
    assert b.predicted_cost > a.predicted_cost


def test_nothing_feasible_names_the_closest_and_what_they_violate():
    res = _run("cost", deadline=10, budget=1e-6)
    assert res.chosen is None
    assert res.msg.startswith("no configuration satisfies the constraints; closest:")
    assert "deadline" in res.msg and "budget" in res.msg
    assert not any(c.feasible for c in res.ordered)


def test_near_ties_prefer_the_smaller_upper_bound():
    cands = [candidates.Candidate("a", 1, 1.0, True, True, predicted_seconds=100, predicted_cost=1.00,
                                  seconds_interval=[99, 101], cost_interval=[0.99, 1.01], feasible=True),
             candidates.Candidate("b", 8, 1.0, True, False, predicted_seconds=90, predicted_cost=0.99,
                                  seconds_interval=[60, 150], cost_interval=[0.7, 1.4], feasible=True)]
    assert candidates.rank(list(cands), "cost")[0].instance_type == "b"
    assert candidates.rank(list(cands), "cost", tie_tolerance=0.03)[0].instance_type == "a"
    assert candidates.rank(list(cands), "cost", tie_tolerance=0.005)[0].instance_type == "b"


def test_pareto_front_is_non_dominated():
    ordered = _run("cost").ordered
    pts = [c for c in ordered if c.predicted]
    front = [c for c in pts if c.pareto]
    assert front
    for c in front:
        assert not any(o.predicted_seconds < c.predicted_seconds and o.predicted_cost < c.predicted_cost for o in pts)
    for c in pts:
        if not c.pareto:
            assert any(o.predicted_seconds <= c.predicted_seconds and o.predicted_cost <= c.predicted_cost
                       for o in front)


def test_the_catalog_node_limit_is_a_quota():
    cat = dict(CAT, fast=CatalogEntry("fast", 1, 1, 0, 0.050, "test", node_limit=2))
    k = candidates.Constraints(objective="time")
    cands, _rest = candidates.build_candidates(FakeModel(SPEED), cat, ["fast"], [1, 2, 4], k)
    by_n = {c.nodes: c for c in cands}
    assert by_n[2].feasible and not by_n[4].feasible
    assert "4 nodes > node_limit 2 of fast in the catalog" in by_n[4].reason
    chosen, _rest = candidates.decide(candidates.rank(cands, "time"), "time")
    assert chosen.nodes == 2


class ShortJobModel:
    """A job far shorter than a minute: seconds = work / speed / nodes (no scaling loss)."""

    def __init__(self, speed, work=6.0):
        self.speed, self.work = speed, work

    def types(self):
        return sorted(self.speed)

    def predict(self, t, n):
        total = self.work / self.speed[t] / n
        return Prediction(t, n, n == 1, "fake", {"adversarial": [total, total, total]}, {"adversarial": 1},
                          [0.0] * 3, [total, total, total])


def test_short_jobs_are_billed_by_the_catalog_rule():
    """Below the minimum, cost no longer depends on speed; billed pro rata, a faster type that is cheaper per
    unit of work wins although its hourly price is higher."""
    speed = {"slow": 0.15, "mid": 0.30}  # per unit of work: slow 0.0667, mid 0.06 (price / speed)
    for minimum, winner in ((60.0, "slow"), (0.0, "mid")):
        cat = {t: CatalogEntry(t, 1, 1, 0, CAT[t].price_per_hour, "test", billing_minimum_seconds=minimum)
               for t in speed}
        k = candidates.Constraints()
        cands, _rest = candidates.build_candidates(ShortJobModel(speed, work=6.0), cat, list(speed), [1], k)
        chosen, _rest = candidates.decide(candidates.rank(cands, "cost"), "cost")
        assert chosen.instance_type == winner, (minimum, [(c.instance_type, c.predicted_cost) for c in cands])
        assert chosen.billing["minimum_seconds"] == minimum and chosen.as_dict()["billing"] == chosen.billing


def test_nodes_kept_from_the_probe_are_past_the_minimum():
    speed = {"mid": 0.30}
    cat = {"mid": CatalogEntry("mid", 1, 1, 0, 0.018, "test")}
    model = ShortJobModel(speed, work=6.0)  # 20 s on one node, 10 s on two
    k = candidates.Constraints(setup_seconds=5.0)
    new, _rest = candidates.build_candidates(model, cat, ["mid"], [1, 2], k)
    kept, _rest = candidates.build_candidates(model, cat, ["mid"], [1, 2], k, kept_lives={"mid": [80.0]})
    one_new, two_new = new
    one_kept, two_kept = kept
    assert one_new.billing["billed_node_seconds"] == 60 and two_new.billing["billed_node_seconds"] == 120
    assert one_kept.billing["billed_node_seconds"] == 25  # 5 s setup + 20 s, no second minimum
    assert two_kept.billing["billed_node_seconds"] == 15 + 60  # one kept, one new
    assert one_kept.predicted_cost == pytest.approx(0.018 * 25 / 3600)
    assert (one_kept.billing["kept_nodes"], two_kept.billing["new_nodes"]) == (1, 1)


def test_runner_up_overlap_names_the_probe_that_would_separate_them():
    a = candidates.Candidate("a", 1, 1.0, True, True, predicted_seconds=100, predicted_cost=1.00,
                             seconds_interval=[95, 105], cost_interval=[0.95, 1.05], feasible=True)
    b = candidates.Candidate("b", 4, 1.0, True, False, predicted_seconds=90, predicted_cost=1.02,
                             seconds_interval=[60, 150], cost_interval=[0.7, 1.5], feasible=True)
    far = candidates.Candidate("c", 2, 1.0, True, True, predicted_seconds=300, predicted_cost=3.0,
                               seconds_interval=[290, 310], cost_interval=[2.9, 3.1], feasible=True)
    ordered = candidates.rank([a, b, far], "cost")
    chosen, _rest = candidates.decide(ordered, "cost")
    ru = candidates.runner_up(ordered, chosen, "cost")
    assert chosen is a and ru["instance_type"] == "b" and ru["overlap"]
    assert (ru["separating_probe"]["instance_type"], ru["separating_probe"]["nodes"]) == ("b", 4)
    assert "extrapolated" in ru["separating_probe"]["why"]
    ordered = candidates.rank([a, far], "cost")
    ru = candidates.runner_up(ordered, candidates.decide(ordered, "cost")[0], "cost")
    assert ru["instance_type"] == "c" and not ru["overlap"] and ru["separating_probe"] is None
    assert candidates.runner_up(candidates.rank([a], "cost"), a, "cost") is None


class LinearModel(FakeModel):
    """Perfect scaling up to 8 nodes: more nodes is always faster, so objective time wants the most nodes."""

    def predict(self, t, n):
        spi = 1.0 / (self.speed[t] * n)
        total = 1000 * spi + 2.0
        return Prediction(t, n, n == 1, "fake", {"adversarial": [spi, spi, spi]}, {"adversarial": 1000},
                          [2.0] * 3, [total, total * 0.9, total * 1.1])


LOCAL = {
    "local.small": CatalogEntry("local.small", 1, 0.5, 0, 0.010, "test", cpu_share=0.15),
    "local.medium": CatalogEntry("local.medium", 1, 1, 0, 0.018, "test", cpu_share=0.30),
    "local.large": CatalogEntry("local.large", 1, 2, 0, 0.050, "test", cpu_share=0.60),
    "t2.small": CatalogEntry("t2.small", 1, 2, 0, 0.023, "test"),
}
LOCAL_SPEED = {"local.small": 0.15, "local.medium": 0.30, "local.large": 0.60, "t2.small": 0.01}


def _local(cpu_capacity, objective="time"):
    k = candidates.Constraints(objective=objective, cpu_capacity=cpu_capacity)
    cands, _rest = candidates.build_candidates(LinearModel(LOCAL_SPEED), LOCAL, sorted(LOCAL_SPEED), list(range(1, 9)), k)
    ordered = candidates.rank(cands, objective)
    chosen, msg = candidates.decide(ordered, objective)
    return {(c.instance_type, c.nodes): c for c in cands}, chosen, msg, k


def test_without_a_capacity_time_takes_more_shares_than_two_cores_hold():
    _rest, chosen, _rest2, _rest3 = _local(None)
    assert chosen.nodes == 8  # what -e paramount_objective=time did on a 2-core machine before capacities


def test_cpu_shares_above_the_capacity_are_infeasible_with_the_reason():
    by, chosen, _rest, k = _local(1.5)  # 2 cores less the 0.5 reserve
    medium8 = by[("local.medium", 8)]
    assert not medium8.feasible
    assert "CPU shares 8 x 0.3 = 2.4 cores > cpu_capacity 1.5 cores" in medium8.reason
    assert [v[0] for v in medium8.violations] == ["cpu_capacity"]
    assert by[("local.medium", 5)].feasible  # 5 x 0.30 = 1.5 fits exactly (no floating-point miss)
    assert by[("local.large", 2)].feasible and not by[("local.large", 3)].feasible
    assert by[("local.small", 8)].feasible  # 1.2 cores
    assert chosen.cpu_cores <= 1.5 and (chosen.instance_type, chosen.nodes) != ("local.medium", 8)
    # a type without a cpu_share (a real cloud type) is not limited by this machine
    assert by[("t2.small", 8)].feasible and by[("t2.small", 8)].cpu_cores is None
    # plan.json: additive keys
    d = medium8.as_dict()
    assert (d["cpu_share"], d["cpu_cores"], d["node_limit"]) == (0.3, 2.4, None)
    assert k.as_dict([1], None, None)["cpu_capacity"] == 1.5
    assert candidates.Constraints().as_dict([1], None, None)["cpu_capacity"] is None


def test_a_capacity_below_every_share_leaves_nothing_feasible_and_says_why():
    k = candidates.Constraints(objective="cost", cpu_capacity=0.0)
    cands, _rest = candidates.build_candidates(LinearModel(LOCAL_SPEED), LOCAL, ["local.small"], [1, 2], k)
    chosen, msg = candidates.decide(candidates.rank(cands, "cost"), "cost")
    assert chosen is None
    assert "no configuration satisfies the constraints" in msg and "cpu_capacity 0 cores" in msg


def test_node_limit_and_cpu_capacity_are_both_reported():
    cat = dict(LOCAL, **{"local.large": CatalogEntry("local.large", 1, 2, 0, 0.050, "test", cpu_share=0.60,
                                                     node_limit=2)})
    k = candidates.Constraints(objective="time", cpu_capacity=1.5)
    cands, _rest = candidates.build_candidates(LinearModel(LOCAL_SPEED), cat, ["local.large"], [1, 2, 3], k)
    three = {c.nodes: c for c in cands}[3]
    assert [v[0] for v in three.violations] == ["node_limit", "cpu_capacity"]
    assert "3 nodes > node_limit 2 of local.large in the catalog (quota)" in three.reason
    assert "1.8 cores > cpu_capacity 1.5" in three.reason
    assert three.as_dict()["node_limit"] == 2
