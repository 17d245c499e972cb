# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""One simulated cloud, kept in its state directory: the controller namespace, moto and the reconciler.

Layout of one cloud (``prefix`` is a short random id, so several clouds never collide)::

    <prefix>-ctl   controller namespace: bridge br0 at <subnet>.1, default route `unreachable`,
                   moto_server on 127.0.0.1:<port>, the reconciler, and whatever runs Ansible.
    <prefix>-i<8>  one namespace per running instance (hosts.py), in the cgroups of its type (quotas.py).
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .controller import PORT_PROBE
from .hosts import NamespaceHosts
from .quotas import CpuQuotas, cgroup_dirs, remove_cgroups
from .system import PREFIX_MARK, SimCloudError, delete_netns, kill_pids, list_netns, missing_requirements, pid_alive, run_command

PACKAGE_DIR = Path(__file__).resolve().parent  # `python <this folder>` runs the tool (the reconciler, the seeding)
DEFAULT_SUBNET = "10.77.0.0/24"
STATE_FILE = "state.json"


class SimCloud(CpuQuotas, NamespaceHosts):
    """One simulated cloud, identified by its state directory."""

    def __init__(self, state_dir, subnet=DEFAULT_SUBNET, moto_port=5055):
        self.state_dir = Path(state_dir).resolve()
        self.state_path = self.state_dir / STATE_FILE
        if self.state_path.exists():
            self.state = json.loads(self.state_path.read_text())
        else:
            net = ipaddress.ip_network(subnet)
            self.state = {
                "prefix": "%s%s" % (PREFIX_MARK, secrets.token_hex(2)),
                "subnet": str(net),
                "gateway": str(net.network_address + 1),
                "moto_port": int(moto_port),
                "pids": {},
            }

    # ------------------------------------------------------------------ names and paths
    @property
    def prefix(self):
        return self.state["prefix"]

    @property
    def controller_ns(self):
        return self.prefix + "-ctl"

    @property
    def endpoint_url(self):
        return "http://127.0.0.1:%d" % self.state["moto_port"]

    @property
    def hosts_file(self):
        return self.state_dir / "hosts"

    @property
    def private_key(self):
        return self.state_dir / "id_ed25519"

    def _save(self):
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=2, sort_keys=True))
        os.replace(tmp, self.state_path)

    def controller_argv(self, argv):
        """``argv`` prefixed so that it runs in the controller's network namespace.

        nsenter switches the network namespace only; `ip netns exec` would also remount /sys,
        hiding the cgroup hierarchy the reconciler writes to.
        """
        return ["nsenter", "--net=/run/netns/" + self.controller_ns, "--"] + list(argv)

    def run(self, argv, timeout=600, **kwargs):
        """Run ``argv`` to completion in the controller namespace with the cloud's environment."""
        env = dict(os.environ, **self.environment())
        env.update(kwargs.pop("env", {}) or {})
        return subprocess.run(self.controller_argv(argv), env=env, timeout=timeout, check=False, **kwargs)

    def environment(self):
        """Environment for AWS clients and Ansible in the controller namespace (fake credentials only)."""
        return {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "PARAMOUNT_SIM_STATE": str(self.state_path),
            "PARAMOUNT_SIM_ENDPOINT": self.endpoint_url,
            "PARAMOUNT_SIM_SUBNET_ID": self.state.get("subnet_id", ""),
            "PARAMOUNT_SIM_KEY_NAME": self.state.get("key_name", ""),
            "PARAMOUNT_SIM_PRIVATE_KEY": str(self.private_key),
            # Every sim cloud reuses the same private addresses: an SSH master connection (ControlPersist) kept
            # under ~/.ansible/cp for 10.77.0.4 would carry another cloud's session to its own 10.77.0.4.
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.state_dir / "ssh-cp"),
        }

    # ------------------------------------------------------------------ lifecycle
    def up(self, timeout=30.0):
        """Create the controller namespace, cgroups, keys, moto and the reconciler. Idempotent."""
        reasons = missing_requirements()
        if reasons:
            raise SimCloudError("cannot start the simulated cloud: " + "; ".join(reasons))
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._save()
        try:
            self._make_keys()
            self._make_controller_ns()
            self._make_cgroups()
            if not self.hosts_file.exists():
                self.hosts_file.write_text("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
            self._start_moto(timeout)
            self._seed_network()
            self._start_reconciler()
        except BaseException:
            self.down()
            raise
        return self.state

    def down(self):
        """Terminate everything this cloud started. Safe to call twice or on a half-made cloud."""
        pids = [p for p in self.state.get("pids", {}).values() if isinstance(p, int)]
        kill_pids(pids)
        for host in self._recorded_hosts():
            kill_pids([host.get("sshd_pid", 0)])
        for namespace in list_netns(self.prefix):
            if namespace != self.controller_ns:
                delete_netns(namespace)
        delete_netns(self.controller_ns)
        remove_cgroups(self.prefix)
        self.state["pids"] = {}
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir / "instances", ignore_errors=True)
            if self.state_path.exists():
                self.state["down"] = True
                self._save()

    def leftovers(self):
        """What of this cloud still exists: namespaces, cgroups, live PIDs. Empty after ``down``."""
        left = ["netns " + n for n in list_netns(self.prefix)]
        left += ["cgroup " + str(d) for d in cgroup_dirs(self.prefix)]
        recorded = list(self.state.get("pids", {}).values()) + [h.get("sshd_pid") for h in self._recorded_hosts()]
        left += ["pid %d" % p for p in recorded if isinstance(p, int) and pid_alive(p)]
        return left

    # ------------------------------------------------------------------ pieces of up()
    def _make_keys(self):
        if not self.private_key.exists():
            run_command(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "paramount-sim", "-f", str(self.private_key)])
        host_key = self.state_dir / "ssh_host_ed25519_key"
        if not host_key.exists():
            run_command(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)])
        shutil.copyfile(str(self.private_key) + ".pub", self.state_dir / "authorized_keys")

    def _make_controller_ns(self):
        ns = self.controller_ns
        if ns in list_netns(ns):
            return
        gateway = self.state["gateway"]
        length = ipaddress.ip_network(self.state["subnet"]).prefixlen
        run_command(["ip", "netns", "add", ns])
        for argv in (
            ["link", "set", "lo", "up"],
            ["link", "add", "br0", "type", "bridge"],
            ["addr", "add", "%s/%d" % (gateway, length), "dev", "br0"],
            ["link", "set", "br0", "up"],
            # A wrong address fails at once instead of leaving the machine.
            ["route", "add", "unreachable", "default"],
        ):
            run_command(["ip", "-n", ns] + argv)

    def _spawn(self, key, argv, log_name, env=None):
        log = open(self.state_dir / log_name, "ab")  # pylint: disable=consider-using-with
        try:
            proc = subprocess.Popen(  # pylint: disable=consider-using-with
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, env=env,
            )
        finally:
            log.close()
        self.state["pids"][key] = proc.pid
        self._save()
        return proc.pid

    def _start_moto(self, timeout):
        if pid_alive(self.state["pids"].get("moto", 0)):
            return
        moto = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
        env = dict(os.environ)
        # moto validates instance types only when this is set to anything non-empty.
        env.pop("MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION", None)
        self._spawn("moto", self.controller_argv([moto, "-H", "127.0.0.1", "-p", str(self.state["moto_port"])]), "moto.log", env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            probe = run_command(self.controller_argv([sys.executable, "-c", PORT_PROBE, "127.0.0.1", str(self.state["moto_port"])]), check=False)
            if probe.returncode == 0:
                return
            if not pid_alive(self.state["pids"]["moto"]):
                break
            time.sleep(0.3)
        raise SimCloudError("moto_server did not answer on %s within %.0f s; see %s" % (self.endpoint_url, timeout, self.state_dir / "moto.log"))

    def _seed_network(self):
        """A VPC whose subnet is the bridge's network, a key pair, and an all-open-inside security group."""
        if self.state.get("subnet_id"):
            return
        out = run_command(self.controller_argv([sys.executable, str(PACKAGE_DIR), "_seed", "--state-dir", str(self.state_dir)]))
        self.state.update(json.loads(out.stdout))
        self._save()

    def _start_reconciler(self):
        if pid_alive(self.state["pids"].get("reconciler", 0)):
            return
        argv = self.controller_argv([sys.executable, str(PACKAGE_DIR), "_reconcile", "--state-dir", str(self.state_dir)])
        self._spawn("reconciler", argv, "reconciler.log")


def sweep_all():
    """Remove every sim cloud's namespaces and cgroups on this machine (by name prefix)."""
    for namespace in list_netns(PREFIX_MARK):
        if not namespace.endswith("-ctl"):
            delete_netns(namespace)
    for namespace in list_netns(PREFIX_MARK):
        delete_netns(namespace)
    remove_cgroups(PREFIX_MARK)
