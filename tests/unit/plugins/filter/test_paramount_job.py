"""Filter paramount.cluster.job_command: the job's command line on a node (launcher, torchrun, trainer; natively or
in the trainer image), only the settings the chosen mode uses, errors that name the variable, and documentation
(job_command.yml) that lists what the probe role passes. The role's own cases: tests/unit/roles/test_probe_role.py."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.paramount.cluster.plugins.filter import paramount_job as f

REPO = Path(__file__).resolve().parents[4]
DOC = yaml.safe_load((REPO / "plugins" / "filter" / "job_command.yml").read_text(encoding="utf-8"))
OPTIONS = DOC["DOCUMENTATION"]["options"]["_input"]["suboptions"]

# a probe on the second of two nodes, natively, not elastic: only what that needs
NATIVE_PROBE = {
    "paramount_trainer_install": "existing", "paramount_trainer_python": "/usr/bin/python3",
    "paramount_trainer_preset": "tiny", "paramount_trainer_extra_args": [], "paramount_trainer_run_id": "r-probe",
    "paramount_mode": "probe", "paramount_probe_phases": "warmup:3,adversarial:10", "paramount_probe_window_seconds": 4,
    "paramount_checkpoint_interval": 0, "paramount_node_root": "/srv/p", "paramount_dataset_dir": "/srv/p/data",
    "paramount_node_name": "b", "paramount_node_timeout": 900, "paramount_cpu_share": 1.0,
    "paramount_nproc_per_node": 1, "paramount_dist_timeout": 120, "paramount_elastic": False,
    "inventory_hostname": "b", "paramount_reachable_nodes": ["a", "b"], "paramount_rdzv_host": "a",
    "paramount_rdzv_address": "10.0.0.4", "paramount_rdzv_port": 29400,
}
CONTAINER = {"paramount_trainer_install": "container", "paramount_container_name": "paramount-r-probe-b",
             "paramount_trainer_image": "paramount/trainer:cpu", "paramount_trainer_docker_host": "unix:///d.sock",
             "paramount_container_docker_cli": "docker", "paramount_container_run_args": []}
ELASTIC = {"paramount_elastic": True, "paramount_rdzv_store_address": "10.0.0.1:29500",
           "paramount_elastic_min_nodes": 1, "paramount_elastic_max_nodes": 4, "paramount_elastic_max_restarts": 100,
           "paramount_elastic_join_timeout": 600, "paramount_elastic_last_call": 10}


def job(**changes):
    settings = {**NATIVE_PROBE, **changes}
    return f.job_command({name: value for name, value in settings.items() if value is not ...})


def after(argv, flag):
    return argv[argv.index(flag) + 1]


def test_the_filter_is_job_command():
    assert f.FilterModule().filters() == {"job_command": f.job_command}


def test_natively_the_launcher_starts_torchrun_of_the_nodes_python_which_starts_the_trainer():
    argv = job()["argv"]
    assert argv[:argv.index("--")] == ["/usr/bin/python3", "/srv/p/paramount_launch.py", "--pidfile", "/srv/p/trainer.pid",
                                       "--max-seconds", "900", "--cpu-share", "1.0"]
    torchrun = argv[argv.index("--") + 1:argv.index("paramount_trainer") - 1]
    assert torchrun == ["/usr/bin/python3", "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
                        "--rdzv-backend", "c10d", "--rdzv-endpoint", "10.0.0.4:29400", "--rdzv-id", "r-probe",
                        "--rdzv-conf", "is_host=false,join_timeout=120", "--local-addr", "", "--max-restarts", "0",
                        "--monitor-interval", "1"]
    assert argv[argv.index("paramount_trainer") - 1:] == [
        "-m", "paramount_trainer", "train", "--quiet", "--preset", "tiny", "--data", "/srv/p/data",
        "--output-dir", "/srv/p/output", "--log-dir", "/srv/p/logs", "--checkpoint-dir", "/srv/p/checkpoints",
        "--node-name", "b", "--instance-type", "unknown", "--run-id", "r-probe", "--dist-timeout", "120",
        "--probe-phases", "warmup:3,adversarial:10", "--probe-window", "4"]
    assert job()["environment"] == {"PARAMOUNT_INSTANCE_TYPE": "unknown", "PARAMOUNT_RUN_ID": "r-probe",
                                    "OMP_NUM_THREADS": "1"}


def test_the_rendezvous_node_hosts_the_rendezvous():
    assert after(job(inventory_hostname="a")["argv"], "--rdzv-conf") == "is_host=true,join_timeout=120"


def test_every_item_is_a_string_as_the_command_module_runs_it():
    argv = job(paramount_node_timeout="900.0", paramount_cpu_share=1, paramount_rdzv_port="29401",
               paramount_nproc_per_node=4, paramount_trainer_extra_args=["--seed", 7])["argv"]
    assert all(isinstance(item, str) for item in argv)
    assert (after(argv, "--max-seconds"), after(argv, "--cpu-share"), after(argv, "--rdzv-endpoint")) == (
        "900", "1", "10.0.0.4:29401")
    assert argv[-2:] == ["--seed", "7"]


def test_train_mode_takes_epochs_and_a_checkpoint_interval_only_when_positive():
    argv = job(paramount_mode="train", paramount_probe_phases=..., paramount_probe_window_seconds=...,
               paramount_train_epochs="0")["argv"]
    assert "--epochs" not in argv and "--probe-phases" not in argv and "--checkpoint-interval" not in argv
    argv = job(paramount_mode="train", paramount_train_epochs=3, paramount_checkpoint_interval=50,
               paramount_trainer_extra_args=["--batch-size", "4"])["argv"]
    assert argv[-6:] == ["--epochs", "3", "--checkpoint-interval", "50", "--batch-size", "4"]


def test_optional_environment_only_when_set():
    env = job(paramount_trainer_pythonpath="/checkout/trainer", paramount_gloo_ifname="", instance_type="c5.xlarge")[
        "environment"]
    assert env == {"PARAMOUNT_INSTANCE_TYPE": "c5.xlarge", "PARAMOUNT_RUN_ID": "r-probe", "OMP_NUM_THREADS": "1",
                   "PYTHONPATH": "/checkout/trainer"}


def test_elastic_uses_the_store_apart_from_the_nodes_and_needs_no_rendezvous_node():
    out = job(**ELASTIC, paramount_mode="train", paramount_train_epochs=0, inventory_hostname=..., paramount_reachable_nodes=...,
              paramount_rdzv_host=..., paramount_rdzv_address=..., paramount_rdzv_port=...)
    argv = out["argv"]
    assert (after(argv, "--nnodes"), after(argv, "--rdzv-endpoint"), after(argv, "--max-restarts")) == (
        "1:4", "10.0.0.1:29500", "100")
    assert after(argv, "--rdzv-conf") == "is_host=false,join_timeout=600,last_call_timeout=10"
    assert "--elastic" in argv and out["environment"]["TORCH_DISABLE_SHARE_RDZV_TCP_STORE"] == "1"


@pytest.mark.parametrize("value, elastic", [(True, True), ("yes", True), ("true", True), (False, False),
                                            ("false", False), ("0", False)])
def test_elastic_is_read_as_ansible_reads_a_boolean(value, elastic):
    argv = job(**{**ELASTIC, "paramount_elastic": value})["argv"]
    assert ("--elastic" in argv) is elastic


def test_in_a_container_the_launcher_runs_docker_run_with_the_same_torchrun_and_needs_no_python_torchrun():
    native = job()["argv"]
    argv = job(**CONTAINER, paramount_container_cgroup="/cloud/sim.large/i-1", paramount_cpu_share="0.5",
               paramount_trainer_pythonpath="/checkout", paramount_gloo_ifname="eth0")["argv"]
    launcher, docker = argv[:argv.index("--")], argv[argv.index("--") + 1:argv.index("paramount/trainer:cpu")]
    assert launcher[-8:] == ["--cpu-share", "1.0", "--container-name", "paramount-r-probe-b",
                             "--docker-host", "unix:///d.sock", "--docker-cli", "docker"]
    assert docker == ["docker", "--host", "unix:///d.sock", "run", "--rm", "--name", "paramount-r-probe-b", "--init",
                      "--network", "host", "--workdir", "/srv/p", "--volume", "/srv/p:/srv/p",
                      "--cgroup-parent", "/cloud/sim.large/i-1", "--cpus", "0.5",
                      "--env=PARAMOUNT_INSTANCE_TYPE", "--env=PARAMOUNT_RUN_ID", "--env=OMP_NUM_THREADS",
                      "--env=GLOO_SOCKET_IFNAME", "--entrypoint", "torchrun"]
    assert argv[argv.index("paramount/trainer:cpu") + 1:] == native[native.index("torch.distributed.run") + 1:]


@pytest.mark.parametrize("data, root, mounted", [("/data/photos", "/srv/p", True), ("/srv/p-data", "/srv/p", True),
                                                 ("/srv/p/data", "/srv/p", False), ("/srv/p", "/srv/p", False)])
def test_in_a_container_a_data_set_outside_the_node_root_is_a_read_only_volume(data, root, mounted):
    argv = job(**CONTAINER, paramount_dataset_dir=data, paramount_node_root=root)["argv"]
    assert (f"{data}:{data}:ro" in argv) is mounted


@pytest.mark.parametrize("cgroup", [..., None, "", "/"])
def test_in_a_container_no_cgroup_means_the_engines_default(cgroup):
    assert "--cgroup-parent" not in job(**CONTAINER, paramount_container_cgroup=cgroup)["argv"]


def _full_settings():
    return {**NATIVE_PROBE, **CONTAINER, **ELASTIC, "paramount_elastic": False, "paramount_train_epochs": 0,
            "paramount_trainer_pythonpath": "", "paramount_gloo_ifname": "", "instance_type": "t",
            "paramount_private_address": "10.0.0.5", "paramount_container_cgroup": ""}


def test_the_documentation_lists_every_setting_the_filter_reads_and_the_probe_role_passes():
    assert set(OPTIONS) == set(_full_settings())
    start = [task for task in yaml.safe_load((REPO / "roles" / "probe" / "tasks" / "main.yml").read_text(encoding="utf-8"))
             if task["name"].startswith("Start the trainer")]
    assert set(OPTIONS) == set(start[0]["vars"]["_job_settings"])


@pytest.mark.parametrize("name", sorted(name for name, option in OPTIONS.items() if option.get("required")))
def test_a_missing_required_setting_is_an_error_that_names_it(name):
    settings = _full_settings()
    for value in (..., None):
        if value is ...:
            del settings[name]
        else:
            settings[name] = value
        with pytest.raises(AnsibleFilterError, match=f"job_command: {name} is required"):
            f.job_command(settings)


@pytest.mark.parametrize("name, changes", [
    ("paramount_container_name", CONTAINER), ("paramount_trainer_image", CONTAINER),
    ("paramount_rdzv_store_address", ELASTIC), ("paramount_elastic_join_timeout", ELASTIC),
    ("paramount_rdzv_address", {}), ("paramount_reachable_nodes", {}), ("paramount_probe_phases", {}),
    ("paramount_train_epochs", {"paramount_mode": "train"}),
])
def test_a_setting_the_mode_uses_is_required_in_that_mode(name, changes):
    with pytest.raises(AnsibleFilterError, match=f"job_command: {name} is required"):
        job(**{**changes, name: ...})


@pytest.mark.parametrize("name, value, message", [
    ("paramount_node_timeout", "soon", "paramount_node_timeout must be a number, got 'soon'"),
    ("paramount_cpu_share", "half", "paramount_cpu_share must be a number, got 'half'"),
    ("paramount_checkpoint_interval", "", "paramount_checkpoint_interval must be a number, got ''"),
    ("paramount_rdzv_port", "29400/tcp", "paramount_rdzv_port must be a number, got '29400/tcp'"),
    ("paramount_probe_window_seconds", "4s", "paramount_probe_window_seconds must be a number, got '4s'"),
    ("paramount_trainer_install", "podman", "paramount_trainer_install must be one of existing, venv, container"),
    ("paramount_mode", "sweep", "paramount_mode must be one of probe, train, got 'sweep'"),
    ("paramount_elastic", "maybe", "paramount_elastic must be a boolean"),
    ("paramount_trainer_extra_args", "--seed 7", "paramount_trainer_extra_args must be a list, got '--seed 7'"),
    ("paramount_reachable_nodes", "a,b", "paramount_reachable_nodes must be a list, got 'a,b'"),
])
def test_a_bad_value_is_an_error_that_names_the_variable(name, value, message):
    with pytest.raises(AnsibleFilterError, match="job_command: " + message):
        job(**{name: value})


@pytest.mark.parametrize("settings", [None, ["paramount_mode=probe"], "paramount_mode: probe"])
def test_the_input_must_be_a_mapping(settings):
    with pytest.raises(AnsibleFilterError, match="job_command: expected a mapping of the probe role's variables"):
        f.job_command(settings)
