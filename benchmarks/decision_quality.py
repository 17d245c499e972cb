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
import csv
import json
import math
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
from tests import loggen as lg  # noqa: E402

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
SIM_SPEED = {t: share for t, share in lg.SIM_SPEED.items() if t.startswith("sim.")}  # the catalog's sim types
PHASES = (("warmup", 3), ("adversarial", 10))
SETUP_SECONDS = 60.0


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


def loguniform(rng, lo, hi):
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def true_bill(nodes, price, life_seconds, increment, minimum):
    """The benchmark's own billing rule: every node billed for its life (setup + job), rounded up to the
    increment, at least the minimum."""
    billed = max(float(minimum), math.ceil(life_seconds / increment - 1e-9) * increment)
    return nodes * price * billed / 3600.0


class Workload:
    """Ground truth of one workload on a set of types (Pollux-form step time)."""

    def __init__(self, rng, catalog, index, family="standard"):
        self.name = "synthetic-%03d" % index
        self.family = family
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
        self.setup = SETUP_SECONDS
        self.run_cv = 0.0  # between-run speed variation (each run draws its own factor)
        self.period = 0.0  # scheduler period of a CPU quota (0: no quota)
        if family in ("short-prorata", "short-minimum"):
            self._short(rng)
        elif family == "slow-start":
            self.drift = rng.uniform(2.0, 6.0)  # the first iteration is 3-7x slower than the rest
            self.tau = rng.uniform(0.5, 2.0)
            self.samples = int(rng.choice([64, 128, 256, 512, 1024]))
            self.epochs = int(rng.integers(1, 4))
            self.warmup_iterations = 0
        elif family == "noise-slope":
            self.alpha_n = self.base * loguniform(rng, 0.002, 0.03)
            self.beta_n = self.alpha_n * rng.uniform(0.0, 0.3)  # (drawn again: small as the rest of the network)
            self.run_cv = rng.uniform(0.02, 0.06)
        elif family == "throttled":
            self.period = self.base / max(self.speed.values()) / rng.uniform(1.5, 4.0)

    def _short(self, rng):
        """A job shorter than the billing minimum: 5-50 s of iterations on the slowest type at 1 node."""
        self.samples = int(rng.choice([256, 512, 1024]))
        self.batch = 8
        self.epochs = 1
        self.warmup_iterations = int(rng.choice([0, 8]))
        self.init0 = rng.uniform(1.0, 5.0)
        self.init1 = rng.uniform(0.1, 1.0)
        # half the jobs start on nodes that are up already (setup_seconds 0, the option's default)
        self.setup = float(rng.uniform(0.0, 20.0)) if rng.random() < 0.5 else 0.0
        target = loguniform(rng, 5.0, 50.0)
        iters = self.iterations(1)
        slowest = min(self.speed.values())
        per_step = target / max(1, iters["adversarial"] + iters["warmup"] / self.warm_ratio)
        self.base = per_step * slowest
        self.alpha_n = self.base * loguniform(rng, 0.02, 0.6)
        self.beta_n = self.alpha_n * rng.uniform(0.0, 0.3)

    # -- pieces of the truth
    def fits(self, t):
        return self.catalog[t].memory_gib >= self.mem_need

    def t_compute(self, t, phase, n=1):
        """Expected compute seconds of a step of ``n`` ranks. Under a CPU quota each rank takes k or k + 1 whole
        periods (k + 1 with the probability of the compute's fraction of a period, each rank's nodes' periods
        independent) and the step waits for the last: k + 1 + (1 - (1 - fraction)^n) periods."""
        c = self.t_cpu(t, phase)
        if not self.period:
            return c
        x = c / self.period
        k = math.floor(x)
        return self.period * (k + 2 - (1.0 - (x - k)) ** n)

    def t_cpu(self, t, phase):
        """Compute seconds of a step without a quota's rounding."""
        c = self.base / self.speed[t]
        return c / self.warm_ratio if phase == "warmup" else c

    def quantize(self, seconds, rng):
        """Wall time of ``seconds`` of compute under the quota: the whole periods it spans from a random start
        within a period (k or k + 1 periods; expected ``seconds`` + one period)."""
        if not self.period:
            return seconds
        return self.period * math.ceil(seconds / self.period + float(rng.uniform(0.0, 1.0)))

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

    def step_mean(self, t, phase, n):
        """Expected steady step time (stragglers included, no run factor)."""
        c = self.t_compute(t, phase, n)
        p = 1.0 - (1.0 - self.p_straggle) ** n
        return self.combine(c, self.t_network(t, phase, n)) + c * 1.25 * p

    def iterations(self, n):
        total = math.ceil(self.samples / float(n * self.batch)) * self.epochs
        w = min(self.warmup_iterations, total)
        return {"warmup": w, "adversarial": total - w}

    def run_factor(self, rng):
        return float(rng.lognormal(0.0, self.run_cv)) if self.run_cv > 0 else 1.0

    def true_run(self, t, n, rng):
        """Simulated full run: seconds (init + iterations; setup not included)."""
        total = self.init0 + self.init1 * n * float(rng.lognormal(0.0, 0.05))
        f = self.run_factor(rng)
        for phase, count in self.iterations(n).items():
            if count <= 0:
                continue
            c = self.t_compute(t, phase, n) * f
            m = self.combine(c, self.t_network(t, phase, n) * f)
            s = m * count + math.sqrt(count) * m * self.noise * float(rng.standard_normal())
            p = 1.0 - (1.0 - self.p_straggle) ** n
            k = int(rng.binomial(count, p))
            if k:
                s += c * (1.25 * k + 0.43 * math.sqrt(k) * float(rng.standard_normal()))
            idx = np.arange(min(count, 50))
            s += m * self.drift * float(np.exp(-idx / self.tau).sum())
            total += s
        return total


