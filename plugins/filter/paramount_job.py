# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""The job's command line on a node: the launcher (time limit, PID file, CPU share), torchrun and the trainer,
natively or inside the trainer image (``docker run ... --entrypoint torchrun``). The probe role starts it; the
documentation is the sidecar ``job_command.yml``."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

INSTALL_MODES = ("existing", "venv", "container")
MODES = ("probe", "train")
# seconds between torchrun's checks of its workers: a rank that failed or stopped is noticed within a second
MONITOR_INTERVAL = "1"
# one OpenMP thread per rank: more would compete with gloo and the other ranks for the node's CPU (share)
OMP_NUM_THREADS = "1"


class _Settings:
    """The caller's variables, read by name: a missing one is an error that names it."""

    def __init__(self, settings):
        if not isinstance(settings, dict):
            raise AnsibleFilterError("job_command: expected a mapping of the probe role's variables, got %s"
                                     % type(settings).__name__)
        self._settings = settings

    def text(self, name, default=None):
        """The variable as the command line has it (str(), as Jinja's ``string`` and ``~``); None counts as
        missing: the default, else an error."""
        value = self._settings.get(name)
        if value is None:
            if default is None:
                raise AnsibleFilterError("job_command: %s is required" % name)
            value = default
        return str(value)

    def optional_text(self, name):
        """'' when the variable is missing, empty or None (an optional setting left out)."""
        value = self._settings.get(name)
        return "" if value is None else str(value)

    def number(self, name, convert):
        """The variable as a number (int or float); CLAP passes every extra variable as a string."""
        text = self.text(name)
        try:
            return convert(text)
        except ValueError:
            try:
                return convert(float(text))  # "900.0" as Jinja's int filter reads it
            except ValueError:
                raise AnsibleFilterError("job_command: %s must be a number, got %r" % (name, text)) from None

    def number_text(self, name, convert=int):
        """The variable as the command line has it, once it is known to be a number."""
        self.number(name, convert)
        return self.text(name)

    def flag(self, name):
        """The variable as an Ansible boolean (yes/no, true/false, 1/0: "false" is false); anything else is an error."""
        try:
            return boolean(self.text(name), strict=True)
        except TypeError as exc:
            raise AnsibleFilterError("job_command: %s must be a boolean (%s)" % (name, exc)) from None

    def choice(self, name, choices):
        value = self.text(name)
        if value not in choices:
            raise AnsibleFilterError("job_command: %s must be one of %s, got %r" % (name, ", ".join(choices), value))
        return value

    def strings(self, name):
        value = self._settings.get(name)
        if value is None:
            raise AnsibleFilterError("job_command: %s is required" % name)
        if not isinstance(value, (list, tuple)):
            raise AnsibleFilterError("job_command: %s must be a list, got %r" % (name, value))
        return [str(item) for item in value]


def _environment(job, elastic):
    """The trainer's environment; optional variables only when they are set."""
    env = {
        "PARAMOUNT_INSTANCE_TYPE": job.text("instance_type", "unknown"),
        "PARAMOUNT_RUN_ID": job.text("paramount_trainer_run_id"),
        "OMP_NUM_THREADS": OMP_NUM_THREADS,
    }
    optional = {
        "PYTHONPATH": job.optional_text("paramount_trainer_pythonpath"),
        "GLOO_SOCKET_IFNAME": job.optional_text("paramount_gloo_ifname"),
        # torch 2.14 caches the first round's master address per agent: a node joining later would wait forever
        "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1" if elastic else "",
    }
    env.update((name, value) for name, value in optional.items() if value)
    return env


def _launcher(job, container):
    """paramount_launch.py and its options, up to (not including) its ``--``."""
    root = job.text("paramount_node_root")
    argv = [job.text("paramount_trainer_python"), root + "/paramount_launch.py", "--pidfile", root + "/trainer.pid",
            "--max-seconds", str(job.number("paramount_node_timeout", int)),
            # container: SIGSTOP would stop only the docker client; a share below 1 becomes docker run --cpus
            "--cpu-share", "1.0" if container else job.number_text("paramount_cpu_share", float)]
    if container:  # the launcher removes the container by name on the way out
        argv += ["--container-name", job.text("paramount_container_name"),
                 "--docker-host", job.text("paramount_trainer_docker_host"),
                 "--docker-cli", job.text("paramount_container_docker_cli")]
    return argv


