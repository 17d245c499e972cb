# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""CPU quotas and memory limits of the simulated hosts: cgroup v1 groups ``<prefix>/<type>/<instance id>``."""

from __future__ import annotations

import json

from .instance_types import SIM_TYPES
from .system import CGROUP_ROOT, SimCloudError, kill_pids

CPU_PERIOD_US = 100_000


def cgroup_dirs(prefix):
    dirs = []
    for controller in ("cpu", "memory"):
        base = CGROUP_ROOT / controller
        if base.is_dir():
            dirs.extend(sorted(base.glob(prefix + "*")))
    return dirs


def remove_cgroups(prefix):
    """Kill what is left in the cloud's cgroups and remove them (children first)."""
    for top in cgroup_dirs(prefix):
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


def remove_instance_cgroups(prefix, instance_type, instance_id):
    """Kill what runs in one host's cgroups and remove them."""
    for controller in ("cpu", "memory"):
        group = CGROUP_ROOT / controller / prefix / instance_type / instance_id
        if group.is_dir():
            kill_pids([int(p) for p in (group / "cgroup.procs").read_text().split()])
            try:
                group.rmdir()
            except OSError:
                pass


class CpuQuotas:
    """The cgroup side of a SimCloud (mixed into it: needs ``prefix`` and ``state_dir``)."""

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
