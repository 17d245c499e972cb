"""Run one node's trainer command with a time limit, a PID file and, optionally, a CPU share.

    paramount_launch.py --pidfile F --max-seconds S [--cpu-share 0.3] -- torchrun ...

With --cpu-share below 1 the job gets `share` x period CPU-seconds per period and is stopped (SIGSTOP) once
it has used them, until the next period: this is how the `local` backend makes a slower instance type
measurably slower without root and without touching the trainer. It is the CFS bandwidth control of a cgroup
CPU quota (a cloud VM's vCPU share, the simulated cloud's hosts) done from outside: CPU time is counted (each
process's CPU clock, clock_gettime), not wall time, so a process that waits (for a collective, for data) keeps
its budget and answers at once. A duty cycle in wall time (run `share` of each period, whatever the process
does) stopped waiting ranks too: a collective progressed only while every node happened to be in its run slot,
and a homogeneous cluster of 0.3-share nodes ran its all-reduces several times slower than its compute
explains. Where the CPU clocks of other processes cannot be read, the wall-time duty cycle is the fallback.
SIGTERM to the launcher is forwarded to the command (torchrun passes it to the trainer, which checkpoints and
exits); past --max-seconds the command gets SIGTERM, and every process of the job SIGKILL after
--grace-seconds. When the command ends, whatever of the job is left is killed too. If
the launcher itself is killed, the kernel sends the command SIGTERM. Exit status: the command's.

"The job" is the command's whole descendant tree, not its process group. torchrun starts every worker with
start_new_session=True (own session, own process group), and a worker may fork helpers of its own, so a
signal to the command's group (os.killpg) reaches torchrun's agent only: the workers, which do the
computing, ran unthrottled (a busy worker got 0.94 of a CPU at --cpu-share 0.15) and outlived the final
SIGKILL. So, without root and on the node's own Python (no psutil), the launcher
- makes itself a child subreaper (prctl PR_SET_CHILD_SUBREAPER), so an orphaned process of the job (its
  parent died first) is re-parented to the launcher instead of init and stays in the tree;
- finds the tree by scanning /proc for parent PIDs once per period (/proc/PID/task/TID/children needs a
  kernel option not every node has), during the stopped part of the period so the scan does not count as
  the job's run time, and signals every process of it, parents first;
- remembers every PID it has seen with its start time (field 22 of /proc/PID/stat): a process that left the
  tree all the same is still signalled and killed, and a PID the kernel reused for another program is not;
- reaps the orphans it adopted, and at the end stops the whole tree (so nothing forks), kills it, and checks
  that nothing of it is left (bounded; a process that survives is reported on stderr).
Without /proc (not Linux) it falls back to the command's process group.

With --container-name the command is a `docker run --name NAME ...` in the foreground (the probe role's
container mode). docker run proxies the SIGTERM it gets to the container's init, which passes it to torchrun,
so a stop works as above; SIGSTOP/SIGCONT of --cpu-share < 1 would only stop the docker client (the role gives
the container `--cpus` instead). On the way out, whatever ended the command (its end, the time limit, a
signal, the SIGKILL past the grace period), the launcher removes the container by name (`docker rm -f` on
--docker-host): a container never outlives its launcher.
"""
import argparse
import ctypes
import os
import signal
import subprocess
import sys
import time

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


