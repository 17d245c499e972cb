# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""A small EC2 cloud on one machine: moto is the cloud API, network namespaces are the machines.

Layout of one cloud (``prefix`` is a short random id, so several clouds never collide)::

    <prefix>-ctl   controller namespace: bridge br0 at <subnet>.1, default route `unreachable`,
                   moto_server on 127.0.0.1:<port>, the reconciler, and whatever runs Ansible.
    <prefix>-i<8>  one namespace per running instance, at the instance's private IP, hostname
                   ip-a-b-c-d, private tmpfs /srv, the cloud's shared hosts file as /etc/hosts and an
                   sshd whose cgroup (cpu and memory, v1) is the one of the instance's type.

The reconciler makes ``hosts == running instances``: moto says what exists, the reconciler only
follows. So ``amazon.aws.ec2_instance`` and the ``amazon.aws.aws_ec2`` inventory see exactly the
hosts that exist.

Needs root, iproute2, openssh-server, util-linux (unshare) and a cgroup v1 ``cpu`` hierarchy.
Only the standard library and boto3 are imported, so this file also runs as a script::

    python simcloud.py up --state-dir DIR      # prints the state (JSON)
    python simcloud.py exec --state-dir DIR -- ansible-playbook ...   # run in the controller netns
    python simcloud.py down --state-dir DIR    # idempotent; also `down --all` sweeps every sim cloud
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
CPU_PERIOD_US = 100_000
PREFIX_MARK = "pcsim"  # every namespace and cgroup of a sim cloud starts with this
DEFAULT_SUBNET = "10.77.0.0/24"
STATE_FILE = "state.json"


@dataclasses.dataclass(frozen=True)
class SimType:
    """An emulated instance type. ``cpu`` is the share of one core (cgroup v1 CFS quota)."""

    name: str
    cpu: float
    memory_mib: int
    vcpus: int
    price_per_hour: float


# Quotas add up to 1.05 cores, well under the machine's 2, so the speed order stays sharp
# even when all three run at once. Prices make `medium` the cheapest per unit of work
# and `large` the fastest; catalogs/default.csv carries the same figures.
SIM_TYPES = {
    t.name: t
    for t in (
        SimType("sim.small", 0.15, 2048, 1, 0.010),
        SimType("sim.medium", 0.30, 3072, 1, 0.018),
        SimType("sim.large", 0.60, 4096, 1, 0.050),
    )
}


class SimCloudError(RuntimeError):
    """A clear, user-facing failure of the simulated cloud."""


def _run(argv, check=True, **kwargs):
    """Run a command, raising SimCloudError with its stderr on failure."""
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
    if check and proc.returncode != 0:
        raise SimCloudError("command failed (%d): %s\n%s" % (proc.returncode, " ".join(argv), proc.stderr.strip()))
    return proc


