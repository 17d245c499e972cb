"""Re-planning while training against a static plan, when a node type's speed changes mid-run (sim cloud, root).

    .venv/bin/python benchmarks/autoscale_speed_change.py [--epochs 12] [--slow-to 0.08] [--change-after 60]

1. Probe: the simulated cloud's probe cluster (one node of each sim type) runs paramount iterations and the
   optimize plugin plans the cheapest cluster (objective cost), exactly as optimize.yml does.
2. Static: training on that plan under paramount.cluster.autoscale with every trigger switched off (the
   controller only observes). --change-after seconds after the first training iteration the chosen type's CPU
   share drops to --slow-to (its cgroup quota, running hosts included): it became slow.
3. Dynamic: the same start, the same change at the same moment, with the controller re-planning.

Both trainings run in one invocation, one after the other on the same cloud; the script prints their time
(first start record to completion), their cost (node-seconds x price, per formation) and the ratios.
"""
import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # simcloud/ at the checkout root

import simcloud  # noqa: E402  pylint: disable=wrong-import-position
from tests.playbook_env import ansible_command, ansible_settings, link_collection  # noqa: E402  pylint: disable=wrong-import-position

# playbooks/autoscale.yml lets its controller overrun max_seconds by one playbook run (its _playbook_timeout)
CONTROLLER_OVERRUN_SECONDS = 900

PROBE_PLAYBOOK = """---
- ansible.builtin.import_playbook: paramount.cluster.provision
  vars: {paramount_target_group: paramount_probe}
- ansible.builtin.import_playbook: paramount.cluster.setup
  vars: {paramount_group: paramount_probe}
- ansible.builtin.import_playbook: paramount.cluster.probe
  vars: {paramount_group: paramount_probe}
- ansible.builtin.import_playbook: paramount.cluster.collect
  vars: {paramount_group: paramount_probe, paramount_collect_phase: probe}
- ansible.builtin.import_playbook: paramount.cluster.plan
- ansible.builtin.import_playbook: paramount.cluster.teardown
"""


def live_records(folder):
    """The live records through the controller's own reader (importable once main() linked the collection)."""
    from ansible_collections.paramount.cluster.plugins.plugin_utils.autoscale.live import (  # pylint: disable=import-outside-toplevel
        read_records,
    )
    return read_records(str(folder))


def env_for(collections, work, run):
    return ansible_settings(collections, local_temp=work / ".ansible-tmp", workdir=work, run=run, backend="sim",
                            ANSIBLE_HOST_KEY_CHECKING="False")


