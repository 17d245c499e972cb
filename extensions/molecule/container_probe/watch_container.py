"""Watch one node's trainer container while it runs, and say where its processes ran (standard library only).

    python3 watch_container.py --docker-host unix:///srv/paramount/docker.sock --name NAME --out FILE [--seconds 400]
        [--sigterm-launcher PIDFILE --log LOGFILE]

Polls `docker inspect NAME` (bounded) until the container runs a trainer rank (a process of the container whose
command line is `python -u -m paramount_trainer train ...`, the worker torchrun starts), then writes FILE (JSON):
the container's id, image, init, network, cgroup parent and PID; the cgroup (cpu controller) of the container's
processes and of this watcher (the node's SSH session); the CPU quota of the parent cgroup; the CPU counters
(cpu.stat) of the container's cgroup and of its parent at the first sighting and the last (the container's
cgroup is gone when its processes are); and the rank's own CPU seconds (utime + stime) per wall-clock second from
its first sighting to its last, the share its node's quota lets it have whatever else runs on the machine. Then
it waits (at most 60 s) until the engine has no container of that name any more, and records whether one is left.

With --sigterm-launcher, once the node's log has an iteration record, it sends SIGTERM to the launcher of the
pidfile (what paramount.cluster.leave and the time limit do) and records that.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time


def _cpu_cgroup(pid):
    try:
        with open("/proc/%s/cgroup" % pid, encoding="ascii") as fh:
            for line in fh:
                fields = line.rstrip("\n").split(":", 2)
                if "cpu" in fields[1].split(","):
                    return fields[2]
    except OSError:
        return None
    return None


def _cmdline(pid):
    try:
        with open("/proc/%s/cmdline" % pid, "rb") as fh:
            return [a.decode(errors="replace") for a in fh.read().split(b"\0") if a]
    except OSError:
        return []


def _read(path):
    try:
        with open(path, encoding="ascii") as fh:
            return fh.read()
    except OSError:
        return None


def _cpu_stat(group):
    text = _read("/sys/fs/cgroup/cpu%s/cpu.stat" % group)
    if text is None:
        return None
    return {k: int(v) for k, v in (line.split() for line in text.splitlines() if line.strip())}


def _cpu_seconds(pid):
    """utime + stime of one process, in seconds (fields 14 and 15 of /proc/PID/stat, after the command's parentheses)."""
    text = _read("/proc/%s/stat" % pid)
    if text is None:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _inspect(args):
    proc = subprocess.run([args.docker_cli, "--host", args.docker_host, "inspect", args.name],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30, check=False)
    if proc.returncode != 0:
        return None
    found = json.loads(proc.stdout.decode())
    return found[0] if found else None


def _is_rank(cmd):
    """torchrun starts each rank as `<python> -u -m paramount_trainer train ...`; torchrun itself is `.../torchrun ...`."""
    if any(a.endswith("torchrun") or a == "torch.distributed.run" for a in cmd):
        return False
    return any(a == "-m" and b == "paramount_trainer" for a, b in zip(cmd, cmd[1:]))


def _has_iteration(log):
    text = _read(log) or ""
    return '"event": "iteration"' in text or '"event":"iteration"' in text


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--docker-cli", default="docker")
    parser.add_argument("--docker-host", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seconds", type=float, default=400)
    parser.add_argument("--sigterm-launcher", default="")
    parser.add_argument("--log", default="")
    args = parser.parse_args()
    report = {"name": args.name, "session_cgroup": _cpu_cgroup("self"), "seen": False, "sigterm": None}
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        info = _inspect(args)
        if info and info["State"]["Running"] and info["State"]["Pid"] > 0:
            group = _cpu_cgroup(info["State"]["Pid"])
            procs = []
            for entry in os.listdir("/proc"):
                if entry.isdigit() and group and _cpu_cgroup(entry) == group:
                    procs.append({"pid": int(entry), "cmdline": _cmdline(entry), "cpu_cgroup": group})
            ranks = [p for p in procs if _is_rank(p["cmdline"])]
            if ranks:
                parent = info["HostConfig"]["CgroupParent"]
                report.update({
                    "seen": True, "id": info["Id"], "image": info["Config"]["Image"], "init": info["HostConfig"]["Init"],
                    "network": info["HostConfig"]["NetworkMode"], "cgroup_parent": parent, "auto_remove": info["HostConfig"]["AutoRemove"],
                    "cpu_cgroup": group, "pid": info["State"]["Pid"], "init_cmdline": _cmdline(info["State"]["Pid"]),
                    "processes": procs, "ranks": ranks,
                    "parent_quota_us": int((_read("/sys/fs/cgroup/cpu%s/cpu.cfs_quota_us" % parent) or "-1").strip()),
                    "parent_period_us": int((_read("/sys/fs/cgroup/cpu%s/cpu.cfs_period_us" % parent) or "-1").strip()),
                    "cpu_stat_first": _cpu_stat(group), "parent_cpu_stat_first": _cpu_stat(parent),
                    "rank_cpu_first": [_cpu_seconds(ranks[0]["pid"]), time.monotonic()],
                })
                break
        time.sleep(0.5)
    if report["seen"]:
        if args.sigterm_launcher:
            while time.monotonic() < deadline and not _has_iteration(args.log):
                time.sleep(0.5)
            launcher = int((_read(args.sigterm_launcher) or "0").split()[0] or 0)
            if launcher > 0 and _has_iteration(args.log):
                os.kill(launcher, signal.SIGTERM)
                report["sigterm"] = {"launcher": launcher, "time": time.time()}
        last = report["cpu_stat_first"]
        rank_last = report["rank_cpu_first"]
        while time.monotonic() < deadline:
            stat = _cpu_stat(report["cpu_cgroup"])
            if stat is None:
                break
            last = stat
            rank_cpu = _cpu_seconds(report["ranks"][0]["pid"])
            if rank_cpu is not None:
                rank_last = [rank_cpu, time.monotonic()]
            time.sleep(0.5)
        report["cpu_stat_last"] = last
        report["rank_cpu_last"] = rank_last
        report["parent_cpu_stat_last"] = _cpu_stat(report["cgroup_parent"])
        # the container's processes are gone; docker run --rm and the launcher remove its record right after
        ended = time.monotonic()
        while _inspect(args) is not None and time.monotonic() < min(deadline, ended + 60):
            time.sleep(0.5)
        report["container_left"] = _inspect(args) is not None
        report["container_removed_after"] = round(time.monotonic() - ended, 1)
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=1, sort_keys=True)
    return 0 if report["seen"] else 3


if __name__ == "__main__":
    sys.exit(main())
