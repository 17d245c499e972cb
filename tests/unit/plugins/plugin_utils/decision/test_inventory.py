"""Decision, the desired-state inventory: slot names, parsing, keep/start/stop and the document written."""
from __future__ import annotations

import pytest

from ansible_collections.paramount.cluster.plugins.plugin_utils.decision import inventory
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_common import ParamountError


def test_plan_nodes_keeps_the_rendezvous_and_names_new_slots():
    current = {"paramount-sim-medium-1": "sim.medium", "paramount-sim-medium-2": "sim.medium",
               "paramount-sim-small-1": "sim.small"}
    keep, start, stop, rdzv = inventory.plan_nodes("sim.medium", 3, current, "paramount-sim-medium-2")
    assert keep == ["paramount-sim-medium-1", "paramount-sim-medium-2"]
    assert start == ["paramount-sim-medium-3"] and stop == ["paramount-sim-small-1"]
    assert rdzv == "paramount-sim-medium-2"
    keep, start, stop, rdzv = inventory.plan_nodes("sim.medium", 1, current, "paramount-sim-medium-2")
    assert keep == ["paramount-sim-medium-2"] and rdzv == "paramount-sim-medium-2"
    assert stop == ["paramount-sim-medium-1", "paramount-sim-small-1"]
    keep, start, stop, rdzv = inventory.plan_nodes("sim.large", 2, current, "paramount-sim-small-1")
    assert keep == [] and start == ["paramount-sim-large-1", "paramount-sim-large-2"] and rdzv == start[0]
    assert len(stop) == 3


def test_desired_inventory_roundtrips_through_the_parser():
    inv = inventory.desired_inventory("t2.small", ["s-1", "s-2"], "s-2")
    slots, rdzv = inventory.parse_inventory(inv)
    assert slots == {"s-1": "t2.small", "s-2": "t2.small"} and rdzv == "s-2"
    hosts = inv["all"]["children"]["paramount_train"]["hosts"]
    assert sum(1 for h in hosts.values() if h.get("paramount_rendezvous")) == 1


def test_inventory_group_vars_and_errors():
    slots, rdzv = inventory.parse_inventory({"all": {"children": {"paramount_train": {
        "vars": {"instance_type": "sim.small"}, "hosts": {"a": None, "b": {"instance_type": "sim.large"}}}}}})
    assert slots == {"a": "sim.small", "b": "sim.large"} and rdzv is None
    assert inventory.parse_inventory({}) == ({}, None)
    with pytest.raises(ParamountError, match="no instance_type"):
        inventory.parse_inventory({"all": {"children": {"paramount_train": {"hosts": {"a": {}}}}}})
    with pytest.raises(ParamountError, match="exactly one"):
        inventory.parse_inventory({"all": {"children": {"paramount_train": {"hosts": {
            "a": {"instance_type": "x", "paramount_rendezvous": True},
            "b": {"instance_type": "x", "paramount_rendezvous": True}}}}}})
    with pytest.raises(ParamountError, match="no group paramount_train"):
        inventory.parse_inventory({"all": {"children": {"other": {}}}})
    with pytest.raises(ParamountError, match="mapping"):
        inventory.parse_inventory(["x"])
