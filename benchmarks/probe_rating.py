"""How well a mixed probe rates each instance type: the product's 1-node prediction per type and phase from one
heterogeneous probe, against separate homogeneous runs of that type (issue 11, part 3).

    .venv/bin/python benchmarks/probe_rating.py [--backend local|sim|both] [--repeats 3]

Each emulated type is a share of one CPU, throttled the way its backend throttles a node:
- local: the probe role's launcher (roles/probe/files/paramount_launch.py, SIGSTOP/SIGCONT of the job's whole
  process tree), no root needed;
- sim: a cgroup v1 CFS quota per node, as the simulated cloud's hosts get (root; the network namespaces and SSH
  of the sim backend are left out: they change the wire, not a node's own speed).

Per backend, with the real trainer under real torchrun (`python -m torch.distributed.run`) on loopback:
1. probe: the shares together in mixed probe runs (one node each, as the local and sim probe clusters are),
   packed so that no run exceeds the capacity (paramount_capacity.cpu_capacity), --repeats times;
2. the product's prediction for 1 node of each type (model.scaling.ScalingModel on that probe alone), with the
   compute-only windows (new) and without them (old: the per-step compute_seconds of the mixed job);
3. reference: every share as a 1-node run of its own, --repeats times, side by side with references of the other
   shares of its probe group (the neighbours the probe's windows had), each phase's steady part at least
   --reference-seconds long (its step count sized from the probe's rating: a fixed count is a few throttle
   periods for a fast type);
   its steady wall-clock seconds per step per phase (the plain mean of each phase's steps after its first third:
   what the steps took, not the optimizer's estimator) and its logged init; the median is the truth, the spread
   (max - min over median) is printed beside it.

It prints, per backend, share and phase: truth, spread, new and old ratings and their errors, and per backend
the median and largest absolute error of each design. Goal (issue 11): every new rating within 5%.
"""
import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
# this checkout as the collection (scripts/setup-env makes the link)
sys.path.insert(0, str(REPO / ".build" / "collections"))

# pylint: disable=wrong-import-position
import emulated_cluster as ec  # noqa: E402
from ansible_collections.paramount.cluster.plugins.plugin_utils import paramount_capacity  # noqa: E402
from ansible_collections.paramount.cluster.plugins.plugin_utils.measurement.estimates import measure  # noqa: E402
from ansible_collections.paramount.cluster.plugins.plugin_utils.measurement.records import read_log_file  # noqa: E402
from ansible_collections.paramount.cluster.plugins.plugin_utils.model import scaling  # noqa: E402

PHASES = ("warmup", "adversarial")
RUN_TIMEOUT = 900.0  # seconds a run may take before it is killed (a run at 0.15 of a CPU takes about 2 minutes)


def type_name(share):
    return "share-%.2f" % share


def strip_windows(src, dst):
    """The same logs without the new fields: what the old design (compute_seconds of the mixed job, init with
    the waits for other ranks) rates."""
    dst.mkdir(parents=True)
    for path in src.glob("*.log"):
        with open(path) as fin, open(dst / path.name, "w") as fout:
            for line in fin:
                rec = json.loads(line)
                rec.pop("window_seconds", None)
                if rec.get("event") == "init":
                    rec.pop("wait_seconds", None)
                fout.write(json.dumps(rec) + "\n")


def rate(logdir):
    """The product's prediction for 1 node of each type: {type: {phase: s/step, 'init': s}}."""
    measurement = measure(str(logdir))
    model = scaling.ScalingModel(measurement, n_boot=20)
    out = {}
    for t in measurement.types():
        pred = model.predict(t, 1)
        out[t] = {p: pred.seconds_per_iteration[p][0] for p in PHASES if p in pred.seconds_per_iteration}
        out[t]["init"] = pred.init_seconds[0]
    return out


