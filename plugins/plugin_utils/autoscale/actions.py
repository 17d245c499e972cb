# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""Acting on the cluster: the collection's playbooks (observe, join, leave, provision), each one bounded
ansible-playbook run, and the rendezvous store the elastic agents share."""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time

from ansible_collections.paramount.cluster.plugins.plugin_utils.autoscale.desired import read_inventory_slots
from ansible_collections.paramount.cluster.plugins.plugin_utils.autoscale.live import read_records
from ansible_collections.paramount.cluster.plugins.plugin_utils.autoscale.policy import AutoscaleError

# one playbook run (a join provisions, sets up and starts nodes) may take this long before it counts as failed
PLAYBOOK_TIMEOUT_SECONDS = 900
# how much of a playbook's output ansible.log keeps, and how much of its failure lines an error message quotes
LOG_STDOUT_TAIL_CHARS = 20000
LOG_STDERR_TAIL_CHARS = 5000
ERROR_TAIL_CHARS = 1500
ERROR_TAIL_LINES = 3
STORE_START_SECONDS = 60
STORE_POLL_SECONDS = 0.2
STOP_GRACE_SECONDS = 10.0
KILL_WAIT_SECONDS = 5
RDZV_STORE_SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                 "paramount_rdzv_store.py")


class AnsibleCluster:
    """The cluster as the collection's playbooks see it. Every call is one bounded ansible-playbook run."""

    def __init__(self, run, backend, results_dir, local_root, extra_vars_file,
                 playbook_timeout=PLAYBOOK_TIMEOUT_SECONDS, ansible_playbook=None, echo=print):
        self.run = run
        self.backend = backend
        self.results_dir = results_dir
        self.local_root = local_root
        self.extra_vars_file = extra_vars_file
        self.timeout = playbook_timeout
        # the ansible-playbook beside this Python (a venv's bin is often not on an async task's PATH)
        beside = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
        self.ansible_playbook = ansible_playbook or (beside if os.path.exists(beside)
                                                     else shutil.which("ansible-playbook") or "ansible-playbook")
        self.echo = echo
        self.live_dir = os.path.join(results_dir, "live")

    def _connectable_inventory(self):
        names = ("inventory.aws_ec2.yml", "inventory.yml") if self.backend in ("sim", "aws") else ("inventory.yml",)
        for name in names:
            path = os.path.join(self.local_root, self.run, name)
            if os.path.exists(path):
                return path
        raise AutoscaleError("no connectable inventory of run %s under %s (did provisioning run?)"
                             % (self.run, os.path.join(self.local_root, self.run)))

    def playbook(self, name, extra=None, inventory=None, check=True):
        argv = [self.ansible_playbook, "paramount.cluster." + name, "-e", "@" + self.extra_vars_file]
        if inventory:
            argv += ["-i", inventory]
        if extra:
            argv += ["-e", json.dumps(extra)]
        started = time.monotonic()
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout, check=False)
        except subprocess.TimeoutExpired:
            raise AutoscaleError("paramount.cluster.%s took longer than %d s" % (name, self.timeout)) from None
        except OSError as exc:
            raise AutoscaleError("cannot run %s: %s" % (argv[0], exc)) from None
        seconds = time.monotonic() - started
        log_path = os.path.join(self.results_dir, "autoscale", "ansible.log")
        with open(log_path, "a", encoding="utf-8") as handle:
            handle.write("\n#### %s (rc %d, %.1f s)\n%s\n%s"
                         % (" ".join(argv), proc.returncode, seconds, proc.stdout[-LOG_STDOUT_TAIL_CHARS:],
                            proc.stderr[-LOG_STDERR_TAIL_CHARS:]))
        if check and proc.returncode != 0:
            tail = [line for line in (proc.stdout + proc.stderr).splitlines()
                    if "FAILED" in line or "fatal" in line or "ERROR" in line][-ERROR_TAIL_LINES:]
            raise AutoscaleError("paramount.cluster.%s failed (rc %d): %s (full output: %s)"
                                 % (name, proc.returncode, " | ".join(tail)[-ERROR_TAIL_CHARS:] or "see log", log_path))
        return proc.returncode, seconds

    def start(self, desired_path):
        """Start the agents of the whole desired cluster (the training's first formation)."""
        self.playbook("join", {"paramount_desired_inventory": desired_path,
                               "paramount_join_hosts": sorted(read_inventory_slots(desired_path))})

    def observe(self):
        """Fetch the live logs; returns (records, {slot: 'running'|'stopped'})."""
        os.makedirs(self.live_dir, exist_ok=True)
        for old in glob.glob(os.path.join(self.live_dir, "*.status.json")):
            os.unlink(old)
        self.playbook("observe", inventory=self._connectable_inventory(), check=False)
        agents = {}
        for path in glob.glob(os.path.join(self.live_dir, "*.status.json")):
            try:
                with open(path, encoding="utf-8") as handle:
                    doc = json.load(handle)
                agents[doc["slot"]] = doc["agent"]
            except (OSError, ValueError, KeyError):
                continue
        return read_records(self.live_dir), agents

    def join(self, union_path, hosts):
        self.playbook("join", {"paramount_desired_inventory": union_path, "paramount_join_hosts": sorted(hosts)})

    def leave(self, hosts):
        self.playbook("leave", {"paramount_leave_hosts": sorted(hosts)}, inventory=self._connectable_inventory())

    def shrink(self, desired_path):
        self.playbook("provision", {"paramount_desired_inventory": desired_path,
                                    "paramount_target_group": "paramount_train"})


def start_store(host, port, folder):
    """The c10d rendezvous store, a child of this process, so that any training node may leave."""
    ready = os.path.join(folder, "store.ready")
    if os.path.exists(ready):
        os.unlink(ready)
    log = open(os.path.join(folder, "store.log"), "a", encoding="utf-8")  # pylint: disable=consider-using-with
    proc = subprocess.Popen([sys.executable, RDZV_STORE_SCRIPT, "--host", host, "--port", str(port),
                             "--ready-file", ready, "--pidfile", os.path.join(folder, "store.pid")],
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + STORE_START_SECONDS
    while not os.path.exists(ready):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_process(proc)
            raise AutoscaleError("the rendezvous store did not start on %s:%d (see %s)"
                                 % (host, port, os.path.join(folder, "store.log")))
        time.sleep(STORE_POLL_SECONDS)
    return proc


def stop_process(proc, grace=STOP_GRACE_SECONDS):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(KILL_WAIT_SECONDS)
