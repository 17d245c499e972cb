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
from pathlib import Path

import pytest
import yaml

from tests.clap_real import harness

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


@pytest.mark.timeout(1200)
def test_optimize_on_the_clap_backend_with_real_clap_probes_plans_grows_trains_and_tears_down(real_clapp, tmp_path):
    clap = real_clapp
    run = "realopt"
    hosts = {slot: {"instance_type": itype} for slot, itype in PROBE.items()}
    hosts["probe-sim-medium-1"]["paramount_rendezvous"] = True
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
        "paramount_train_epochs": 1, "paramount_poll_seconds": 1,
        "paramount_plan_options": {"node_counts": [2], "clap_setups": ["paramount-gan"], "plots": False},
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "CLAP", "PARAMOUNT_", "AWS_"))}
    env.update(clap.cloud.environment())
    env.update(PWD=str(harness.REPO), PARAMOUNT_WORKDIR=str(tmp_path / "work"), HOME=str(clap.home),
               ANSIBLE_CONFIG=str(harness.REPO / "ansible.cfg"), ANSIBLE_PYTHON_INTERPRETER="/usr/bin/python3",
               PATH=os.pathsep.join([str(Path(sys.executable).parent), "/usr/sbin", "/usr/bin", "/sbin", "/bin"]))
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "optimize.yml", "-e", "@clap/optimize-vars.yml",
            "-e", json.dumps(evars)]
    # in the cloud's controller namespace, with clapp's private /etc/hosts (boto 2's name for moto)
    proc = subprocess.run(clap.controller_argv(argv), cwd=str(harness.REPO), env=env, capture_output=True, text=True,
                          timeout=1100, stdin=subprocess.DEVNULL, check=False)
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-3000:]
    calls = (tmp_path / "calls.log").read_text().splitlines()

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
    assert clap.nodes() == {}
    assert not (clap.clap_path / "configs" / "clusters" / ("paramount-run-%s.yml" % run)).exists()
    running = [i for i, v in harness.moto_instances(clap.cloud).items()
               if v["state"] != "terminated" and v["tags"].get("CreatedWith") == "CLAP"]
    assert running == []
