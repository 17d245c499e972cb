# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""The rendezvous store of an elastic training run, on a host that outlives every cluster change.

torchrun's c10d rendezvous keeps its state in a TCPStore. Normally the agent of one node hosts it
(``is_host=true``), so that node could never leave the cluster. This process hosts the store on its own
(the autoscale controller starts it; every agent connects with ``is_host=false``), so any training node
may be replaced:

    python paramount_rdzv_store.py --host 10.77.0.1 --port 29400 --pidfile store.pid [--max-seconds S]

It serves until SIGTERM/SIGINT or --max-seconds, then removes its PID file. torch is imported lazily so
that the module imports without it (the controller's sanity tests).
"""

from __future__ import annotations

import argparse
import datetime
import os
import signal
import sys
import time


def serve(host, port, pidfile=None, max_seconds=86400.0, ready_file=None, use_libuv=False):
    """Host a TCPStore on host:port until a signal or max_seconds; returns 0. The classic (non-libuv) server by
    default: on the simulated cloud, a node whose network vanished stalled the libuv server's other clients."""
    from torch.distributed import TCPStore  # pylint: disable=import-outside-toplevel

    stop = {"now": False}

    def _stop(_signum, _frame):
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    store = TCPStore(host, int(port), is_master=True, wait_for_workers=False,
                     timeout=datetime.timedelta(seconds=60), multi_tenant=True, use_libuv=use_libuv)
    if pidfile:
        with open(pidfile, "w", encoding="ascii") as handle:
            handle.write("%d\n" % os.getpid())
    if ready_file:
        with open(ready_file, "w", encoding="ascii") as handle:
            handle.write("%s:%d\n" % (host, int(port)))
    print("paramount rendezvous store serving on %s:%d (pid %d)" % (host, int(port), os.getpid()), flush=True)
    deadline = time.monotonic() + float(max_seconds)
    try:
        while not stop["now"] and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        del store
        if pidfile:
            try:
                os.unlink(pidfile)
            except OSError:
                pass
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", required=True, help="address the nodes reach (and the store binds)")
    parser.add_argument("--port", type=int, default=29400)
    parser.add_argument("--pidfile")
    parser.add_argument("--ready-file", help="written once the store listens")
    parser.add_argument("--max-seconds", type=float, default=86400.0, help="stop after this long (a bound)")
    args = parser.parse_args(argv)
    return serve(args.host, args.port, args.pidfile, args.max_seconds, args.ready_file)


if __name__ == "__main__":
    sys.exit(main())
