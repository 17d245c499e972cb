"""Autoscale: live-log measurement, the decision (triggers, guardrails, cooldown) and the loop with a fake cluster."""
from __future__ import annotations

import json

import pytest

from ansible_collections.paramount.cluster.plugins.plugin_utils import paramount_autoscale as a

PRICES = {"sim.small": 0.010, "sim.medium": 0.018, "sim.large": 0.050}


def formation_records(fid, hosts, t0, steps, spi, resume_samples=0, resume_step=0, batch=4, samples_per_epoch=400,
                      epochs=10, end=None):
    """Records of one formation: a start per host (one rank per node), `steps` iterations of `spi` seconds."""
    recs = []
    world = len(hosts)
    for rank, (host, itype) in enumerate(sorted(hosts.items())):
        recs.append({"event": "start", "host": host, "rank": rank, "attempt": 0, "time": t0, "formation": fid,
                     "instance_type": itype, "world_size": world, "local_batch": batch,
                     "samples_per_epoch": samples_per_epoch, "epochs": epochs,
                     "resume_samples_seen": resume_samples, "resume_step": resume_step})
        for i in range(steps):
            recs.append({"event": "iteration", "host": host, "rank": rank, "attempt": 0, "time": t0 + (i + 1) * spi,
                         "step": resume_step + i, "seconds": spi, "phase": "adversarial"})
        if end:
            recs.append({"event": "end", "host": host, "rank": rank, "attempt": 0, "time": t0 + steps * spi + 1,
                         "status": end, "samples_seen": resume_samples + steps * world * batch})
    return recs


def plan_with(itype, nodes, spi=0.5):
    chosen = {"instance_type": itype, "nodes": nodes, "seconds_per_iteration": spi,
              "seconds_per_iteration_by_phase": {"adversarial": spi}, "hourly_cost": nodes * PRICES[itype]}
    return {"chosen": chosen, "candidates": [dict(chosen, rank=1)]}


HETERO = {"n-small": "sim.small", "n-medium": "sim.medium", "n-large": "sim.large"}


def test_live_state_splits_formations_and_counts_samples():
    recs = formation_records("f1", HETERO, 100.0, 10, 2.0)
    recs += formation_records("f2", {"n-large": "sim.large"}, 130.0, 5, 1.0, resume_samples=120, resume_step=10)
    state = a.live_state(sorted(recs, key=lambda r: r["time"]))
    assert [f.formation_id for f in state.formations] == ["f1", "f2"]
    assert state.formations[0].samples_seen == 10 * 3 * 4
    assert state.current.samples_seen == 120 + 5 * 4
    assert state.total_samples == 4000 and state.remaining_samples == 4000 - 140
    assert state.current.seconds_per_iteration(skip=1) == pytest.approx(1.0)
    assert a.lost_progress(state.formations, 10) == [("f2", 0, 0.0, True)]


def test_lost_progress_counts_steps_repeated_after_a_hard_failure():
    recs = formation_records("f1", HETERO, 0.0, 25, 1.0)  # reached 300 samples, checkpoint at 240 (step 20)
    recs += formation_records("f2", {"n-large": "sim.large", "n-medium": "sim.medium"}, 40.0, 5, 1.0,
                              resume_samples=240, resume_step=20)
    state = a.live_state(sorted(recs, key=lambda r: r["time"]))
    (_fid, repeated, steps, within), = a.lost_progress(state.formations, 10)
    assert repeated == 60 and steps == 5 and within
    assert not a.lost_progress(state.formations, 4)[0][3]


def test_read_records_skips_partial_lines(tmp_path):
    recs = formation_records("f1", {"a": "sim.small"}, 0.0, 3, 1.0)
    text = "".join(json.dumps(r) + "\n" for r in recs) + '{"event": "iteration", "ho'
    (tmp_path / "a.log").write_text(text)
    assert len(a.read_records(str(tmp_path))) == len(recs)


def state_of(hosts, steps=20, spi=2.0, **kw):
    return a.live_state(formation_records("f1", hosts, 0.0, steps, spi, **kw))


POLICY = a.Policy(objective="cost", threshold=0.25, margin=0.10, switch_seconds=30, min_iterations=5)
GUARD = a.Guardrails(min_nodes=1, max_nodes=4, max_hourly_cost=0.2, cooldown_seconds=60)


def test_replace_when_the_plan_saves_more_than_the_margin():
    state = state_of(HETERO, spi=2.0)  # 0.078/h, slow: the small node drags everyone
    d = a.decide(state, plan_with("sim.medium", 1, spi=0.8), HETERO, PRICES, GUARD, POLICY, now=1000.0)
    assert d.action == "replace", d.reason
    assert d.target["instance_type"] == "sim.medium" and d.target["nodes"] == 1
    assert "saves" in d.reason and d.figures["gain"] > 0.10


