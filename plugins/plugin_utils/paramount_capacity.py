# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""CPU capacity of the emulated backends (local, sim): the cores this process may use, less a reserve.

The emulated types run on this machine as CPU shares (the local backend's launcher throttles each slot, the
simulated cloud gives each host a cgroup CPU quota), so a cluster is only what the plan says it is while its
shares fit in the cores left to it. Those cores are the scheduler affinity of this process
(``os.sched_getaffinity``: a taskset or a cpuset) and the CPU limit of its own cgroup (v2 ``cpu.max``, v1
``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``, the strictest of the cgroup and its ancestors), whichever is smaller;
never ``os.cpu_count()``, which counts the machine's cores whatever this process may use (a container limited to
2 of 64 cores would plan for 64).

``DEFAULT_CPU_RESERVE`` (0.5 core) is left to what runs beside the training: ansible-playbook and its workers on
the controller (the probe role polls every node), the local launcher's throttling loop, and on sim one sshd per
host carrying those connections. Without it the trainers would take every cycle and these would steal from the
slowest share, which the probe would then rate slower than it is.

Standard library only: the lookup plugin ``paramount.cluster.cpu_capacity`` exposes ``cpu_capacity``.
"""

from __future__ import annotations

import math
import os

DEFAULT_CPU_RESERVE = 0.5  # cores kept for Ansible, the launcher and sshd (see the module docstring)


def affinity_cores(getaffinity=None):
    """Number of CPUs this process may be scheduled on, or None where the platform cannot tell."""
    getaffinity = getaffinity or getattr(os, "sched_getaffinity", None)
    if getaffinity is None:
        return None
    try:
        return len(getaffinity(0)) or None
    except OSError:
        return None


def _read(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _mounts(mountinfo):
    """[(fstype, root, mount point, super options)] of the cgroup and cgroup2 mounts in a mountinfo file."""
    text = _read(mountinfo)
    out = []
    for line in (text or "").splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        out.append((tail[0], fields[3], fields[4].replace("\\040", " "), tail[2].split(",")))
    return out


def _own_cgroups(cgroup_file):
    """{controller or '' (v2): path} of this process from /proc/self/cgroup."""
    out = {}
    for line in (_read(cgroup_file) or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            out[""] = parts[2]
        for name in parts[1].split(","):
            if name:
                out[name] = parts[2]
    return out


def _levels(mount_point, mount_root, path):
    """Folders of the cgroup ``path`` and its ancestors below ``mount_point``, the cgroup first. A path outside
    the mount's root (a container that sees the host's path) falls back to the mount point itself."""
    root = mount_root.rstrip("/")
    if root and (path == root or path.startswith(root + "/")):
        path = path[len(root):]
    parts = [p for p in path.split("/") if p]
    levels = [os.path.join(mount_point, *parts[:i]) for i in range(len(parts), 0, -1)]
    return [d for d in levels if os.path.isdir(d)] + [mount_point]


def _v2_limit(folder):
    text = _read(os.path.join(folder, "cpu.max"))
    if not text:
        return None
    fields = text.split()
    try:
        if fields[0] == "max":
            return None
        quota = float(fields[0])
        period = float(fields[1]) if len(fields) > 1 else 100000.0
    except (ValueError, IndexError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def _v1_limit(folder):
    quota, period = _read(os.path.join(folder, "cpu.cfs_quota_us")), _read(os.path.join(folder, "cpu.cfs_period_us"))
    try:
        quota, period = float(quota), float(period)
    except (TypeError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def cgroup_cpu_limit(mountinfo="/proc/self/mountinfo", cgroup_file="/proc/self/cgroup"):
    """The CPU limit in cores of this process's cgroup (the strictest of the cgroup and its ancestors, v1 ``cpu``
    controller and v2 ``cpu.max`` both read), or None when there is none."""
    own = _own_cgroups(cgroup_file)
    limits = []
    for fstype, root, point, options in _mounts(mountinfo):
        if fstype == "cgroup2":
            path, read = own.get(""), _v2_limit
        elif "cpu" in options:
            path, read = own.get("cpu"), _v1_limit
        else:
            continue
        if path is None:
            continue
        limits += [v for v in (read(d) for d in _levels(point, root, path)) if v is not None]
    return min(limits) if limits else None


def usable_cores(getaffinity=None, mountinfo="/proc/self/mountinfo", cgroup_file="/proc/self/cgroup"):
    """(cores, how): the cores this process may use and a short account of where the figure comes from."""
    affinity = affinity_cores(getaffinity)
    limit = cgroup_cpu_limit(mountinfo, cgroup_file)
    found = [v for v in (affinity, limit) if v is not None]
    if not found:  # neither is known (not Linux): the one count left
        cores = float(os.cpu_count() or 1)
        return cores, "%g cores (os.cpu_count(): no affinity or cgroup limit could be read)" % cores
    cores = float(min(found))
    how = ["scheduler affinity %s CPU(s)" % (affinity if affinity is not None else "unknown"),
           "cgroup CPU limit %s" % ("none" if limit is None else "%g cores" % float(limit))]
    return cores, "%g cores (%s)" % (cores, ", ".join(how))


def cpu_capacity(reserve=DEFAULT_CPU_RESERVE, **kwargs):
    """The cores the emulated types of a cluster may take at once: ``usable_cores()`` less ``reserve`` (never
    below 0). Keyword arguments go to ``usable_cores`` (tests)."""
    if reserve is None or not math.isfinite(float(reserve)) or float(reserve) < 0:
        raise ValueError("the CPU reserve must be a number of cores >= 0, got %r" % (reserve,))
    cores, _how = usable_cores(**kwargs)
    return max(0.0, round(cores - float(reserve), 6))
