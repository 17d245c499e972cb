"""Decision quality of paramount.cluster.optimize.

Builds a suite of synthetic workloads whose ground truth is NOT the optimizer's own model:
step time in the Pollux form (OSDI'21), step = (T_compute^g + T_network^g)^(1/g) with g in [1, 10],
T_network = a_n + b_n (nodes - 2) for more than one node, scaled by a per-type network factor;
per-step noise, stragglers (a rank slowed at random; the step waits for it, so more nodes straggle
more often), warm-up drift at the start of each phase, init time growing with the node count, a
warm-up phase 1.2 to 25 times cheaper per step than the adversarial phase, and workloads that do not
fit in a type's memory (their probe fails).

For every workload it writes the probe logs a real probe would leave (each candidate type at 1 and 2
nodes, 3 warm-up + 10 adversarial paramount iterations, trainer log contract v1, via
paramount_loggen), runs the optimizer (objective cost, then time) and compares its choice with the
true optimum over every candidate (type, 1..8 nodes), where the truth is a simulated full run.

It prints, for cost and for time: the share of workloads whose chosen configuration is the true
optimum, within 1.1x and within 1.2x of it; the median and 90th percentile error of predicted total
time (chosen configurations, and all predicted candidates); the search cost as a share of the chosen
run's true cost; and the same for the baseline "cheapest price per hour" (1 node, no time estimate:
what SkyPilot picks).

``--sim-runs DIR`` adds the project's own simulated-cloud runs trained to completion:
``DIR/<workload>/probe/`` (probe logs) and ``DIR/<workload>/full/`` (logs of completed full runs,
one or more configurations); the prediction for each completed configuration is compared with its
measured time. With no such runs it says so.

No assertions: it prints figures. Usage: .venv/bin/python benchmarks/decision_quality.py [--workloads N]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _import_collection():
    root = REPO / ".build" / "collections"
    link = root / "ansible_collections" / "paramount" / "cluster"
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink() and not link.exists():
        try:
            os.symlink(REPO, link)
        except FileExistsError:
            pass
    sys.path.insert(0, str(root))


_import_collection()

import numpy as np  # noqa: E402

from ansible_collections.paramount.cluster.plugins.plugin_utils import paramount_decision as dec  # noqa: E402
from ansible_collections.paramount.cluster.plugins.plugin_utils import paramount_loggen as lg  # noqa: E402
from ansible_collections.paramount.cluster.plugins.plugin_utils import paramount_logs as pl  # noqa: E402
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_catalog import (  # noqa: E402
    default_catalog_path,
    load_catalog,
)
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_common import ParamountError  # noqa: E402
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_plan import optimize  # noqa: E402

# compute capacity per vCPU by family, network factor (1 = t3-like), accelerator boost
FAMILY = {"t2": (0.8, 1.5), "t3": (0.9, 1.0), "c5": (1.15, 0.7), "m5": (1.0, 0.7), "g4dn": (1.0, 0.5),
          "sim": (1.0, 1.0)}
SIM_SPEED = {"sim.small": 0.15, "sim.medium": 0.30, "sim.large": 0.60}
PHASES = (("warmup", 3), ("adversarial", 10))
SETUP_SECONDS = 60.0


def loguniform(rng, lo, hi):
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


class Workload:
    """Ground truth of one workload on a set of types (Pollux-form step time)."""

    def __init__(self, rng, catalog, index):
        self.name = "synthetic-%03d" % index
        aws = [t for t in catalog if not t.startswith(("sim.", "local."))]
        if rng.random() < 0.25:
            self.types = list(SIM_SPEED)
        else:
            k = int(rng.integers(3, 7))
            self.types = sorted(rng.choice(aws, size=k, replace=False).tolist())
        self.catalog = catalog
        exponent = rng.uniform(0.6, 0.95)  # intra-node scaling with vCPUs
        gpu_boost = loguniform(rng, 3.0, 15.0)
        self.speed, self.net = {}, {}
        for t in self.types:
            e = catalog[t]
            fam = t.split(".", maxsplit=1)[0]
            eff, net = FAMILY.get(fam, (1.0, 1.0))
            if t in SIM_SPEED:
                s = SIM_SPEED[t]
            else:
                s = eff * (e.vcpus ** exponent) * (gpu_boost if e.gpus else 1.0)
                s *= float(rng.lognormal(0.0, 0.15))
            self.speed[t] = s
            self.net[t] = net * float(rng.lognormal(0.0, 0.1))
        self.mem_need = loguniform(rng, 0.3, 6.0) if rng.random() < 0.5 else 0.2
        if not any(catalog[t].memory_gib >= self.mem_need for t in self.types):
            self.mem_need = 0.2  # the job fits somewhere
        self.base = loguniform(rng, 0.2, 4.0)  # adversarial compute seconds on one unit of speed
        self.warm_ratio = loguniform(rng, 1.2, 25.0)
        self.alpha_n = self.base * loguniform(rng, 0.02, 0.6)
        self.beta_n = self.alpha_n * rng.uniform(0.0, 0.3)
        self.gamma = loguniform(rng, 1.0, 10.0)
        self.noise = rng.uniform(0.01, 0.05)
        self.p_straggle = rng.uniform(0.0, 0.003)
        self.drift = rng.uniform(0.2, 1.5)
        self.tau = rng.uniform(0.5, 3.0)
        self.init0 = rng.uniform(5.0, 60.0)
        self.init1 = rng.uniform(0.5, 5.0)
        self.samples = int(rng.choice([1000, 2000, 5000, 10000]))
        self.batch = int(rng.choice([4, 8, 16]))
        self.epochs = int(rng.integers(1, 31))
        self.warmup_iterations = int(rng.choice([0, 50, 200, 500]))

    # -- pieces of the truth
    def fits(self, t):
        return self.catalog[t].memory_gib >= self.mem_need

    def t_compute(self, t, phase):
        c = self.base / self.speed[t]
        return c / self.warm_ratio if phase == "warmup" else c

    def t_network(self, t, phase, n):
        if n <= 1:
            return 0.0
        v = (self.alpha_n + self.beta_n * (n - 2)) * self.net[t]
        return v * (0.7 if phase == "warmup" else 1.0)

    def combine(self, comp, net):
        if net <= 0:
            return comp
        g = self.gamma
        return (comp ** g + net ** g) ** (1.0 / g)

    def iterations(self, n):
        total = math.ceil(self.samples / float(n * self.batch)) * self.epochs
        w = min(self.warmup_iterations, total)
        return {"warmup": w, "adversarial": total - w}

    def true_run(self, t, n, rng):
        """Simulated full run: (seconds, cost)."""
        total = self.init0 + self.init1 * n * float(rng.lognormal(0.0, 0.05))
        for phase, count in self.iterations(n).items():
            if count <= 0:
                continue
            c = self.t_compute(t, phase)
            m = self.combine(c, self.t_network(t, phase, n))
            s = m * count + math.sqrt(count) * m * self.noise * float(rng.standard_normal())
            p = 1.0 - (1.0 - self.p_straggle) ** n
            k = int(rng.binomial(count, p))
            if k:
                s += c * (1.25 * k + 0.43 * math.sqrt(k) * float(rng.standard_normal()))
            idx = np.arange(min(count, 50))
            s += m * self.drift * float(np.exp(-idx / self.tau).sum())
            total += s
        price = self.catalog[t].price_per_hour
        return total, dec.cluster_cost(n, price, total, SETUP_SECONDS)


class ProbeTiming:
    """loggen timing source drawing probe steps from a Workload's truth."""

    def __init__(self, w, rng):
        self.w, self.rng = w, rng

    def step(self, phase, index, ranks, nodes, attempt=0):
        w = self.w
        drift = 1.0 + w.drift * math.exp(-index / w.tau)
        comps = []
        for _rank, _host, t in ranks:
            c = w.t_compute(t, phase) * drift * max(0.3, 1.0 + w.noise * float(self.rng.standard_normal()))
            if self.rng.random() < w.p_straggle:
                c += w.t_compute(t, phase) * float(self.rng.uniform(0.5, 2.0))
            comps.append(c)
        t0 = ranks[0][2]
        net = w.t_network(t0, phase, nodes) * max(0.3, 1.0 + w.noise * float(self.rng.standard_normal()))
        step = w.combine(max(comps), net)
        return comps, step - max(comps), step

    def init(self, nodes, itype):
        return self.w.init0 + self.w.init1 * nodes * float(self.rng.lognormal(0.0, 0.05))


