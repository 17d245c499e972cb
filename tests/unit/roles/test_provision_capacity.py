"""The provision role's CPU capacity check (local, sim): a desired state whose nodes' CPU shares add up to more than
this machine has for them fails before anything starts, naming the inventory, every node's share and the total.
Rendered by Ansible's templar from the role's own task. The shares the role checks are the catalog's and the
simulated cloud's."""
import pytest

from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from ..templating import trusted

from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_catalog import (
    default_catalog_path,
    load_catalog,
)
from simcloud import SIM_TYPES
from tests.role_specs import REPO, read_yaml as _yaml, role_defaults, role_task

PROBE_LOCAL = REPO / "inventories" / "local" / "probe-cluster.yml"


@pytest.fixture(name="check")
def _check(provision_defaults):
    """check(slots, capacity, backend, inventory): (runs, passes, fail message) of the task for {host: type}."""
    task = role_task("provision", "Check that the nodes' CPU shares")

    def check(slots, capacity, backend="local", inventory="inventories/local/probe-cluster.yml"):
        variables = {**provision_defaults, **task["vars"], "paramount_backend": backend,
                     "paramount_cpu_capacity": capacity, "paramount_desired_inventory": inventory,
                     "paramount_desired_slots": {h: {"instance_type": t} for h, t in slots.items()}}
        templar = Templar(loader=DataLoader(), variables=trusted(variables))
        runs = templar.template(trust_as_template("{{ %s }}" % task["when"]))
        passes = templar.template(trust_as_template("{{ %s }}" % task["ansible.builtin.assert"]["that"]))
        return runs, passes, templar.template(trust_as_template(task["ansible.builtin.assert"]["fail_msg"]))

    return check


def test_the_probe_cluster_fits_two_cores_less_the_reserve(check):
    slots = {h: v["instance_type"] for h, v in _yaml(PROBE_LOCAL)["all"]["children"]["paramount_train"]["hosts"].items()}
    assert check(slots, 1.5)[:2] == (True, True)  # 0.15 + 0.30 + 0.60 = 1.05 cores


def test_shares_above_the_capacity_fail_naming_the_inventory_and_the_shares(check):
    slots = {"probe-local-large-%d" % i: "local.large" for i in range(1, 4)}
    runs, passes, msg = check(slots, 1.5)
    assert runs and not passes
    assert msg.startswith("inventories/local/probe-cluster.yml: the CPU shares of its nodes add up to 1.8 cores")
    assert "probe-local-large-1 (local.large) 0.6, probe-local-large-2 (local.large) 0.6" in msg
    assert "more than the 1.5 cores" in msg and "paramount_cpu_reserve 0.5" in msg and "Nothing was started" in msg


def test_exactly_the_capacity_fits_and_sim_is_checked_alike(check):
    assert check({"a": "local.medium", "b": "local.medium", "c": "local.medium", "d": "local.medium",
                  "e": "local.medium"}, 1.5)[1]  # 5 x 0.30 in floating point
    runs, passes, msg = check({"s1": "sim.large", "s2": "sim.large", "s3": "sim.small"}, "1.3", backend="sim",
                              inventory="inventories/sim/probe-cluster.yml")
    assert runs and not passes and "add up to 1.35 cores" in msg and "s3 (sim.small) 0.15" in msg
    assert "more than the 1.3 cores" in msg
    # a type without a share (a test's broken type) takes none of this machine
    assert check({"x": "sim.broken", "y": "sim.large"}, 0.6, backend="sim")[1]


def test_other_backends_and_the_autoscale_join_are_not_checked(check):
    assert check({"a": "t2.small"}, 0.0, backend="aws")[0] is False
    join = _yaml(REPO / "playbooks" / "join.yml")[0]
    assert join["vars"]["paramount_cpu_capacity_check"] is False


@pytest.mark.parametrize("backend,family", [("local", "local."), ("sim", "sim.")])
def test_the_role_checks_the_shares_the_catalog_and_the_simulated_cloud_state(backend, family, provision_defaults):
    defaults = provision_defaults
    role = defaults["paramount_local_cpu_shares" if backend == "local" else "paramount_sim_cpu_shares"]
    catalog = {t: e.cpu_share for t, e in load_catalog(default_catalog_path()).items() if t.startswith(family)}
    assert role == catalog
    if backend == "sim":
        assert role == {t.name: t.cpu for t in SIM_TYPES.values()}
        assert sorted(role) == sorted(defaults["paramount_sim_instance_types"])


def test_the_reserve_is_the_capacity_modules():
    from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_capacity import DEFAULT_CPU_RESERVE

    assert role_defaults("provision")["paramount_cpu_reserve"] == DEFAULT_CPU_RESERVE
    assert _yaml(REPO / "playbooks" / "vars" / "defaults.yml")["paramount_cpu_reserve"] == DEFAULT_CPU_RESERVE
