"""How well a mixed probe rates each instance type: the product's 1-node prediction per type and phase from one
heterogeneous probe, against separate homogeneous runs of that type (issue 11, part 3).

    .venv/bin/python benchmarks/probe_rating.py [--backend local|sim|both] [--repeats 3]

Each emulated type is a share of one CPU, throttled the way its backend throttles a node:
- local: the probe role's launcher (roles/probe/files/paramount_launch.py, SIGSTOP/SIGCONT of the job's whole
  process tree), no root needed;
- sim: a cgroup v1 CFS quota per node, as the simulated cloud's hosts get (root; the network namespaces and SSH
  of the sim backend are left out: they change the wire, not a node's own speed).

Per backend, with the real trainer under real torchrun (`python -m torch.distributed.run`) on loopback:
1. reference: every share alone, 1 node, --repeats times, longer than a probe; its steady seconds per step
   per phase and its init as the optimizer measures them (paramount_logs.measure); the median is the truth,
   the spread (max - min over median) is printed beside it;
2. probe: the shares together in mixed probe runs (one node each, as the local and sim probe clusters are),
   packed so that no run exceeds the capacity (paramount_capacity.cpu_capacity), --repeats times;
3. the product's prediction for 1 node of each type (paramount_model.ScalingModel on that probe alone), with the
   compute-only windows (new) and without them (old: the per-step compute_seconds of the mixed job).

It prints, per backend, share and phase: truth, spread, new and old ratings and their errors, and per backend
the median and largest absolute error of each design. Goal (issue 11): every new rating within 5%.
"""
import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# this checkout as the collection (scripts/setup-env makes the link)
sys.path.insert(0, str(REPO / ".build" / "collections"))

# pylint: disable=wrong-import-position
from ansible_collections.paramount.cluster.plugins.plugin_utils import paramount_capacity  # noqa: E402
from ansible_collections.paramount.cluster.plugins.plugin_utils import paramount_logs  # noqa: E402
from ansible_collections.paramount.cluster.plugins.plugin_utils import paramount_model  # noqa: E402

LAUNCHER = REPO / "roles" / "probe" / "files" / "paramount_launch.py"
CGROUP_CPU = Path("/sys/fs/cgroup/cpu")
PHASES = ("warmup", "adversarial")
RUN_TIMEOUT = 900.0  # seconds a run may take before it is killed (a run at 0.15 of a CPU takes about 2 minutes)


def free_port():
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def type_name(share):
    return "share-%.2f" % share


class Cgroup:
    """A cgroup v1 cpu group with a CFS quota of ``share`` of one CPU (what a sim host gets)."""

    def __init__(self, name, share):
        self.path = CGROUP_CPU / name
        self.path.mkdir()
        (self.path / "cpu.cfs_period_us").write_text("100000")
        (self.path / "cpu.cfs_quota_us").write_text(str(int(share * 100000)))

    def enter(self):
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def remove(self):
        for _ in range(50):  # bounded: the group empties as its processes exit
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)


def start_run(backend, shares, run_id, workdir, data, phases, window, cgroups):
    """Start one torchrun world: one node (agent) per share, each under its backend's throttle."""
    port = free_port()
    logdir = workdir / "logs" / run_id
    logdir.mkdir(parents=True)
    procs = []
    env = dict(os.environ, PYTHONPATH=str(REPO / "trainer"), OMP_NUM_THREADS="1", PARAMOUNT_RUN_ID=run_id)
    for i, share in enumerate(shares):
        node = "%s-node%d" % (run_id, i)
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(len(shares)),
                    "--nproc-per-node", "1", "--rdzv-backend", "c10d", "--rdzv-endpoint", "127.0.0.1:%d" % port,
                    "--rdzv-id", run_id, "--rdzv-conf", "is_host=%s,join_timeout=300" % ("true" if i == 0 else "false"),
                    "--local-addr", "127.0.0.1", "--max-restarts", "0", "--monitor-interval", "1",
                    "-m", "paramount_trainer", "train", "--quiet", "--preset", "tiny", "--data", str(data),
                    "--output-dir", str(workdir / "out" / node), "--log-dir", str(logdir), "--node-name", node,
                    "--instance-type", type_name(share), "--run-id", run_id, "--probe-phases", phases,
                    "--probe-window", str(window), "--dist-timeout", "300"]
        launch = [sys.executable, str(LAUNCHER), "--pidfile", str(workdir / (node + ".pid")),
                  "--max-seconds", str(RUN_TIMEOUT)]
        preexec = None
        if backend == "local":
            launch += ["--cpu-share", str(share)]
        else:
            group = Cgroup("pcbench-%d-%s" % (os.getpid(), node), share)
            cgroups.append(group)
            preexec = group.enter
        procs.append(subprocess.Popen(launch + ["--"] + torchrun, env=env, stdout=subprocess.DEVNULL,
                                      stderr=open(workdir / (node + ".err"), "w"),  # noqa: SIM115
                                      preexec_fn=preexec))  # pylint: disable=subprocess-popen-preexec-fn
    return procs, logdir


def run_batch(backend, batch, workdir, data, window, counter):
    """Run worlds side by side (their shares fit the capacity together); returns run_id -> log folder."""
    cgroups, started = [], []
    try:
        for shares, phases, label in batch:
            counter[0] += 1
            run_id = "%s-%s-%d" % (backend, label, counter[0])
            # the reference is a plain homogeneous run: no window
            procs, logdir = start_run(backend, shares, run_id, workdir, data, phases,
                                      window if label == "probe" else 0.0, cgroups)
            started.append((run_id, procs, logdir))
        deadline = time.monotonic() + RUN_TIMEOUT + 60
        for run_id, procs, _ in started:
            for p in procs:
                p.wait(timeout=max(1.0, deadline - time.monotonic()))
                if p.returncode != 0:
                    raise SystemExit("run %s failed (exit %s): see %s" % (run_id, p.returncode, workdir))
    finally:
        for _, procs, _ in started:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)  # the launcher stops its whole tree
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        p.wait(timeout=60)
                if p.poll() is None:
                    p.kill()
                    p.wait()
        for group in cgroups:
            group.remove()
    return {run_id: logdir for run_id, _, logdir in started}


