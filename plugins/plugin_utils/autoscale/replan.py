# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""The planner, called again in this process on the live measurement (as SkyPilot's managed jobs call the same
optimizer again): ``paramount_plan.optimize``, the optimize plugin's own code, with its options checked by the
plugin's argument spec.

A round's input is a log folder like a probe's: the running formation's records (its run id made unique per
formation) plus the probe logs of every type not running now, so the planner rates the running type by how it
runs now and the other types by their probes.
"""

from __future__ import annotations

import json
import os
import shutil

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.paramount.cluster.plugins.plugin_utils.measurement.records import find_log_files
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_args import ARGUMENT_SPEC
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_common import ParamountError
from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_plan import optimize
from ansible_collections.paramount.cluster.plugins.plugin_utils.autoscale.desired import inventory_doc
from ansible_collections.paramount.cluster.plugins.plugin_utils.autoscale.live import logged_types
from ansible_collections.paramount.cluster.plugins.plugin_utils.autoscale.policy import AutoscaleError

# a round needs the choice, not the figures or the bootstrap intervals: every round stays quick
ROUND_PLAN_OPTIONS = {"plots": False, "bootstrap": 0}
# set by the controller for each round
ROUND_OWNED_OPTIONS = ("results_dir", "output_dir", "current_inventory")


def check_arguments(values, spec, source):
    """values checked and converted by an argument spec (the way Ansible checks a task's arguments); only the
    keys given come back. Raises AutoscaleError naming source and each bad key."""
    unknown = sorted(set(values) - set(spec))
    if unknown:
        raise AutoscaleError("%s: unsupported setting(s) %s; supported: %s"
                             % (source, ", ".join(unknown), ", ".join(sorted(spec))))
    result = ArgumentSpecValidator(spec).validate(dict(values))
    if result.error_messages:
        raise AutoscaleError("%s: %s" % (source, "; ".join(result.error_messages)))
    return {key: result.validated_parameters[key] for key in values}


def check_plan_options(options, source="plan_options"):
    """Options of the optimize plugin, checked by its argument spec; the controller sets the round's own."""
    spec = {name: dict(item, required=False) for name, item in ARGUMENT_SPEC.items()}
    owned = sorted(set(options) & set(ROUND_OWNED_OPTIONS))
    if owned:
        raise AutoscaleError("%s: %s is set by the controller for each round" % (source, ", ".join(owned)))
    return check_arguments(options, spec, source)


def _contract_record(rec, run_id):
    """A record as the log contract has it (the reader's own keys start with '_'), under another run id."""
    out = {k: v for k, v in rec.items() if not k.startswith("_")}
    out["run_id"] = run_id
    return out


def write_round_logs(folder, state, run, probe_dir=None):
    """The planner's input of a round (see the module doc); returns the folder."""
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    form = state.current
    run_id = "%s-live-%s" % (run, form.formation_id)
    live = [r for r in form.records if r.get("event") != "end"]
    for host in form.hosts:
        with open(os.path.join(folder, "live-%s.log" % host), "w", encoding="utf-8") as handle:
            for rec in live:
                if rec.get("host") == host:
                    handle.write(json.dumps(_contract_record(rec, run_id)) + "\n")
    running_types = set(form.hosts.values())
    if probe_dir and os.path.isdir(probe_dir):
        for path in find_log_files(probe_dir):
            types = logged_types(path)
            if types and not types & running_types:
                shutil.copy(path, os.path.join(folder, "probe-" + os.path.basename(path)))
    return folder


class Planner:
    """``plan(round_dir, state, desired)``: the plan of one round, or {"chosen": None, "message": why}."""

    def __init__(self, run, catalog, objective, options=None, guardrails=None, probe_dir=None):
        self.run = run
        self.probe_dir = probe_dir
        self.options = {"catalog": catalog, "objective": objective}
        self.options.update(check_plan_options(options or {}))
        self.options.update(ROUND_PLAN_OPTIONS)
        if guardrails is not None:  # plan within the guardrails: they are the planner's constraints
            self.options.update(guardrails.plan_options())

    def plan(self, round_dir, state, desired):
        results_dir = write_round_logs(os.path.join(round_dir, "logs"), state, self.run, self.probe_dir)
        args = dict(self.options, results_dir=results_dir, output_dir=os.path.join(round_dir, "plan"),
                    current_inventory=inventory_doc(desired))
        try:
            return optimize(args)["plan"]
        except ParamountError as exc:
            return {"chosen": None, "message": "the planner refused this round's input: %s" % exc}
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # a planner bug must not stop the training: the round holds and says why
            return {"chosen": None, "message": "the planner failed: %s: %s" % (type(exc).__name__, exc)}