def write_probes(w, root, rng, counts):
    timing = ProbeTiming(w, rng)
    for t in w.types:
        for n in counts:
            rid = "%s-%s-%dx" % (w.name, t.replace(".", "-"), n)
            hosts = [("%s-n%d" % (rid, i), t) for i in range(n)]
            kw = dict(local_batch=w.batch, samples_per_epoch=w.samples, epochs=w.epochs,
                      warmup_iterations=w.warmup_iterations, phases=PHASES if w.warmup_iterations else PHASES[1:])
            if not w.fits(t):
                kw.update(phases=(), status="failed")  # out of memory: the probe dies after init
            recs = lg.run_records(rid, w.name, hosts, timing, **kw)
            lg.write_run(os.path.join(root, rid), recs, out_files=False)


def pct(values, q):
    return float(np.percentile(values, q)) if len(values) else float("nan")


def share(values, pred):
    return 100.0 * sum(1 for v in values if pred(v)) / len(values) if values else float("nan")


def run_suite(args):
    catalog = load_catalog(default_catalog_path())
    counts = list(range(1, args.max_nodes + 1))
    probe_counts = [int(c) for c in args.probe_counts.split(",")]
    res = {obj: {"ratio": [], "exact": [], "err_chosen": [], "search_share": []} for obj in ("cost", "time")}
    base = {obj: {"ratio": [], "exact": [], "err": []} for obj in ("cost", "time")}
    err_all, err_measured, err_extrap = [], [], []
    failures = 0
    t_start = time.time()
    for i in range(args.workloads):
        # independent streams per workload: the suite does not change with the probe design
        w = Workload(np.random.default_rng([args.seed, i, 0]), catalog, i)
        rng = np.random.default_rng([args.seed, i, 1])
        probe_rng = np.random.default_rng([args.seed, i, 2])
        truth = {}
        for t in w.types:
            if not w.fits(t):
                continue
            for n in counts:
                truth[(t, n)] = w.true_run(t, n, rng)
        if not truth:
            continue
        with tempfile.TemporaryDirectory() as d:
            write_probes(w, d, probe_rng, probe_counts)
            for obj in ("cost", "time"):
                key = (lambda kv: (kv[1][0], kv[1][1])) if obj == "time" else (lambda kv: (kv[1][1], kv[1][0]))
                best_cfg, best = min(truth.items(), key=key)
                best_v = best[1] if obj == "cost" else best[0]
                try:
                    r = optimize({"results_dir": d, "objective": obj, "instance_types": w.types,
                                  "node_counts": counts, "setup_seconds": SETUP_SECONDS, "bootstrap": 0,
                                  "plots": False}, check_mode=True)
                except ParamountError as exc:
                    failures += 1
                    print("workload %s: optimizer error: %s" % (w.name, exc))
                    continue
                ch = r["plan"]["chosen"]
                if ch is None:
                    failures += 1
                    continue
                cfg = (ch["instance_type"], ch["nodes"])
                tv = truth[cfg]
                v = tv[1] if obj == "cost" else tv[0]
                res[obj]["ratio"].append(v / best_v)
                res[obj]["exact"].append(cfg == best_cfg)
                res[obj]["err_chosen"].append(abs(ch["predicted_seconds"] - tv[0]) / tv[0])
                res[obj]["search_share"].append(r["plan"]["search_cost"] / tv[1])
                if obj == "cost":
                    for c in r["plan"]["candidates"]:
                        k = (c["instance_type"], c["nodes"])
                        if c["predicted_seconds"] is None or k not in truth:
                            continue
                        e = abs(c["predicted_seconds"] - truth[k][0]) / truth[k][0]
                        err_all.append(e)
                        (err_measured if c["measured"] else err_extrap).append(e)
                # baseline: lowest price per hour among the types the job fits on, 1 node, no estimate
                fit_types = sorted({key[0] for key in truth}, key=lambda t: (catalog[t].price_per_hour, t))
                bcfg = (fit_types[0], 1)
                bv = truth[bcfg][1] if obj == "cost" else truth[bcfg][0]
                base[obj]["ratio"].append(bv / best_v)
                base[obj]["exact"].append(bcfg == best_cfg)
                base[obj]["err"].append(abs(3600.0 - truth[bcfg][0]) / truth[bcfg][0])
        if not args.quiet and (i + 1) % 50 == 0:
            print("  %d/%d workloads (%.0f s)" % (i + 1, args.workloads, time.time() - t_start), flush=True)
    return res, base, (err_all, err_measured, err_extrap), failures, time.time() - t_start


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
            m = pl.measure(full)
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
    ap.add_argument("--workloads", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-nodes", type=int, default=8)
    ap.add_argument("--probe-counts", default="1,2", help="node counts probed per type (default 1,2)")
    ap.add_argument("--sim-runs", default=str(REPO / "runs" / "completed"),
                    help="completed simulated-cloud runs, DIR/<workload>/{probe,full}")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)

    res, base, errs, failures, secs = run_suite(args)
    n = len(res["cost"]["ratio"])
    print()
    print("Decision quality: %d synthetic workloads (Pollux-form truth), probes at %s node(s) per type, "
          "%s PIs, candidates 1..%d nodes, seed %d, %.0f s" % (
              n, args.probe_counts, "+".join("%s:%d" % p for p in PHASES), args.max_nodes, args.seed, secs))
    if failures:
        print("optimizer gave no choice on %d workload-objective pairs" % failures)
    print()
    print("%-36s %10s %10s %12s %12s" % ("", "optimizer", "", "baseline", ""))
    print("%-36s %10s %10s %12s %12s" % ("objective", "cost", "time", "cost", "time"))
    for label, fn in (("chosen is the true optimum (%)", lambda r: share(r["exact"], bool)),
                      ("within 1.1x of the optimum (%)", lambda r: share(r["ratio"], lambda v: v <= 1.1 + 1e-9)),
                      ("within 1.2x of the optimum (%)", lambda r: share(r["ratio"], lambda v: v <= 1.2 + 1e-9)),
                      ("mean ratio to the optimum", lambda r: float(np.mean(r["ratio"])) if r["ratio"] else float("nan")),
                      ("worst ratio to the optimum", lambda r: float(np.max(r["ratio"])) if r["ratio"] else float("nan"))):
        values = (fn(res["cost"]), fn(res["time"]), fn(base["cost"]), fn(base["time"]))
        print("%-36s %10.2f %10.2f %12.2f %12.2f" % ((label,) + values))
    print("%-36s %10.2f %10.2f %12.1f %12.1f" % (
        "median error, predicted time (%)", 100 * pct(res["cost"]["err_chosen"], 50),
        100 * pct(res["time"]["err_chosen"], 50), 100 * pct(base["cost"]["err"], 50),
        100 * pct(base["time"]["err"], 50)))
    print("%-36s %10.2f %10.2f %12.1f %12.1f" % (
        "p90 error, predicted time (%)", 100 * pct(res["cost"]["err_chosen"], 90),
        100 * pct(res["time"]["err_chosen"], 90), 100 * pct(base["cost"]["err"], 90),
        100 * pct(base["time"]["err"], 90)))
    print("%-36s %10.2f %10.2f %12s %12s" % (
        "search cost / chosen run cost (%)", 100 * pct(res["cost"]["search_share"], 50),
        100 * pct(res["time"]["search_share"], 50), "0", "0"))
    print("  (search cost share: median; mean %.2f%% / %.2f%%)" % (
        100 * float(np.mean(res["cost"]["search_share"])), 100 * float(np.mean(res["time"]["search_share"]))))
    err_all, err_m, err_x = errs
    print()
    print("Predicted total time, all candidates: median %.2f%%, p90 %.2f%% (n=%d); measured configurations "
          "median %.2f%% p90 %.2f%% (n=%d); extrapolated median %.2f%% p90 %.2f%% (n=%d)" % (
              100 * pct(err_all, 50), 100 * pct(err_all, 90), len(err_all), 100 * pct(err_m, 50),
              100 * pct(err_m, 90), len(err_m), 100 * pct(err_x, 50), 100 * pct(err_x, 90), len(err_x)))
    print("Baseline error: SkyPilot assumes one hour when it has no estimate.")
    rows = sim_runs(args.sim_runs)
    print()
    if rows:
        e = [abs(row[3] - row[4]) / row[4] for row in rows if row[4]]
        print("Project sim runs trained to completion: %d configurations, predicted time error median %.2f%%, "
              "max %.2f%%" % (len(rows), 100 * pct(e, 50), 100 * max(e)))
        for wl, t, n, p, m in rows:
            print("  %s %s x%d: predicted %.1f s, measured %.1f s" % (wl, t, n, p, m))
    else:
        print("Project sim runs trained to completion: none found under %s (0 workloads)" % args.sim_runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
