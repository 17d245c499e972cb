"""Decision quality of paramount.cluster.optimize, by family of synthetic workloads.

Builds suites of synthetic workloads whose ground truth is NOT the optimizer's own model:
step time in the Pollux form (OSDI'21), step = (T_compute^g + T_network^g)^(1/g) with g in [1, 10],
T_network = a_n + b_n (nodes - 2) for more than one node, scaled by a per-type network factor;
per-step noise, stragglers (a rank slowed at random; the step waits for it, so more nodes straggle
more often), warm-up drift at the start of each phase, init time growing with the node count, a
warm-up phase 1.2 to 25 times cheaper per step than the adversarial phase, and workloads that do not
fit in a type's memory (their probe fails).

Families (``--families``, all by default; each has its own seeds):

* ``standard``: the suite above (jobs of minutes to hours; 3 warm-up + 10 adversarial probe iterations;
  setup 60 s; truth billed per second with a 60 s minimum).
* ``short-prorata``: jobs shorter than the billing minimum (5-50 s on the slowest type), setup 0 (half of
  them: nodes already up) or 0-20 s,
  truth billed pro rata (per second, no minimum); the catalog handed to the optimizer states that rule.
* ``short-minimum``: the same jobs, truth billed per second with a 60 s minimum over a node's whole life
  (setup plus job); the catalog states that rule.
* ``slow-start``: first iterations 3-7 times slower than the rest (decay 0.5-2 iterations), only ten probe
  iterations (one phase), jobs of 4 to about 800 iterations.
* ``throttled``: the standard suite on nodes under a CPU quota (containers with a CPU limit, the emulated
  backends): a rank's compute runs only in its share of each scheduler period, so a step takes a whole number
  of periods, k or k + 1 by where in a period it starts (one to about twenty periods; the fastest type's
  adversarial step 1.5-4); on average one period more than the compute itself.
* ``noise-slope``: two-count scaling whose measured slope is within run-to-run noise: communication 0.2-3%
  of the compute time on one unit of speed (growth with the node count in proportion), and every run (each
  probe run and the full run) draws its own speed factor (between-run coefficient of variation 2-6%).

The truth bill is the benchmark's own rule (``true_bill``), not the optimizer's billing function.

For every workload it writes the probe logs a real probe would leave (each candidate type at 1 and 2
nodes, via tests/loggen.py, trainer log contract v1), runs the optimizer (objective cost, then time) and
compares its choice with the true optimum over every candidate (type, 1..8 nodes), where the truth is a
simulated full run. Beside the optimizer, in the same run:

* ``field``: the field's baseline: total time = mean of paramount iterations 2-10 (per phase) x the job's
  iterations of that phase, cost = nodes x price x that time; the best measured configuration is picked;
* ``cheapest/h``: lowest price per hour on 1 node, no time estimate (what SkyPilot picks; its time "error"
  is against the one hour it assumes);
* ``repeat-last``: for extrapolation, the step time measured at the largest probed count, repeated for
  every larger count up to twice it.

Figures per family: share of picks that are the true optimum, within 1.1x and 1.2x, mean and worst ratio;
median and 90th percentile error of predicted total time (chosen configurations, all candidates, measured
and extrapolated ones); the error of the predicted adversarial step time at counts above the largest
probed one up to twice it (optimizer vs repeat-last); the search cost as a share of the chosen run's true
cost; with ``--coverage K``, the share of true total times inside the plan's 95% interval on the first K
workloads of each family (bootstrap on).

``--compare-with DIR`` runs the same suites (same seeds) with the optimizer of another checkout ``DIR``
(e.g. ``git archive <commit> | tar -x -C DIR``) in a subprocess and prints old and new side by side.

``--sim-runs DIR`` adds the project's own simulated-cloud runs trained to completion:
``DIR/<workload>/probe/`` (probe logs) and ``DIR/<workload>/full/`` (logs of completed full runs,
one or more configurations); the prediction for each completed configuration is compared with its
measured time. With no such runs it says so.

No assertions: it prints figures. Usage: nice .venv/bin/python benchmarks/decision_quality.py [--quiet]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _collection_root(argv):
    """The checkout whose optimizer is measured: ``--collection DIR`` (used by --compare-with), else this one."""
    for i, a in enumerate(argv):
        if a == "--collection" and i + 1 < len(argv):
            return Path(argv[i + 1]).resolve()
        if a.startswith("--collection="):
            return Path(a.split("=", 1)[1]).resolve()
    return REPO


def _import_collection(repo):
    root = repo / ".build" / "collections"
    link = root / "ansible_collections" / "paramount" / "cluster"
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink() and not link.exists():
        try:
            os.symlink(repo, link)
        except FileExistsError:
            pass
    sys.path.insert(0, str(root))


_import_collection(_collection_root(sys.argv))

import numpy as np  # noqa: E402

sys.path.insert(0, str(REPO))  # this checkout's synthetic log writer (tests/loggen.py), whatever --collection measures

from ansible_collections.paramount.cluster.plugins.plugin_utils.measurement.estimates import measure  # noqa: E402
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_catalog import (  # noqa: E402
    default_catalog_path,
    load_catalog,
)
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_common import (  # noqa: E402
    OBJECTIVES,
    ParamountError,
)
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_plan import optimize  # noqa: E402

from synthetic_workloads import (  # noqa: E402  (beside this script)
    PHASES,
    Workload,
    true_bill,
    write_catalog,
    write_probes,
)


class Suite:
    """One family of workloads: how they are drawn, probed and billed."""

    def __init__(self, name, text, workloads, billing=(1.0, 60.0), phases=PHASES, index=0):
        self.name, self.text, self.workloads = name, text, workloads
        self.billing = billing  # (increment, minimum) of the truth, stated in the optimizer's catalog too
        self.phases = phases
        self.index = index  # seed stream of the family


def suites(args):
    n_new = args.family_workloads
    return {
        "standard": Suite("standard", "the original suite (setup 60 s, truth per second with a 60 s minimum)",
                          args.workloads, index=0),
        "short-prorata": Suite("short-prorata", "jobs shorter than the 60 s minimum, setup 0 or 0-20 s, truth billed "
                               "pro rata (per second, no minimum)", n_new, billing=(1.0, 0.0), index=1),
        "short-minimum": Suite("short-minimum", "the same jobs, truth billed per second with a 60 s minimum over "
                               "a node's life (setup + job)", n_new, billing=(1.0, 60.0), index=1),
        "slow-start": Suite("slow-start", "first iterations 3-7x slower, ten probe iterations, jobs of 4-800 "
                            "iterations", n_new, phases=(("adversarial", 10),), index=2),
        "noise-slope": Suite("noise-slope", "communication 0.2-3% of compute, between-run CV 2-6% (every run "
                             "draws its own speed)", n_new, index=3),
        "throttled": Suite("throttled", "the standard suite under a CPU quota: steps of whole scheduler periods",
                           n_new, index=4),
    }


def pct(values, q):
    return float(np.percentile(values, q)) if len(values) else float("nan")


def share(values, pred):
    return 100.0 * sum(1 for v in values if pred(v)) / len(values) if values else float("nan")


def field_baseline(w, steps, obj, catalog):
    """The field's pick among measured configurations: total = mean of PIs 2-10 x iterations, per phase."""
    best = None
    for (t, n), by_phase in steps.items():
        iters = w.iterations(n)
        total = 0.0
        for phase, count in iters.items():
            if count <= 0:
                continue
            seq = by_phase.get(phase) or by_phase.get("adversarial")
            total += float(np.mean(seq[1:10])) * count
        cost = n * catalog[t].price_per_hour * total / 3600.0
        key = (total, cost) if obj == "time" else (cost, total)
        if best is None or key < best[0]:
            best = (key, (t, n), total)
    return best[1], best[2]


