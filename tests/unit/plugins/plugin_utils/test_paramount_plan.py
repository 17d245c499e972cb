"""optimize() end to end on generated probe logs (no Ansible)."""
from __future__ import annotations

import json
import math
import os

import pytest
import yaml

from ansible_collections.paramount.cluster.plugins.plugin_utils.clap.cluster import validate_clap_cluster
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_common import ParamountError
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_plan import optimize

from .optimize_testlib import probe

PLAN_KEYS = {"schema_version", "objective", "constraints", "chosen", "candidates", "excluded", "search_cost",
             "start", "stop", "keep"}
CHOSEN_KEYS = {"instance_type", "nodes", "predicted_seconds", "predicted_cost", "seconds_per_iteration", "iterations"}


@pytest.fixture(scope="module")
def one_node_probes(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe1")
    probe(root, counts=(1,))
    return str(root)


@pytest.fixture(scope="module")
def scaling_probes(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe12")
    probe(root, counts=(1, 2), heterogeneous=True)
    return str(root)


def test_sim_types_cost_prefers_medium_and_time_prefers_large(one_node_probes, tmp_path):
    r = optimize({"results_dir": one_node_probes, "objective": "cost", "output_dir": str(tmp_path / "c"),
                  "bootstrap": 20})
    assert r["plan"]["chosen"]["instance_type"] == "sim.medium"
    r = optimize({"results_dir": one_node_probes, "objective": "time", "output_dir": str(tmp_path / "t"),
                  "bootstrap": 20})
    assert r["plan"]["chosen"]["instance_type"] == "sim.large"
    # only 1-node probes: other counts are listed as not predictable, not silently dropped
    two = [c for c in r["plan"]["candidates"] if c["nodes"] == 2 and c["instance_type"] == "sim.large"]
    assert two and "no probe run with more than one node" in two[0]["reason"]


def test_plan_json_inventory_clap_report_and_plots(scaling_probes, tmp_path):
    od = tmp_path / "plan"
    r = optimize({"results_dir": scaling_probes, "objective": "time", "output_dir": str(od), "max_nodes": 4,
                  "setup_seconds": 30, "bootstrap": 20})
    assert r["changed"] and not r.get("failed")
    plan = json.loads((od / "plan.json").read_text())
    assert PLAN_KEYS <= set(plan) and plan["schema_version"] == 1
    assert CHOSEN_KEYS <= set(plan["chosen"])
    assert r["ansible_facts"]["paramount_plan"] == plan == r["plan"]
    for c in plan["candidates"]:
        assert CHOSEN_KEYS | {"measured", "feasible", "reason"} <= set(c)
    ranks = [c["rank"] for c in plan["candidates"]]
    assert ranks == sorted(ranks)
    ch = plan["chosen"]
    assert plan["candidates"][0]["instance_type"] == ch["instance_type"]
    assert ch["predicted_cost"] == pytest.approx(ch["nodes"] * 0.05 * max(60, int(ch["predicted_seconds"] + 30) + 1)
                                                 / 3600, rel=0.01)
    assert plan["search_cost"] > 0 and len(plan["runs"]) == 7
    excluded = {e["instance_type"] for e in plan["excluded"]}
    assert "t2.small" in excluded and "sim.small" not in excluded
    inv = yaml.safe_load((od / "inventory.yml").read_text())
    hosts = inv["all"]["children"]["paramount_train"]["hosts"]
    assert len(hosts) == ch["nodes"] and sorted(hosts) == sorted(plan["start"])
    assert [h for h, v in hosts.items() if v.get("paramount_rendezvous")] == [plan["rendezvous"]]
    clap = yaml.safe_load((od / "clap-cluster.yml").read_text())
    assert validate_clap_cluster(clap) == []
    report = (od / "report.md").read_text()
    assert "Chosen: %s x %d" % (ch["instance_type"], ch["nodes"]) in report
    for png in ("time_vs_cost.png", "measured_vs_predicted.png"):
        assert (od / png).read_bytes()[:4] == b"\x89PNG"
    # a second identical run changes nothing
    r2 = optimize({"results_dir": scaling_probes, "objective": "time", "output_dir": str(od), "max_nodes": 4,
                   "setup_seconds": 30, "bootstrap": 20})
    assert not r2["changed"] and r2["plan"] == plan


def test_current_inventory_start_stop_keep(scaling_probes, tmp_path):
    cur = {"all": {"children": {"paramount_train": {"hosts": {
        "probe-a": {"instance_type": "sim.small", "paramount_rendezvous": True},
        "old-large": {"instance_type": "sim.large"}}}}}}
    path = tmp_path / "cur.yml"
    path.write_text(yaml.safe_dump(cur))
    r = optimize({"results_dir": scaling_probes, "objective": "time", "node_counts": [2], "plots": False,
                  "output_dir": str(tmp_path / "o"), "current_inventory": str(path), "bootstrap": 0})
    plan = r["plan"]
    assert plan["chosen"]["instance_type"] == "sim.large"
    assert plan["keep"] == ["old-large"] and plan["stop"] == ["probe-a"]
    assert plan["start"] == ["paramount-sim-large-1"] and plan["rendezvous"] == "old-large"


def test_nothing_feasible_writes_plan_then_fails(scaling_probes, tmp_path):
    od = tmp_path / "o"
    r = optimize({"results_dir": scaling_probes, "deadline": 5, "output_dir": str(od), "plots": False,
                  "bootstrap": 0})
    assert r["failed"] and "closest" in r["msg"] and "deadline" in r["msg"]
    plan = json.loads((od / "plan.json").read_text())
    assert plan["chosen"] is None and plan["start"] == [] and not (od / "inventory.yml").exists()


def test_check_mode_writes_nothing(scaling_probes, tmp_path):
    od = tmp_path / "o"
    r = optimize({"results_dir": scaling_probes, "output_dir": str(od), "bootstrap": 0}, check_mode=True)
    assert r["plan"]["chosen"] and not r["changed"] and not od.exists()


def test_default_output_dir_inside_results_dir_is_not_read_back(one_node_probes):
    r1 = optimize({"results_dir": one_node_probes, "bootstrap": 0, "plots": False})
    assert r1["output_dir"] == os.path.join(one_node_probes, "plan")
    r2 = optimize({"results_dir": one_node_probes, "bootstrap": 0, "plots": False})
    assert not r2["changed"] and not r2["plan"]["warnings"]


def test_type_without_price_and_unknown_type_are_excluded(one_node_probes, tmp_path):
    cat = tmp_path / "cat.csv"
    cat.write_text("instance_type,vcpus,memory_gib,gpus,price_per_hour,source\n"
                   "sim.small,1,0.5,0,0.01,test\nsim.medium,1,1,0,,test\n")
    r = optimize({"results_dir": one_node_probes, "catalog": str(cat), "output_dir": str(tmp_path / "o"),
                  "bootstrap": 0, "plots": False})
    reasons = {e["instance_type"]: e["reason"] for e in r["plan"]["excluded"]}
    assert "no price" in reasons["sim.medium"] and "not in the catalog" in reasons["sim.large"]
    assert r["plan"]["chosen"]["instance_type"] == "sim.small"
    assert any("sim.large has no price" in w for w in r["plan"]["warnings"])


@pytest.mark.parametrize("args,pattern", [
    ({"deadline": -1}, "deadline must be > 0"),
    ({"budget": 0}, "budget must be > 0"),
    ({"node_counts": [0, 2]}, "node_counts"),
    ({"max_nodes": 0}, "max_nodes must be >= 1"),
    ({"objective": "fast"}, "objective"),
    ({"instance_types": []}, "instance_types"),
    ({"bogus": 1}, "unsupported option"),
    ({"current_inventory": "/nonexistent/inv.yml"}, "current_inventory /nonexistent/inv.yml does not exist"),
    ({"catalog": "/nonexistent.csv"}, "catalog /nonexistent.csv: file not found"),
])
def test_bad_options_are_clear_errors(one_node_probes, tmp_path, args, pattern):
    with pytest.raises(ParamountError, match=pattern):
        optimize(dict({"results_dir": one_node_probes, "output_dir": str(tmp_path)}, **args))


def test_corrupt_current_inventory(one_node_probes, tmp_path):
    p = tmp_path / "inv.yml"
    p.write_text("all: [unclosed\n")
    with pytest.raises(ParamountError, match="not valid YAML"):
        optimize({"results_dir": one_node_probes, "current_inventory": str(p), "output_dir": str(tmp_path)})


def test_one_heterogeneous_probe_run_is_enough_to_plan(tmp_path):
    """The seed experiment: one 3-node run of three sim types, then a homogeneous plan."""
    probe(tmp_path / "p", counts=(), heterogeneous=True)
    out = {}
    for objective in ("cost", "time"):
        r = optimize({"results_dir": str(tmp_path / "p"), "objective": objective, "node_counts": [1, 2, 3, 4],
                      "bootstrap": 10, "plots": False, "output_dir": str(tmp_path / objective)})
        out[objective] = r["plan"]
    assert out["cost"]["chosen"]["instance_type"] == "sim.medium"
    assert out["time"]["chosen"]["instance_type"] == "sim.large"
    by = {(c["instance_type"], c["nodes"]): c for c in out["cost"]["candidates"]}
    assert by[("sim.small", 3)]["measured"] and "heterogeneous" in by[("sim.small", 3)]["basis"]
    assert not by[("sim.small", 1)]["measured"] and by[("sim.small", 1)]["predicted_seconds"]
    r = optimize({"results_dir": str(tmp_path / "p"), "objective": "time", "measured_only": True, "bootstrap": 0,
                  "plots": False, "output_dir": str(tmp_path / "m")})
    assert r["plan"]["chosen"]["nodes"] == 3


def test_plan_records_each_candidates_billing_rule_and_kept_probe_nodes(one_node_probes, tmp_path):
    cat = tmp_path / "cat.csv"
    cat.write_text("instance_type,vcpus,memory_gib,gpus,price_per_hour,source,billing_minimum_seconds,"
                   "billing_increment_seconds\n"
                   "sim.small,1,2,0,0.01,test,0,1\nsim.medium,1,3,0,0.018,test,,\nsim.large,1,4,0,0.05,test,120,60\n")
    current = {"all": {"children": {"paramount_train": {"hosts": {
        "probe-sim-medium-1x-node0": {"instance_type": "sim.medium", "paramount_rendezvous": True}}}}}}
    r = optimize({"results_dir": one_node_probes, "catalog": str(cat), "output_dir": str(tmp_path / "o"),
                  "bootstrap": 0, "plots": False, "setup_seconds": 30, "current_inventory": current})
    plan = r["plan"]
    assert plan["schema_version"] == 1
    rules = {c["instance_type"]: c["billing"] for c in plan["candidates"] if c["predicted_seconds"] is not None}
    assert (rules["sim.small"]["increment_seconds"], rules["sim.small"]["minimum_seconds"]) == (1, 0)
    assert (rules["sim.medium"]["increment_seconds"], rules["sim.medium"]["minimum_seconds"]) == (1, 60)
    assert (rules["sim.large"]["increment_seconds"], rules["sim.large"]["minimum_seconds"]) == (60, 120)
    medium = next(c for c in plan["candidates"] if c["instance_type"] == "sim.medium" and c["nodes"] == 1)
    wall = next(run["seconds"] for run in plan["runs"] if "probe-sim-medium-1x-node0" in run["hosts"])
    bill = medium["billing"]
    assert bill["kept_nodes"] == 1 and bill["new_nodes"] == 0
    assert bill["kept_lived_seconds"] == [pytest.approx(30 + wall, rel=1e-5)]
    lived, added = 30 + wall, 30 + medium["predicted_seconds"]
    assert bill["billed_node_seconds"] == pytest.approx(math.ceil(lived + added) - max(60, math.ceil(lived)), abs=1)
    assert medium["predicted_cost"] == pytest.approx(0.018 * bill["billed_node_seconds"] / 3600, rel=1e-5)
    assert plan["chosen"]["billing"]["increment_seconds"] >= 1
    report = (tmp_path / "o" / "report.md").read_text()
    assert "Billing of %s" % plan["chosen"]["instance_type"] in report
    ru = plan["runner_up"]
    assert ru and ru["overlap"] in (True, False) and "Runner-up: %s x %d" % (ru["instance_type"], ru["nodes"]) in report
