"""Autoscale: live-log measurement, the decision (triggers, guardrails, cooldown), the settings document, the
planner called in-process on a live measurement, and the loop with a fake cluster."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ansible_collections.paramount.cluster.plugins.plugin_utils.autoscale import controller as ctl_mod
from ansible_collections.paramount.cluster.plugins.plugin_utils.autoscale import desired as desired_mod
from ansible_collections.paramount.cluster.plugins.plugin_utils.autoscale import live
from ansible_collections.paramount.cluster.plugins.plugin_utils.autoscale import policy as a
from ansible_collections.paramount.cluster.plugins.plugin_utils.autoscale import replan
from ansible_collections.paramount.cluster.plugins.plugin_utils.autoscale import settings as settings_mod

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
CATALOG = os.path.join(REPO, "catalogs", "default.csv")
PRICES = {"sim.small": 0.010, "sim.medium": 0.018, "sim.large": 0.050}
WORKLOAD = "esrgan-autoscale-test"


def formation_records(fid, hosts, t0, steps, spi, resume_samples=0, resume_step=0, batch=4, samples_per_epoch=400,
                      epochs=10, end=None, run_id="r-train", warmup_steps=0, warmup_spi=None):
    """Records of one formation (log contract v1, as the elastic trainer writes them): a start per host (one rank
    per node), `steps` iterations of `spi` seconds, the first `warmup_steps` of them warm-up steps of
    `warmup_spi` seconds."""
    recs = []
    world = len(hosts)
    per_epoch = -(-samples_per_epoch // (world * batch))
    for rank, (host, itype) in enumerate(sorted(hosts.items())):
        base = {"schema": 1, "run_id": run_id, "host": host, "rank": rank, "attempt": 0}
        recs.append(dict(base, event="start", time=t0, formation=fid, instance_type=itype, local_rank=0,
                         world_size=world, nodes=world, local_batch=batch, samples_per_epoch=samples_per_epoch,
                         iterations_per_epoch=per_epoch, epochs=epochs, warmup_iterations=0, workload=WORKLOAD,
                         resume_samples_seen=resume_samples, resume_step=resume_step))
        for i in range(steps):
            step = resume_step + i
            seconds, phase = (warmup_spi, "warmup") if i < warmup_steps else (spi, "adversarial")
            recs.append(dict(base, event="iteration", time=t0 + (i + 1) * spi, step=step, epoch=step // per_epoch,
                             iteration=step % per_epoch, seconds=seconds, compute_seconds=seconds, samples=batch,
                             phase=phase))
        if end:
            recs.append(dict(base, event="end", time=t0 + steps * spi + 1, status=end, seconds=steps * spi + 1,
                             samples_seen=resume_samples + steps * world * batch))
    return recs


def plan_with(itype, nodes, spi=0.5):
    chosen = {"instance_type": itype, "nodes": nodes, "seconds_per_iteration": spi,
              "seconds_per_iteration_by_phase": {"adversarial": spi}, "hourly_cost": nodes * PRICES[itype]}
    return {"chosen": chosen, "candidates": [dict(chosen, rank=1)]}


HETERO = {"n-small": "sim.small", "n-medium": "sim.medium", "n-large": "sim.large"}


def test_live_state_splits_formations_and_counts_samples():
    recs = formation_records("f1", HETERO, 100.0, 10, 2.0)
    recs += formation_records("f2", {"n-large": "sim.large"}, 130.0, 5, 1.0, resume_samples=120, resume_step=10)
    state = live.live_state(sorted(recs, key=lambda r: r["time"]))
    assert [f.formation_id for f in state.formations] == ["f1", "f2"]
    assert state.formations[0].samples_seen == 10 * 3 * 4
    assert state.current.samples_seen == 120 + 5 * 4
    assert state.total_samples == 4000 and state.remaining_samples == 4000 - 140
    assert state.current.seconds_per_iteration(skip=1) == pytest.approx(1.0)
    assert live.lost_progress(state.formations, 10) == [("f2", 0, 0.0, True)]


def test_lost_progress_counts_steps_repeated_after_a_hard_failure():
    recs = formation_records("f1", HETERO, 0.0, 25, 1.0)  # reached 300 samples, checkpoint at 240 (step 20)
    recs += formation_records("f2", {"n-large": "sim.large", "n-medium": "sim.medium"}, 40.0, 5, 1.0,
                              resume_samples=240, resume_step=20)
    state = live.live_state(sorted(recs, key=lambda r: r["time"]))
    (_fid, repeated, steps, within), = live.lost_progress(state.formations, 10)
    assert repeated == 60 and steps == 5 and within
    assert not live.lost_progress(state.formations, 4)[0][3]


def test_read_records_skips_partial_lines(tmp_path):
    recs = formation_records("f1", {"a": "sim.small"}, 0.0, 3, 1.0)
    text = "".join(json.dumps(r) + "\n" for r in recs) + '{"event": "iteration", "ho'
    (tmp_path / "a.log").write_text(text)
    assert len(live.read_records(str(tmp_path))) == len(recs)


def state_of(hosts, steps=20, spi=2.0, **kw):
    return live.live_state(formation_records("f1", hosts, 0.0, steps, spi, **kw))


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


def test_the_running_formation_is_judged_by_its_steps_in_the_phase_the_plan_predicts():
    # warm-up steps train the generator alone: 4x cheaper here than the adversarial steps the plan predicts
    state = state_of(HETERO, steps=12, spi=2.0, warmup_steps=10, warmup_spi=0.5)
    d = a.decide(state, plan_with("sim.medium", 1, spi=0.8), HETERO, PRICES, GUARD, POLICY, now=1000.0)
    assert d.action == "wait" and "steady adversarial iteration" in d.reason, d.reason
    state = state_of(HETERO, steps=16, spi=2.0, warmup_steps=10, warmup_spi=0.5)
    assert state.current.seconds_per_iteration() == pytest.approx(0.5)  # over all phases: mostly warm-up steps
    d = a.decide(state, plan_with("sim.medium", 1, spi=0.8), HETERO, PRICES, GUARD, POLICY, now=1000.0)
    assert d.figures["seconds_per_iteration"] == pytest.approx(2.0) and d.figures["phase"] == "adversarial"
    assert d.action == "replace", d.reason


def test_lost_nodes_are_restored_and_completion_finishes():
    state = state_of(HETERO)
    d = a.decide(state, None, HETERO, PRICES, GUARD, POLICY, now=0, lost=["n-small"])
    assert d.action == "restore" and "n-small" in d.reason
    done = live.live_state(formation_records("f1", HETERO, 0.0, 10, 1.0, end="completed"))
    assert a.decide(done, None, HETERO, PRICES, GUARD, POLICY, now=0).action == "finish"


def test_guardrail_and_policy_validation():
    with pytest.raises(a.AutoscaleError, match="max_nodes"):
        a.Guardrails(min_nodes=3, max_nodes=2).validate()
    with pytest.raises(a.AutoscaleError, match="objective"):
        a.Policy(objective="speed").validate()


def test_target_slots_keep_nodes_of_the_type_and_never_reuse_names():
    desired = {"r-sim-medium-1": "sim.medium", "x": "sim.small"}
    slots = desired_mod.target_slots("sim.medium", 3, desired, "r")
    assert "r-sim-medium-1" in slots and len(slots) == 3
    assert set(slots) - {"r-sim-medium-1"} == {"r-sim-medium-2", "r-sim-medium-3"}
    doc = desired_mod.inventory_doc(slots)
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

    def plan(self, round_dir, state, desired):
        self.calls.append(("plan", round_dir))
        return plan_with("sim.medium", 2, spi=0.5)

    def join(self, union_path, hosts):
        self.calls.append(("join", sorted(hosts)))

    def leave(self, hosts):
        self.calls.append(("leave", sorted(hosts)))

    def shrink(self, desired_path):
        self.calls.append(("shrink", sorted(desired_mod.read_inventory_slots(desired_path))))


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
    ctl = ctl_mod.Controller(cluster, cluster.plan, "r", str(tmp_path), HETERO, PRICES, GUARD, POLICY, interval=0,
                             join_timeout=100, checkpoint_interval=10, clock=lambda: float(next(clock)),
                             sleep=lambda s: None, echo=lambda s: None)
    assert ctl.loop(max_rounds=10) == "completed"
    kinds = [c[0] for c in cluster.calls]
    assert kinds[:4] == ["plan", "join", "leave", "shrink"] and set(kinds[4:]) <= {"plan"}
    assert cluster.calls[1] == ("join", ["r-sim-medium-1"])
    assert cluster.calls[2] == ("leave", ["n-large", "n-small"])
    assert cluster.calls[3] == ("shrink", ["n-medium", "r-sim-medium-1"])
    log = [json.loads(line) for line in (tmp_path / "autoscale" / ctl_mod.DECISIONS_FILE).read_text().splitlines()]
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
    ctl = ctl_mod.Controller(cluster, cluster.plan, "r", str(tmp_path), HETERO, PRICES, GUARD, POLICY, interval=0,
                             clock=lambda: float(next(clock)), sleep=lambda s: None, echo=lambda s: None)
    ctl.loop(max_rounds=2)
    assert ctl.desired == HETERO
    assert ("leave", ["r-sim-medium-1"]) in cluster.calls
    assert ("shrink", sorted(HETERO)) in cluster.calls
    log = [json.loads(line) for line in (tmp_path / "autoscale" / ctl_mod.DECISIONS_FILE).read_text().splitlines()]
    failed = [d for d in log if d["action"] == "failed"]
    assert failed and "old cluster keeps training" in failed[0]["reason"] and "no capacity" in failed[0]["reason"]


def test_a_worse_plan_is_held_and_an_ended_group_is_waited_for():
    hosts = {"m1": "sim.medium"}
    state = state_of(hosts, spi=1.0)
    d = a.decide(state, plan_with("sim.small", 1, spi=5.0), hosts, PRICES, GUARD, POLICY, now=1000.0)
    assert d.action == "hold" and "more" in d.reason
    ended = live.live_state(formation_records("f1", hosts, 0.0, 20, 1.0, end="failed"))
    d = a.decide(ended, plan_with("sim.small", 1, spi=0.1), hosts, PRICES, GUARD, POLICY, now=1000.0)
    assert d.action == "wait" and "failed" in d.reason


def write_log(folder, name, records):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "w", encoding="utf-8") as handle:
        handle.write("".join(json.dumps(r) + "\n" for r in records))


def test_the_planner_runs_in_process_on_the_live_formation_and_the_other_types_probes(tmp_path):
    """Probes rated small 1.0 s, medium 1.0 s and large 0.5 s per iteration; live, the running small node is slow
    (2.0 s): the round's plan rates sim.small by the live formation, the others by their probes."""
    probe = tmp_path / "probe"
    for itype, spi in (("sim.small", 1.0), ("sim.medium", 1.0), ("sim.large", 0.5)):
        write_log(str(probe / itype), "p-%s.log" % itype.replace(".", "-"),
                  formation_records("p", {"p-" + itype: itype}, 0.0, 12, spi, run_id="probe-" + itype,
                                    end="stopped"))
    hosts = {"n-small": "sim.small"}
    state = live.live_state(formation_records("f1", hosts, 100.0, 20, 2.0))
    guard = a.Guardrails(min_nodes=1, max_nodes=2, cooldown_seconds=0)
    planner = replan.Planner("r", CATALOG, "cost", {"tie_tolerance": 0.0}, guard, str(probe))
    plan = planner.plan(str(tmp_path / "round-001"), state, hosts)
    assert plan["chosen"] is not None, plan.get("message")
    assert plan["constraints"]["max_nodes"] == 2 and plan["constraints"]["node_counts"] == [1, 2]
    assert sorted(os.listdir(tmp_path / "round-001" / "logs")) == [
        "live-n-small.log", "probe-p-sim-large.log", "probe-p-sim-medium.log"]
    assert (tmp_path / "round-001" / "plan" / "plan.json").is_file()
    small = [c for c in plan["candidates"] if c["instance_type"] == "sim.small" and c["nodes"] == 1][0]
    assert small["seconds_per_iteration"] == pytest.approx(2.0, rel=0.05)  # the live speed, not the probe's 1.0
    assert plan["chosen"]["instance_type"] == "sim.medium"  # the cheapest per sample now: 0.018 x 1.0 s


