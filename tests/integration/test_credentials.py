"""Cloud credentials never appear in output, logs, results or written inventories (issue #5).

A small run on the simulated cloud (the sim backend is the aws backend against moto) is provisioned and torn down
with distinctive fake credentials passed the way users pass them, in the environment, at -vvv. moto accepts any
credentials, so the run succeeds; then every byte the run printed or wrote is searched for the canaries.
"""
import time

import pytest
import yaml

from tests.playbook_env import REPO, ansible_command, ansible_settings

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(300)]

RUN = "canary-run"
CANARIES = {
    "AWS_ACCESS_KEY_ID": "AKIAPARAMOUNTCANARY1",
    "AWS_SECRET_ACCESS_KEY": "paramountCanarySecret/0123456789abcdefSECRET",
    "AWS_SESSION_TOKEN": "paramountCanarySessionToken0123456789TOKEN",
}


def _ansible(cloud, argv, work, collections_path, timeout=240):
    env = ansible_settings(
        collections_path, local_temp=work / "ansible-tmp", workdir=work, backend="sim", run=RUN,
        ANSIBLE_HOST_KEY_CHECKING="False",
        # Ansible's own log file is one of the places searched.
        ANSIBLE_LOG_PATH=work / "ansible.log",
        # the simulated cloud's environment carries "testing" credentials: these replace them
        **CANARIES,
    )
    proc = cloud.run([ansible_command(argv[0]), *argv[1:]], cwd=REPO, env=env,
                     capture_output=True, text=True, timeout=timeout)
    return proc


def _leaks(text):
    """Each canary found, with the line it is on (to find the task that printed it)."""
    return sorted("%s in: %s" % (name, line.strip()[:300])
                  for name, value in CANARIES.items() for line in text.splitlines() if value in line)


def test_credentials_never_appear_in_output_or_files(sim_cloud, collections_path, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    desired = tmp_path / "desired.yml"
    desired.write_text(yaml.safe_dump({"all": {"children": {"paramount_train": {"hosts": {
        "canary-1": {"instance_type": "sim.small", "paramount_rendezvous": True}}}}}}))
    outputs = {}
    try:
        provision = _ansible(sim_cloud, ["ansible-playbook", "paramount.cluster.provision", "-vvv",
                                         "-e", "paramount_desired_inventory=" + str(desired)], work, collections_path)
        outputs["provision"] = provision.stdout + provision.stderr
        assert provision.returncode == 0, outputs["provision"][-6000:]
        # The connectable inventory the run wrote, used as a user would (the aws_ec2 plugin reads the environment too).
        inventory = work / "runs" / RUN / "inventory.aws_ec2.yml"
        assert inventory.is_file(), sorted(str(p) for p in work.rglob("*"))
        listed = _ansible(sim_cloud, ["ansible-inventory", "-vvv", "-i", str(inventory), "--list"], work, collections_path)
        outputs["inventory"] = listed.stdout + listed.stderr
        assert listed.returncode == 0 and "canary-1" in listed.stdout, outputs["inventory"][-4000:]
    finally:
        teardown = _ansible(sim_cloud, ["ansible-playbook", "paramount.cluster.teardown", "-vvv"], work, collections_path)
        outputs["teardown"] = teardown.stdout + teardown.stderr
    assert teardown.returncode == 0, outputs["teardown"][-6000:]
    # The -vvv output is real (module invocations are shown), so a leak would have had its chance.
    assert "ec2_instance" in outputs["provision"] and "module_args" in outputs["provision"], outputs["provision"][-3000:]

    for name, text in outputs.items():
        assert _leaks(text) == [], "%s output shows %s" % (name, _leaks(text))
    written = [p for p in work.rglob("*") if p.is_file()]
    assert (work / "ansible.log").is_file()
    for path in written:
        text = path.read_bytes().decode("utf-8", errors="replace")
        assert _leaks(text) == [], "%s holds %s" % (path, _leaks(text))
    # The run left nothing behind: the reconciler removes the host of the terminated instance.
    for _attempt in range(50):
        if not [h for h in sim_cloud.hosts() if h.get("name") == "canary-1"]:
            break
        time.sleep(0.2)
    assert not [h for h in sim_cloud.hosts() if h.get("name") == "canary-1"]
