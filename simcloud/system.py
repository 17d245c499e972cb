# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""What the simulated cloud needs from this machine: commands, processes and network namespaces."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PREFIX_MARK = "pcsim"  # every namespace and cgroup of a sim cloud starts with this


class SimCloudError(RuntimeError):
    """A clear, user-facing failure of the simulated cloud."""


def run_command(argv, check=True, **kwargs):
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


def pid_alive(pid):
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
    pids = [p for p in set(pids) if p and p != os.getpid() and pid_alive(p)]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        if pid_alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def netns_pids(namespace):
    proc = run_command(["ip", "netns", "pids", namespace], check=False)
    return [int(p) for p in proc.stdout.split() if p.isdigit()]


def list_netns(prefix):
    proc = run_command(["ip", "netns", "list"], check=False)
    names = [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]
    return [n for n in names if n.startswith(prefix)]


def delete_netns(namespace):
    """Kill every process in the namespace (deleting it does not), then delete it."""
    for _attempt in range(3):
        pids = netns_pids(namespace)
        if not pids:
            break
        kill_pids(pids)
    run_command(["ip", "netns", "del", namespace], check=False)


def wait_port(address, port, timeout):
    """Wait until address:port accepts connections, probing from this process's namespace."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((address, port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False
