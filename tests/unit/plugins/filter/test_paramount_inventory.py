"""Filter paramount.cluster.desired_slots: the provision role's check of a desired-state inventory by the contract's
reader (decision.inventory.desired_slots). Good inventories give {slot: variables} (host variables over the group's
vars); every bad case fails with one message naming the inventory file and every bad host, nothing started. The
role's own wiring: tests/unit/roles/test_provision_checks.py."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.paramount.cluster.plugins.filter import paramount_inventory as f
from ansible_collections.paramount.cluster.plugins.plugin_utils.decision import inventory as dec

REPO = Path(__file__).resolve().parents[4]
SOURCE = "inventories/local/desired.yml"
LOCAL_TYPES = ["local.small", "local.medium", "local.large"]


def _doc(hosts, group_vars=None):
    group = {"hosts": hosts}
    if group_vars is not None:
        group["vars"] = group_vars
    return {"all": {"children": {"paramount_train": group}}}


def _error(doc, **kwargs):
    with pytest.raises(AnsibleFilterError) as info:
        f.desired_slots(doc, SOURCE, **kwargs)
    message = str(info.value)
    assert message.startswith(SOURCE + ": ") and message.endswith("Nothing was started."), message
    return message


def test_host_variables_lie_over_the_group_vars():
    doc = _doc({"a-1": {"paramount_rendezvous": True, "extra": 1}, "b-1": None, "c-1": {"instance_type": "local.large"}},
               {"instance_type": "local.small", "extra": 0})
    assert f.desired_slots(doc, SOURCE, emulated=LOCAL_TYPES, backend="local") == {
        "a-1": {"instance_type": "local.small", "extra": 1, "paramount_rendezvous": True},
        "b-1": {"instance_type": "local.small", "extra": 0},
        "c-1": {"instance_type": "local.large", "extra": 0},
    }


@pytest.mark.parametrize("path", sorted((REPO / "inventories").glob("*/probe-cluster.yml")), ids=lambda p: p.parent.name)
def test_the_shipped_probe_clusters_pass_and_agree_with_the_plan_reader(path):
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    slots = f.desired_slots(doc, str(path))
    types, rdzv = dec.parse_inventory(doc, str(path))
    assert {name: v["instance_type"] for name, v in slots.items()} == types
    assert [name for name, v in slots.items() if v.get("paramount_rendezvous") is True] == [rdzv]


def test_a_written_desired_state_reads_back():
    doc = dec.desired_inventory({"s-1": "sim.small", "s-2": "sim.large"}, ["s-1", "s-2"], "s-2")
    assert f.desired_slots(doc, SOURCE, emulated=["sim.small", "sim.large"], backend="sim") == {
        "s-1": {"instance_type": "sim.small"}, "s-2": {"instance_type": "sim.large", "paramount_rendezvous": True}}


@pytest.mark.parametrize("doc", [None, [], "text", {}, {"all": None}, {"all": {"children": []}},
                                 {"all": {"children": {"other": {"hosts": {"a": {}}}}}},
                                 {"all": {"children": {"paramount_train": {"hosts": {}}}}},
                                 {"all": {"children": {"paramount_train": {"hosts": ["a"]}}}},
                                 {"paramount_train": {"hosts": {"a": {"instance_type": "t2.small"}}}}])
def test_a_wrong_shape_names_the_group_and_the_file(doc):
    with pytest.raises(AnsibleFilterError) as info:
        f.desired_slots(doc, SOURCE)
    assert str(info.value) == (SOURCE + ": needs group paramount_train under all.children with at least one host "
                               "(one named slot per node, see docs/optimize.md).")


def test_variables_that_are_no_mapping_name_every_such_host():
    msg = _error(_doc({"a-1": {"instance_type": "t2.small", "paramount_rendezvous": True}, "b-1": "t2.small",
                       "c-1": ["x"]}))
    assert "the variables of host(s) b-1, c-1 must be a mapping (e.g. instance_type: sim.small), or empty" in msg


def test_group_vars_that_are_no_mapping_fail_naming_them():
    with pytest.raises(AnsibleFilterError, match="desired.yml: paramount_train.vars must be a mapping"):
        f.desired_slots(_doc({"a-1": None}, ["instance_type"]), SOURCE)


def test_every_missing_or_empty_instance_type_is_named():
    msg = _error(_doc({"ok-1": {"instance_type": "t2.small", "paramount_rendezvous": True}, "typeless-1": {},
                       "number-1": {"instance_type": 3}, "empty-1": {"instance_type": ""}, "null-1": None}))
    assert "host(s) typeless-1, number-1, empty-1, null-1 have no instance_type (a host or group variable)" in msg
    assert "ok-1" not in msg


@pytest.mark.parametrize("flags,named", [((True, True, False), "a-1, b-1"), ((False, False, False), "none"),
                                         (("true", None, None), "none")])
def test_the_rendezvous_is_on_exactly_one_host(flags, named):
    hosts = {name: ({} if flag is None else {"paramount_rendezvous": flag})
             for name, flag in zip(("a-1", "b-1", "c-1"), flags)}
    msg = _error(_doc(hosts, {"instance_type": "t2.small"}))
    assert "paramount_rendezvous: true must be on exactly one host, it is on %s" % named in msg


def test_a_group_rendezvous_puts_it_on_every_host():
    msg = _error(_doc({"a-1": None, "b-1": None}, {"instance_type": "t2.small", "paramount_rendezvous": True}))
    assert "it is on a-1, b-1" in msg


def test_bad_host_names_are_named():
    msg = _error(_doc({"ok-1": {"paramount_rendezvous": True}, "-dash": None, "sp ace": None, "_under": None, "a/b": "x"},
                      {"instance_type": "t2.small"}))
    assert "host name(s) -dash, sp ace, _under, a/b may only hold letters, digits, ., _ and -" in msg


def test_types_the_backend_does_not_emulate_are_named_with_the_ones_it_does():
    doc = _doc({"ok-1": {"instance_type": "local.small", "paramount_rendezvous": True},
                "huge-1": {"instance_type": "t9.huge"}, "huge-2": {"instance_type": "t9.huge"}})
    msg = _error(doc, emulated=LOCAL_TYPES, backend="local")
    assert msg == (SOURCE + ": host huge-1 has instance_type t9.huge; host huge-2 has instance_type t9.huge; "
                   "the local backend emulates only local.small, local.medium, local.large. Nothing was started.")
    sim = _error(_doc({"s-1": {"instance_type": "sim.huge", "paramount_rendezvous": True}}), emulated=["sim.small"],
                 backend="sim")
    assert "host s-1 has instance_type sim.huge; the simulated cloud emulates only sim.small" in sim
    # real clouds (emulated none) take any type
    assert f.desired_slots(doc, SOURCE, backend="aws")["huge-1"]["instance_type"] == "t9.huge"


def test_one_message_holds_every_problem_in_order():
    doc = _doc({"typeless-1": {}, "bad name": {"instance_type": "t9.huge"}, "odd-1": 5,
                "ok-1": {"instance_type": "local.small"}})
    msg = _error(doc, emulated=LOCAL_TYPES, backend="local")
    assert msg == (SOURCE + ": the variables of host(s) odd-1 must be a mapping (e.g. instance_type: sim.small), or "
                   "empty; host(s) typeless-1 have no instance_type (a host or group variable); paramount_rendezvous: "
                   "true must be on exactly one host, it is on none; host name(s) bad name may only hold "
                   "letters, digits, ., _ and -; host bad name has instance_type t9.huge; the local backend emulates "
                   "only local.small, local.medium, local.large. Nothing was started.")


def test_emulated_must_be_a_list():
    with pytest.raises(AnsibleFilterError, match="emulated must be a list"):
        f.desired_slots(_doc({"a": None}), SOURCE, emulated="local.small")


def test_the_filter_is_registered_and_documented():
    assert f.FilterModule().filters() == {"desired_slots": f.desired_slots}
    doc = yaml.safe_load((REPO / "plugins" / "filter" / "desired_slots.yml").read_text(encoding="utf-8"))
    assert doc["DOCUMENTATION"]["name"] == "desired_slots"
    assert set(doc["DOCUMENTATION"]["options"]) == {"_input", "source", "emulated", "backend"}
