"""Ground truth for the optimizer's predictions on emulated clusters: one probe, one plan, then every candidate
of a grid trained to completion, several times (issue 11, part 6).

    .venv/bin/python benchmarks/prediction_accuracy.py [--backend local|sim|both] [--repeats 3] [--epochs 3]
                                                       [--max-minutes 55]

Per backend (local: the launcher's CPU shares; sim: cgroup CPU quotas, root; see emulated_cluster.py), with the
catalog's emulated types (catalogs/default.csv: local.* or sim.*, their cpu_share and price):
1. one probe: the probe cluster (one node of each type) runs the probe role's defaults (warm-up 3, adversarial
   10 steps, compute-only windows of 4 s) of a job of --epochs epochs;
2. one plan from it, for the cost and for the time objective (paramount_plan.optimize, the action plugin's
   code; capacity from paramount_capacity, node counts 1 to 3, setup 0, no kept nodes);
3. the truth: every candidate of the grid (each type at 1 to 3 nodes, where its shares fit the capacity) trained
   to completion --repeats times; runs whose shares fit together run side by side, but never more share at
   once than the probe ran (--pack-share, default the probe cluster's shares): a type's rating holds for the
   load it was measured under (the 2 vCPUs' shared caches and memory bandwidth, a host that varies), so the
   truth is measured under no more;
   its time and cost as the ledger measures a trained job (playbooks/files/paramount_ledger.py: the span from
   the first trainer process start to the end of the last iteration, billed by the plan's rule); the median of
   the repeats is the truth and its spread (max - min over median) is printed.
Truth comes only from measured runs, never from the model. It prints per candidate predicted and measured time
and cost, the median and largest error, and each objective's pick against the true optimum. Goal (issue 11):
median error <= 5%, largest <= 15%, both picks within 1.05x of the true optimum; a goal tighter than the measured
spread counts as unmet. --max-minutes caps the run: past it no new batch starts, and what was left out is
named. --keep keeps the logs; --replan DIR plans a kept probe again and measures the kept runs, running
nothing (a method change judged on the same truth). --compare-with DIR also plans the same probe logs with the optimizer of another checkout DIR (e.g.
`git archive <commit> | tar -x -C DIR`) and prints its time errors beside, against the same truth.
"""
import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / ".build" / "collections"))  # this checkout as the collection (scripts/setup-env)

# pylint: disable=wrong-import-position
import emulated_cluster as ec  # noqa: E402
from ansible_collections.paramount.cluster.plugins.plugin_utils import paramount_capacity  # noqa: E402
from ansible_collections.paramount.cluster.plugins.plugin_utils import paramount_catalog  # noqa: E402
from ansible_collections.paramount.cluster.plugins.plugin_utils.decision import billing  # noqa: E402
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_common import OBJECTIVES  # noqa: E402
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_plan import optimize  # noqa: E402

CATALOG = REPO / "catalogs" / "default.csv"
MAX_NODES = 3
RUN_TIMEOUT = 1500.0  # seconds one training may take before it is killed