def missing_requirements():
    """Return a list of reasons this machine cannot run a sim cloud (empty when it can)."""
    reasons = []
    if os.geteuid() != 0:
        reasons.append("needs root (network namespaces, veth, cgroups)")
    tools = (("ip", "iproute2"), ("unshare", "util-linux"), ("nsenter", "util-linux"), ("ssh-keygen", "openssh-client"), ("ssh", "openssh-client"))
    for tool, package in tools:
        if shutil.which(tool) is None:
            reasons.append("%s not found (install %s)" % (tool, package))
    if not Path("/usr/sbin/sshd").exists():
        reasons.append("/usr/sbin/sshd not found (install openssh-server)")
    if not (CGROUP_ROOT / "cpu" / "cpu.cfs_quota_us").exists():
        reasons.append("no cgroup v1 cpu hierarchy at %s" % (CGROUP_ROOT / "cpu"))
    if shutil.which("moto_server") is None and not (Path(sys.executable).parent / "moto_server").exists():
        reasons.append("moto_server not found (pip install 'moto[server]')")
    return reasons


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie counts as gone: it runs nothing and its parent reaps it.
    try:
        with open("/proc/%d/stat" % pid, encoding="ascii") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def kill_pids(pids, grace=3.0):
    """SIGTERM the given PIDs, wait up to ``grace`` seconds, then SIGKILL the rest."""
    pids = [p for p in set(pids) if p and p != os.getpid() and _pid_alive(p)]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_pid_alive(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        if _pid_alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def netns_pids(namespace):
    proc = _run(["ip", "netns", "pids", namespace], check=False)
    return [int(p) for p in proc.stdout.split() if p.isdigit()]


def list_netns(prefix):
    proc = _run(["ip", "netns", "list"], check=False)
    names = [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]
    return [n for n in names if n.startswith(prefix)]


def delete_netns(namespace):
    """Kill every process in the namespace (deleting it does not), then delete it."""
    for _attempt in range(3):
        pids = netns_pids(namespace)
        if not pids:
            break
        kill_pids(pids)
    _run(["ip", "netns", "del", namespace], check=False)


def _cgroup_dirs(prefix):
    dirs = []
    for controller in ("cpu", "memory"):
        base = CGROUP_ROOT / controller
        if base.is_dir():
            dirs.extend(sorted(base.glob(prefix + "*")))
    return dirs


def remove_cgroups(prefix):
    """Kill what is left in the cloud's cgroups and remove them (children first)."""
    for top in _cgroup_dirs(prefix):
        children = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True)
        for group in children + [top]:
            for _attempt in range(3):
                try:
                    pids = [int(p) for p in (group / "cgroup.procs").read_text().split()]
                except OSError:
                    pids = []
                if not pids:
                    break
                kill_pids(pids)
            try:
                group.rmdir()
            except OSError:
                pass


