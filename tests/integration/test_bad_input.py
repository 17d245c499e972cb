"""A wrong variable or desired state fails early, with a message naming it, and starts nothing (issue #5).

optimize.yml (the user's entry point) is run on the local backend (no root, no cloud) with one bad input each. Its
first play provisions, so a bad input must stop it there, before any slot, folder or process exists.
"""
import json
import subprocess

import pytest
import yaml

from tests.playbook_env import REPO, ansible_command, playbook_env
from tests.role_specs import write_desired as _desired

pytestmark = [pytest.mark.timeout(120)]

RUN = "bad-input"


def _optimize(args, workdir, collections_path, backend="local", playbook="optimize.yml"):
    env = playbook_env(collections_path, drop=("PARAMOUNT_SIM_STATE",), workdir=workdir, run=RUN, backend=backend)
    return subprocess.run([ansible_command("ansible-playbook"), playbook, *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=110, check=False)


def _extra(**variables):
    return ["-e", json.dumps(variables)]


# (id, builder of the extra arguments from tmp_path, backend, words the message must hold)
CASES = [
    ("unknown-backend", lambda t: _extra(paramount_backend="nosuch"), "local",
     ["paramount_backend", "nosuch", "local, sim, aws, clap"]),
    ("bad-objective", lambda t: _extra(paramount_objective="cheapest"), "local",
     ["paramount_objective", "cheapest", "cost, time"]),
    ("negative-max-nodes", lambda t: _extra(paramount_plan_options={"max_nodes": -2}), "local",
     ["paramount_plan_options.max_nodes", "-2"]),
    ("negative-node-count", lambda t: _extra(paramount_plan_options={"node_counts": [2, -1]}), "local",
     ["paramount_plan_options.node_counts", "-1"]),
    ("bad-run-id", lambda t: _extra(paramount_run="../escape"), "local", ["paramount_run", "../escape"]),
    ("missing-desired-inventory", lambda t: _extra(paramount_probe_inventory=str(t / "nowhere.yml")), "local",
     ["paramount_desired_inventory", "no such file", "nowhere.yml"]),
    ("not-yaml", lambda t: (t / "broken.yml").write_text("all: [unclosed\n") and _extra(paramount_probe_inventory=str(t / "broken.yml")),
     "local", ["paramount_desired_inventory", "broken.yml", "not a readable YAML inventory"]),
    ("no-hosts", lambda t: _extra(paramount_probe_inventory=_desired(t, {})), "local",
     ["desired.yml", "paramount_train"]),
    ("unknown-local-type", lambda t: _extra(paramount_probe_inventory=_desired(t, {
        "ok-1": {"instance_type": "local.small", "paramount_rendezvous": True}, "huge-1": {"instance_type": "t9.huge"}})),
     "local", ["host huge-1", "t9.huge", "local backend"]),
    ("unknown-sim-type", lambda t: _extra(paramount_probe_inventory=_desired(t, {
        "ok-1": {"instance_type": "sim.small", "paramount_rendezvous": True}, "huge-1": {"instance_type": "sim.huge"}})),
     "sim", ["host huge-1", "sim.huge", "simulated cloud"]),
    ("no-instance-type", lambda t: _extra(paramount_probe_inventory=_desired(t, {
        "ok-1": {"instance_type": "local.small", "paramount_rendezvous": True}, "typeless-1": {}})),
     "local", ["typeless-1", "no instance_type"]),
    ("two-rendezvous", lambda t: _extra(paramount_probe_inventory=_desired(t, {
        "a-1": {"paramount_rendezvous": True}, "b-1": {"paramount_rendezvous": True}}, {"instance_type": "local.small"})),
     "local", ["exactly one host", "a-1, b-1"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_fails_early_naming_it(case, tmp_path, collections_path):
    _name, build, backend, words = case
    work = tmp_path / "work"
    work.mkdir()
    proc = _optimize(build(tmp_path), work, collections_path, backend)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    failure = output[output.find("fatal: "):] if "fatal: " in output else output
    # the yaml result format folds long messages: compare with whitespace collapsed
    failure = " ".join(failure.split())
    for word in words:
        assert word in failure, "%r not in the failure:\n%s" % (word, failure[-3000:])
    # Nothing started: it failed in the first play, before any slot, folder or node process.
    assert "PLAY [Put the trainer" not in output
    assert "Start the new slots" not in output and "Start an instance" not in output
    assert not (work / "runs").exists() and not (work / "results").exists(), sorted(str(p) for p in work.rglob("*"))
    left = subprocess.run(["pgrep", "-f", str(work)], capture_output=True, text=True, check=False)
    assert left.stdout.strip() == ""


def test_instance_type_as_a_group_variable_is_accepted(tmp_path, collections_path):
    """instance_type may be a group variable (docs/optimize.md): provisioning makes the slots with it."""
    work = tmp_path / "work"
    work.mkdir()
    desired = _desired(tmp_path, {"a-1": {"paramount_rendezvous": True}, "b-1": None}, {"instance_type": "local.small"})
    proc = _optimize(_extra(paramount_desired_inventory=desired), work, collections_path,
                     playbook="paramount.cluster.provision")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    inventory = yaml.safe_load((work / "runs" / RUN / "inventory.yml").read_text())
    hosts = inventory["all"]["children"]["paramount_train"]["hosts"]
    assert sorted(hosts) == ["a-1", "b-1"] and {h["instance_type"] for h in hosts.values()} == {"local.small"}
    down = _optimize([], work, collections_path, playbook="paramount.cluster.teardown")
    assert down.returncode == 0, (down.stdout + down.stderr)[-3000:]
    assert not (work / "runs" / RUN).exists()