def steady_seconds(steps):
    """Steady wall-clock seconds per step of one phase: the mean of its steps after the first third (at least the
    first step dropped). A plain mean on purpose: the truth is what the steps took, the total time a job of that
    type spends per step, not the optimizer's estimator (its warm-up drift fit and winsorized mean): under a CPU
    quota step times are quantized by the throttle period (a 0.15-share warm-up step takes 3 or 4 periods), a
    mixture the winsorized mean clips and the drift fit reads as warm-up, both low by up to 10%."""
    steady = steps[max(1, len(steps) // 3):]
    return sum(steady) / len(steady) if steady else float("nan")


def reference(logdir):
    """(type, {phase: steady s/step, 'init': s}) of a homogeneous 1-node run, from its records alone."""
    (path,) = Path(logdir).glob("*.log")
    records = read_log_file(str(path)).records  # the log contract's one reader
    (itype,) = {r["instance_type"] for r in records if r.get("event") == "start"}
    values = {}
    for phase in PHASES:
        steps = [r["seconds"] for r in records if r.get("event") == "iteration" and r.get("phase") == phase]
        if steps:
            values[phase] = steady_seconds(steps)
    inits = [r["seconds"] for r in records if r.get("event") == "init"]
    values["init"] = inits[0] if inits else float("nan")
    return itype, values


def reference_args(args, ratings):
    """Trainer arguments of a reference run: each phase's steady part (after its first third) lasts at least
    --reference-seconds at the type's rated speed, and at least as many steps as --reference-phases gives. A
    fixed step count is too short for a fast type: 20 steady warm-up steps at 0.6 of a CPU are 14 throttle
    periods of 100 ms, where one period more or less is 7%."""
    phases = []
    for item in args.reference_phases.split(","):
        phase, steps = item.split(":")
        rated = [r[phase] for r in ratings if phase in r]
        if rated:
            steps = max(int(steps), math.ceil(1.5 * args.reference_seconds / ec.median(rated)))
        phases.append("%s:%d" % (phase, int(steps)))
    total = sum(int(p.split(":")[1]) for p in phases)
    # the probe plan ends the run: enough epochs that the data never run out first (a tiny preset's epoch is short)
    return ["--probe-phases", ",".join(phases), "--probe-window", 0, "--epochs", max(2, total)]


def bench_backend(backend, args, workdir, data, capacity):
    shares = args.shares
    # mixed probes: the probe cluster's shares, split where they do not fit together
    mixed, current = [], []
    for share in shares:
        if current and sum(current) + share > capacity:
            mixed.append(current)
            current = []
        current.append(share)
    mixed.append(current)
    # a share left alone would be probed as a homogeneous run: give it the smallest share as a partner
    smallest = min(shares)
    for group in mixed:
        if len(group) == 1 and group[0] != smallest and group[0] + smallest <= capacity:
            group.append(smallest)
    common = ["--preset", "tiny", "--data", data]
    t0 = time.monotonic()
    # 1. the mixed probes
    probes = [ec.World("%s-probe-%d-%d" % (backend, i, repeat), [(type_name(s), s) for s in m],
                       common + ["--probe-phases", args.probe_phases, "--probe-window", args.window], "probe")
              for repeat in range(args.repeats) for i, m in enumerate(mixed)]
    ec.run_packed(backend, probes, workdir, capacity, RUN_TIMEOUT,
                  describe=lambda w: "%s %s" % (w.label, "+".join("%.2f" % s for _t, s in w.nodes)))
    new, old = {}, {}
    for world in probes:
        stripped = workdir / "stripped" / world.run_id
        strip_windows(world.log_dir, stripped)
        for t, values in rate(world.log_dir).items():
            new.setdefault(t, []).append(values)
        for t, values in rate(stripped).items():
            old.setdefault(t, []).append(values)
    # 2. the references: plain homogeneous runs (no window), each phase long enough in seconds (sized from the
    # probes' ratings; the truth is still what the reference's own steps take). They run beside the neighbours
    # of the probe's windows: the other types of the same probe group, each a reference of its own, busy at its
    # share. This machine's CPUs share caches and memory bandwidth (a VM's vCPUs may be one core's hyperthreads),
    # so a type runs slower beside a busy neighbour than alone; truth and rating must see the same neighbours.
    references = []
    batches = [(repeat, i, group) for repeat in range(args.repeats) for i, group in enumerate(mixed)]
    for number, (repeat, i, group) in enumerate(batches, 1):
        batch = [ec.World("%s-ref-%s-g%d-%d" % (backend, type_name(s), i, repeat), [(type_name(s), s)],
                          common + reference_args(args, new.get(type_name(s), [])), "ref") for s in group]
        print("  [%s] references %d/%d: %s" % (backend, number, len(batches), "+".join("%.2f" % s for s in group)),
              flush=True)
        ec.run_side_by_side(backend, batch, workdir, RUN_TIMEOUT)
        references += batch
    truth = {}
    for world in references:
        t, values = reference(world.log_dir)
        truth.setdefault(t, []).append(values)
    rows = []
    for share in shares:
        t = type_name(share)
        for what in PHASES + ("init",):
            ref = [v[what] for v in truth.get(t, []) if what in v]
            if not ref:
                continue
            true = ec.median(ref)
            spread = (max(ref) - min(ref)) / true if true else float("nan")
            for design, ratings in (("new", new), ("old", old)):
                vals = [v[what] for v in ratings.get(t, []) if what in v]
                rows.append((backend, share, what, design, true, spread, vals))
    return rows, time.monotonic() - t0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--backend", choices=("local", "sim", "both"), default="both")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shares", default="0.15,0.3,0.6,1.0",
                        help="CPU shares of the emulated types (default: the local types and a whole CPU)")
    parser.add_argument("--probe-phases", default="warmup:3,adversarial:10", help="the probe role's default")
    parser.add_argument("--reference-phases", default="warmup:30,adversarial:30",
                        help="least steps of each phase of a reference run")
    parser.add_argument("--reference-seconds", type=float, default=15.0,
                        help="least seconds of each reference phase's steady part (its last two thirds)")
    parser.add_argument("--window", type=float, default=4.0, help="trainer --probe-window of the probes")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs) and print its path")
    args = parser.parse_args()
    args.shares = [float(s) for s in args.shares.split(",")]
    capacity = paramount_capacity.cpu_capacity(reserve=0.5)
    backends = ec.backends(args.backend)
    if any(s > capacity for s in args.shares):
        raise SystemExit("a share above the capacity %.2f of this machine: %s" % (capacity, args.shares))
    workdir = Path(tempfile.mkdtemp(prefix="probe-rating-"))
    try:
        data = workdir / "data"
        ec.make_dataset(data)
        print("capacity %.2f CPU; shares %s; probe %s (window %.1f s), reference %s and >= %.0f s per phase, "
              "%d repeats" % (capacity, args.shares, args.probe_phases, args.window, args.reference_phases,
                              args.reference_seconds, args.repeats))
        all_rows = []
        for backend in backends:
            rows, seconds = bench_backend(backend, args, workdir / backend, data, capacity)
            print("  [%s] %.0f s" % (backend, seconds))
            all_rows += rows
        report(all_rows)
    finally:
        if args.keep:
            print("logs kept in %s" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def report(rows):
    print("\n| backend | share | phase | truth (median) | spread | design | ratings | error of median rating |")
    print("|---|---|---|---|---|---|---|---|")
    errors = {}
    for backend, share, what, design, true, spread, vals in rows:
        rated = ec.median(vals) if vals else float("nan")
        err = rated / true - 1 if true else float("nan")
        errors.setdefault((backend, design, what == "init"), []).append(abs(err))
        print("| %s | %.2f | %s | %.3f s | %.1f%% | %s | %s | %+.1f%% |"
              % (backend, share, what, true, 100 * spread, design, ", ".join("%.3f" % v for v in vals), 100 * err))
    print("\n| backend | design | what | median abs error | largest abs error |")
    print("|---|---|---|---|---|")
    for (backend, design, is_init), errs in sorted(errors.items()):
        what = "init" if is_init else "steps"
        print("| %s | %s | %s | %.1f%% | %.1f%% |" % (backend, design, what, 100 * ec.median(errs), 100 * max(errs)))


if __name__ == "__main__":
    main()
