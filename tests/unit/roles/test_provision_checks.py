"""The provision role's checks before anything starts, as ansible-playbook runs them: the desired state by the filter
paramount.cluster.desired_slots (the contract's reader) and the plan's settings by
paramount.cluster.plan_settings_problems. Each bad input fails in the role's first tasks with one message naming it,
and no slot, folder or process exists. The filters' cases: tests/unit/plugins/filter/."""
import json
import subprocess

import pytest
import yaml

from tests.playbook_env import REPO, ansible_command, playbook_env
from tests.role_specs import write_desired as _desired

pytestmark = [pytest.mark.timeout(120)]

PLAYBOOK = [{"name": "Provision", "hosts": "localhost", "connection": "local", "gather_facts": False,
             "roles": ["paramount.cluster.provision"]}]


def _provision(tmp_path, collections_path, **variables):
    """(exit status, the failure with whitespace collapsed) of the role on ``variables``."""
    playbook = tmp_path / "provision.yml"
    playbook.write_text(yaml.safe_dump(PLAYBOOK))
    work = tmp_path / "work"
    variables = {"paramount_run": "checks", "paramount_local_root": str(work / "runs"), **variables}
    env = playbook_env(collections_path, drop=("PARAMOUNT_SIM_STATE",), local_temp=tmp_path / "ansible-tmp",
                       ANSIBLE_HOME=tmp_path / ".ansible")
    proc = subprocess.run([ansible_command("ansible-playbook"), str(playbook), "-e", json.dumps(variables)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=110, check=False)
    output = proc.stdout + proc.stderr
    assert not work.exists(), sorted(str(p) for p in work.rglob("*"))
    failure = output[output.find("fatal: "):] if "fatal: " in output else output
    return proc.returncode, " ".join(failure.split())


def test_a_bad_desired_state_names_the_file_and_every_bad_host(tmp_path, collections_path):
    desired = _desired(tmp_path, {"ok-1": {"instance_type": "local.small", "paramount_rendezvous": True},
                                  "huge-1": {"instance_type": "t9.huge"}, "typeless-1": {}})
    status, failure = _provision(tmp_path, collections_path, paramount_desired_inventory=desired)
    assert status != 0
    assert (desired + ": host(s) typeless-1 have no instance_type (a host or group variable); host huge-1 has "
            "instance_type t9.huge; the local backend emulates only local.") in failure, failure[-3000:]
    assert "Nothing was started." in failure


def test_a_real_cloud_takes_any_type_but_one_rendezvous(tmp_path, collections_path):
    desired = _desired(tmp_path, {"a-1": {"paramount_rendezvous": True}, "b-1": {"paramount_rendezvous": True}},
                       {"instance_type": "t9.huge"})
    status, failure = _provision(tmp_path, collections_path, paramount_desired_inventory=desired,
                                 paramount_backend="aws")
    assert status != 0
    assert desired + ": paramount_rendezvous: true must be on exactly one host, it is on a-1, b-1." in failure, failure
    assert "emulates" not in failure


def test_a_good_desired_state_reaches_the_capacity_check(tmp_path, collections_path):
    """The slots the filter returns are the ones the CPU share check adds up (sim: the simulated cloud's shares)."""
    desired = _desired(tmp_path, {"s-1": {"instance_type": "sim.large", "paramount_rendezvous": True}, "s-2": None},
                       {"instance_type": "sim.large"})
    status, failure = _provision(tmp_path, collections_path, paramount_desired_inventory=desired,
                                 paramount_backend="sim", paramount_cpu_capacity=0.5)
    assert status != 0
    assert desired + ": the CPU shares of its nodes add up to 1.2 cores (s-1 (sim.large) 0.6, s-2 (sim.large) 0.6)" \
        in failure, failure[-3000:]


def test_bad_plan_settings_fail_naming_them(tmp_path, collections_path):
    desired = _desired(tmp_path, {"a-1": {"instance_type": "local.small", "paramount_rendezvous": True}})
    status, failure = _provision(tmp_path, collections_path, paramount_desired_inventory=desired,
                                 paramount_plan_options={"max_nodes": -2, "node_counts": [2, -1]})
    assert status != 0
    assert ("paramount_plan_options.max_nodes must be an integer >= 1, got -2. paramount_plan_options.node_counts "
            "must be a non-empty list of integers >= 1, got [2, -1]. Nothing was started.") in failure, failure[-3000:]