def run_family(suite, args, catalog, cat_path):
    counts = list(range(1, args.max_nodes + 1))
    probe_counts = [int(c) for c in args.probe_counts.split(",")]
    pmax = max(probe_counts)
    extra = [n for n in counts if pmax < n <= 2 * pmax]
    r = {"n": 0, "failures": 0}
    for obj in OBJECTIVES:
        for who in ("opt", "field", "cheap"):
            r["%s_%s_ratio" % (obj, who)] = []
            r["%s_%s_exact" % (obj, who)] = []
            r["%s_%s_err" % (obj, who)] = []
        r["%s_search" % obj] = []
    for k in ("err_all", "err_measured", "err_extrap", "x_opt", "x_last", "cover"):
        r[k] = []
    t0 = time.time()
    for i in range(suite.workloads):
        # independent streams per workload: the suite does not change with the probe design or the method
        # (the standard family keeps the streams it always had, so its figures stay comparable)
        stream = [args.seed] if suite.index == 0 else [args.seed, 1000 + suite.index]
        w = Workload(np.random.default_rng(stream + [i, 0]), catalog, i, suite.name)
        rng = np.random.default_rng(stream + [i, 1])
        probe_rng = np.random.default_rng(stream + [i, 2])
        truth = {}
        for t in w.types:
            if not w.fits(t):
                continue
            for n in counts:
                secs = w.true_run(t, n, rng)
                cost = true_bill(n, catalog[t].price_per_hour, w.setup + secs, *suite.billing)
                truth[(t, n)] = (secs, cost)
        if not truth:
            continue
        r["n"] += 1
        with tempfile.TemporaryDirectory() as d:
            probes = os.path.join(d, "probes")
            steps = write_probes(w, probes, probe_rng, probe_counts, suite.phases)
            for obj in OBJECTIVES:
                key = (lambda kv: (kv[1][0], kv[1][1])) if obj == "time" else (lambda kv: (kv[1][1], kv[1][0]))
                best_cfg, best = min(truth.items(), key=key)
                best_v = best[1] if obj == "cost" else best[0]
                coverage = obj == "cost" and i < args.coverage
                try:
                    res = optimize({"results_dir": probes, "objective": obj, "instance_types": w.types,
                                    "node_counts": counts, "setup_seconds": w.setup, "catalog": cat_path,
                                    "bootstrap": args.bootstrap if coverage else 0, "plots": False},
                                   check_mode=True)
                except ParamountError as exc:
                    r["failures"] += 1
                    print("%s %s: optimizer error: %s" % (suite.name, w.name, exc))
                    continue
                plan = res["plan"]
                ch = plan["chosen"]
                if ch is None:
                    r["failures"] += 1
                    continue
                picks = {"opt": ((ch["instance_type"], ch["nodes"]), ch["predicted_seconds"])}
                picks["field"] = field_baseline(w, steps, obj, catalog)
                fit_types = sorted({kk[0] for kk in truth}, key=lambda t: (catalog[t].price_per_hour, t))
                picks["cheap"] = ((fit_types[0], 1), 3600.0)
                for who, (cfg, predicted) in picks.items():
                    tv = truth[cfg]
                    v = tv[1] if obj == "cost" else tv[0]
                    r["%s_%s_ratio" % (obj, who)].append(v / best_v)
                    r["%s_%s_exact" % (obj, who)].append(cfg == best_cfg)
                    r["%s_%s_err" % (obj, who)].append(abs(predicted - tv[0]) / tv[0])
                r["%s_search" % obj].append(plan["search_cost"] / truth[picks["opt"][0]][1])
                if obj != "cost":
                    continue
                spi = {}
                for c in plan["candidates"]:
                    kk = (c["instance_type"], c["nodes"])
                    if c["predicted_seconds"] is None or kk not in truth:
                        continue
                    e = abs(c["predicted_seconds"] - truth[kk][0]) / truth[kk][0]
                    r["err_all"].append(e)
                    (r["err_measured"] if c["measured"] else r["err_extrap"]).append(e)
                    spi[kk] = (c["seconds_per_iteration_by_phase"] or {}).get("adversarial")
                    if coverage and c.get("predicted_seconds_interval"):
                        lo, hi = c["predicted_seconds_interval"]
                        r["cover"].append(lo <= truth[kk][0] <= hi)
                # extrapolation of the adversarial step time beyond the largest probed count, up to twice it
                for t in w.types:
                    last = spi.get((t, pmax))
                    if last is None:
                        continue
                    for n in extra:
                        pred = spi.get((t, n))
                        if pred is None:
                            continue
                        true_step = w.step_mean(t, "adversarial", n)
                        r["x_opt"].append(abs(pred - true_step) / true_step)
                        r["x_last"].append(abs(last - true_step) / true_step)
        if not args.quiet and (i + 1) % 50 == 0:
            print("  %s: %d/%d workloads (%.0f s)" % (suite.name, i + 1, suite.workloads, time.time() - t0),
                  flush=True)
    r["seconds"] = time.time() - t0
    return r


