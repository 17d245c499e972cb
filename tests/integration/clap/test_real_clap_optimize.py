"""optimize.yml end to end on the `clap` backend with the real CLAP 0.2.3 (issue 13, part 4): the probe cluster of
three sim types started by CLAP in moto (`cluster start --no-setup`, tags, `node alive`, role gan, setup-gan), the
probe, the plan, the chosen cluster reached by `cluster update` + `cluster grow --node --no-setup` with the kept
probe node (make before break: the grown node is set up before the others stop), training, and the teardown:
CLAP's repository and moto then hold no node of the run. `paramount_clap_command` is a wrapper that runs the real
clapp from CLAP's source in its own venv (what a user's PATH does), logging each call."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from ansible_collections.paramount.cluster.plugins.filter import paramount_clap as f
from tests.clap_real import harness
from tests.playbook_env import ansible_command, ansible_settings

pytestmark = [pytest.mark.root]

PROBE = {"probe-sim-small-1": "sim.small", "probe-sim-medium-1": "sim.medium", "probe-sim-large-1": "sim.large"}


def _wrapper(clap, tmp_path):
    """`clapp` for the clap backend: the real one, with CLAP's environment, each call's arguments logged."""
    exports = "".join("export %s=%s\n" % (k, json.dumps(v)) for k, v in sorted(clap.env.items())
                      if k.startswith(("ANSIBLE_", "CLAP_PATH", "EC2_URL", "BOTO_CONFIG", "PYTHONDONTWRITEBYTECODE")))
    path = tmp_path / "bin" / "clapp"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n# the real clapp from CLAP's source, in CLAP's venv (tests)\n%sexport PATH=%s\n"
                    "printf '%%s\\n' \"$*\" >> %s\nexec %s %s \"$@\"\n"
                    % (exports, json.dumps(clap.env["PATH"]), tmp_path / "calls.log", clap.python, clap.clapp_path))
    path.chmod(0o755)
    return path


def _playbook(clap, tmp_path, playbook, evars, timeout):
    """ansible-playbook PLAYBOOK -e @clap/optimize-vars.yml -e EVARS as a CLAP user runs it, in the cloud's controller
    namespace with clapp's private /etc/hosts (boto 2's name for moto)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "CLAP", "PARAMOUNT_", "AWS_"))}
    env.update(clap.cloud.environment())
    env.update(ansible_settings(workdir=tmp_path / "work", path=os.pathsep.join(["/usr/sbin", "/usr/bin", "/sbin", "/bin"]),
                                PWD=harness.REPO, HOME=clap.home, ANSIBLE_PYTHON_INTERPRETER="/usr/bin/python3"))
    argv = [ansible_command("ansible-playbook"), playbook, "-e", "@clap/optimize-vars.yml",
            "-e", json.dumps(evars)]
    return subprocess.run(clap.controller_argv(argv), cwd=str(harness.REPO), env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, check=False)


def _optimize_vars(clap, tmp_path, run, probe, rendezvous, **more):
    """optimize.yml's variables for a run on sim hosts started by the real CLAP: the probe cluster ``probe``
    ({slot: type}, the torchrun rendezvous on slot ``rendezvous``), a short job, two nodes of the chosen type."""
    hosts = {slot: {"instance_type": itype} for slot, itype in probe.items()}
    hosts[rendezvous]["paramount_rendezvous"] = True
    (tmp_path / "probe.yml").write_text(yaml.safe_dump({"all": {"children": {"paramount_train": {"hosts": hosts}}}}))
    evars = {
        "paramount_run": run, "paramount_probe_inventory": str(tmp_path / "probe.yml"),
        "paramount_clap_command": str(_wrapper(clap, tmp_path)), "paramount_clap_path": str(clap.clap_path),
        # sim hosts share this machine's root filesystem: this checkout's trainer; node folders on the private /srv
        "paramount_trainer_python": sys.executable, "paramount_trainer_pythonpath": str(harness.REPO / "trainer"),
        "paramount_dataset_dir": "/srv/paramount/data", "paramount_dataset_shared": False,
        "paramount_clap_node_root": "/srv/paramount",
        "paramount_clap_connection_tries": 3, "paramount_clap_retry_delay": 5,
        "paramount_trainer_preset": "tiny", "paramount_probe_phases": "warmup:2,adversarial:4",
        "paramount_probe_window_seconds": 0,  # CLAP's workflow is under test here, not the ratings
        "paramount_train_epochs": 1, "paramount_poll_seconds": 1,
        "paramount_plan_options": {"node_counts": [2], "clap_setups": ["paramount-gan"], "plots": False},
    }
    evars.update(more)
    return evars


def _calls(tmp_path):
    return (tmp_path / "calls.log").read_text().splitlines()


def _no_node_of_the_run(clap, run):
    """CLAP's repository and moto hold no node of the run; the run's cluster template is gone."""
    assert clap.nodes() == {}
    assert not (clap.clap_path / "configs" / "clusters" / ("paramount-run-%s.yml" % run)).exists()
    running = [i for i, v in harness.moto_instances(clap.cloud).items()
               if v["state"] != "terminated" and v["tags"].get("CreatedWith") == "CLAP"]
    assert running == []


