"""Run one node's trainer command with a time limit, a PID file and, optionally, a CPU share.

    paramount_launch.py --pidfile F --max-seconds S [--cpu-share 0.3] -- torchrun ...

The command runs in its own process group. With --cpu-share below 1 the launcher lets that group run
for `share` of every period and stops it (SIGSTOP) for the rest: this is how the `local` backend makes a
slower instance type measurably slower without root and without touching the trainer. SIGTERM to the
launcher is forwarded to the command (torchrun passes it to the trainer, which checkpoints and exits); past
--max-seconds the command gets SIGTERM, and the group SIGKILL after --grace-seconds. If the launcher itself is killed, the kernel sends the command SIGTERM.
Exit status: the command's.

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


def _die_with_parent():
    os.setpgid(0, 0)
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass  # not Linux: the time limit still applies


def _signal_group(pgid, signum):
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass


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

    child = subprocess.Popen(command, preexec_fn=_die_with_parent)  # pylint: disable=subprocess-popen-preexec-fn
    try:
        return _watch(args, child)
    finally:
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


def _watch(args, child):
    with open(args.pidfile, "w", encoding="ascii") as pidfile:
        pidfile.write("%d %d\n" % (os.getpid(), child.pid))
    terminating = {"since": None}

    def _forward(_signum, _frame):
        # Only the command itself: torchrun's agent passes SIGTERM on to its workers once. A second SIGTERM
        # straight from here would make the trainer exit before its checkpoint.
        _signal_group(child.pid, signal.SIGCONT)
        try:
            os.kill(child.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        terminating["since"] = terminating["since"] or time.monotonic()

    signal.signal(signal.SIGTERM, _forward)
    signal.signal(signal.SIGINT, _forward)
    deadline = time.monotonic() + args.max_seconds
    throttled = args.cpu_share < 1
    run_for = args.period * args.cpu_share
    stop_for = args.period - run_for
    while child.poll() is None:
        now = time.monotonic()
        if now > deadline and terminating["since"] is None:
            print("paramount_launch: time limit of %.0f s reached, stopping the trainer" % args.max_seconds, file=sys.stderr)
            _forward(None, None)
        if terminating["since"] is not None:
            if now - terminating["since"] > args.grace_seconds:
                _signal_group(child.pid, signal.SIGKILL)
            time.sleep(0.1)
            continue
        if not throttled:
            time.sleep(0.2)
            continue
        time.sleep(run_for)
        _signal_group(child.pid, signal.SIGSTOP)
        time.sleep(stop_for)
        _signal_group(child.pid, signal.SIGCONT)
    # Nothing of the group may outlive the run (a worker torchrun failed to reap, say).
    _signal_group(child.pid, signal.SIGCONT)
    _signal_group(child.pid, signal.SIGKILL)
    return child.returncode if child.returncode >= 0 else 128 - child.returncode


if __name__ == "__main__":
    sys.exit(main())
