"""The sweep finds what is left of runs that are gone, reports it, and terminates it only when asked (issue #5).

sim: instances of two runs are started with the provision playbook; one run's results folder is deleted; a dry
sweep terminates nothing, a terminating sweep terminates exactly the gone run's instances (moto shows it).
local: the same with worker slots (no root).
"""
import json
import os
import subprocess
import sys
import time

import pytest
import yaml

from tests.playbook_env import REPO, ansible_command, ansible_settings

ALIVE, GONE = "sweep-alive", "sweep-gone"

LIST_INSTANCES = (
    "import boto3, json; ec2 = boto3.client('ec2'); "
    "print(json.dumps([{'id': i['InstanceId'], 'state': i['State']['Name'], "
    "'run': {t['Key']: t['Value'] for t in i.get('Tags', [])}.get('paramount_run')} "
    "for r in ec2.describe_instances()['Reservations'] for i in r['Instances']]))"
)


def _desired(tmp_path, prefix, instance_type):
    path = tmp_path / ("%s.yml" % prefix)
    path.write_text(yaml.safe_dump({"all": {"children": {"paramount_train": {"hosts": {
        "%s-1" % prefix: {"instance_type": instance_type, "paramount_rendezvous": True}}}}}}))
    return str(path)


def _env(work, collections_path, run, backend):
    return ansible_settings(collections_path, local_temp=work / "ansible-tmp", workdir=work, run=run, backend=backend)


def _playbook(runner, name, args, work, collections_path, run, backend):
    argv = [ansible_command("ansible-playbook"), "paramount.cluster." + name, *args]
    proc = runner(argv, _env(work, collections_path, run, backend))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-5000:]
    return output


def _sweep_message(output):
    """The sweep's one-line report, whitespace collapsed."""
    text = " ".join(output.split())
    start = text.find("sweep (")
    assert start >= 0, output[-3000:]
    return text[start:text.find("Runs with results or kept", start)]


@pytest.mark.root
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sweep_on_the_simulated_cloud(sim_cloud, collections_path, tmp_path):
    work = tmp_path / "work"
    work.mkdir()

    def runner(argv, env):
        return sim_cloud.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=200)

    def instances():
        proc = sim_cloud.run([sys.executable, "-c", LIST_INSTANCES], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return {i["id"]: i for i in json.loads(proc.stdout) if i["run"] in (ALIVE, GONE)}

    sweep_args = ["-e", "paramount_sweep_match=^sweep-"]  # only this test's runs, whatever else the cloud holds
    try:
        for run in (ALIVE, GONE):
            _playbook(runner, "provision", ["-e", "paramount_desired_inventory=" + _desired(tmp_path, run, "sim.small")],
                      work, collections_path, run, "sim")
        assert (work / "results" / ALIVE).is_dir() and (work / "results" / GONE).is_dir()
        started = instances()
        by_run = {run: sorted(i for i, v in started.items() if v["run"] == run and v["state"] == "running")
                  for run in (ALIVE, GONE)}
        assert len(by_run[ALIVE]) == 1 and len(by_run[GONE]) == 1, started

        # A sweep while both runs have results finds nothing.
        message = _sweep_message(_playbook(runner, "sweep", sweep_args, work, collections_path, ALIVE, "sim"))
        assert "nothing of a gone run found" in message, message

        (work / "results" / GONE).rmdir()
        dry = _sweep_message(_playbook(runner, "sweep", sweep_args, work, collections_path, ALIVE, "sim"))
        assert GONE in dry and by_run[GONE][0] in dry and "report only" in dry, dry
        assert ALIVE not in dry and by_run[ALIVE][0] not in dry, dry
        assert all(v["state"] == "running" for v in instances().values()), "a dry sweep terminated something"

        # A kept run is not gone.
        kept = _sweep_message(_playbook(runner, "sweep", sweep_args + ["-e", '{"paramount_sweep_keep": ["%s"]}' % GONE],
                                        work, collections_path, ALIVE, "sim"))
        assert "nothing of a gone run found" in kept, kept

        done = _sweep_message(_playbook(runner, "sweep", sweep_args + ["-e", "paramount_sweep_terminate=true"],
                                        work, collections_path, ALIVE, "sim"))
        assert "TERMINATED: " + by_run[GONE][0] in done, done
        after = instances()
        assert after[by_run[GONE][0]]["state"] == "terminated", after
        assert after[by_run[ALIVE][0]]["state"] == "running", after
    finally:
        for run in (ALIVE, GONE):
            _playbook(runner, "teardown", [], work, collections_path, run, "sim")
    assert all(v["state"] == "terminated" for v in instances().values())
    for _attempt in range(50):  # the reconciler removes the hosts of terminated instances
        if not [h for h in sim_cloud.hosts() if h.get("name", "").startswith("sweep-")]:
            break
        time.sleep(0.2)
    assert not [h for h in sim_cloud.hosts() if h.get("name", "").startswith("sweep-")]


@pytest.mark.timeout(120)
def test_sweep_on_the_local_backend(collections_path, tmp_path):
    work = tmp_path / "work"
    work.mkdir()

    def runner(argv, env):
        return subprocess.run(argv, cwd=REPO, env=dict(os.environ, **env), capture_output=True, text=True,
                              timeout=100, check=False)

    for run in (ALIVE, GONE):
        _playbook(runner, "provision", ["-e", "paramount_desired_inventory=" + _desired(tmp_path, run, "local.small")],
                  work, collections_path, run, "local")
    assert (work / "runs" / GONE / "nodes" / (GONE + "-1")).is_dir()
    (work / "results" / GONE).rmdir()

    dry = _sweep_message(_playbook(runner, "sweep", [], work, collections_path, ALIVE, "local"))
    assert "slot %s/%s-1" % (GONE, GONE) in dry and "report only" in dry and ALIVE not in dry, dry
    assert (work / "runs" / GONE).is_dir()

    done = _sweep_message(_playbook(runner, "sweep", ["-e", "paramount_sweep_terminate=true"], work, collections_path,
                                    ALIVE, "local"))
    assert "TERMINATED: " + GONE in done, done
    assert not (work / "runs" / GONE).exists() and (work / "runs" / ALIVE / "nodes" / (ALIVE + "-1")).is_dir()
    _playbook(runner, "teardown", [], work, collections_path, ALIVE, "local")
    assert not (work / "runs" / ALIVE).exists()