def summarize(r):
    """Figures of one family (fractions as %)."""
    out = {"workloads": r["n"], "failures": r["failures"], "seconds": r["seconds"]}
    for obj in OBJECTIVES:
        for who in ("opt", "field", "cheap"):
            ratio = r["%s_%s_ratio" % (obj, who)]
            err = r["%s_%s_err" % (obj, who)]
            out["%s_%s_exact" % (obj, who)] = share(r["%s_%s_exact" % (obj, who)], bool)
            out["%s_%s_w11" % (obj, who)] = share(ratio, lambda v: v <= 1.1 + 1e-9)
            out["%s_%s_w12" % (obj, who)] = share(ratio, lambda v: v <= 1.2 + 1e-9)
            out["%s_%s_mean" % (obj, who)] = float(np.mean(ratio)) if ratio else float("nan")
            out["%s_%s_worst" % (obj, who)] = float(np.max(ratio)) if ratio else float("nan")
            out["%s_%s_med_err" % (obj, who)] = 100 * pct(err, 50)
            out["%s_%s_p90_err" % (obj, who)] = 100 * pct(err, 90)
        out["%s_search" % obj] = 100 * pct(r["%s_search" % obj], 50)
    for k in ("err_all", "err_measured", "err_extrap", "x_opt", "x_last"):
        out[k + "_med"] = 100 * pct(r[k], 50)
        out[k + "_p90"] = 100 * pct(r[k], 90)
        out[k + "_n"] = len(r[k])
    out["cover"] = share(r["cover"], bool)
    out["cover_n"] = len(r["cover"])
    return out


