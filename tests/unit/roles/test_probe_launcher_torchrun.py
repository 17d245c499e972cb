"""roles/probe/files/paramount_launch.py around a real torchrun (`python -m torch.distributed.run`), whose workers
run in sessions of their own (start_new_session=True): the CPU share holds for the worker that computes, and no
process of the job, a worker or what it forked into yet another session, outlives the launcher.

PARAMOUNT_TEST_LAUNCHER=<file> runs these tests against another launcher (they fail on the one that signalled
only its command's process group: `git show <commit>:roles/probe/files/paramount_launch.py > old.py`)."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ansible_collections.paramount.cluster.plugins.lookup.emulated_cpu_shares import emulated_cpu_shares

REPO = Path(__file__).resolve().parents[3]
LAUNCHER = Path(os.environ.get("PARAMOUNT_TEST_LAUNCHER") or REPO / "roles" / "probe" / "files" / "paramount_launch.py")
# the CPU share of each local type, where the local backend takes them from (the provision role's default
# paramount_local_cpu_shares is this lookup of the catalog)
LOCAL_SHARES = emulated_cpu_shares("local")
MEASURE_SECONDS = 2.5

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")]

# Busy for MEASURE_SECONDS of wall clock, then reports its own CPU time over that wall time, the time it waited
# for a CPU meanwhile (runnable but not running: the machine's other work; a stopped process does not wait), and
# where torchrun put it.
BUSY_WORKER = textwrap.dedent(f"""\
    import json, os, sys, time
    def waited():
        with open("/proc/self/schedstat") as stat:
            return int(stat.read().split()[1]) / 1e9
    wall0, cpu0, wait0 = time.monotonic(), time.process_time(), waited()
    while time.monotonic() - wall0 < {MEASURE_SECONDS}:
        pass
    wall, cpu, wait = time.monotonic() - wall0, time.process_time() - cpu0, waited() - wait0
    with open(sys.argv[1] + ".tmp", "w") as out:
        json.dump({{"cpu": cpu, "wall": wall, "wait": wait, "pgrp": os.getpgrp(),
                   "agent_pgrp": os.getpgid(os.getppid())}}, out)
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    """)

# Ignores SIGTERM and starts a helper in a session of its own that ignores it too; writes both PIDs; then either
# ends at once (the helper is left behind: torchrun's agent ends normally) or sleeps (the launcher must kill it).
LINGERING_WORKER = textwrap.dedent("""\
    import os, signal, subprocess, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    helper = subprocess.Popen([sys.executable, "-c", "import signal, time; "
                               "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"],
                              start_new_session=True)
    with open(sys.argv[1] + ".tmp", "w") as out:
        out.write("%d %d\\n" % (os.getpid(), helper.pid))
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    if sys.argv[2] == "stay":
        time.sleep(120)
    """)


def _torchrun(script, *args):
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "1", "--standalone",
            "--monitor-interval", "0.2", str(script), *args]


def _launch(tmp_path, name, share, command, *options):
    argv = [sys.executable, str(LAUNCHER), "--pidfile", str(tmp_path / (name + ".pid")), "--max-seconds", "300",
            "--cpu-share", str(share), *options, "--", *command]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # output to a file, not a pipe: a process the launcher leaves behind would hold a pipe open
    with open(tmp_path / (name + ".log"), "w", encoding="utf-8") as log:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)


def _output(tmp_path, name):
    return (tmp_path / (name + ".log")).read_text(encoding="utf-8", errors="replace")


def _start_time(pid):
    """(state, start time) of a process, or None if there is none."""
    try:
        text = Path("/proc/%d/stat" % pid).read_bytes()
    except OSError:
        return None
    fields = text[text.rfind(b")") + 2:].split()
    return fields[0].decode(), int(fields[19])


def _wait_for(path, proc, output, timeout):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, "the launcher ended first:\n" + output()
        assert time.monotonic() < deadline, "no %s after %s s" % (path.name, timeout)
        time.sleep(0.05)


def test_each_local_share_holds_for_the_worker_torchrun_starts(tmp_path):
    pytest.importorskip("torch")
    worker = tmp_path / "busy.py"
    worker.write_text(BUSY_WORKER)
    # concurrently: 0.15 + 0.30 + 0.60 = 1.05 CPUs, within the 2 cores of the test machine; each worker is
    # measured by its own CPU time over its own wall time, so what the others do only matters past 2 cores
    procs = {itype: _launch(tmp_path, itype, share, _torchrun(worker, tmp_path / (itype + ".json")))
             for itype, share in LOCAL_SHARES.items()}
    try:
        for itype, proc in procs.items():
            assert proc.wait(timeout=180) == 0, _output(tmp_path, itype)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    measured = {itype: json.loads((tmp_path / (itype + ".json")).read_text()) for itype in LOCAL_SHARES}
    for itype, got in measured.items():
        # the premise: torchrun's worker is not in its agent's process group (a group signal would miss it)
        assert got["pgrp"] != got["agent_pgrp"]
        assert got["wall"] >= 2.0
    shares = {itype: round(got["cpu"] / got["wall"], 3) for itype, got in measured.items()}
    runnable = {itype: round((got["cpu"] + got["wait"]) / got["wall"], 3) for itype, got in measured.items()}
    print("CPU share of the worker (its CPU time / wall time):", shares)
    print("time it was let run (CPU time + waiting for a CPU) / wall time:", runnable)
    for itype, share in LOCAL_SHARES.items():
        # The worker's own CPU time is its share of the wall time: never more (what failed when the launcher
        # stopped only torchrun's agent: ~1.0 each), and not less either, since the launcher counts CPU time
        # like a CFS quota (waiting for a CPU uses none of the budget); only a machine too busy to give it the
        # share within each period holds it below, and then it was waiting for a CPU, not stopped.
        assert shares[itype] <= 1.2 * share, (itype, share, shares, runnable)
        assert shares[itype] >= 0.8 * share or runnable[itype] >= 0.8 * share, (itype, share, shares, runnable)


@pytest.mark.parametrize("ending", ["agent-ends", "sigterm-then-grace-kill"])
def test_no_process_of_the_job_outlives_the_launcher(tmp_path, ending):
    pytest.importorskip("torch")
    worker = tmp_path / "lingering.py"
    worker.write_text(LINGERING_WORKER)
    pids_file = tmp_path / "pids"
    stay = "stay" if ending != "agent-ends" else "go"
    # throttled: the job is stopped for part of every period, and must be killed stopped or not
    proc = _launch(tmp_path, "node", 0.6, _torchrun(worker, pids_file, stay), "--grace-seconds", "1")
    pids = []
    try:
        _wait_for(pids_file, proc, lambda: _output(tmp_path, "node"), timeout=120)
        pids = [int(pid) for pid in pids_file.read_text().split()]
        started = {pid: _start_time(pid) for pid in pids}
        if ending != "agent-ends":
            os.kill(proc.pid, signal.SIGTERM)  # torchrun passes it on, the worker ignores it: killed after the grace
        proc.wait(timeout=120)
        # right when the launcher has ended: the worker and its helper are gone (or dead, a zombie for init)
        left = {pid: _start_time(pid) for pid in pids}
        alive = [pid for pid in pids
                 if left[pid] is not None and left[pid][1] == started[pid][1] and left[pid][0] != "Z"]
        assert not alive, (ending, alive, _output(tmp_path, "node"))
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in pids:  # whatever an old launcher left behind
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


WAITER = """\
import sys, time
# 40 rounds of: wait 20 ms (for a peer, for data), then 2 ms of work; prints the wall time of the rounds
t0 = time.monotonic()
for _ in range(40):
    time.sleep(0.02)
    end = time.monotonic() + 0.002
    while time.monotonic() < end:
        pass
print(time.monotonic() - t0)
"""


def test_a_waiting_process_keeps_its_budget_and_answers_at_once(tmp_path):
    """CPU time is what the share limits, as a CFS quota does: a process that mostly waits (a rank in an
    all-reduce) uses 2 ms of every 22, under its 0.3 share, and is never stopped. A duty cycle in wall time
    stopped it 70% of the time, whatever it did, so each wake-up waited for the next run slot (rounds about 2x
    longer): the stall that made collectives of emulated clusters slow."""
    script = tmp_path / "waiter.py"
    script.write_text(WAITER)
    proc = subprocess.run([sys.executable, str(LAUNCHER), "--pidfile", str(tmp_path / "pid"), "--max-seconds", "60",
                           "--cpu-share", "0.3", "--", sys.executable, str(script)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    rounds = float(proc.stdout.strip())
    alone = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True)
    # the same rounds without the launcher (this machine's sleep and scheduling jitter included)
    assert rounds <= 1.3 * float(alone.stdout.strip()), (rounds, alone.stdout)
