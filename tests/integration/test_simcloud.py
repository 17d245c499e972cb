"""The simulated cloud, driven by boto3 alone (nothing of ours between the test and the EC2 API)."""
import json
import subprocess
import sys
import textwrap
import time

import pytest

import simcloud

from .conftest import start_cloud

pytestmark = [pytest.mark.root, pytest.mark.timeout(300)]

LAUNCH_AND_LOGIN = textwrap.dedent(
    """
    import json, os, subprocess, sys, time
    import boto3

    state = json.load(open(os.environ["PARAMOUNT_SIM_STATE"]))
    ec2 = boto3.client("ec2")
    reply = ec2.run_instances(ImageId=state["image_id"], MinCount=1, MaxCount=1, InstanceType=sys.argv[1],
                              SubnetId=state["subnet_id"], KeyName=state["key_name"])
    instance = reply["Instances"][0]
    ec2.get_waiter("instance_running").wait(InstanceIds=[instance["InstanceId"]],
                                            WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    ssh = ["ssh", "-i", os.environ["PARAMOUNT_SIM_PRIVATE_KEY"], "-o", "StrictHostKeyChecking=no",
           "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=2",
           "root@" + instance["PrivateIpAddress"],
           "hostname; cat /proc/self/cgroup; findmnt -n -o FSTYPE /srv; cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || true"]
    for _ in range(int(sys.argv[2])):  # the reconciler makes the host within a second or two
        login = subprocess.run(ssh, capture_output=True, text=True)
        if login.returncode == 0:
            break
        time.sleep(0.2)
    print(json.dumps({"instance_id": instance["InstanceId"], "ip": instance["PrivateIpAddress"],
                      "rc": login.returncode, "stdout": login.stdout, "stderr": login.stderr}))
    """
)

TERMINATE = textwrap.dedent(
    """
    import sys
    import boto3

    ec2 = boto3.client("ec2")
    ec2.terminate_instances(InstanceIds=sys.argv[1:])
    ec2.get_waiter("instance_terminated").wait(InstanceIds=sys.argv[1:], WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    """
)


def _launch(cloud, instance_type, login_tries=50):
    proc = cloud.run([sys.executable, "-c", LAUNCH_AND_LOGIN, instance_type, str(login_tries)],
                     capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _wait_gone(cloud, instance_id, seconds=15):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if instance_id not in {h["instance_id"] for h in cloud.hosts()}:
            return True
        time.sleep(0.2)
    return False


def test_boto3_instance_is_an_ssh_host_of_its_type(sim_cloud):
    launched = _launch(sim_cloud, "sim.small")
    assert launched["rc"] == 0, launched["stderr"]
    hostname, *rest = launched["stdout"].splitlines()
    assert hostname == "ip-" + launched["ip"].replace(".", "-")
    # The login shell runs in the host's own cgroup (under its type), so it inherits the type's CPU quota.
    cpu_group = "/%s/sim.small/%s" % (sim_cloud.prefix, launched["instance_id"])
    assert any(line.endswith(":cpu:" + cpu_group) for line in rest), rest
    quota = simcloud.CGROUP_ROOT / "cpu" / cpu_group.lstrip("/") / "cpu.cfs_quota_us"
    assert int(quota.read_text()) == int(simcloud.SIM_TYPES["sim.small"].cpu * simcloud.CPU_PERIOD_US)
    assert "tmpfs" in rest, "node-private /srv is missing"

    host = {h["instance_id"]: h for h in sim_cloud.hosts()}[launched["instance_id"]]
    assert host["instance_type"] == "sim.small" and host["private_ip"] == launched["ip"]

    proc = sim_cloud.run([sys.executable, "-c", TERMINATE, launched["instance_id"]], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert _wait_gone(sim_cloud, launched["instance_id"]), "the host outlived its terminated instance"
    assert not quota.parent.exists(), "the host's cgroup outlived it"
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert host["namespace"] not in namespaces


def test_unknown_instance_type_is_reported_not_hosted(sim_cloud):
    launched = _launch(sim_cloud, "t2.micro", login_tries=1)
    assert launched["rc"] != 0  # no host: nothing answers at that address
    errors_file = sim_cloud.state_dir / "reconcile-errors.json"
    deadline = time.monotonic() + 15
    errors = {}
    while time.monotonic() < deadline and launched["instance_id"] not in errors:
        time.sleep(0.2)
        errors = json.loads(errors_file.read_text()) if errors_file.exists() else {}
    assert "t2.micro" in errors.get(launched["instance_id"], ""), errors
    assert launched["instance_id"] not in {h["instance_id"] for h in sim_cloud.hosts()}
    proc = sim_cloud.run([sys.executable, "-c", TERMINATE, launched["instance_id"]], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_teardown_leaves_nothing_behind(tmp_path):
    cloud = start_cloud(tmp_path / "cloud")
    try:
        launched = _launch(cloud, "sim.medium")
        assert launched["rc"] == 0, launched["stderr"]
        assert cloud.leftovers(), "a running cloud must show its namespaces, cgroups and processes"
    finally:
        cloud.down()
    assert cloud.leftovers() == []
    cloud.down()  # idempotent
    assert cloud.leftovers() == []
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert cloud.prefix not in namespaces