def load_ledger():
    """The ledger script (what report.yml runs): its reader and like-with-like comparison are the measurement."""
    spec = importlib.util.spec_from_file_location("paramount_ledger", REPO / "playbooks" / "files" / "paramount_ledger.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def emulated_types(backend):
    catalog = paramount_catalog.load_catalog(str(CATALOG))
    return dict(sorted(paramount_catalog.emulated_entries(catalog, backend).items()))


def predicted_candidates(plan_json):
    """{(type, nodes): candidate} of a plan's feasible candidates that have a predicted time."""
    return {(c["instance_type"], c["nodes"]): c for c in plan_json["candidates"]
            if c.get("feasible") and c.get("predicted_seconds")}


def plan(probe_dir, objective, types, capacity, out):
    res = optimize({"results_dir": str(probe_dir), "objective": objective, "instance_types": sorted(types),
                    "node_counts": list(range(1, MAX_NODES + 1)), "catalog": str(CATALOG), "setup_seconds": 0,
                    "cpu_capacity": capacity, "plots": False, "output_dir": str(out / objective)}, check_mode=True)
    return res["plan"]


# planned in a subprocess that imports the other checkout as the collection (both cannot share one interpreter)
_PLAN_ELSEWHERE = """
import json, sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_plan import optimize
plan = optimize(json.loads(sys.argv[2]), check_mode=True)["plan"]
print(json.dumps({"%s x%d" % (c["instance_type"], c["nodes"]): c["predicted_seconds"] for c in plan["candidates"]}))
"""


def plan_elsewhere(checkout, probe_dir, types, capacity, out):
    """{(type, nodes): predicted seconds} of another checkout's optimizer on the same probe logs (objective cost:
    the predictions do not depend on the objective)."""
    root = out / "other-collection"
    link = root / "ansible_collections" / "paramount" / "cluster"
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.exists():
        os.symlink(Path(checkout).resolve(), link)
    args = {"results_dir": str(probe_dir), "objective": "cost", "instance_types": sorted(types),
            "node_counts": list(range(1, MAX_NODES + 1)), "catalog": str(CATALOG), "setup_seconds": 0,
            "cpu_capacity": capacity, "plots": False, "output_dir": str(out / "other")}
    proc = subprocess.run([sys.executable, "-c", _PLAN_ELSEWHERE, str(root), json.dumps(args)],
                          capture_output=True, text=True, timeout=600, check=True)
    predicted = json.loads(proc.stdout.strip().splitlines()[-1])
    return {(k.rsplit(" x", 1)[0], int(k.rsplit(" x", 1)[1])): v for k, v in predicted.items()}


def measure_run(ledger, log_dir, candidate, price):
    """(time, cost) of one trained run, as the ledger measures a trained job against the plan."""
    nodes = ledger.read_nodes(log_dir)
    if any(n["status"] != "completed" for n in nodes.values()):
        raise SystemExit("training %s did not complete: %s" % (log_dir, {h: n["status"] for h, n in nodes.items()}))
    bill = candidate["billing"]
    rule = billing.BillingRule(float(bill["increment_seconds"]), float(bill["minimum_seconds"]))
    comparison = ledger.compare_train(ledger.job_timeline(nodes), candidate, len(nodes), price, rule, 0.0, billing)
    return comparison["measured_seconds"], comparison["measured_cost"]


def bench_backend(backend, args, workdir, data, capacity, deadline, ledger):
    types = emulated_types(backend)
    job = ["--preset", "tiny", "--data", data, "--epochs", args.epochs]
    probe = ec.World("%s-probe" % backend, [(t, e.cpu_share) for t, e in types.items()],
                     job + ["--probe-phases", "warmup:3,adversarial:10", "--probe-window", 4], "probe")
    if probe.share > capacity:
        raise SystemExit("%s: the probe cluster's shares %.2f exceed the capacity %.2f"
                         % (backend, probe.share, capacity))
    t0 = time.monotonic()
    print("  [%s] probe: %s" % (backend, ", ".join(types)), flush=True)
    ec.run_side_by_side(backend, [probe], workdir, RUN_TIMEOUT)
    plans = {objective: plan(probe.log_dir, objective, types, capacity, workdir / "plans")
             for objective in OBJECTIVES}
    other = (plan_elsewhere(args.compare_with, probe.log_dir, types, capacity, workdir / "plans")
             if args.compare_with else None)
    candidates = predicted_candidates(plans["cost"])
    grid = sorted(candidates, key=lambda key: (key[0], key[1]))
    worlds = [ec.World("%s-%s-x%d-r%d" % (backend, t, n, r), [(t, types[t].cpu_share)] * n, job, "%s x%d" % (t, n))
              for r in range(args.repeats) for t, n in grid]
    pack_share = min(capacity, args.pack_share or probe.share)
    print("  [%s] %d runs in batches of at most %.2f CPU" % (backend, len(worlds), pack_share), flush=True)
    done, left_out = ec.run_packed(backend, worlds, workdir, pack_share, RUN_TIMEOUT, deadline=deadline)
    truth = {}
    for world in done:
        t, n = world.nodes[0][0], len(world.nodes)
        truth.setdefault((t, n), []).append(measure_run(ledger, world.log_dir, candidates[(t, n)],
                                                        types[t].price_per_hour))
    return {"plans": plans, "candidates": candidates, "truth": truth, "left_out": [w.run_id for w in left_out],
            "seconds": time.monotonic() - t0, "other": other}


def replan_backend(backend, kept, capacity, ledger, args):
    """The same as bench_backend from a kept work folder (--keep): its probe planned again with this checkout's
    optimizer, its trained runs measured again; nothing is run. A method change is then judged on the same truth."""
    types = emulated_types(backend)
    logs = Path(kept) / backend / "logs"
    probe_dir = logs / ("%s-probe" % backend)
    if not probe_dir.is_dir():
        raise SystemExit("%s: no kept probe in %s" % (backend, probe_dir))
    out = Path(tempfile.mkdtemp(prefix="replan-"))
    t0 = time.monotonic()
    plans = {objective: plan(probe_dir, objective, types, capacity, out) for objective in OBJECTIVES}
    other = plan_elsewhere(args.compare_with, probe_dir, types, capacity, out) if args.compare_with else None
    candidates = predicted_candidates(plans["cost"])
    truth = {}
    for run_dir in sorted(p for p in logs.iterdir() if p.name != probe_dir.name):
        itype, count = run_dir.name[len(backend) + 1:].rsplit("-r", 1)[0].rsplit("-x", 1)
        key = (itype, int(count))
        truth.setdefault(key, []).append(measure_run(ledger, run_dir, candidates[key], types[itype].price_per_hour))
    shutil.rmtree(out, ignore_errors=True)
    return {"plans": plans, "candidates": candidates, "truth": truth, "left_out": [],
            "seconds": time.monotonic() - t0, "other": other}


def report(backend, result, repeats):
    truth, candidates, plans = result["truth"], result["candidates"], result["plans"]
    print("\n### %s (%.0f s)\n" % (backend, result["seconds"]))
    print("| candidate | runs | predicted s | measured s (median) | spread | error | predicted cost | "
          "measured cost (median) | spread | error |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    errors, spreads = [], []
    medians = {}
    for key in sorted(truth):
        c = candidates[key]
        runs = truth[key]
        row = ["%s x%d" % key, "%d" % len(runs)]
        med = []
        for i, predicted in ((0, c["predicted_seconds"]), (1, c["predicted_cost"])):
            values = [r[i] for r in runs]
            m = ec.median(values)
            spread = (max(values) - min(values)) / m if m else float("nan")
            err = predicted / m - 1
            errors.append(abs(err))
            spreads.append(spread)
            med.append(m)
            row += ["%.6g" % predicted, "%.6g" % m, "%.1f%%" % (100 * spread), "%+.1f%%" % (100 * err)]
        medians[key] = med
        print("| " + " | ".join(row) + " |")
    if not errors:
        print("no candidate was trained")
        return
    print("\nmedian error %.1f%%, largest %.1f%% (goal 5%% / 15%%); median spread of the truth %.1f%%, largest %.1f%%"
          % (100 * ec.median(errors), 100 * max(errors), 100 * ec.median(spreads), 100 * max(spreads)))
    complete = {k: v for k, v in medians.items() if len(truth[k]) == repeats}
    for i, objective in ((1, "cost"), (0, "time")):
        chosen = plans[objective]["chosen"]
        key = (chosen["instance_type"], chosen["nodes"])
        best = min(complete, key=lambda k: complete[k][i]) if complete else None
        if key not in complete or best is None:
            print("%s: chose %s x%d, not measured %d times: no ratio" % (objective, key[0], key[1], repeats))
            continue
        print("%s: chose %s x%d, true optimum %s x%d: %s ratio %.3f (goal <= 1.05)"
              % (objective, key[0], key[1], best[0], best[1], objective, complete[key][i] / complete[best][i]))
    if result["left_out"]:
        print("left out (past --max-minutes): %s" % ", ".join(result["left_out"]))
    if result.get("other") is not None:
        report_other(result)


def report_other(result):
    """Time errors of this checkout's and the other checkout's predictions from the same probe, same truth."""
    print("\nThe same probe planned by the other checkout (--compare-with), time only:\n")
    print("| candidate | measured s (median) | predicted s, this | error | predicted s, other | error |")
    print("|---|---|---|---|---|---|")
    errors = {"this": [], "other": []}
    for key in sorted(result["truth"]):
        m = ec.median([r[0] for r in result["truth"][key]])
        this, other = result["candidates"][key]["predicted_seconds"], result["other"].get(key)
        row = ["%s x%d" % key, "%.6g" % m, "%.6g" % this, "%+.1f%%" % (100 * (this / m - 1))]
        errors["this"].append(abs(this / m - 1))
        if other:
            row += ["%.6g" % other, "%+.1f%%" % (100 * (other / m - 1))]
            errors["other"].append(abs(other / m - 1))
        else:
            row += ["-", "-"]
        print("| " + " | ".join(row) + " |")
    for who, errs in errors.items():
        if errs:
            print("%s: median time error %.1f%%, largest %.1f%%" % (who, 100 * ec.median(errs), 100 * max(errs)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--backend", choices=("local", "sim", "both"), default="both")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the job (tiny preset, 160 images)")
    parser.add_argument("--max-minutes", type=float, default=55.0)
    parser.add_argument("--pack-share", type=float, default=0.0,
                        help="most CPU share of truth runs side by side (default: the probe cluster's)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--compare-with", metavar="DIR", help="also plan the probe with the optimizer of checkout DIR")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs) and print its path")
    parser.add_argument("--replan", metavar="DIR", help="run nothing: plan the probe kept in DIR (a --keep folder) "
                        "with this checkout's optimizer and measure its kept runs")
    args = parser.parse_args()
    start = time.monotonic()
    deadline = start + 60 * args.max_minutes
    capacity = paramount_capacity.cpu_capacity(reserve=0.5)
    backends = ec.backends(args.backend)
    ledger = load_ledger()
    if args.replan:
        for backend in backends:
            if (Path(args.replan) / backend).is_dir():
                report(backend, replan_backend(backend, args.replan, capacity, ledger, args), args.repeats)
        return
    workdir = Path(tempfile.mkdtemp(prefix="prediction-accuracy-"))
    results = {}
    try:
        ec.make_dataset(workdir / "data")
        print("capacity %.2f CPU, job: tiny preset, 160 images, %d epochs; %d repeats; cap %.0f min"
              % (capacity, args.epochs, args.repeats, args.max_minutes))
        for i, backend in enumerate(backends):
            # each backend gets its share of the time left
            share_deadline = time.monotonic() + (deadline - time.monotonic()) / (len(backends) - i)
            results[backend] = bench_backend(backend, args, workdir / backend, workdir / "data", capacity,
                                             share_deadline, ledger)
        for backend, result in results.items():
            report(backend, result, args.repeats)
        print("\ntotal %.0f s" % (time.monotonic() - start))
        if args.json:
            Path(args.json).write_text(json.dumps({b: {"truth": {"%s x%d" % k: v for k, v in r["truth"].items()},
                                                       "predicted": {"%s x%d" % k: [c["predicted_seconds"],
                                                                                    c["predicted_cost"]]
                                                                     for k, c in r["candidates"].items()},
                                                       "chosen": {o: p["chosen"] for o, p in r["plans"].items()},
                                                       "left_out": r["left_out"]}
                                                   for b, r in results.items()}, indent=1, default=str))
    finally:
        if args.keep:
            print("logs kept in %s" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