def _docker_run(job, environment):
    """``docker run`` in the foreground up to the image: it proxies the launcher's SIGTERM to the container's
    init (--init), which passes it to torchrun. Host network: the rendezvous, --local-addr and gloo use the
    node's own addresses. The node root and the data set are mounted at their paths on the node. The environment
    reaches the container by name (--env NAME takes the launcher's value); PYTHONPATH stays outside (a source
    checkout on the node means nothing in the image)."""
    root, data = job.text("paramount_node_root"), job.text("paramount_dataset_dir")
    cli = job.text("paramount_container_docker_cli")
    argv = [cli, "--host", job.text("paramount_trainer_docker_host"), "run", "--rm",
            "--name", job.text("paramount_container_name"), "--init", "--network", "host",
            "--workdir", root, "--volume", "%s:%s" % (root, root)]
    if not (data + "/").startswith(root + "/"):
        argv += ["--volume", "%s:%s:ro" % (data, data)]
    cgroup = job.optional_text("paramount_container_cgroup")
    if cgroup not in ("", "/"):
        argv += ["--cgroup-parent", cgroup]
    if job.number("paramount_cpu_share", float) < 1:
        argv += ["--cpus", job.text("paramount_cpu_share")]
    argv += ["--env=" + name for name in environment if name != "PYTHONPATH"]
    return argv + job.strings("paramount_container_run_args") + [
        "--entrypoint", "torchrun", job.text("paramount_trainer_image")]


def _torchrun_options(job, elastic):
    """torchrun's options (after ``python -m torch.distributed.run``, or the image's ``torchrun``)."""
    if elastic:
        # the store runs apart (every agent a client), and a re-formation waits only briefly for latecomers
        nnodes = "%s:%s" % (job.number_text("paramount_elastic_min_nodes"),
                            job.number_text("paramount_elastic_max_nodes"))
        endpoint = job.text("paramount_rdzv_store_address")
        rdzv_conf = "is_host=false,join_timeout=%s,last_call_timeout=%s" % (
            job.number_text("paramount_elastic_join_timeout"), job.number_text("paramount_elastic_last_call"))
        max_restarts = job.number_text("paramount_elastic_max_restarts")
    else:
        reachable = job.strings("paramount_reachable_nodes")
        nnodes = str(len(reachable))
        endpoint = "%s:%s" % (job.text("paramount_rdzv_address"), job.number_text("paramount_rdzv_port"))
        is_host = job.text("inventory_hostname") == job.text("paramount_rdzv_host")
        rdzv_conf = "is_host=%s,join_timeout=%s" % ("true" if is_host else "false",
                                                    job.number_text("paramount_dist_timeout"))
        max_restarts = "0"
    return ["--nnodes", nnodes, "--nproc-per-node", job.number_text("paramount_nproc_per_node"),
            "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint, "--rdzv-id", job.text("paramount_trainer_run_id"),
            "--rdzv-conf", rdzv_conf, "--local-addr", job.optional_text("paramount_private_address"),
            "--max-restarts", max_restarts, "--monitor-interval", MONITOR_INTERVAL]


def _trainer(job, elastic):
    """``-m paramount_trainer train`` and its arguments: the node's folders, the mode's and the caller's extras."""
    root = job.text("paramount_node_root")
    argv = ["-m", "paramount_trainer", "train", "--quiet", "--preset", job.text("paramount_trainer_preset"),
            "--data", job.text("paramount_dataset_dir"), "--output-dir", root + "/output",
            "--log-dir", root + "/logs", "--checkpoint-dir", root + "/checkpoints",
            "--node-name", job.text("paramount_node_name"), "--instance-type", job.text("instance_type", "unknown"),
            "--run-id", job.text("paramount_trainer_run_id"), "--dist-timeout", job.number_text("paramount_dist_timeout")]
    if job.choice("paramount_mode", MODES) == "probe":
        argv += ["--probe-phases", job.text("paramount_probe_phases"),
                 "--probe-window", job.number_text("paramount_probe_window_seconds", float)]
    elif job.number("paramount_train_epochs", int) > 0:  # 0: the preset's epochs
        argv += ["--epochs", job.text("paramount_train_epochs")]
    if elastic:
        argv.append("--elastic")
    if job.number("paramount_checkpoint_interval", int) > 0:  # 0: the preset's interval
        argv += ["--checkpoint-interval", job.text("paramount_checkpoint_interval")]
    return argv + job.strings("paramount_trainer_extra_args")


def job_command(settings):
    """{argv, environment} of the job on one node, from the probe role's variables (see job_command.yml)."""
    job = _Settings(settings)
    container = job.choice("paramount_trainer_install", INSTALL_MODES) == "container"
    elastic = job.flag("paramount_elastic")
    environment = _environment(job, elastic)
    if container:
        argv = _launcher(job, container) + ["--"] + _docker_run(job, environment)
    else:
        argv = _launcher(job, container) + ["--", job.text("paramount_trainer_python"), "-m", "torch.distributed.run"]
    argv += _torchrun_options(job, elastic) + _trainer(job, elastic)
    return {"argv": argv, "environment": environment}


class FilterModule:
    """paramount.cluster's job filters."""

    def filters(self):
        return {"job_command": job_command}
