# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""Callback plugin paramount.cluster.phases: how long every phase (play) took, at the end of the run."""

from __future__ import annotations

DOCUMENTATION = r"""
name: phases
type: aggregate
short_description: Wall time of every play (phase) of the run, printed at the end and optionally saved as JSON
description:
  - Measures the wall time of every play of the playbook run, in order, and prints a table of them after the
    play recap (phase, seconds, share of the run, number of hosts, whether a host failed in it).
  - C(optimize.yml) imports one collection playbook per phase (provision, setup, probe, collect, plan, train,
    report, teardown), so the table says how long each phase took; C(ansible.posix.profile_tasks) gives the
    tasks within them.
  - Enabled in the collection's C(ansible.cfg) (C(callbacks_enabled)).
requirements:
  - enable in configuration (C(callbacks_enabled = paramount.cluster.phases))
options:
  output_file:
    description:
      - Also write the phases as JSON to this file (keys C(total_seconds) and C(phases), a list of C(phase),
        C(seconds), C(hosts), C(failed)). Empty (the default) writes nothing. C(~) and environment variables
        are expanded.
      - A string, not a C(path) option, on purpose. Ansible turns an empty C(path) into the current folder, and
        writing the JSON to a folder failed at the end of every run (C(Errno 21, Is a directory)).
    type: str
    default: ''
    env:
      - name: PARAMOUNT_PHASES_FILE
    ini:
      - section: callback_paramount_phases
        key: output_file
"""

EXAMPLES = r"""
# ansible.cfg
# [defaults]
# callbacks_enabled = ansible.posix.profile_tasks, paramount.cluster.phases
#
# PARAMOUNT_PHASES_FILE=results/phases.json ansible-playbook optimize.yml
"""

import os

from ansible.plugins.callback import CallbackBase

from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_phases import PhaseClock


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "paramount.cluster.phases"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display=None):
        super().__init__(display=display)
        self._clock = PhaseClock()

    def v2_playbook_on_play_start(self, play):
        self._clock.play_start(play.get_name().strip())

    def v2_runner_on_ok(self, result):
        self._clock.host_seen(result._host.get_name())

    def v2_runner_on_skipped(self, result):
        self._clock.host_seen(result._host.get_name())

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._clock.host_seen(result._host.get_name())
        if not ignore_errors:
            self._clock.host_failed()

    def v2_runner_on_unreachable(self, result):
        self._clock.host_seen(result._host.get_name())
        self._clock.host_failed()

    def v2_playbook_on_stats(self, stats):
        self._clock.end()
        self._display.banner("PHASES")
        self._display.display(self._clock.table())
        path = (self.get_option("output_file") or "").strip()
        if path:
            path = os.path.expanduser(os.path.expandvars(path))
            folder = os.path.dirname(os.path.abspath(path))
            os.makedirs(folder, exist_ok=True)
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(self._clock.to_json())