def _prctl(option, arg):
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True).prctl(option, arg, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False  # not Linux: the time limit still applies


def _die_with_parent():
    os.setpgid(0, 0)
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _signal_group(pgid, signum):
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _stat(pid):
    """(state, ppid, start time) of /proc/PID/stat, or None if there is no such process."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as stat:
            text = stat.read()
    except OSError:
        return None
    fields = text[text.rfind(b")") + 2:].split()  # the command name may hold spaces and parentheses
    try:
        return fields[0].decode(), int(fields[1]), int(fields[19])
    except (IndexError, ValueError):
        return None


class _Job:
    """Every process descended from the launcher (the command, torchrun's workers in their own sessions, what
    they fork), remembered by PID and start time; see the module's docstring for why."""

    def __init__(self, command_pid):
        self.command_pid = command_pid
        self.root = os.getpid()
        self.proc = os.path.isdir("/proc/%d" % self.root)
        self.seen = {}  # pid -> start time, parents before children
        self.used = 0.0  # CPU seconds of the job counted so far (cpu_seconds)
        self.cpu_last = {}  # (pid, start time) -> its CPU clock when last read
        self.refresh()

    def refresh(self):
        """Add the processes now below the launcher; forget those gone (or whose PID now names another)."""
        if not self.proc:
            return
        parent_of = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            stat = _stat(int(name))
            if stat is not None:
                parent_of[int(name)] = stat
        children = {}
        for pid, (_state, ppid, _start) in parent_of.items():
            children.setdefault(ppid, []).append(pid)
        alive = {pid: start for pid, start in self.seen.items()
                 if pid in parent_of and parent_of[pid][2] == start}
        roots = [self.root] + list(alive)  # a remembered process that left the tree still counts, with its own
        while roots:
            for pid in children.get(roots.pop(), ()):
                if pid != self.root and pid not in alive:
                    alive[pid] = parent_of[pid][2]
                    roots.append(pid)
        self.seen = alive

    def cpu_seconds(self):
        """CPU seconds the job's processes have used (all their threads), from each process's CPU-time clock
        (clock_gettime of clockid ((~pid) << 3) | 2, CPUCLOCK_SCHED: nanoseconds), summed by increments so that
        a process that exits keeps what it used; a process counts from its start. None if unreadable."""
        total = 0.0
        for pid, start in list(self.seen.items()):
            try:
                now = time.clock_gettime(((~pid) << 3) | 2)
            except (OSError, OverflowError):
                continue  # gone: what it used is in the sum already
            key = (pid, start)
            self.used += now - self.cpu_last.get(key, 0.0)
            self.cpu_last[key] = now
        return self.used

    def signal(self, signum):
        """Signal every process of the job (each checked against its start time first)."""
        if not self.proc:
            _signal_group(self.command_pid, signum)
            return
        for pid, start in list(self.seen.items()):
            stat = _stat(pid)
            if stat is None or stat[2] != start:
                self.seen.pop(pid, None)  # gone, or the PID names another process now
                continue
            if stat[0] == "Z":
                continue
            try:
                os.kill(pid, signum)
            except (ProcessLookupError, PermissionError):
                pass

    def wait_stopped(self, timeout):
        """Wait until every process of the job has stopped (a SIGSTOP takes effect when the process next runs: on
        a busy machine it may wait for a CPU a while). The time the job runs on counts as its run time."""
        deadline = time.monotonic() + timeout
        pending = list(self.seen)
        while pending and time.monotonic() < deadline:
            pending = [pid for pid in pending if (_stat(pid) or ("X",))[0] not in "TtZXD"]
            if pending:
                time.sleep(0.0005)

    def reap(self):
        """Wait for the orphans the launcher adopted as subreaper (never the command: Popen waits for that)."""
        for pid in list(self.seen):
            if pid == self.command_pid:
                continue
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    self.seen.pop(pid, None)
            except ChildProcessError:
                pass  # not the launcher's child (its parent reaps it)

    def living(self):
        """The processes of the job that still run (a zombie's parent has yet to reap it: it runs no more)."""
        left = []
        for pid, start in self.seen.items():
            stat = _stat(pid)
            if stat is not None and stat[2] == start and stat[0] not in "ZX":
                left.append(pid)
        return left

    def kill(self, timeout=10.0):
        """Stop everything (nothing forks any more), kill it, until nothing of the job is left."""
        deadline = time.monotonic() + timeout
        while True:
            self.refresh()
            self.signal(signal.SIGSTOP)
            self.refresh()  # what forked before it stopped
            self.signal(signal.SIGSTOP)
            self.signal(signal.SIGKILL)
            if not self.proc:
                return []
            time.sleep(0.02)
            self.reap()
            self.refresh()
            left = [pid for pid in self.living() if pid != self.command_pid]
            if not left or time.monotonic() > deadline:
                return left


POLL_SECONDS = 0.004  # how often the job's CPU use is read within a period: the most it overshoots its budget


def _cpu_clocks_readable(pid):
    try:
        time.clock_gettime(((~pid) << 3) | 2)
        return True
    except (OSError, OverflowError, AttributeError):
        return False


def _quota_period(job, share, period, allowed):
    """One period of CFS-like bandwidth control: the job runs until its CPU-seconds reach ``allowed``, the
    books' limit, then stays stopped until the period ends. The books are cumulative (every CPU-second the job
    used is counted, also while the launcher scans /proc): each period adds ``share`` x ``period``; what a
    period left unused does not carry over (a CFS quota does not either), what it overshot (the job runs on
    until it has stopped) the next one pays back, so the long-run share holds. Returns the new limit."""
    period_end = time.monotonic() + period
    job.refresh()  # new processes of the job count from their start
    job.reap()
    used = job.cpu_seconds()
    allowed = min(allowed, used) + share * period
    while True:
        now = time.monotonic()
        used = job.cpu_seconds()
        if used >= allowed or now >= period_end:
            break
        # a thread uses CPU no faster than wall time: no need to look again before the budget could be spent
        time.sleep(max(0.0005, min(POLL_SECONDS, allowed - used, period_end - now)))
    if used >= allowed:
        job.signal(signal.SIGSTOP)
        if job.proc:
            job.wait_stopped(timeout=max(0.0, period_end - time.monotonic()))
        job.refresh()  # processes started since the last scan: stopped now too
        job.signal(signal.SIGSTOP)
        time.sleep(max(0.0, period_end - time.monotonic()))
        job.signal(signal.SIGCONT)
    return allowed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pidfile", required=True)
    parser.add_argument("--max-seconds", type=float, required=True)
    parser.add_argument("--cpu-share", type=float, default=1.0)
    parser.add_argument("--period", type=float, default=0.1)
    parser.add_argument("--grace-seconds", type=float, default=45.0,
                        help="after SIGTERM, SIGKILL the group past this (torchrun gives its workers 30 s)")
    parser.add_argument("--container-name", default="",
                        help="the command runs this container: remove it (docker rm -f) on the way out")
    parser.add_argument("--docker-host", default="", help="engine of --container-name (docker --host)")
    parser.add_argument("--docker-cli", default="docker", help="docker client that removes --container-name")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given after --")
    if not 0 < args.cpu_share <= 1:
        parser.error("--cpu-share must be in (0, 1], got %s" % args.cpu_share)

    _prctl(PR_SET_CHILD_SUBREAPER, 1)  # orphans of the job become the launcher's children, not init's
    child = subprocess.Popen(command, preexec_fn=_die_with_parent)  # pylint: disable=subprocess-popen-preexec-fn
    job = _Job(child.pid)
    try:
        return _watch(args, child, job)
    finally:
        # Nothing of the job may outlive the launcher (a worker torchrun failed to reap, a worker in its own
        # session that a group signal misses, an orphan it forked), also when the watch itself failed.
        if child.poll() is None:
            job.signal(signal.SIGCONT)
            job.signal(signal.SIGKILL)
            child.wait()
        left = job.kill()
        if left:
            print("paramount_launch: processes of the job still alive after SIGKILL: %s" % left, file=sys.stderr)
        # also when the watch itself failed: the container goes before the pidfile says the trainer stopped
        if args.container_name:
            _remove_container(args)
        try:
            os.unlink(args.pidfile)
        except OSError:
            pass


def _remove_container(args):
    """docker rm -f NAME: stops (SIGKILL) and removes the container if it is still there (bounded)."""
    argv = [args.docker_cli] + (["--host", args.docker_host] if args.docker_host else []) + ["rm", "-f", args.container_name]
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        print("paramount_launch: could not remove container %s: %s" % (args.container_name, exc), file=sys.stderr)
        return
    error = proc.stderr.decode(errors="replace").strip()
    # gone already (docker run --rm removed it) or being removed by that: nothing of it runs any more
    if proc.returncode != 0 and "No such container" not in error and "already in progress" not in error:
        print("paramount_launch: docker rm -f %s: %s" % (args.container_name, error), file=sys.stderr)


def _watch(args, child, job):
    with open(args.pidfile, "w", encoding="ascii") as pidfile:
        pidfile.write("%d %d\n" % (os.getpid(), child.pid))
    terminating = {"since": None}

    def _forward(_signum, _frame):
        # Only the command itself: torchrun's agent passes SIGTERM on to its workers once. A second SIGTERM
        # straight from here would make the trainer exit before its checkpoint. Every process of the job
        # continues first: a stopped worker would not act on torchrun's SIGTERM.
        job.signal(signal.SIGCONT)
        try:
            os.kill(child.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        terminating["since"] = terminating["since"] or time.monotonic()

    signal.signal(signal.SIGTERM, _forward)
    signal.signal(signal.SIGINT, _forward)
    deadline = time.monotonic() + args.max_seconds
    throttled = args.cpu_share < 1
    share, period = args.cpu_share, args.period
    # The duty cycle keeps its books in wall time: `ran` is how long the job was let run since `since`, from
    # the SIGCONT to the moment all of it had stopped. Each period's run time makes up for the last ones' error
    # (a launcher that woke late, a SIGSTOP that took effect only when the process next got a CPU, a scan that
    # kept the job stopped too long on a loaded machine), within one period.
    since = period_start = time.monotonic()
    ran = 0.0
    allowed = 0.0  # CPU-seconds the job may have used by the end of this period (quota books)
    cpu_clocks = throttled and job.proc and _cpu_clocks_readable(child.pid)
    while child.poll() is None:
        now = time.monotonic()
        if now > deadline and terminating["since"] is None:
            print("paramount_launch: time limit of %.0f s reached, stopping the trainer" % args.max_seconds, file=sys.stderr)
            _forward(None, None)
        if terminating["since"] is not None:
            job.refresh()
            job.reap()
            if now - terminating["since"] > args.grace_seconds:
                job.signal(signal.SIGKILL)
                _signal_group(child.pid, signal.SIGKILL)
            time.sleep(0.1)
            continue
        if not throttled:
            job.refresh()  # remember every process of the job, for the end
            job.reap()
            time.sleep(0.2)
            continue
        if cpu_clocks:
            allowed = _quota_period(job, share, period, allowed)
            continue
        # One period: the job runs from period_start (it was continued then) and is stopped until
        # period_start + period. The scan for new processes runs while the job is stopped, so it costs the job
        # no run time and the tree is still.
        owed = min(max(share * (period_start + period - since) - ran, -period), period)
        ran = share * (period_start + period - since) - owed  # at most one period of debt or credit
        time.sleep(max(0.0, period_start + min(max(owed, 0.0), period) - time.monotonic()))
        job.signal(signal.SIGSTOP)
        if job.proc:
            job.wait_stopped(timeout=max(0.0, (1 - share) * period / 2))
        ran += time.monotonic() - period_start
        job.refresh()  # processes started since the last scan: stopped now too
        job.signal(signal.SIGSTOP)
        job.reap()
        time.sleep(max(0.0, period_start + period - time.monotonic()))
        job.signal(signal.SIGCONT)
        period_start = time.monotonic()
    return child.returncode if child.returncode >= 0 else 128 - child.returncode


if __name__ == "__main__":
    sys.exit(main())
