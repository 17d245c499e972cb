"""CPU capacity of the emulated backends: scheduler affinity and the cgroup CPU limit (v1, v2), less the reserve;
the lookup plugin that gives it to the playbooks."""
from __future__ import annotations

import pytest

from ansible_collections.paramount.cluster.plugins.plugin_utils import paramount_capacity as cap


def _tree(tmp_path, mounts, cgroup_lines, files):
    """A fake /proc/self/mountinfo, /proc/self/cgroup and cgroup file system under tmp_path."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    info = []
    for i, (fstype, root, point, options) in enumerate(mounts):
        info.append("%d 23 0:%d %s %s rw,relatime - %s %s rw,%s" % (30 + i, 28 + i, root, tmp_path / point, fstype,
                                                                    fstype, options))
    info.append("22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw")
    (tmp_path / "mountinfo").write_text("\n".join(info) + "\n")
    (tmp_path / "cgroup").write_text("\n".join(cgroup_lines) + "\n")
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    return {"mountinfo": str(tmp_path / "mountinfo"), "cgroup_file": str(tmp_path / "cgroup")}


def _cpus(n):
    return lambda pid: set(range(n))


def test_cgroup_v2_the_strictest_of_the_cgroup_and_its_ancestors(tmp_path):
    paths = _tree(tmp_path, [("cgroup2", "/", "cg", "nsdelegate")], ["0::/user.slice/job"], {
        "cg/user.slice/cpu.max": "150000 100000",  # the parent: 1.5 cores
        "cg/user.slice/job/cpu.max": "max 100000",  # the process's own cgroup: no limit
    })
    assert cap.cgroup_cpu_limit(**paths) == pytest.approx(1.5)
    cores, how = cap.usable_cores(getaffinity=_cpus(8), **paths)
    assert cores == pytest.approx(1.5)  # not the 8 CPUs of the affinity, nor os.cpu_count()
    assert "cgroup CPU limit 1.5 cores" in how and "affinity 8" in how
    assert cap.cpu_capacity(getaffinity=_cpus(8), **paths) == pytest.approx(1.0)


def test_cgroup_v1_quota_over_period(tmp_path):
    files = {
        "cg/cpu,cpuacct/cpu.cfs_quota_us": "-1", "cg/cpu,cpuacct/cpu.cfs_period_us": "100000",
        "cg/cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "250000",
        "cg/cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000",
        "cg/memory/a/cpu.cfs_quota_us": "10000", "cg/memory/a/cpu.cfs_period_us": "100000",
    }
    paths = _tree(tmp_path, [("cgroup", "/", "cg/cpu,cpuacct", "cpu,cpuacct"), ("cgroup", "/", "cg/memory", "memory")],
                  ["4:memory:/a", "2:cpu,cpuacct:/docker/abc", "0::/"], files)
    assert cap.cgroup_cpu_limit(**paths) == pytest.approx(2.5)  # the memory controller's files are not read
    assert cap.usable_cores(getaffinity=_cpus(4), **paths)[0] == pytest.approx(2.5)
    assert cap.usable_cores(getaffinity=_cpus(2), **paths)[0] == 2  # the affinity when it is the smaller


def test_cgroup_v1_inside_a_container_reads_the_mount_root(tmp_path):
    # the container sees its own cgroup as the mount's root, while /proc/self/cgroup names the host's path
    paths = _tree(tmp_path, [("cgroup", "/docker/abc", "cg/cpu", "cpu")], ["1:cpu:/docker/abc"], {
        "cg/cpu/cpu.cfs_quota_us": "50000", "cg/cpu/cpu.cfs_period_us": "100000"})
    assert cap.cgroup_cpu_limit(**paths) == pytest.approx(0.5)
    paths = _tree(tmp_path / "b", [("cgroup", "/", "cg/cpu", "cpu")], ["1:cpu:/host/path/gone"], {
        "cg/cpu/cpu.cfs_quota_us": "300000", "cg/cpu/cpu.cfs_period_us": "100000"})
    assert cap.cgroup_cpu_limit(**paths) == pytest.approx(3.0)


def test_no_limit_anywhere_is_the_affinity(tmp_path):
    # hybrid: v1 cpu without a quota, v2 without the cpu controller (no cpu.max): this machine's layout
    paths = _tree(tmp_path, [("cgroup", "/", "cg/cpu", "cpu"), ("cgroup2", "/", "cg/unified", "")],
                  ["1:cpu:/", "0::/"], {"cg/cpu/cpu.cfs_quota_us": "-1", "cg/cpu/cpu.cfs_period_us": "100000",
                                        "cg/unified/cgroup.controllers": ""})
    assert cap.cgroup_cpu_limit(**paths) is None
    assert cap.usable_cores(getaffinity=_cpus(2), **paths) == (2.0, "2 cores (scheduler affinity 2 CPU(s), "
                                                               "cgroup CPU limit none)")
    assert cap.cpu_capacity(getaffinity=_cpus(2), **paths) == 1.5
    assert cap.cpu_capacity(reserve=0, getaffinity=_cpus(2), **paths) == 2.0


def test_unreadable_files_and_garbage_are_no_limit(tmp_path):
    paths = _tree(tmp_path, [("cgroup2", "/", "cg", "")], ["garbage", "0::/x"], {"cg/x/cpu.max": "lots 100000",
                                                                                 "cg/cpu.max": ""})
    assert cap.cgroup_cpu_limit(**paths) is None
    assert cap.cgroup_cpu_limit(mountinfo=str(tmp_path / "none"), cgroup_file=str(tmp_path / "none")) is None


def test_neither_known_falls_back_to_the_core_count(tmp_path, monkeypatch):
    def refuse(pid):
        raise OSError("not here")

    monkeypatch.setattr(cap.os, "cpu_count", lambda: 3)
    cores, how = cap.usable_cores(getaffinity=refuse, mountinfo=str(tmp_path / "no"), cgroup_file=str(tmp_path / "no"))
    assert cores == 3 and "os.cpu_count()" in how


def test_the_reserve_is_taken_off_and_the_capacity_never_negative(tmp_path):
    none = {"mountinfo": str(tmp_path / "no"), "cgroup_file": str(tmp_path / "no")}
    assert cap.DEFAULT_CPU_RESERVE == 0.5
    assert cap.cpu_capacity(getaffinity=_cpus(1), **none) == 0.5
    assert cap.cpu_capacity(reserve=2, getaffinity=_cpus(1), **none) == 0.0
    for bad in (-1, float("nan"), None):
        with pytest.raises(ValueError, match="reserve"):
            cap.cpu_capacity(reserve=bad, getaffinity=_cpus(1), **none)


def test_the_lookup_plugin_returns_the_capacity(monkeypatch):
    from ansible.errors import AnsibleLookupError
    from ansible_collections.paramount.cluster.plugins.lookup.cpu_capacity import LookupModule

    monkeypatch.setattr(cap, "usable_cores", lambda **kw: (4.0, "4 cores"))
    lookup = LookupModule()
    assert lookup.run([], {}) == [3.5]
    assert lookup.run([], {}, reserve=1.0) == [3.0]
    with pytest.raises(AnsibleLookupError, match="takes no terms"):
        lookup.run(["x"], {})
    with pytest.raises(AnsibleLookupError, match="reserve must be"):
        lookup.run([], {}, reserve=-1.0)
    with pytest.raises(AnsibleLookupError, match="unknown option"):
        lookup.run([], {}, reserv=1.0)
