"""playbooks/plan.yml: the optimize task's arguments are a mapping of individually templated values (ansible-core
2.19 warns "Using a template for task args is unsafe" on one templated string or mapping), one per option of
paramount.cluster.optimize, and on the emulated backends cpu_capacity is the measured capacity."""
from pathlib import Path

import pytest
import yaml

from ansible.errors import AnsibleValueOmittedError
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar

from ..templating import trusted

from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_args import ARGUMENT_SPEC

REPO = Path(__file__).resolve().parents[3]
PLAY = yaml.safe_load((REPO / "playbooks" / "plan.yml").read_text(encoding="utf-8"))[0]


def _task(module):
    found = [t for t in PLAY["tasks"] if module in t]
    assert len(found) == 1
    return found[0]


def _args(backend="local", **extra):
    """The optimize task's arguments as Ansible templates them, without the omitted ones."""
    task = _task("paramount.cluster.optimize")
    variables = {**PLAY["vars"], **task["vars"], "paramount_results_dir": "/w/results/r", "paramount_catalog": "/c.csv",
                 "paramount_objective": "time", "paramount_probe_inventory": "/inv.yml", "paramount_plan_options": {},
                 "paramount_backend": backend, "paramount_cpu_capacity": 1.5, **extra}
    templar = Templar(loader=DataLoader(), variables=trusted(variables))
    out = {}
    for key, value in task["paramount.cluster.optimize"].items():
        try:
            out[key] = templar.template(trusted(value))
        except AnsibleValueOmittedError:  # omitted: the module's default
            continue
    return out


def test_every_argument_is_templated_on_its_own():
    args = _task("paramount.cluster.optimize")["paramount.cluster.optimize"]
    assert isinstance(args, dict)  # not one templated string or mapping
    assert list(args) == list(ARGUMENT_SPEC)
    for key, value in args.items():
        assert value == "{{ _args.%s | default(omit) }}" % key


def test_the_unknown_option_check_knows_every_option():
    check = _task("ansible.builtin.assert")
    assert check["vars"]["_known"] == list(ARGUMENT_SPEC)


def test_local_and_sim_pass_the_measured_capacity():
    args = _args()
    assert args == {"results_dir": "/w/results/r/probe", "output_dir": "/w/results/r/plan", "catalog": "/c.csv",
                    "objective": "time", "current_inventory": "/inv.yml", "cpu_capacity": 1.5}
    assert _args("sim", paramount_cpu_capacity="2.25")["cpu_capacity"] == 2.25
    assert "cpu_capacity" not in _args("aws")  # a real cloud: no limit


def test_options_keep_their_types_and_the_later_layer_wins():
    args = _args(paramount_plan_options={"max_nodes": 3, "plots": False, "node_counts": [1, 2], "deadline": 60.5,
                                         "cpu_capacity": 4.0},
                 paramount_plan_extra_options={"bootstrap": 0, "max_nodes": 2})
    assert args["max_nodes"] == 2 and args["plots"] is False and args["bootstrap"] == 0
    assert args["node_counts"] == [1, 2] and args["deadline"] == 60.5 and args["cpu_capacity"] == 4.0


@pytest.mark.parametrize("name", ["paramount_cpu_capacity", "paramount_cpu_reserve"])
def test_the_capacity_variables_are_play_defaults(name):
    defaults = yaml.safe_load((REPO / "playbooks" / "vars" / "defaults.yml").read_text(encoding="utf-8"))
    assert name in defaults