ROWS = [
    ("chosen is the true optimum (%)", "exact", "%.1f"),
    ("within 1.1x of the optimum (%)", "w11", "%.1f"),
    ("within 1.2x of the optimum (%)", "w12", "%.1f"),
    ("mean ratio to the optimum", "mean", "%.3f"),
    ("worst ratio to the optimum", "worst", "%.2f"),
    ("median error, predicted time (%)", "med_err", "%.2f"),
    ("p90 error, predicted time (%)", "p90_err", "%.2f"),
]


def print_family(name, suite, results):
    """results: [(label, figures)] (one method, or old and new)."""
    first = results[0][1]
    print()
    print("== %s: %d workloads; %s" % (name, first["workloads"], suite.text))
    labels = [label for label, _figures in results]
    for obj in OBJECTIVES:
        head = ["%-34s" % ("objective %s" % obj)] + ["%12s" % label for label in labels] + \
               ["%12s" % "field", "%12s" % "cheapest/h"]
        print(" ".join(head))
        for text, key, fmt in ROWS:
            cells = [(fmt % f["%s_opt_%s" % (obj, key)]).rjust(12) for _label, f in results]
            cells += [(fmt % first["%s_field_%s" % (obj, key)]).rjust(12),
                      (fmt % first["%s_cheap_%s" % (obj, key)]).rjust(12)]
            print(" ".join(["%-34s" % text] + cells))
        cells = [("%.1f" % f["%s_search" % obj]).rjust(12) for _label, f in results]
        print(" ".join(["%-34s" % "search cost / chosen run cost (%)"] + cells))
    for text, key in (("total time, all candidates", "err_all"), ("  measured configurations", "err_measured"),
                      ("  extrapolated configurations", "err_extrap")):
        cells = ["%s %5.2f / %5.2f (n=%d)" % (label, f[key + "_med"], f[key + "_p90"], f[key + "_n"])
                 for label, f in results]
        print("%-34s median / p90 error (%%): %s" % (text, "; ".join(cells)))
    cells = ["%s %5.2f / %5.2f" % (label, f["x_opt_med"], f["x_opt_p90"]) for label, f in results]
    print("%-34s median / p90 error (%%): %s; repeat-last %5.2f / %5.2f (n=%d)" % (
        "step time at > max probed, <= 2x", "; ".join(cells), first["x_last_med"], first["x_last_p90"],
        first["x_last_n"]))
    if first["cover_n"]:
        cells = ["%s %.1f%%" % (label, f["cover"]) for label, f in results]
        print("%-34s %s (n=%d candidates)" % ("truth inside the 95% interval", "; ".join(cells), first["cover_n"]))
    bad = [label for label, f in results if f["failures"]]
    if bad:
        print("optimizer gave no choice: %s" % ", ".join("%s %d" % (label, f["failures"]) for label, f in results))


def run_suites(args):
    catalog = load_catalog(default_catalog_path())
    all_suites = suites(args)
    names = [s.strip() for s in args.families.split(",") if s.strip()]
    unknown = [n for n in names if n not in all_suites]
    if unknown:
        raise SystemExit("unknown family: %s (known: %s)" % (", ".join(unknown), ", ".join(all_suites)))
    figures = {}
    with tempfile.TemporaryDirectory() as d:
        for name in names:
            suite = all_suites[name]
            cat_path = os.path.join(d, "%s.csv" % name)
            write_catalog(default_catalog_path(), cat_path, suite.billing)
            figures[name] = summarize(run_family(suite, args, catalog, cat_path))
    return all_suites, names, figures


