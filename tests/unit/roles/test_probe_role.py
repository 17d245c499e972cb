"""Role paramount.cluster.probe: defaults, argument specs and README agree; the command the role starts on a node,
rendered by Ansible's templar from the role's own task (which builds it with the filter paramount.cluster.job_command):
natively as before, in a container the same torchrun, and for every case of probe_job_commands.json the command the
role's Jinja built before the filter did."""
import contextlib
import json
import sys
from pathlib import Path

import pytest

from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar
from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder

from tests.role_specs import role_defaults, role_options, role_task

from ..templating import trusted

REPO = Path(__file__).resolve().parents[3]
COLLECTIONS_ROOT = REPO / ".build" / "collections"  # tests/conftest.py links the repository there
CAPTURED = json.loads((Path(__file__).parent / "probe_job_commands.json").read_text(encoding="utf-8"))

# what the play knows when the task runs (facts of the earlier tasks, inventory variables)
NODE = {
    "inventory_hostname": "node-b", "paramount_rdzv_host": "node-a", "paramount_rdzv_address": "10.0.0.4",
    "paramount_node_name": "node-b", "paramount_reachable_nodes": ["node-a", "node-b"], "instance_type": "sim.large",
    "ansible_default_ipv4": {"address": "10.0.0.5"},
}

NATIVE = [
    "/usr/bin/python3", "/srv/paramount/paramount_launch.py", "--pidfile", "/srv/paramount/trainer.pid",
    "--max-seconds", "900", "--cpu-share", "1.0", "--",
    "/usr/bin/python3", "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d",
    "--rdzv-endpoint", "10.0.0.4:29400", "--rdzv-id", "default-probe", "--rdzv-conf", "is_host=false,join_timeout=120",
    "--local-addr", "10.0.0.5", "--max-restarts", "0", "--monitor-interval", "1", "-m", "paramount_trainer",
    "train", "--quiet", "--preset", "tiny", "--data", "/srv/paramount/data", "--output-dir", "/srv/paramount/output",
    "--log-dir", "/srv/paramount/logs", "--checkpoint-dir", "/srv/paramount/checkpoints", "--node-name", "node-b",
    "--instance-type", "sim.large", "--run-id", "default-probe", "--dist-timeout", "120",
    "--probe-phases", "warmup:3,adversarial:10", "--probe-window", "4",
]


def _collection_modules():
    return {name: module for name, module in sys.modules.items()
            if name == "ansible_collections" or name.startswith("ansible_collections.")}


@contextlib.contextmanager
def _collection_loader():
    """Ansible's collection loader, as ansible-playbook installs it, so the templar finds paramount.cluster's
    filters by their FQCN. It only loads collections it imports itself: the modules other tests imported through
    sys.path step aside meanwhile and come back after."""
    imported = _collection_modules()
    for name in imported:
        del sys.modules[name]
    _AnsibleCollectionFinder(paths=[str(COLLECTIONS_ROOT)], scan_sys_paths=False)._install()
    try:
        yield
    finally:
        _AnsibleCollectionFinder._remove()
        for name in _collection_modules():
            del sys.modules[name]
        sys.modules.update(imported)


def _start(**overrides):
    """(argv, environment) of the task that starts the trainer, with the role's defaults and these variables
    (None: not defined)."""
    task = role_task("probe", "Start the trainer")
    variables = {**role_defaults("probe"), **task["vars"], **NODE, **overrides}
    variables = {name: value for name, value in variables.items() if value is not None}
    with _collection_loader():
        templar = Templar(loader=DataLoader(), variables=trusted(variables))
        argv = templar.template(trusted(task["ansible.builtin.command"]["argv"]))
        return argv, templar.template(trusted(task["environment"]))


def _container(**overrides):
    return _start(**{"paramount_trainer_install": "container", "paramount_container_name": "paramount-default-probe-node-b",
                     "paramount_container_cgroup": "/cloud/sim.large/i-1", **overrides})


def test_the_install_modes_are_the_trainer_roles():
    trainer = role_options("trainer")["paramount_trainer_install"]["choices"]
    assert set(role_options("probe")["paramount_trainer_install"]["choices"]) == set(trainer)


def test_natively_the_command_is_torchrun_of_the_nodes_python():
    argv, env = _start()
    assert argv == NATIVE
    assert env == {"PARAMOUNT_INSTANCE_TYPE": "sim.large", "PARAMOUNT_RUN_ID": "default-probe", "OMP_NUM_THREADS": "1"}
    for mode in ("existing", "venv"):
        assert _start(paramount_trainer_install=mode)[0] == NATIVE


@pytest.mark.parametrize("case", sorted(CAPTURED["cases"]))
def test_the_command_is_the_one_the_roles_jinja_built(case):
    """local, sim, aws and clap variables; existing, venv and container; probe and train; elastic or not."""
    assert CAPTURED["node"] == NODE
    captured = CAPTURED["cases"][case]
    argv, env = _start(**captured["vars"])
    assert (argv, env) == (captured["argv"], captured["environment"])