def test_the_planner_reports_bad_input_as_a_plan_without_a_choice(tmp_path):
    state = live.live_state(formation_records("f1", {"n-small": "sim.small"}, 0.0, 20, 2.0))
    planner = replan.Planner("r", str(tmp_path / "missing.csv"), "cost")
    plan = planner.plan(str(tmp_path / "round-001"), state, {"n-small": "sim.small"})
    assert plan["chosen"] is None and "missing.csv" in plan["message"]


def test_plan_options_are_checked_by_the_plugins_argument_spec():
    assert replan.check_plan_options({"max_nodes": "3", "plots": "yes"}) == {"max_nodes": 3, "plots": True}
    with pytest.raises(a.AutoscaleError, match="plan_options: unsupported setting.*speed"):
        replan.check_plan_options({"speed": 1})
    with pytest.raises(a.AutoscaleError, match="objective"):
        replan.check_plan_options({"objective": "speed"})
    with pytest.raises(a.AutoscaleError, match="results_dir is set by the controller"):
        replan.check_plan_options({"results_dir": "/tmp"})


def settings_doc(tmp_path, **over):
    doc = {"run": "r", "backend": "sim", "results_dir": str(tmp_path / "results"), "local_root": str(tmp_path),
           "extra_vars_file": str(tmp_path / "vars.json"), "start_inventory": str(tmp_path / "start.yml"),
           "catalog": CATALOG, "max_hourly_cost": None}
    doc.update(over)
    return doc


