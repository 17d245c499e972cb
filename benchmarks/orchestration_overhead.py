"""Orchestration overhead of optimize.yml on the simulated cloud (3 probe nodes), split by phase.

    sudo .venv/bin/python benchmarks/orchestration_overhead.py [--setting KEY=VALUE ...] [--repeat N]

Brings a simulated cloud up (root), runs `ansible-playbook optimize.yml -e paramount_backend=sim` in its
controller namespace with the ansible.posix.json callback, and prints for every play (phase) its wall time,
the time the trainer itself ran in it (from the nodes' logs: first to last record of the slowest node, plus
its init) and the difference, the orchestration overhead. `--setting` passes ANSIBLE_* settings to compare
tunings (e.g. --setting ANSIBLE_PIPELINING=False --setting ANSIBLE_FORKS=1), each in its own run.
The cloud is torn down afterwards, whatever happens.
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
# the checkout's simulated cloud (simcloud/ at the repository root: stdlib and boto3 only)
import simcloud  # noqa: E402  pylint: disable=wrong-import-position
from tests.playbook_env import ansible_command, ansible_settings  # noqa: E402  pylint: disable=wrong-import-position


def trainer_seconds(folder):
    """Wall seconds the trainer ran on the slowest node: first to last record, plus the init before them."""
    spans = []
    for log in Path(folder).glob("*.log"):
        first = last = None
        init = 0.0
        for line in log.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
                moment = float(record["time"])
            except (ValueError, KeyError, TypeError):
                continue
            first = moment if first is None else min(first, moment)
            last = moment if last is None else max(last, moment)
            if record.get("event") == "init" and record.get("rank") == 0:
                init = float(record.get("seconds", 0.0))
        if first is not None:
            spans.append(last - first + init)
    return max(spans) if spans else 0.0


def parse_duration(item):
    duration = item.get("duration") or {}
    start, end = duration.get("start"), duration.get("end")
    if not start or not end:
        return 0.0
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
    return time.mktime(time.strptime(end, fmt)) - time.mktime(time.strptime(start, fmt)) + (
        float("0." + end.split(".")[1].rstrip("Z")) - float("0." + start.split(".")[1].rstrip("Z")))


def run_once(settings, workdir):
    cloud = simcloud.SimCloud(Path(workdir) / "cloud")
    try:
        cloud.up()
        env = ansible_settings(workdir=workdir, run="overhead", **{"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", **settings})
        started = time.monotonic()
        proc = cloud.run([ansible_command("ansible-playbook"), "optimize.yml", "-e", "paramount_backend=sim"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
        total = time.monotonic() - started
    finally:
        cloud.down()
    if proc.returncode != 0:
        sys.exit("optimize.yml failed (rc %d):\n%s" % (proc.returncode, (proc.stdout + proc.stderr)[-3000:]))
    # The json callback's document, followed by whatever other callbacks (profile_tasks) print after it.
    report, _end = json.JSONDecoder().raw_decode(proc.stdout, proc.stdout.index("{"))
    results = Path(workdir) / "results" / "overhead"
    trainer = {"Probe": trainer_seconds(results / "probe"), "Train": trainer_seconds(results / "train")}
    rows, tasks = [], []
    for play in report["plays"]:
        name = play["play"]["name"]
        wall = parse_duration(play["play"])
        ran = trainer["Probe"] if name.startswith("Run paramount iterations") else (
            trainer["Train"] if name.startswith("Train on the chosen cluster") else 0.0)
        rows.append((name, wall, ran))
        tasks += [(parse_duration(task["task"]), name, task["task"]["name"]) for task in play.get("tasks", [])]
    return total, rows, sorted(tasks, reverse=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--setting", action="append", default=[], metavar="ANSIBLE_KEY=VALUE")
    parser.add_argument("--tasks", type=int, default=0, metavar="N", help="also print the N slowest tasks")
    args = parser.parse_args()
    reasons = simcloud.missing_requirements()
    if reasons:
        sys.exit("needs the simulated cloud: " + "; ".join(reasons))
    variants = [{}] + [dict([s.split("=", 1)]) for s in args.setting]
    for settings in variants:
        with tempfile.TemporaryDirectory(prefix="paramount-overhead-") as workdir:
            total, rows, tasks = run_once(settings, workdir)
        label = ", ".join("%s=%s" % kv for kv in settings.items()) or "project settings (ansible.cfg)"
        print("\n== %s: optimize.yml took %.1f s" % (label, total))
        print("%-70s %8s %8s %9s" % ("phase (play)", "wall s", "trainer", "overhead"))
        overhead = 0.0
        for name, wall, ran in rows:
            print("%-70s %8.1f %8.1f %9.1f" % (name[:70], wall, ran, wall - ran))
            overhead += wall - ran
        trained = sum(row[2] for row in rows)
        share = 100 * (total - trained) / total
        print("%-70s %8.1f %8.1f %9.1f   (overhead %.0f%% of the wall time)" % ("all", total, trained, total - trained, share))
        for seconds, play, task in tasks[:args.tasks]:
            print("  %7.1f s  %s / %s" % (seconds, play[:40], task[:80]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