def test_the_task_builds_the_command_with_the_filter_from_the_roles_variables():
    task = role_task("probe", "Start the trainer")
    assert task["vars"]["_job"] == "{{ _job_settings | paramount.cluster.job_command }}"
    passed = set(task["vars"]["_job_settings"])
    facts = {"inventory_hostname", "instance_type", "paramount_private_address", "paramount_node_name",
             "paramount_reachable_nodes", "paramount_rdzv_host", "paramount_rdzv_address",
             "paramount_container_name", "paramount_container_cgroup"}  # of the node and the earlier tasks
    assert passed - set(role_defaults("probe")) == facts
    not_passed = set(role_defaults("probe")) - passed
    assert not_passed == {"paramount_group", "paramount_run", "paramount_connect_timeout", "paramount_poll_seconds",
                          "paramount_train_detach", "paramount_container_cgroup_parent"}  # used by other tasks


def test_natively_a_cpu_share_throttles_through_the_launcher():
    argv = _start(paramount_cpu_share=0.3)[0]
    assert argv[argv.index("--cpu-share") + 1] == "0.3"


def test_in_a_container_the_same_torchrun_runs_in_the_image():
    argv, env = _container(paramount_gloo_ifname="eth0", paramount_trainer_pythonpath="/checkout/trainer")
    launcher, rest = argv[:argv.index("--") + 1], argv[argv.index("--") + 1:]
    assert launcher == ["/usr/bin/python3", "/srv/paramount/paramount_launch.py", "--pidfile", "/srv/paramount/trainer.pid",
                        "--max-seconds", "900", "--cpu-share", "1.0",
                        "--container-name", "paramount-default-probe-node-b",
                        "--docker-host", "unix:///var/run/docker.sock", "--docker-cli", "docker", "--"]
    image = rest.index("paramount/trainer:cpu")
    docker, torchrun = rest[:image], rest[image + 1:]
    assert torchrun == NATIVE[NATIVE.index("torch.distributed.run") + 1:]  # the same arguments as natively
    assert docker[:4] == ["docker", "--host", "unix:///var/run/docker.sock", "run"]
    assert docker[-2:] == ["--entrypoint", "torchrun"]
    for flag in (["--rm"], ["--init"], ["--name", "paramount-default-probe-node-b"], ["--network", "host"],
                 ["--volume", "/srv/paramount:/srv/paramount"], ["--workdir", "/srv/paramount"],
                 ["--cgroup-parent", "/cloud/sim.large/i-1"]):
        assert any(docker[i:i + len(flag)] == flag for i in range(len(docker))), flag
    # the trainer's environment reaches the container by name; a source checkout's PYTHONPATH does not
    assert env["PYTHONPATH"] == "/checkout/trainer" and env["GLOO_SOCKET_IFNAME"] == "eth0"
    assert sorted(a for a in docker if a.startswith("--env")) == [
        "--env=GLOO_SOCKET_IFNAME", "--env=OMP_NUM_THREADS", "--env=PARAMOUNT_INSTANCE_TYPE", "--env=PARAMOUNT_RUN_ID"]
    assert "--cpus" not in docker and "--volume" in docker and docker.count("--volume") == 1


@pytest.mark.parametrize("cgroup", ["", "/"])
def test_in_a_container_no_cgroup_means_the_engines_default(cgroup):
    argv = _container(paramount_container_cgroup=cgroup)[0]
    assert "--cgroup-parent" not in argv


def test_in_a_container_a_cpu_share_becomes_cpus_and_an_outside_data_set_a_read_only_volume():
    argv = _container(paramount_cpu_share=0.3, paramount_dataset_dir="/data/photos",
                      paramount_container_run_args=["--shm-size", "1g"])[0]
    assert argv[argv.index("--cpu-share") + 1] == "1.0"  # SIGSTOP would stop only the docker client
    assert argv[argv.index("--cpus") + 1] == "0.3"
    assert "/data/photos:/data/photos:ro" in argv
    assert argv[argv.index("--shm-size"):argv.index("--shm-size") + 4] == ["--shm-size", "1g", "--entrypoint", "torchrun"]


@pytest.mark.parametrize("proc_self_cgroup, expected", [
    ("12:pids:/\n4:memory:/c/sim.large/i-1\n3:cpuset:/\n2:cpuacct:/\n1:cpu:/c/sim.large/i-1\n0::/\n", "/c/sim.large/i-1"),
    ("5:cpu,cpuacct:/user.slice/session-3.scope\n0::/\n", "/user.slice/session-3.scope"),
    ("5:cpuacct,cpu:/a\n", "/a"),
    ("0::/user.slice/user-0.slice/session-1.scope\n", "/user.slice/user-0.slice/session-1.scope"),
    ("3:cpuset:/x\n2:cpuacct:/y\n", ""),
])
def test_the_session_cgroup_is_the_cpu_controllers_line_else_the_unified_one(proc_self_cgroup, expected):
    import base64

    task = role_task("probe", "Container mode - name the container")
    variables = {**role_defaults("probe"), **task["vars"], **NODE, "paramount_trainer_run_id": "run-1-probe",
                 "paramount_container_cgroup_parent": "session",
                 "paramount_session_cgroup": {"content": base64.b64encode(proc_self_cgroup.encode()).decode()}}
    templar = Templar(loader=DataLoader(), variables=trusted(variables))
    facts = templar.template(trusted(task["ansible.builtin.set_fact"]))
    assert facts["paramount_container_cgroup"] == expected
    assert facts["paramount_container_name"] == "paramount-run-1-probe-node-b"
