# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""The command line of the simulated cloud (``python simcloud ...`` from a checkout, or ``python -m simcloud``)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from . import __doc__ as PACKAGE_DOC
from .cloud import DEFAULT_SUBNET, SimCloud, sweep_all
from .controller import reconcile_forever, seed
from .system import SimCloudError


def main(argv=None):
    parser = argparse.ArgumentParser(prog="simcloud", description=PACKAGE_DOC.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start a cloud (prints its state as JSON)")
    up.add_argument("--state-dir", required=True)
    up.add_argument("--subnet", default=DEFAULT_SUBNET)
    up.add_argument("--moto-port", type=int, default=5055)
    down = sub.add_parser("down", help="tear a cloud down (idempotent)")
    down.add_argument("--state-dir")
    down.add_argument("--all", action="store_true", help="also sweep every sim cloud on this machine")
    run = sub.add_parser("exec", help="run a command in the controller namespace with the cloud's environment")
    run.add_argument("--state-dir", required=True)
    run.add_argument("argv", nargs=argparse.REMAINDER)
    status = sub.add_parser("status", help="print the hosts that exist")
    status.add_argument("--state-dir", required=True)
    set_cpu = sub.add_parser("set-cpu", help="change a type's CPU share, running hosts included")
    set_cpu.add_argument("--state-dir", required=True)
    set_cpu.add_argument("instance_type")
    set_cpu.add_argument("share", type=float)
    for hidden in ("_seed", "_reconcile"):
        sub.add_parser(hidden).add_argument("--state-dir", required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            print(json.dumps(SimCloud(args.state_dir, args.subnet, args.moto_port).up(), indent=2))
        elif args.command == "down":
            if args.state_dir:
                cloud = SimCloud(args.state_dir)
                cloud.down()
            if args.all:
                sweep_all()
        elif args.command == "exec":
            cloud = SimCloud(args.state_dir)
            command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
            env = dict(os.environ, **cloud.environment())
            return subprocess.call(cloud.controller_argv(command), env=env)
        elif args.command == "status":
            print(json.dumps(SimCloud(args.state_dir).hosts(), indent=2))
        elif args.command == "set-cpu":
            print(json.dumps(SimCloud(args.state_dir).set_cpu(args.instance_type, args.share)))
        elif args.command == "_seed":
            print(json.dumps(seed(SimCloud(args.state_dir))))
        elif args.command == "_reconcile":
            reconcile_forever(SimCloud(args.state_dir))
    except SimCloudError as exc:
        print("simcloud: error: %s" % exc, file=sys.stderr)
        return 2
    return 0