@pytest.mark.timeout(1200)
def test_optimize_on_the_clap_backend_with_real_clap_probes_plans_grows_trains_and_tears_down(real_clapp, tmp_path):
    clap = real_clapp
    run = "realopt"
    evars = _optimize_vars(clap, tmp_path, run, PROBE, "probe-sim-medium-1")
    proc = _playbook(clap, tmp_path, "optimize.yml", evars, timeout=1100)
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-3000:]
    calls = _calls(tmp_path)

    def first(prefix):
        return next(i for i, c in enumerate(calls) if c.startswith(prefix))

    # the probe cluster: one CLAP cluster without CLAP's setups, then role gan and setup-gan on its nodes
    assert first("cluster start paramount-run-%s --no-setup" % run) < first("node alive") < first("role add gan")
    # the chosen cluster: the kept node's cluster grows; the new node is set up before any probe node stops
    grow = first("cluster grow ")
    assert first("cluster update ") < grow and "--no-setup" in calls[grow]
    setups = [i for i, c in enumerate(calls) if c.startswith("role action gan -a setup-gan")]
    stops = [i for i, c in enumerate(calls) if c.startswith("node stop ")]
    assert len(setups) == 2 and stops and setups[1] > grow and min(stops) > setups[1], calls

    results = tmp_path / "work" / "results" / run
    plan = json.loads((results / "plan" / "plan.json").read_text())
    assert plan["chosen"]["nodes"] == 2 and plan["chosen"]["instance_type"] in PROBE.values()
    assert sorted(p.stem for p in (results / "probe").glob("*.log")) == sorted(PROBE)
    for slot, itype in PROBE.items():
        starts = [json.loads(line) for line in (results / "probe" / ("%s.log" % slot)).read_text().splitlines()
                  if '"event":"start"' in line.replace(" ", "")]
        assert {r["instance_type"] for r in starts} == {itype}
    assert len(list((results / "train").glob("*.log"))) == 2
    assert list((results / "artifacts").rglob("generator.pt")), "the final model did not come back"
    assert json.loads((results / "ledger.json").read_text())
    # the teardown: CLAP's repository and moto hold no node of the run, the run's cluster template is gone
    _no_node_of_the_run(clap, run)


@pytest.mark.timeout(900)
def test_a_failed_setup_of_the_chosen_cluster_under_real_clap_stops_the_run_and_keeps_the_probe_cluster(
        real_clapp, tmp_path):
    """A failure injected into the real CLAP run that clapp reports with exit 0: setup-gan of the grown node gets a
    trainer Python that does not exist (the probe cluster's setup works). optimize stops naming the clapp command,
    the grown node is stopped, the probe cluster stays as it was (its node in CLAP, running in moto, alive), and the
    run's teardown still removes all of it."""
    clap = real_clapp
    run = "realfail"
    missing = "%s/missing/python" % tmp_path
    extra = {"gan_trainer_python": "{{ '%s' if paramount_target_group == 'paramount_train' else '%s' }}"
                                   % (missing, sys.executable)}
    # two probe nodes (a multi-node run measures the communication term): the plan's two nodes of one type are one
    # of them plus one grown node
    probe = {"probe-sim-medium-1": "sim.medium", "probe-sim-large-1": "sim.large"}
    evars = _optimize_vars(clap, tmp_path, run, probe, "probe-sim-large-1", paramount_clap_action_extra=extra)
    proc = _playbook(clap, tmp_path, "optimize.yml", evars, timeout=800)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-8000:]
    calls = _calls(tmp_path)
    grow = next((i for i, c in enumerate(calls) if c.startswith("cluster grow ")), None)
    assert grow is not None, "\n".join(calls) + out[-8000:]
    setup = next(c for c in calls[grow:] if c.startswith("role action gan -a setup-gan"))
    assert "gan_trainer_python=%s" % missing in setup, setup
    assert "clapp exited 0 (clapp exits 0 when a playbook fails)" in proc.stdout, out[-8000:]
    assert "The command was `%s role action gan -a setup-gan -n " % evars["paramount_clap_command"] in proc.stdout
    assert "The new nodes were stopped" in proc.stdout and "PLAY [Train" not in proc.stdout
    # the probe cluster is what it was: its two nodes in CLAP, tagged with their slots, running in moto, alive
    nodes = clap.nodes()
    assert sorted(n["tags"].get("paramount_slot") for n in nodes.values()) == sorted(probe), nodes
    moto = harness.moto_instances(clap.cloud)
    kept = {n["cloud_instance_id"] for n in nodes.values()}
    assert {moto[i]["state"] for i in kept} == {"running"}, moto
    alive = clap.clapp("node", "alive", *nodes, "-cr", "1", "-rt", "1", check_rc=0).stdout
    assert f.clap_alive(alive) == {node_id: True for node_id in nodes}
    grown = [i for i, v in moto.items() if v["tags"].get("CreatedWith") == "CLAP" and i not in kept]
    assert grown and {moto[i]["state"] for i in grown} == {"terminated"}, (grown, moto)

    td = _playbook(clap, tmp_path, "playbooks/teardown.yml", {k: evars[k] for k in (
        "paramount_run", "paramount_clap_command", "paramount_clap_path")}, timeout=300)
    assert td.returncode == 0, (td.stdout + td.stderr)[-4000:]
    _no_node_of_the_run(clap, run)