def test_settings_fill_defaults_and_name_a_bad_setting(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(settings_doc(tmp_path, interval="10", max_nodes=3, plan_options={"epochs": 2})))
    settings = settings_mod.load_settings(str(path))
    assert settings.interval == 10.0 and settings.max_rounds == settings_mod.DEFAULT_MAX_ROUNDS
    assert settings.guardrails.max_nodes == 3 and settings.guardrails.max_hourly_cost is None
    assert settings.policy.objective == "cost" and settings.plan_options == {"epochs": 2}
    bad = [({"interval": 0}, "interval must be > 0"), ({"interval": "soon"}, "'interval'"),
           ({"min_nodes": 3, "max_nodes": 2}, "max_nodes"), ({"objective": "speed"}, "objective"),
           ({"cooldown": -1}, "cooldown must be >= 0"), ({"cooldown_seconds": 5}, "unsupported setting"),
           ({"plan_options": {"bootstrap": "x"}}, "bootstrap"), ({"run": None}, "missing required arguments: run"),
           ({"store_port": 70000}, "store_port")]
    for over, match in bad:
        with pytest.raises(a.AutoscaleError, match=match):
            settings_mod.check_settings(settings_doc(tmp_path, **over))
    with pytest.raises(a.AutoscaleError, match="cannot read the settings"):
        settings_mod.load_settings(str(tmp_path / "missing.json"))


