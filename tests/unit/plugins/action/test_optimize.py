"""The action plugin paramount.cluster.optimize: argument spec, docs, and real Ansible runs."""
from __future__ import annotations

import json
import subprocess
from unittest.mock import MagicMock

import pytest
import yaml

from ansible.parsing.dataloader import DataLoader

from ansible_collections.paramount.cluster.plugins.action.optimize import ActionModule
from ansible_collections.paramount.cluster.plugins.modules import optimize as docs_module
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_args import ARGUMENT_SPEC
from tests import loggen as lg
from tests.playbook_env import ansible_command, playbook_env


def test_documentation_matches_the_argument_spec():
    doc = yaml.safe_load(docs_module.DOCUMENTATION)
    opts = doc["options"]
    assert set(opts) == set(ARGUMENT_SPEC)
    for name, spec in ARGUMENT_SPEC.items():
        d = opts[name]
        assert d["type"] == spec["type"], name
        assert d.get("elements") == spec.get("elements"), name
        assert d.get("required", False) == spec.get("required", False), name
        assert d.get("default") == spec.get("default"), name
        assert d.get("choices") == spec.get("choices"), name
        assert d.get("description"), name
    yaml.safe_load(docs_module.EXAMPLES)
    yaml.safe_load(docs_module.RETURN)


def test_issue_option_names_are_all_there():
    for name in ("results_dir", "catalog", "objective", "deadline", "budget", "instance_types", "node_counts",
                 "max_nodes", "max_hourly_cost", "epochs", "measured_only", "setup_seconds", "output_dir",
                 "current_inventory"):
        assert name in ARGUMENT_SPEC


def _action(args, basedir, check_mode=False):
    task = MagicMock()
    task.args = dict(args)
    task.async_val = 0
    task.check_mode = check_mode
    task.diff = False
    loader = DataLoader()
    loader.set_basedir(str(basedir))
    return ActionModule(task=task, connection=MagicMock(), play_context=MagicMock(), loader=loader,
                        templar=MagicMock(), shared_loader_obj=MagicMock())


@pytest.fixture(scope="module")
def probes(tmp_path_factory):
    root = tmp_path_factory.mktemp("adhoc")
    lg.sim_probe_tree(str(root / "probe"), counts=(1, 2), samples_per_epoch=4000, epochs=5, warmup_iterations=100)
    return root


def test_run_resolves_relative_paths_against_the_basedir(probes):
    action = _action({"results_dir": "probe", "output_dir": "plan-unit", "bootstrap": 10, "plots": False}, probes)
    result = action.run(task_vars={})
    assert not result.get("failed"), result.get("msg")
    assert result["output_dir"] == str(probes / "plan-unit")
    assert (probes / "plan-unit" / "plan.json").exists()
    assert result["ansible_facts"]["paramount_plan"]["chosen"]["instance_type"] == "sim.medium"


def test_run_turns_bad_input_into_a_failed_result(probes, tmp_path):
    result = _action({"results_dir": str(tmp_path)}, probes).run(task_vars={})
    assert result["failed"] and "no log files found" in result["msg"] and "exception" not in result
    (tmp_path / "a").mkdir()
    lg.sim_probe_tree(str(tmp_path / "a"), types=("sim.small",))
    lg.sim_probe_tree(str(tmp_path / "b"), types=("sim.large",), workload="other")
    result = _action({"results_dir": str(tmp_path)}, probes).run(task_vars={})
    assert result["failed"] and "2 different workloads" in result["msg"]


def _env(cwd, **more):
    """ansible and ansible-playbook on localhost alone, no ansible.cfg, this checkout as the collection."""
    return playbook_env(config=None, ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
                        ANSIBLE_HOME=cwd / ".ansible", **more)


def _ansible(args, cwd, module_args):
    env = _env(cwd, ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="json")
    cmd = [ansible_command("ansible"), "localhost", "-m", "paramount.cluster.optimize", "-a", module_args] + args
    return subprocess.run(cmd, cwd=str(cwd), env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.slow
def test_adhoc_run_through_the_ansible_cli(probes):
    proc = _ansible([], probes, "results_dir=probe objective=time output_dir=plan-cli max_hourly_cost=0.2 bootstrap=20")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = json.loads(proc.stdout)
    res = out["plays"][0]["tasks"][0]["hosts"]["localhost"]
    chosen = res["plan"]["chosen"]
    assert chosen["nodes"] * {"sim.small": 0.01, "sim.medium": 0.018, "sim.large": 0.05}[chosen["instance_type"]] \
        <= 0.2 + 1e-9
    assert res["ansible_facts"]["paramount_plan"] == res["plan"]
    assert (probes / "plan-cli" / "plan.json").exists()
    # bad input: a clear message, no traceback
    proc = _ansible([], probes, "results_dir=nowhere")
    assert proc.returncode != 0
    res = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    assert res["msg"].endswith("nowhere does not exist") and "Traceback" not in proc.stdout + proc.stderr


PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: plan
      paramount.cluster.optimize:
        results_dir: probe
        output_dir: plan-play
        objective: cost
        bootstrap: 10
      register: first
    - name: the fact is set and equals the registered plan
      ansible.builtin.assert:
        that:
          - paramount_plan.chosen.instance_type == 'sim.medium'
          - paramount_plan == first.plan
          - first is changed
    - name: again, nothing changes
      paramount.cluster.optimize:
        results_dir: probe
        output_dir: plan-play
        objective: cost
        bootstrap: 10
      register: second
    - name: idempotent
      ansible.builtin.assert:
        that:
          - second is not changed
    - name: check mode writes nothing
      paramount.cluster.optimize:
        results_dir: probe
        output_dir: plan-check
      check_mode: true
      register: checked
    - ansible.builtin.stat:
        path: plan-check
      register: st
    - ansible.builtin.assert:
        that:
          - not st.stat.exists
          - checked.plan.chosen.nodes >= 1
"""


@pytest.mark.slow
def test_playbook_sets_the_fact_and_is_idempotent(probes):
    (probes / "play.yml").write_text(PLAYBOOK)
    env = _env(probes)
    proc = subprocess.run([ansible_command("ansible-playbook"), "play.yml"], cwd=str(probes), env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