def pack(jobs, capacity):
    """Greedy: each batch holds jobs whose shares add up to at most the capacity."""
    batches, current, used = [], [], 0.0
    for job in sorted(jobs, key=lambda j: -sum(j[0])):
        need = sum(job[0])
        if current and used + need > capacity + 1e-9:
            batches.append(current)
            current, used = [], 0.0
        current.append(job)
        used += need
    if current:
        batches.append(current)
    return batches


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
    measurement = paramount_logs.measure(str(logdir))
    model = paramount_model.ScalingModel(measurement, n_boot=20)
    out = {}
    for t in measurement.types():
        pred = model.predict(t, 1)
        out[t] = {p: pred.seconds_per_iteration[p][0] for p in PHASES if p in pred.seconds_per_iteration}
        out[t]["init"] = pred.init_seconds[0]
    return out


def reference(logdir):
    measurement = paramount_logs.measure(str(logdir))
    (key, config), = measurement.configs.items()
    values = {p: config.phases[p].seconds.mean for p in PHASES if p in config.phases}
    values["init"] = config.init.mean if config.init else float("nan")
    return key[0], values


def median(values):
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def bench_backend(backend, args, workdir, data, capacity):
    counter = [0]
    shares = args.shares
    # mixed probes: the probe cluster's shares, split where they do not fit together
    mixed = []
    current = []
    for share in shares:
        if current and sum(current) + share > capacity:
            mixed.append(current)
            current = []
        current.append(share)
    mixed.append(current)
    jobs = [([s], args.reference_phases, "ref") for s in shares for _ in range(args.repeats)]
    jobs += [(m, args.probe_phases, "probe") for m in mixed for _ in range(args.repeats)]
    t0 = time.monotonic()
    runs = {}
    batches = pack(jobs, capacity)
    for i, batch in enumerate(batches, 1):
        print("  [%s] batch %d/%d: %s" % (backend, i, len(batches),
                                        ", ".join("%s %s" % (label, "+".join("%.2f" % s for s in sh))
                                                  for sh, _, label in batch)), flush=True)
        runs.update(run_batch(backend, batch, workdir, data, args.window, counter))
    truth = {}
    for run_id, logdir in runs.items():
        if "-ref-" in run_id:
            t, values = reference(logdir)
            truth.setdefault(t, []).append(values)
    new, old = {}, {}
    for run_id, logdir in runs.items():
        if "-probe-" not in run_id:
            continue
        stripped = workdir / "stripped" / run_id
        strip_windows(logdir, stripped)
        for t, values in rate(logdir).items():
            new.setdefault(t, []).append(values)
        for t, values in rate(stripped).items():
            old.setdefault(t, []).append(values)
    rows = []
    for share in shares:
        t = type_name(share)
        for what in PHASES + ("init",):
            ref = [v[what] for v in truth.get(t, []) if what in v]
            if not ref:
                continue
            true = median(ref)
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
    parser.add_argument("--reference-phases", default="warmup:10,adversarial:20")
    parser.add_argument("--window", type=float, default=4.0, help="trainer --probe-window of the probes")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs) and print its path")
    args = parser.parse_args()
    args.shares = [float(s) for s in args.shares.split(",")]
    capacity = paramount_capacity.cpu_capacity(reserve=0.5)
    backends = ["local", "sim"] if args.backend == "both" else [args.backend]
    if "sim" in backends and (os.geteuid() != 0 or not CGROUP_CPU.is_dir()):
        if args.backend == "sim":
            raise SystemExit("--backend sim needs root and cgroup v1's cpu controller at %s" % CGROUP_CPU)
        print("sim left out: it needs root and cgroup v1's cpu controller at %s" % CGROUP_CPU)
        backends.remove("sim")
    if any(s > capacity for s in args.shares):
        raise SystemExit("a share above the capacity %.2f of this machine: %s" % (capacity, args.shares))
    workdir = Path(tempfile.mkdtemp(prefix="probe-rating-"))
    try:
        data = workdir / "data"
        subprocess.run([sys.executable, "-m", "paramount_trainer", "make-dataset", "--out", str(data), "-n", "160",
                        "--size", "64"], check=True, env=dict(os.environ, PYTHONPATH=str(REPO / "trainer")),
                       stdout=subprocess.DEVNULL)
        print("capacity %.2f CPU; shares %s; probe %s (window %.1f s), reference %s, %d repeats"
              % (capacity, args.shares, args.probe_phases, args.window, args.reference_phases, args.repeats))
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
        rated = median(vals) if vals else float("nan")
        err = rated / true - 1 if true else float("nan")
        errors.setdefault((backend, design, what == "init"), []).append(abs(err))
        print("| %s | %.2f | %s | %.3f s | %.1f%% | %s | %s | %+.1f%% |"
              % (backend, share, what, true, 100 * spread, design, ", ".join("%.3f" % v for v in vals), 100 * err))
    print("\n| backend | design | what | median abs error | largest abs error |")
    print("|---|---|---|---|---|")
    for (backend, design, is_init), errs in sorted(errors.items()):
        print("| %s | %s | %s | %.1f%% | %.1f%% |" % (backend, design, "init" if is_init else "steps",
                                                  100 * median(errs), 100 * max(errs)))


if __name__ == "__main__":
    main()