def test_check_mode_reads_the_start_inventory_and_the_catalog(tmp_path, capsys):
    start = tmp_path / "start.yml"
    start.write_text(json.dumps(desired_mod.inventory_doc({"m1": "sim.medium", "m2": "sim.unknown"})))
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(settings_doc(tmp_path)))
    assert ctl_mod.main(["--check", str(path)]) == 2
    assert "no price for sim.unknown" in capsys.readouterr().err
    start.write_text(json.dumps(desired_mod.inventory_doc({"m1": "sim.medium", "m2": "sim.medium"})))
    path.write_text(json.dumps(settings_doc(tmp_path, max_hourly_cost=0.02)))
    assert ctl_mod.main(["--check", str(path)]) == 2
    assert "outside the guardrails" in capsys.readouterr().err
    path.write_text(json.dumps(settings_doc(tmp_path)))
    assert ctl_mod.main(["--check", str(path)]) == 0
    # as the playbook starts it: a fresh Python with the collection on PYTHONPATH
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, ".build", "collections"))
    proc = subprocess.run([sys.executable, "-m", ctl_mod.__name__, "--check", str(path)], env=env, cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr


def test_guardrails_are_the_planners_constraints():
    guard = a.Guardrails(min_nodes=2, max_nodes=4, max_hourly_cost=0.1)
    assert guard.plan_options() == {"max_nodes": 4, "node_counts": [2, 3, 4], "max_hourly_cost": 0.1}
    assert guard.violations(1, 0.01) == ["1 node(s) < min_nodes 2"]
    assert guard.violations(3, 0.3)[0].startswith("cluster costs") and guard.violations(3, 0.09) == []


def _playbook_settings(tmp_path, **extra):
    """The settings document playbooks/autoscale.yml writes, templated by Ansible's Templar from the play's
    defaults (as -e gives them: strings), then serialized as the copy task does (to_nice_json)."""
    import yaml  # pylint: disable=import-outside-toplevel
    from ansible.parsing.dataloader import DataLoader  # pylint: disable=import-outside-toplevel
    from ansible.template import Templar  # pylint: disable=import-outside-toplevel

    from ...templating import trusted  # pylint: disable=import-outside-toplevel

    play = yaml.safe_load(open(os.path.join(REPO, "playbooks", "autoscale.yml"), encoding="utf-8"))[0]
    defaults = yaml.safe_load(open(os.path.join(REPO, "playbooks", "vars", "defaults.yml"), encoding="utf-8"))
    task = [t for t in play["tasks"] if t.get("name") == "Write the controller's settings"][0]
    variables = {k: v for k, v in defaults.items() if k.startswith("paramount_autoscale_")}
    variables.update(play["vars"], **task["vars"])
    variables.update(paramount_run="r", paramount_backend="local", paramount_results_dir=str(tmp_path / "results"),
                     paramount_local_root=str(tmp_path / "runs"), paramount_catalog=CATALOG,
                     paramount_objective="cost", paramount_plan_options={}, paramount_cpu_capacity=1.5,
                     paramount_rdzv_store_host="", paramount_checkpoint_interval=0, paramount_sim_state="",
                     paramount_autoscale_start_inventory=str(tmp_path / "start.yml"))
    variables.update(extra)
    templar = Templar(loader=DataLoader(), variables=trusted(variables))
    text = templar.template(trusted(task["ansible.builtin.copy"]["content"]))
    return play, json.loads(text)


def test_the_playbooks_settings_document_passes_the_controllers_checks(tmp_path):
    play, doc = _playbook_settings(tmp_path, paramount_autoscale_interval="10", paramount_autoscale_max_nodes="3",
                                   paramount_autoscale_max_hourly_cost="0.1", paramount_checkpoint_interval="10",
                                   paramount_autoscale_plan_within_guardrails="false")
    assert set(doc) <= set(settings_mod.SETTINGS_SPEC)
    settings = settings_mod.check_settings(doc)
    assert settings.interval == 10.0 and settings.guardrails.max_nodes == 3
    assert settings.guardrails.max_hourly_cost == 0.1 and settings.checkpoint_interval == 10
    assert settings.plan_within_guardrails is False and settings.store_host == "127.0.0.1"
    assert settings.plan_options == {"cpu_capacity": 1.5}  # the measured capacity on an emulated backend
    _play, doc = _playbook_settings(tmp_path)  # the defaults: no cost guardrail, no checkpoint interval
    settings = settings_mod.check_settings(doc)
    assert settings.max_hourly_cost is None and settings.checkpoint_interval is None
    assert settings.cooldown == a.Guardrails.cooldown_seconds and settings.plan_within_guardrails is True
    # the module the playbook starts is the controller's entry point
    assert play["vars"]["_controller_module"] == ctl_mod.__name__