class ProbeTiming:
    """loggen timing source drawing probe steps from a Workload's truth (one run: one run factor)."""

    def __init__(self, w, rng, factor=1.0):
        self.w, self.rng, self.f = w, rng, factor

    def step(self, phase, index, ranks, nodes, attempt=0):
        w = self.w
        drift = 1.0 + w.drift * math.exp(-index / w.tau)
        comps = []
        for _rank, _host, t in ranks:
            c = w.t_cpu(t, phase) * self.f * drift * max(0.3, 1.0 + w.noise * float(self.rng.standard_normal()))
            if self.rng.random() < w.p_straggle:
                c += w.t_cpu(t, phase) * float(self.rng.uniform(0.5, 2.0))
            comps.append(w.quantize(c, self.rng))
        t0 = ranks[0][2]
        net = w.t_network(t0, phase, nodes) * self.f * max(0.3, 1.0 + w.noise * float(self.rng.standard_normal()))
        step = w.combine(max(comps), net)
        return comps, step - max(comps), step

    def init(self, nodes, itype):
        return self.w.init0 + self.w.init1 * nodes * float(self.rng.lognormal(0.0, 0.05))


def write_probes(w, root, rng, counts, phases=PHASES):
    """Probe logs of every type at every count; returns {(type, n): {phase: [step seconds, ...]}}."""
    steps = {}
    for t in w.types:
        for n in counts:
            rid = "%s-%s-%dx" % (w.name, t.replace(".", "-"), n)
            hosts = [("%s-n%d" % (rid, i), t) for i in range(n)]
            kw = dict(local_batch=w.batch, samples_per_epoch=w.samples, epochs=w.epochs,
                      warmup_iterations=w.warmup_iterations,
                      phases=phases if w.warmup_iterations else tuple(p for p in phases if p[0] != "warmup"))
            if not w.fits(t):
                kw.update(phases=(), status="failed")  # out of memory: the probe dies after init
            recs = lg.run_records(rid, w.name, hosts, ProbeTiming(w, rng, w.run_factor(rng)), **kw)
            lg.write_run(os.path.join(root, rid), recs, out_files=False)
            if w.fits(t):
                by_phase = {}
                for r in recs[hosts[0][0]]:
                    if r["event"] == "iteration" and r["rank"] == 0:
                        by_phase.setdefault(r["phase"], []).append(r["seconds"])
                steps[(t, n)] = by_phase
    return steps


def write_catalog(catalog_path, path, billing):
    """The default catalog with the family's billing rule stated in its optional columns."""
    with open(catalog_path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    cols = ["instance_type", "vcpus", "memory_gib", "gpus", "price_per_hour", "source",
            "billing_increment_seconds", "billing_minimum_seconds"]
    with open(path, "w", encoding="utf-8", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(cols)
        for r in rows:
            out.writerow([r[c] for c in cols[:6]] + ["%g" % billing[0], "%g" % billing[1]])


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
    for obj in ("cost", "time"):
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
            for obj in ("cost", "time"):
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
    for obj in ("cost", "time"):
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
    for obj in ("cost", "time"):
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
