"""Run the real trainer under real torchrun as clusters of emulated instance types on this machine, for the
benchmarks that need measured runs (probe_rating.py, prediction_accuracy.py).

A node is one torchrun agent on loopback; its type is a share of one CPU, throttled the way its backend
throttles a node:
- local: the probe role's launcher (roles/probe/files/paramount_launch.py: SIGSTOP/SIGCONT of the job's whole
  process tree), as the local backend runs it, no root needed;
- sim: a cgroup v1 CFS quota per node, as the simulated cloud's hosts get (root). The sim backend's network
  namespaces and SSH are left out: they change the wire, not a node's own speed.

Worlds whose shares fit the capacity together run side by side (``pack``), as the provision role lets a
cluster's shares add up to the capacity (docs/optimize.md, "Capacity").
"""
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAUNCHER = REPO / "roles" / "probe" / "files" / "paramount_launch.py"
CGROUP_CPU = Path("/sys/fs/cgroup/cpu")
CPU_PERIOD_US = 100_000  # the simulated cloud's CFS period


def free_port():
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sim_available():
    return os.geteuid() == 0 and CGROUP_CPU.is_dir()


def backends(choice):
    """The backends --backend CHOICE (local, sim, both) asks for, sim left out with the reason where it cannot run."""
    chosen = ["local", "sim"] if choice == "both" else [choice]
    if "sim" in chosen and not sim_available():
        if choice == "sim":
            raise SystemExit("--backend sim needs root and cgroup v1's cpu controller at %s" % CGROUP_CPU)
        print("sim left out: it needs root and cgroup v1's cpu controller at %s" % CGROUP_CPU)
        chosen.remove("sim")
    return chosen


def make_dataset(folder, images=160, size=64):
    subprocess.run([sys.executable, "-m", "paramount_trainer", "make-dataset", "--out", str(folder), "-n",
                    str(images), "--size", str(size)], check=True, env=trainer_env(), stdout=subprocess.DEVNULL)


def trainer_env(**extra):
    return dict(os.environ, PYTHONPATH=str(REPO / "trainer"), OMP_NUM_THREADS="1", **extra)


class Cgroup:
    """A cgroup v1 cpu group with a CFS quota of ``share`` of one CPU (what a sim host gets)."""

    def __init__(self, name, share):
        self.path = CGROUP_CPU / name
        self.path.mkdir()
        (self.path / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
        (self.path / "cpu.cfs_quota_us").write_text(str(int(share * CPU_PERIOD_US)))

    def enter(self):
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def remove(self):
        for _attempt in range(50):  # bounded: the group empties as its processes exit
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)


class World:
    """One job: ``nodes`` = [(instance type, CPU share)], one torchrun agent each, logs in ``log_dir``."""

    def __init__(self, run_id, nodes, trainer_args, label=""):
        self.run_id = run_id
        self.nodes = nodes
        self.trainer_args = [str(a) for a in trainer_args]
        self.label = label
        self.log_dir = None
        self.procs = []

    @property
    def share(self):
        return sum(share for _type, share in self.nodes)

    def start(self, backend, workdir, timeout, cgroups):
        port = free_port()
        self.log_dir = workdir / "logs" / self.run_id
        self.log_dir.mkdir(parents=True)
        env = trainer_env(PARAMOUNT_RUN_ID=self.run_id)
        for i, (itype, share) in enumerate(self.nodes):
            node = "%s-node%d" % (self.run_id, i)
            torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(len(self.nodes)),
                        "--nproc-per-node", "1", "--rdzv-backend", "c10d",
                        "--rdzv-endpoint", "127.0.0.1:%d" % port, "--rdzv-id", self.run_id,
                        "--rdzv-conf", "is_host=%s,join_timeout=300" % ("true" if i == 0 else "false"),
                        "--local-addr", "127.0.0.1", "--max-restarts", "0", "--monitor-interval", "1",
                        "-m", "paramount_trainer", "train", "--quiet", "--output-dir", str(workdir / "out" / node),
                        "--checkpoint-dir", str(workdir / "checkpoints" / node), "--log-dir", str(self.log_dir),
                        "--node-name", node, "--instance-type", itype, "--run-id", self.run_id,
                        "--dist-timeout", "300"] + self.trainer_args
            launch = [sys.executable, str(LAUNCHER), "--pidfile", str(workdir / (node + ".pid")),
                      "--max-seconds", str(timeout)]
            preexec = None
            if backend == "local":
                launch += ["--cpu-share", str(share)]
            else:
                group = Cgroup("pcbench-%d-%s" % (os.getpid(), node), share)
                cgroups.append(group)
                preexec = group.enter
            with open(workdir / (node + ".err"), "w") as err:
                self.procs.append(subprocess.Popen(  # pylint: disable=subprocess-popen-preexec-fn
                    launch + ["--"] + torchrun, env=env, stdout=subprocess.DEVNULL, stderr=err,
                    preexec_fn=preexec))


def run_side_by_side(backend, worlds, workdir, timeout):
    """Start the worlds together, wait for all; raise SystemExit naming a failed one. Nothing outlives it."""
    cgroups = []
    started = []
    # a SIGTERM (timeout, kill) must still stop the launchers and remove the cgroups below
    previous = signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    try:
        for world in worlds:
            world.start(backend, workdir, timeout, cgroups)
            started.append(world)
        deadline = time.monotonic() + timeout + 60
        for world in started:
            for p in world.procs:
                p.wait(timeout=max(1.0, deadline - time.monotonic()))
                if p.returncode != 0:
                    raise SystemExit("run %s failed (exit %s): see the .err files in %s"
                                     % (world.run_id, p.returncode, workdir))
    finally:
        for world in started:
            for p in world.procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)  # the launcher stops its whole tree
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        p.wait(timeout=60)
                if p.poll() is None:
                    p.kill()
                    p.wait()
        for group in cgroups:
            group.remove()
        signal.signal(signal.SIGTERM, previous)


def pack(worlds, capacity):
    """Batches of worlds whose shares add up to at most ``capacity`` (first fit, largest first); a world larger
    than the capacity runs alone."""
    batches = []  # [[worlds], used share]
    for world in sorted(worlds, key=lambda w: -w.share):
        for batch in batches:
            if batch[1] + world.share <= capacity + 1e-9:
                batch[0].append(world)
                batch[1] += world.share
                break
        else:
            batches.append([[world], world.share])
    return [batch for batch, _used in batches]


def run_packed(backend, worlds, workdir, capacity, timeout, deadline=None, describe=None):
    """Run the worlds in ``pack(worlds, capacity)`` batches, one batch side by side at a time, printing each batch
    as it starts. A batch not started by ``deadline`` (time.monotonic()) is left out. Returns (done, left_out)."""
    describe = describe or (lambda w: w.label)
    batches = pack(worlds, capacity)
    t0 = time.monotonic()
    done, left_out = [], []
    for i, batch in enumerate(batches, 1):
        if deadline is not None and time.monotonic() > deadline:
            left_out += batch
            continue
        print("  [%s] batch %d/%d (%.0f s in): %s" % (backend, i, len(batches), time.monotonic() - t0,
                                                      ", ".join(describe(w) for w in batch)), flush=True)
        run_side_by_side(backend, batch, workdir, timeout)
        done += batch
    return done, left_out


def median(values):
    values = sorted(values)
    if not values:
        return float("nan")
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2