def sim_runs(path):
    """Completed sim runs: DIR/<workload>/{probe,full}. Returns rows (workload, type, nodes, predicted, measured)."""
    rows = []
    if not path or not os.path.isdir(path):
        return rows
    for wl in sorted(os.listdir(path)):
        probe, full = os.path.join(path, wl, "probe"), os.path.join(path, wl, "full")
        if not (os.path.isdir(probe) and os.path.isdir(full)):
            continue
        try:
            m = measure(full)
            completed = [r for r in m.runs if r.status == "completed" and len(set(r.host_types.values())) == 1]
            r = optimize({"results_dir": probe, "bootstrap": 0, "plots": False,
                          "node_counts": sorted({x.nodes for x in completed}) or [1]}, check_mode=True)
        except ParamountError as exc:
            print("sim workload %s skipped: %s" % (wl, exc))
            continue
        for run in completed:
            t = next(iter(run.host_types.values()))
            for c in r["plan"]["candidates"]:
                if c["instance_type"] == t and c["nodes"] == run.nodes and c["predicted_seconds"]:
                    rows.append((wl, t, run.nodes, c["predicted_seconds"], run.wall_seconds))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument("--workloads", type=int, default=200, help="workloads of the standard family")
    ap.add_argument("--family-workloads", type=int, default=100, help="workloads of each other family")
    ap.add_argument("--families", default="standard,short-prorata,short-minimum,slow-start,noise-slope,throttled")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-nodes", type=int, default=8)
    ap.add_argument("--probe-counts", default="1,2", help="node counts probed per type (default 1,2)")
    ap.add_argument("--coverage", type=int, default=0,
                    help="interval coverage on the first K workloads of each family (bootstrap on)")
    ap.add_argument("--bootstrap", type=int, default=200, help="bootstrap refits for --coverage")
    ap.add_argument("--collection", default=None, help="measure the optimizer of this checkout")
    ap.add_argument("--compare-with", default=None,
                    help="also run the optimizer of this checkout (same seeds) and print old and new side by side")
    ap.add_argument("--json", default=None, help="write the figures as JSON")
    ap.add_argument("--sim-runs", default=str(REPO / "runs" / "completed"),
                    help="completed simulated-cloud runs, DIR/<workload>/{probe,full}")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)

    old = None
    if args.compare_with:
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "old.json")
            cmd = [sys.executable, str(Path(__file__).resolve()), "--collection", args.compare_with, "--json", out,
                   "--quiet", "--sim-runs", "", "--workloads", str(args.workloads), "--family-workloads",
                   str(args.family_workloads), "--families", args.families, "--seed", str(args.seed),
                   "--max-nodes", str(args.max_nodes), "--probe-counts", args.probe_counts,
                   "--coverage", str(args.coverage), "--bootstrap", str(args.bootstrap)]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)  # its figures come back as JSON
            with open(out, encoding="utf-8") as handle:
                old = json.load(handle)
    all_suites, names, figures = run_suites(args)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(figures, handle, indent=1, sort_keys=True)
    total = sum(f["seconds"] for f in figures.values())
    print()
    print("Decision quality: synthetic workloads (Pollux-form truth), probes at %s node(s) per type, candidates "
          "1..%d nodes, seed %d, %.0f s%s" % (args.probe_counts, args.max_nodes, args.seed, total,
                                              " (old method: %.0f s)" % sum(f["seconds"] for f in old.values())
                                              if old else ""))
    for name in names:
        results = [("old", old[name]), ("new", figures[name])] if old else [("optimizer", figures[name])]
        print_family(name, all_suites[name], results)
    print()
    print("field: mean of PIs 2-10 x iterations, best measured configuration; cheapest/h: lowest price per hour "
          "on 1 node (its time error is against the one hour it assumes); repeat-last: the step time at the "
          "largest probed count.")
    rows = sim_runs(args.sim_runs)
    print()
    if rows:
        e = [abs(row[3] - row[4]) / row[4] for row in rows if row[4]]
        print("Project sim runs trained to completion: %d configurations, predicted time error median %.2f%%, "
              "max %.2f%%" % (len(rows), 100 * pct(e, 50), 100 * max(e)))
        for wl, t, n, p, m in rows:
            print("  %s %s x%d: predicted %.1f s, measured %.1f s" % (wl, t, n, p, m))
    elif args.sim_runs:
        print("Project sim runs trained to completion: none found under %s (0 workloads)" % args.sim_runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
