# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""Wall time of every phase (play) of a playbook run: the logic of the paramount.cluster.phases callback, and
the names of the run's phases.

Plain Python (no Ansible), so it is unit-tested alone. A phase is a play; plays that run no task for any host
(e.g. ended at once in check mode) still count, with their time.
"""

from __future__ import annotations

import json
import time

from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_common import Vocabulary


class RunPhase(Vocabulary):
    """The phases of optimize.yml in the order they run, one collection playbook each (the callback's
    documentation lists them; a unit test keeps both in step). The collect role files each phase's logs under
    ``<results dir>/<phase>/`` (``paramount_collect_phase``): the probe's and the training's, which the cost
    ledger reads."""

    PROVISION = "provision"
    SETUP = "setup"
    PROBE = "probe"
    COLLECT = "collect"
    PLAN = "plan"
    TRAIN = "train"
    REPORT = "report"
    TEARDOWN = "teardown"


RUN_PHASES = RunPhase.values()


class PhaseClock:
    """Start and end of each play, in order. ``clock`` is injectable for tests."""

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._started = clock()
        self.phases = []  # [{"phase": name, "seconds": float, "hosts": [..], "failed": bool}]
        self._current = None

    def play_start(self, name, hosts=()):
        self.end()
        self._current = {"phase": name or "(unnamed play)", "start": self._clock(), "hosts": list(hosts),
                         "failed": False}

    def host_seen(self, name):
        """A host ran a task in the running phase (the table counts them)."""
        if self._current is not None and name not in self._current["hosts"]:
            self._current["hosts"].append(name)

    def host_failed(self):
        if self._current is not None:
            self._current["failed"] = True

    def end(self):
        """Close the running phase (at the next play's start or at the end of the run)."""
        if self._current is None:
            return
        current, self._current = self._current, None
        self.phases.append({"phase": current["phase"], "seconds": round(self._clock() - current["start"], 3),
                            "hosts": sorted(current["hosts"]), "failed": current["failed"]})

    def total(self):
        return round(self._clock() - self._started, 3)

    def table(self):
        """Markdown table: phase, wall seconds, share of the run, failed."""
        total = self.total()
        lines = ["| phase | wall s | share | hosts | failed |", "|---|---|---|---|---|"]
        for item in self.phases:
            share = 100.0 * item["seconds"] / total if total > 0 else 0.0
            cells = (item["phase"].replace("|", "/"), item["seconds"], share, len(item["hosts"]),
                     "yes" if item["failed"] else "")
            lines.append("| %s | %.1f | %.0f%% | %d | %s |" % cells)
        lines.append("| all | %.1f | 100%% | | |" % total)
        return "\n".join(lines)

    def to_json(self):
        return json.dumps({"total_seconds": self.total(), "phases": self.phases}, indent=1)