def test_hold_when_the_gain_is_below_the_margin():
    hosts = {"m1": "sim.medium"}
    state = state_of(hosts, spi=1.0)
    # the other configuration is only a little cheaper per sample
    d = a.decide(state, plan_with("sim.small", 1, spi=1.6), hosts, PRICES, GUARD, POLICY, now=1000.0)
    assert d.action == "hold" and "only" in d.reason


def test_cooldown_holds_a_good_change():
    state = state_of(HETERO, spi=2.0)
    d = a.decide(state, plan_with("sim.medium", 1, spi=0.8), HETERO, PRICES, GUARD, POLICY, now=1000.0,
                 last_change=980.0)
    assert d.action == "hold" and "cooldown" in d.reason


def test_a_plan_above_the_guardrails_is_refused():
    state = state_of(HETERO, spi=2.0)
    d = a.decide(state, plan_with("sim.large", 6, spi=0.3), HETERO, PRICES, GUARD, POLICY, now=1000.0)
    assert d.action == "refuse"
    assert "max_nodes 4" in d.reason and "max_hourly_cost" in d.reason and "nothing changes" in d.reason


def test_an_operator_request_passes_the_same_guardrails():
    state = state_of(HETERO, spi=2.0)
    d = a.decide(state, None, HETERO, PRICES, GUARD, POLICY, now=1000.0,
                 request={"instance_type": "sim.large", "nodes": 5})
    assert d.action == "refuse" and "requested sim.large x 5" in d.reason


def test_drift_alone_does_not_move_a_cluster_the_plan_still_wants():
    hosts = {"m1": "sim.medium", "m2": "sim.medium"}
    state = state_of(hosts, spi=2.0)
    expected = {"instance_type": "sim.medium", "nodes": 2, "seconds_per_iteration": 1.0}
    d = a.decide(state, plan_with("sim.medium", 2, spi=2.0), hosts, PRICES, GUARD, POLICY, now=1000.0,
                 expected=expected)
    assert d.action == "hold" and "off the prediction" in d.reason and d.figures["drift"] == pytest.approx(1.0)


def test_drift_with_any_gain_replaces():
    hosts = {"m1": "sim.medium"}
    state = state_of(hosts, spi=2.0)  # expected 1.0: the type slowed down
    expected = {"instance_type": "sim.medium", "nodes": 1, "seconds_per_iteration": 1.0}
    plan = plan_with("sim.small", 1, spi=3.2)  # barely cheaper than the slowed medium
    d = a.decide(state, plan, hosts, PRICES, GUARD, a.Policy(margin=0.5, switch_seconds=0), now=1000.0,
                 expected=expected)
    assert d.action == "replace" and "off the prediction" in d.reason


def test_wait_while_measuring_and_while_reforming():
    state = state_of(HETERO, steps=4)
    assert a.decide(state, None, HETERO, PRICES, GUARD, POLICY, now=0).action == "wait"
    state = state_of({"n-large": "sim.large"}, steps=30)
    d = a.decide(state, None, HETERO, PRICES, GUARD, POLICY, now=0)
    assert d.action == "wait" and "re-forming" in d.reason


def test_lost_nodes_are_restored_and_completion_finishes():
    state = state_of(HETERO)
    d = a.decide(state, None, HETERO, PRICES, GUARD, POLICY, now=0, lost=["n-small"])
    assert d.action == "restore" and "n-small" in d.reason
    done = a.live_state(formation_records("f1", HETERO, 0.0, 10, 1.0, end="completed"))
    assert a.decide(done, None, HETERO, PRICES, GUARD, POLICY, now=0).action == "finish"


def test_guardrail_and_policy_validation():
    with pytest.raises(a.AutoscaleError, match="max_nodes"):
        a.Guardrails(min_nodes=3, max_nodes=2).validate()
    with pytest.raises(a.AutoscaleError, match="objective"):
        a.Policy(objective="speed").validate()


def test_target_slots_keep_nodes_of_the_type_and_never_reuse_names():
    desired = {"r-sim-medium-1": "sim.medium", "x": "sim.small"}
    slots = a.target_slots("sim.medium", 3, desired, "r")
    assert "r-sim-medium-1" in slots and len(slots) == 3
    assert set(slots) - {"r-sim-medium-1"} == {"r-sim-medium-2", "r-sim-medium-3"}
    doc = a.inventory_doc(slots)
    hosts = doc["all"]["children"]["paramount_train"]["hosts"]
    assert sum(1 for h in hosts.values() if h.get("paramount_rendezvous")) == 1


class FakeCluster:
    """Replays a scripted training: each observe() returns the records so far; actions are recorded."""

    def __init__(self, script):
        self.script = script  # list of (records, agents)
        self.calls = []
        self.i = 0

    def observe(self):
        recs, agents = self.script[min(self.i, len(self.script) - 1)]
        self.i += 1
        return recs, agents

    def plan(self, results_dir, output_dir, current):
        self.calls.append(("plan", results_dir))
        return plan_with("sim.medium", 2, spi=0.5)

    def join(self, union_path, hosts):
        self.calls.append(("join", sorted(hosts)))

    def leave(self, hosts):
        self.calls.append(("leave", sorted(hosts)))

    def shrink(self, desired_path):
        self.calls.append(("shrink", sorted(a.read_inventory_slots(desired_path))))


