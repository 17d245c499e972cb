"""The decision-quality benchmark's synthetic workloads (benchmarks/decision_quality.py): each workload's true
step time on a set of types (Pollux form), the probe logs it writes through the tests' log generator
(tests/loggen.py), its catalog and the benchmark's own billing rule. Ground truth for the benchmark only: the
optimizer never sees it. The importer puts the checkout root on sys.path (for ``tests.loggen``)."""

from __future__ import annotations

import csv
import math
import os

import numpy as np

from tests import loggen as lg

# compute capacity per vCPU by family, network factor (1 = t3-like), accelerator boost
FAMILY = {"t2": (0.8, 1.5), "t3": (0.9, 1.0), "c5": (1.15, 0.7), "m5": (1.0, 0.7), "g4dn": (1.0, 0.5),
          "sim": (1.0, 1.0)}
SIM_SPEED = {t: share for t, share in lg.SIM_SPEED.items() if t.startswith("sim.")}  # the catalog's sim types
PHASES = (("warmup", 3), ("adversarial", 10))
SETUP_SECONDS = 60.0


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
