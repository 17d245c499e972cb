# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""Argument spec of paramount.cluster.optimize (shared by the action plugin and the tests that keep
plugins/modules/optimize.py's DOCUMENTATION in step), and the check of a play's objective and plan options that
the provision role runs before anything starts. No third-party imports (Ansible's own argument spec validator)."""

from __future__ import annotations

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.paramount.cluster.plugins.plugin_utils.paramount_common import OBJECTIVES, Objective

ARGUMENT_SPEC = {
    "results_dir": {"type": "path", "required": True},
    "catalog": {"type": "path"},
    "objective": {"type": "str", "default": Objective.COST.value, "choices": list(OBJECTIVES)},
    "deadline": {"type": "float"},
    "budget": {"type": "float"},
    "instance_types": {"type": "list", "elements": "str"},
    "node_counts": {"type": "list", "elements": "int"},
    "max_nodes": {"type": "int"},
    "max_hourly_cost": {"type": "float"},
    "epochs": {"type": "int"},
    "measured_only": {"type": "bool", "default": False},
    "setup_seconds": {"type": "float", "default": 0.0},
    "output_dir": {"type": "path"},
    "current_inventory": {"type": "raw"},
    "ranks_per_node": {"type": "int"},
    "run_name": {"type": "str", "default": "paramount"},
    "warmup_drop": {"type": "int", "default": 1},
    "plots": {"type": "bool", "default": True},
    "clap_setups": {"type": "list", "elements": "str"},
    "clap_role": {"type": "str", "default": "gan"},
    "clap_setup_action": {"type": "str", "default": "setup-gan"},
    "bootstrap": {"type": "int", "default": 200},
    "tie_tolerance": {"type": "float", "default": 0.0},
    "cpu_capacity": {"type": "float"},
}

DEFAULT_MAX_NODES = 8

OBJECTIVE_VARIABLE = "paramount_objective"
PLAN_OPTIONS_VARIABLE = "paramount_plan_options"
# options the play checks for ranges before anything starts (the plugin checks the others' ranges itself)
COUNT_OPTIONS = {
    "max_nodes": "an integer >= 1",
    "node_counts": "a non-empty list of integers >= 1",
}


def _count_ok(name, value):
    """Whether a converted count option is in range (no booleans: YAML's yes is not a count)."""
    counts = [value] if name == "max_nodes" else value
    return bool(counts) and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in counts)


def plan_settings_problems(objective=None, options=None):
    """What is wrong with a play's objective and plan options (``paramount_objective``,
    ``paramount_plan_options``), each a sentence naming the variable; [] when both are fine or not set.

    The objective must be one of ``OBJECTIVES``; every option the plugin knows is checked by its argument spec
    (``ArgumentSpecValidator``, as Ansible checks the task's arguments) and the counts by range. Options the plugin
    does not know are left to the plan play, which names them and the known ones.
    """
    problems = []
    if objective is not None and objective not in OBJECTIVES:
        problems.append("%s must be %s, got %s." % (OBJECTIVE_VARIABLE, " or ".join(OBJECTIVES), objective))
    if options is None:
        return problems
    if not isinstance(options, dict):
        return problems + ["%s must be a mapping of paramount.cluster.optimize options, got %s."
                           % (PLAN_OPTIONS_VARIABLE, options)]
    for name, value in options.items():
        if name not in ARGUMENT_SPEC or value is None:
            continue
        spec = dict(ARGUMENT_SPEC[name], required=False)
        result = ArgumentSpecValidator({name: spec}).validate({name: value})
        if name in COUNT_OPTIONS:
            if result.error_messages or not _count_ok(name, result.validated_parameters[name]):
                problems.append("%s.%s must be %s, got %s." % (PLAN_OPTIONS_VARIABLE, name, COUNT_OPTIONS[name], value))
        elif result.error_messages:
            problems.append("%s.%s: %s." % (PLAN_OPTIONS_VARIABLE, name, "; ".join(result.error_messages)))
    return problems