def test_controller_replaces_then_finishes(tmp_path):
    running = {h: "running" for h in HETERO}
    r1 = formation_records("f1", HETERO, 0.0, 20, 2.0)
    # the plan wants 2 x sim.medium: the running medium node stays (its agent keeps running), one joins
    new = {"n-medium": "sim.medium", "r-sim-medium-1": "sim.medium"}
    # after the join both old and new run (f2), after the leave only the new ones (f3), then it completes
    r2 = r1 + formation_records("f2", dict(HETERO, **new), 50.0, 3, 2.0, resume_samples=240, resume_step=20)
    r3 = r2 + formation_records("f3", new, 70.0, 10, 0.8, resume_samples=288, resume_step=23)
    r4 = r3 + formation_records("f4", new, 90.0, 1, 0.8, resume_samples=328, resume_step=33, end="completed")
    both = dict(running, **{"r-sim-medium-1": "running"})
    script = [(r1, running), (r2, both), (r3, both), (r4, both)]
    cluster = FakeCluster(script)
    clock = iter(range(1000, 100000, 10))
    ctl = a.Controller(cluster, "r", str(tmp_path), HETERO, PRICES, GUARD, POLICY, interval=0, join_timeout=100,
                       checkpoint_interval=10, clock=lambda: float(next(clock)), sleep=lambda s: None,
                       echo=lambda s: None)
    assert ctl.loop(max_rounds=10) == "completed"
    kinds = [c[0] for c in cluster.calls]
    assert kinds[:4] == ["plan", "join", "leave", "shrink"] and set(kinds[4:]) <= {"plan"}
    assert cluster.calls[1] == ("join", ["r-sim-medium-1"])
    assert cluster.calls[2] == ("leave", ["n-large", "n-small"])
    assert cluster.calls[3] == ("shrink", ["n-medium", "r-sim-medium-1"])
    log = [json.loads(line) for line in (tmp_path / "autoscale" / a.DECISIONS_FILE).read_text().splitlines()]
    actions = [d["action"] for d in log]
    assert actions[:2] == ["replace", "changed"] and actions[-1] == "finish"
    assert set(actions[2:-1]) <= {"hold", "wait"}, actions
    summary = json.loads((tmp_path / "autoscale" / "summary.json").read_text())
    assert summary["outcome"] == "completed" and summary["formations"] == 4
    assert all(item["within_interval"] for item in summary["lost_progress"])
    report = (tmp_path / "autoscale" / "report.md").read_text()
    assert "timeline.png" in report and "| replace | plan sim.medium x 2" in report and "| changed |" in report


def test_controller_keeps_the_old_cluster_when_joining_fails(tmp_path):
    running = {h: "running" for h in HETERO}
    r1 = formation_records("f1", HETERO, 0.0, 20, 2.0)

    class FailingJoin(FakeCluster):
        def join(self, union_path, hosts):
            self.calls.append(("join", sorted(hosts)))
            raise a.AutoscaleError("paramount.cluster.join failed (rc 2): no capacity")

    cluster = FailingJoin([(r1, running)])
    clock = iter(range(1000, 100000, 10))
    ctl = a.Controller(cluster, "r", str(tmp_path), HETERO, PRICES, GUARD, POLICY, interval=0,
                       clock=lambda: float(next(clock)), sleep=lambda s: None, echo=lambda s: None)
    ctl.loop(max_rounds=2)
    assert ctl.desired == HETERO
    assert ("leave", ["r-sim-medium-1"]) in cluster.calls
    assert ("shrink", sorted(HETERO)) in cluster.calls
    log = [json.loads(line) for line in (tmp_path / "autoscale" / a.DECISIONS_FILE).read_text().splitlines()]
    failed = [d for d in log if d["action"] == "failed"]
    assert failed and "old cluster keeps training" in failed[0]["reason"] and "no capacity" in failed[0]["reason"]


def test_a_worse_plan_is_held_and_an_ended_group_is_waited_for():
    hosts = {"m1": "sim.medium"}
    state = state_of(hosts, spi=1.0)
    d = a.decide(state, plan_with("sim.small", 1, spi=5.0), hosts, PRICES, GUARD, POLICY, now=1000.0)
    assert d.action == "hold" and "more" in d.reason
    ended = a.live_state(formation_records("f1", hosts, 0.0, 20, 1.0, end="failed"))
    d = a.decide(ended, plan_with("sim.small", 1, spi=0.1), hosts, PRICES, GUARD, POLICY, now=1000.0)
    assert d.action == "wait" and "failed" in d.reason