def run(cloud, argv, env, timeout):
    proc = cloud.run(argv, cwd=str(REPO), env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        print((proc.stdout + proc.stderr)[-4000:], file=sys.stderr)
        raise SystemExit("failed: %s" % " ".join(argv[:3]))
    return proc


def train(cloud, collections, work, mode, start_inventory, probe_dir, args, chosen_type):
    run_id = "bench-%s" % mode
    results = work / "results" / run_id
    shutil.rmtree(results, ignore_errors=True)
    shutil.copytree(probe_dir, results / "probe")
    env = env_for(collections, work, run_id)
    extra = ["paramount_autoscale_start_inventory=%s" % start_inventory, "paramount_train_epochs=%d" % args.epochs,
             "paramount_checkpoint_interval=10", "paramount_autoscale_interval=10",
             "paramount_autoscale_cooldown=30", "paramount_autoscale_switch_seconds=30",
             "paramount_autoscale_max_seconds=%d" % args.max_seconds]
    if mode == "static":  # observe only: no trigger can fire
        extra += ["paramount_autoscale_margin=1000000", "paramount_autoscale_threshold=1000000"]
    argv = [ansible_command("ansible-playbook"), "paramount.cluster.autoscale"]
    for item in extra:
        argv += ["-e", item]
    changed = {}

    def slow_down():
        live = results / "live"
        deadline = time.monotonic() + args.max_seconds
        while time.monotonic() < deadline and "at" not in changed:
            time.sleep(2)
            records = live_records(live)
            first = [r["time"] for r in records if r.get("event") == "iteration"]
            if first and time.time() - min(first) >= args.change_after:
                changed["hosts"] = cloud.set_cpu(chosen_type, args.slow_to)
                changed["at"] = time.time()

    watcher = threading.Thread(target=slow_down, daemon=True)
    watcher.start()
    started = time.time()
    try:
        run(cloud, argv, env, timeout=args.max_seconds + CONTROLLER_OVERRUN_SECONDS)
    finally:
        changed.setdefault("at", None)
        watcher.join(5)
        cloud.set_cpu(chosen_type, simcloud.SIM_TYPES[chosen_type].cpu)
        run(cloud, [ansible_command("ansible-playbook"), "paramount.cluster.teardown"], env, timeout=600)
    summary = json.loads((results / "autoscale" / "summary.json").read_text())
    decisions = [json.loads(line) for line in (results / "autoscale" / "decisions.jsonl").read_text().splitlines()]
    return {"mode": mode, "seconds": summary["seconds"], "cost": summary["cost"], "wall": time.time() - started,
            "formations": summary["formations"], "changes": [d["reason"] for d in decisions if d["action"] == "changed"],
            "slowed_at": (changed["at"] - started) if changed.get("at") else None,
            "completed": summary["outcome"] == "completed"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--slow-to", type=float, default=0.08, help="CPU share the chosen type drops to")
    parser.add_argument("--change-after", type=float, default=60.0, help="seconds after the first iteration")
    parser.add_argument("--max-seconds", type=int, default=1800)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    reasons = simcloud.missing_requirements()
    if reasons:
        raise SystemExit("needs the simulated cloud: " + "; ".join(reasons))
    tmp = Path(tempfile.mkdtemp(prefix="paramount-bench-autoscale-"))
    collections = link_collection(tmp / "collections")
    sys.path.insert(0, str(collections))
    work = tmp / "work"
    work.mkdir()
    cloud = simcloud.SimCloud(tmp / "cloud")
    cloud.up()
    try:
        probe_book = tmp / "probe.yml"
        probe_book.write_text(PROBE_PLAYBOOK)
        t0 = time.time()
        run(cloud, [ansible_command("ansible-playbook"), str(probe_book)], env_for(collections, work, "bench-probe"),
            timeout=1500)
        plan = json.loads((work / "results" / "bench-probe" / "plan" / "plan.json").read_text())
        chosen = plan["chosen"]
        print("probe and plan: %.0f s; static plan: %d x %s, predicted %.0f s, %.6f USD"
              % (time.time() - t0, chosen["nodes"], chosen["instance_type"], chosen["predicted_seconds"],
                 chosen["predicted_cost"]), flush=True)
        start_inventory = work / "results" / "bench-probe" / "plan" / "inventory.yml"
        rows = []
        for mode in ("static", "dynamic"):
            row = train(cloud, collections, work, mode, start_inventory, work / "results" / "bench-probe" / "probe",
                        args, chosen["instance_type"])
            rows.append(row)
            print("%-8s time %7.1f s  cost %.6f USD  formations %d  slowed at %s  changes: %s"
                  % (mode, row["seconds"], row["cost"], row["formations"],
                     "%.0f s" % row["slowed_at"] if row["slowed_at"] else "never",
                     "; ".join(row["changes"]) or "none"), flush=True)
        static, dynamic = rows
        print()
        print("| run | time (s) | cost (USD) | completed | changes |")
        print("|---|---|---|---|---|")
        for row in rows:
            print("| %s | %.1f | %.6f | %s | %d |"
                  % (row["mode"], row["seconds"], row["cost"], row["completed"], len(row["changes"])))
        print("dynamic / static: time x%.2f, cost x%.2f (%s slowed to %.2f CPU after %.0f s of training)"
              % (dynamic["seconds"] / static["seconds"], dynamic["cost"] / static["cost"], chosen["instance_type"],
                 args.slow_to, args.change_after))
    finally:
        cloud.down()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("kept", tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