class SimCloud:
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
        left += ["cgroup " + str(d) for d in _cgroup_dirs(self.prefix)]
        recorded = list(self.state.get("pids", {}).values()) + [h.get("sshd_pid") for h in self._recorded_hosts()]
        left += ["pid %d" % p for p in recorded if isinstance(p, int) and _pid_alive(p)]
        return left

    # ------------------------------------------------------------------ pieces of up()
    def _make_keys(self):
        if not self.private_key.exists():
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "paramount-sim", "-f", str(self.private_key)])
        host_key = self.state_dir / "ssh_host_ed25519_key"
        if not host_key.exists():
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)])
        shutil.copyfile(str(self.private_key) + ".pub", self.state_dir / "authorized_keys")

    def _make_controller_ns(self):
        ns = self.controller_ns
        if ns in list_netns(ns):
            return
        gateway = self.state["gateway"]
        length = ipaddress.ip_network(self.state["subnet"]).prefixlen
        _run(["ip", "netns", "add", ns])
        for argv in (
            ["link", "set", "lo", "up"],
            ["link", "add", "br0", "type", "bridge"],
            ["addr", "add", "%s/%d" % (gateway, length), "dev", "br0"],
            ["link", "set", "br0", "up"],
            # A wrong address fails at once instead of leaving the machine.
            ["route", "add", "unreachable", "default"],
        ):
            _run(["ip", "-n", ns] + argv)

    def cpu_overrides(self):
        """{type: share of a CPU} set by ``set_cpu`` (a type whose speed changed)."""
        path = self.state_dir / "cpu-overrides.json"
        try:
            return {k: float(v) for k, v in json.loads(path.read_text()).items()}
        except (OSError, ValueError, AttributeError):
            return {}

    def set_cpu(self, instance_type, share):
        """Change the speed of a type while its hosts run (benchmarks): every running host of that type and
        every later one gets ``share`` of a CPU. Returns the instance ids changed."""
        if instance_type not in SIM_TYPES:
            raise SimCloudError("unknown sim type %r (known: %s)" % (instance_type, ", ".join(sorted(SIM_TYPES))))
        if not 0 < float(share) <= 1:
            raise SimCloudError("CPU share must be in (0, 1], got %s" % share)
        overrides = self.cpu_overrides()
        overrides[instance_type] = float(share)
        (self.state_dir / "cpu-overrides.json").write_text(json.dumps(overrides))
        changed = []
        type_dir = CGROUP_ROOT / "cpu" / self.prefix / instance_type
        if type_dir.is_dir():
            for group in sorted(p for p in type_dir.iterdir() if p.is_dir()):
                (group / "cpu.cfs_quota_us").write_text(str(int(float(share) * CPU_PERIOD_US)))
                changed.append(group.name)
        return changed

    def _make_cgroups(self):
        """The cloud's own cgroups (no limit); each host gets a child with its type's limits."""
        for controller in ("cpu", "memory"):
            if (CGROUP_ROOT / controller).is_dir():
                (CGROUP_ROOT / controller / self.prefix).mkdir(exist_ok=True)

    def _instance_cgroups(self, instance_type, instance_id):
        """One cgroup per host, <prefix>/<type>/<instance id>: every instance gets its own CPU quota and
        memory limit (a per-type group would make all instances of a type share one)."""
        sim_type = SIM_TYPES[instance_type]
        groups = []
        cpu = CGROUP_ROOT / "cpu" / self.prefix / instance_type / instance_id
        cpu.mkdir(parents=True, exist_ok=True)
        (cpu / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
        share = self.cpu_overrides().get(instance_type, sim_type.cpu)
        (cpu / "cpu.cfs_quota_us").write_text(str(int(share * CPU_PERIOD_US)))
        groups.append(cpu)
        if (CGROUP_ROOT / "memory").is_dir():
            mem = CGROUP_ROOT / "memory" / self.prefix / instance_type / instance_id
            mem.mkdir(parents=True, exist_ok=True)
            (mem / "memory.limit_in_bytes").write_text(str(sim_type.memory_mib * 1024 * 1024))
            groups.append(mem)
        return groups

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
        if _pid_alive(self.state["pids"].get("moto", 0)):
            return
        moto = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
        env = dict(os.environ)
        # moto validates instance types only when this is set to anything non-empty.
        env.pop("MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION", None)
        self._spawn("moto", self.controller_argv([moto, "-H", "127.0.0.1", "-p", str(self.state["moto_port"])]), "moto.log", env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            probe = _run(self.controller_argv([sys.executable, "-c", _PORT_PROBE, "127.0.0.1", str(self.state["moto_port"])]), check=False)
            if probe.returncode == 0:
                return
            if not _pid_alive(self.state["pids"]["moto"]):
                break
            time.sleep(0.3)
        raise SimCloudError("moto_server did not answer on %s within %.0f s; see %s" % (self.endpoint_url, timeout, self.state_dir / "moto.log"))

    def _seed_network(self):
        """A VPC whose subnet is the bridge's network, a key pair, and an all-open-inside security group."""
        if self.state.get("subnet_id"):
            return
        out = _run(self.controller_argv([sys.executable, str(Path(__file__).resolve()), "_seed", "--state-dir", str(self.state_dir)]))
        self.state.update(json.loads(out.stdout))
        self._save()

    def _start_reconciler(self):
        if _pid_alive(self.state["pids"].get("reconciler", 0)):
            return
        argv = self.controller_argv([sys.executable, str(Path(__file__).resolve()), "_reconcile", "--state-dir", str(self.state_dir)])
        self._spawn("reconciler", argv, "reconciler.log")

    # ------------------------------------------------------------------ hosts
    def _instances_dir(self):
        path = self.state_dir / "instances"
        path.mkdir(exist_ok=True)
        return path

    def _recorded_hosts(self):
        path = self.state_dir / "instances"
        if not path.is_dir():
            return []
        hosts = []
        for record in sorted(path.glob("*.json")):
            try:
                hosts.append(json.loads(record.read_text()))
            except (OSError, ValueError):
                continue
        return hosts

    def hosts(self):
        """The hosts that exist now, as recorded by the reconciler."""
        return self._recorded_hosts()

    def create_host(self, instance_id, private_ip, instance_type, name=None, public_ip=None, foreign=False):
        """Make the machine of one running instance. Returns its record.

        ``foreign``: the instance was launched outside the simulated subnet (no subnet asked for, as CLAP's legacy
        `ec2` plays do: moto then gives it an address of no subnet here); its host gets that address alone (/32),
        the controller routes it on its bridge and forwards between such hosts. A public IP is added to the host
        the same way, so the host answers on the address a client records. All of it inside the cloud's
        namespaces."""
        if instance_type not in SIM_TYPES:
            raise SimCloudError("instance %s has type %r, which the simulated cloud does not emulate (known: %s)"
                                % (instance_id, instance_type, ", ".join(sorted(SIM_TYPES))))
        address = ipaddress.ip_address(private_ip)
        subnet = ipaddress.ip_network(self.state["subnet"])
        foreign = foreign and address not in subnet
        if address not in subnet and not foreign:
            raise SimCloudError("instance %s has private IP %s outside the simulated subnet %s" % (instance_id, private_ip, subnet))
        public = ipaddress.ip_address(public_ip) if public_ip else None
        suffix = instance_id.split("-")[-1][-8:]
        namespace = "%s-i%s" % (self.prefix, suffix)
        veth = "%sv%s" % (self.prefix, suffix[-5:])
        hostname = "ip-" + str(address).replace(".", "-")
        host_dir = self._instances_dir() / instance_id
        host_dir.mkdir(exist_ok=True)
        if namespace in list_netns(namespace):
            delete_netns(namespace)  # a half-made host from an interrupted reconcile
        _run(["ip", "netns", "add", namespace])
        _run(["ip", "-n", namespace, "link", "set", "lo", "up"])
        _run(["ip", "link", "add", veth, "netns", self.controller_ns, "type", "veth", "peer", "name", "eth0", "netns", namespace])
        _run(["ip", "-n", self.controller_ns, "link", "set", veth, "master", "br0", "up"])
        _run(["ip", "-n", namespace, "addr", "add", "%s/%d" % (address, 32 if foreign else subnet.prefixlen), "dev", "eth0"])
        if public is not None:
            _run(["ip", "-n", namespace, "addr", "add", "%s/32" % public, "dev", "eth0"])
        _run(["ip", "-n", namespace, "link", "set", "eth0", "up"])
        if foreign:  # the gateway is on the bridge, not in the host's subnet; the controller routes between them
            _run(["ip", "-n", namespace, "route", "add", str(subnet), "dev", "eth0"])
            _run(["ip", "-n", self.controller_ns, "route", "replace", "%s/32" % address, "dev", "br0"])
            _run(self.controller_argv(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]))
        if public is not None:
            _run(["ip", "-n", self.controller_ns, "route", "replace", "%s/32" % public, "dev", "br0"])
        _run(["ip", "-n", namespace, "route", "add", "default", "via", self.state["gateway"]])
        config = host_dir / "sshd_config"
        config.write_text("\n".join([
            "ListenAddress %s:22" % address,
        ] + (["ListenAddress %s:22" % public] if public is not None else []) + [
            "HostKey %s" % (self.state_dir / "ssh_host_ed25519_key"),
            "PidFile %s" % (host_dir / "sshd.pid"),
            "AuthorizedKeysFile %s" % (self.state_dir / "authorized_keys"),
            "PermitRootLogin prohibit-password",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "MaxStartups 64:30:128",
            "MaxSessions 64",
            "Subsystem sftp internal-sftp",
            "",
        ]))
        Path("/run/sshd").mkdir(exist_ok=True)
        script = "hostname %s && mount -t tmpfs -o size=%dm tmpfs /srv && mount --bind %s /etc/hosts && exec /usr/sbin/sshd -D -f %s -E %s" % (
            hostname, SIM_TYPES[instance_type].memory_mib * 2, self.hosts_file, config, host_dir / "sshd.log")
        log = open(host_dir / "host.log", "ab")  # pylint: disable=consider-using-with
        try:
            # unshare and sh exec into sshd, so this PID is sshd's; its children inherit the cgroups.
            proc = subprocess.Popen(  # pylint: disable=consider-using-with
                ["ip", "netns", "exec", namespace, "unshare", "--mount", "--uts", "--propagation", "private", "sh", "-c", script],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        finally:
            log.close()
        for group in self._instance_cgroups(instance_type, instance_id):
            (group / "cgroup.procs").write_text(str(proc.pid))
        record = {
            "instance_id": instance_id, "private_ip": str(address), "instance_type": instance_type,
            "hostname": hostname, "name": name or "", "namespace": namespace, "veth": veth, "sshd_pid": proc.pid,
            "public_ip": str(public) if public is not None else "", "foreign": foreign,
        }
        (host_dir.with_suffix(".json")).write_text(json.dumps(record, indent=2))
        self._write_hosts_file()
        if not _wait_port(str(address), 22, 10.0):
            raise SimCloudError("sshd of %s (%s) did not listen within 10 s; see %s" % (instance_id, address, host_dir))
        return record

    def delete_host(self, record):
        kill_pids([record.get("sshd_pid", 0)])
        delete_netns(record["namespace"])
        _run(["ip", "-n", self.controller_ns, "link", "del", record["veth"]], check=False)
        for routed in ([record["public_ip"]] if record.get("public_ip") else []) + ([record["private_ip"]] if record.get("foreign") else []):
            _run(["ip", "-n", self.controller_ns, "route", "del", routed + "/32"], check=False)
        for controller in ("cpu", "memory"):
            group = CGROUP_ROOT / controller / self.prefix / record["instance_type"] / record["instance_id"]
            if group.is_dir():
                kill_pids([int(p) for p in (group / "cgroup.procs").read_text().split()])
                try:
                    group.rmdir()
                except OSError:
                    pass
        host_dir = self._instances_dir() / record["instance_id"]
        shutil.rmtree(host_dir, ignore_errors=True)
        host_dir.with_suffix(".json").unlink(missing_ok=True)
        self._write_hosts_file()

    def _write_hosts_file(self):
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
        for host in self._recorded_hosts():
            names = [host["hostname"], host["hostname"] + ".ec2.internal"]
            if host.get("name") and host["name"] not in names:
                names.append(host["name"])
            lines.append("%s\t%s" % (host["private_ip"], " ".join(names)))
        # Rewrite in place: every host bind-mounts this inode as /etc/hosts.
        with open(self.hosts_file, "r+", encoding="ascii") as hosts:
            hosts.seek(0)
            hosts.write("\n".join(lines) + "\n")
            hosts.truncate()

    def reconcile_once(self, ec2):
        """Make hosts follow moto's running instances. Returns (created, deleted) instance ids."""
        wanted = {}
        paginator = ec2.get_paginator("describe_instances")
        for page in paginator.paginate(Filters=[{"Name": "instance-state-name", "Values": ["running"]}]):
            for reservation in page["Reservations"]:
                for instance in reservation["Instances"]:
                    tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
                    wanted[instance["InstanceId"]] = (instance.get("PrivateIpAddress"), instance["InstanceType"], tags.get("Name"),
                                                      instance.get("PublicIpAddress"), instance.get("SubnetId"))
        existing = {h["instance_id"]: h for h in self._recorded_hosts()}
        deleted = [i for i in existing if i not in wanted]
        for instance_id in deleted:
            self.delete_host(existing[instance_id])
        created = []
        errors = self.state_dir / "reconcile-errors.json"
        problems = {}
        for instance_id, (address, instance_type, name, public_ip, subnet_id) in wanted.items():
            if instance_id in existing:
                continue
            try:
                self.create_host(instance_id, address, instance_type, name, public_ip, subnet_id != self.state.get("subnet_id"))
                created.append(instance_id)
            except (SimCloudError, ValueError) as exc:
                problems[instance_id] = str(exc)
        errors.write_text(json.dumps(problems, indent=2))
        return created, deleted


_PORT_PROBE = "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()"


def _wait_port(address, port, timeout):
    """Wait until address:port accepts connections, probing from this process's namespace."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((address, port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def _ec2_client(cloud):
    import boto3  # imported here: only the controller-namespace helpers need it

    return boto3.client(
        "ec2", endpoint_url=cloud.endpoint_url, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )


def _seed(cloud):
    ec2 = _ec2_client(cloud)
    subnet = cloud.state["subnet"]
    vpc_net = str(ipaddress.ip_network(subnet).supernet(new_prefix=16))
    vpc_id = ec2.create_vpc(CidrBlock=vpc_net, TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": "paramount-sim"}]}])["Vpc"]["VpcId"]
    subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock=subnet, TagSpecifications=[
        {"ResourceType": "subnet", "Tags": [{"Key": "Name", "Value": "paramount-sim"}]}])["Subnet"]["SubnetId"]
    group_id = ec2.create_security_group(GroupName="paramount-sim", Description="all TCP inside the cluster", VpcId=vpc_id)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 0, "ToPort": 65535, "UserIdGroupPairs": [{"GroupId": group_id}]}])
    public_key = (cloud.state_dir / "id_ed25519.pub").read_text()
    ec2.import_key_pair(KeyName="paramount-sim", PublicKeyMaterial=public_key.encode())
    image_id = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    return {"vpc_id": vpc_id, "subnet_id": subnet_id, "security_group_id": group_id, "key_name": "paramount-sim", "image_id": image_id}


def _reconcile_forever(cloud, interval=0.3, max_seconds=6 * 3600):
    """The reconciler process: bounded in time, stops on SIGTERM or when the cloud is taken down."""
    stop = {"flag": False}

    def _stop(_signum, _frame):
        stop["flag"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    ec2 = _ec2_client(cloud)
    deadline = time.monotonic() + max_seconds
    while not stop["flag"] and time.monotonic() < deadline and cloud.state_path.exists():
        try:
            created, deleted = cloud.reconcile_once(ec2)
            for instance_id in created:
                print("created host for %s" % instance_id, flush=True)
            for instance_id in deleted:
                print("deleted host of %s" % instance_id, flush=True)
        except Exception as exc:  # pylint: disable=broad-except
            # Keep following moto; the next pass retries. The error goes to reconciler.log.
            print("reconcile failed: %r" % (exc,), flush=True)
        time.sleep(interval)


def sweep_all():
    """Remove every sim cloud's namespaces and cgroups on this machine (by name prefix)."""
    for namespace in list_netns(PREFIX_MARK):
        if not namespace.endswith("-ctl"):
            delete_netns(namespace)
    for namespace in list_netns(PREFIX_MARK):
        delete_netns(namespace)
    remove_cgroups(PREFIX_MARK)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="simcloud", description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start a cloud (prints its state as JSON)")
    up.add_argument("--state-dir", required=True)
    up.add_argument("--subnet", default=DEFAULT_SUBNET)
    up.add_argument("--moto-port", type=int, default=5055)
    down = sub.add_parser("down", help="tear a cloud down (idempotent)")
    down.add_argument("--state-dir")
    down.add_argument("--all", action="store_true", help="also sweep every sim cloud on this machine")
    run = sub.add_parser("exec", help="run a command in the controller namespace with the cloud's environment")
    run.add_argument("--state-dir", required=True)
    run.add_argument("argv", nargs=argparse.REMAINDER)
    status = sub.add_parser("status", help="print the hosts that exist")
    status.add_argument("--state-dir", required=True)
    set_cpu = sub.add_parser("set-cpu", help="change a type's CPU share, running hosts included")
    set_cpu.add_argument("--state-dir", required=True)
    set_cpu.add_argument("instance_type")
    set_cpu.add_argument("share", type=float)
    for hidden in ("_seed", "_reconcile"):
        sub.add_parser(hidden).add_argument("--state-dir", required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            print(json.dumps(SimCloud(args.state_dir, args.subnet, args.moto_port).up(), indent=2))
        elif args.command == "down":
            if args.state_dir:
                cloud = SimCloud(args.state_dir)
                cloud.down()
            if args.all:
                sweep_all()
        elif args.command == "exec":
            cloud = SimCloud(args.state_dir)
            command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
            env = dict(os.environ, **cloud.environment())
            return subprocess.call(cloud.controller_argv(command), env=env)
        elif args.command == "status":
            print(json.dumps(SimCloud(args.state_dir).hosts(), indent=2))
        elif args.command == "set-cpu":
            print(json.dumps(SimCloud(args.state_dir).set_cpu(args.instance_type, args.share)))
        elif args.command == "_seed":
            print(json.dumps(_seed(SimCloud(args.state_dir))))
        elif args.command == "_reconcile":
            _reconcile_forever(SimCloud(args.state_dir))
    except SimCloudError as exc:
        print("simcloud: error: %s" % exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
